//! A tiny authoritative DNS server for a private network namespace: it
//! answers A and SRV (and any other type) from a fixed zone over UDP, so
//! that servers resolving names through the system resolver (lilt's
//! hickory, Prosody's libunbound, Erlang's inet_res) find each other on
//! loopback. Shared by `bench s2s` and the federation tests
//! (`tests/s2s_support`, which include this file by path): it depends on
//! `std` and `hickory-proto` only.
//!
//! Names of the zone (and their parents, as empty non-terminals: resolvers
//! minimising query names ask for them) get their records of the asked
//! type, possibly none; other names NXDOMAIN. Answers keep the zone's order.

use std::net::UdpSocket;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record};

/// Records by absolute, lower-case name (`"a.lilt."`), in answer order.
pub type Zone = Vec<(String, RData)>;

/// The reply to `query` from `zone`.
pub fn answer(query: &Message, zone: &Zone) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_authoritative(true)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true);
    let mut known = false;
    for q in query.queries() {
        reply.add_query(q.clone());
        let asked = q.name().to_ascii().to_ascii_lowercase();
        let suffix = format!(".{asked}");
        for (name, rdata) in zone {
            if asked == "." || name.ends_with(&suffix) {
                known = true;
            }
            if *name == asked {
                known = true;
                if rdata.record_type() == q.query_type() {
                    reply.add_answer(Record::from_rdata(q.name().clone(), 60, rdata.clone()));
                }
            }
        }
    }
    if !known {
        reply.set_response_code(ResponseCode::NXDomain);
    }
    reply
}

/// Answers queries arriving on `socket` from `zone` on a thread of its own
/// until the socket fails.
pub fn serve(socket: UdpSocket, zone: Zone) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                return;
            };
            let Some(packet) = buf.get(..n) else { continue };
            let Ok(query) = Message::from_vec(packet) else {
                continue;
            };
            if let Ok(bytes) = answer(&query, &zone).to_vec() {
                let _ = socket.send_to(&bytes, peer);
            }
        }
    })
}
