//! In-process cost of joins and broadcasts (ignored: run with
//! `cargo test -p muc --release --test integration throughput:: -- --ignored --nocapture`).
//! The benchmark tool measures the whole server over sockets; this is the
//! MUC alone, clients being channels.

use crate::common;

use std::time::Instant;

use common::*;
use xmpp_core::Value;

fn drain_all(clients: &mut [Client]) -> usize {
    let mut n = 0;
    for c in clients.iter_mut() {
        while c.rx.try_recv().is_ok() {
            n += 1;
        }
    }
    n
}

#[test]
#[ignore]
fn joins_and_broadcasts() {
    let h = Harness::with(Setup {
        muc_options: vec![("muc_room_locking", Value::Bool(false))],
        ..Setup::default()
    });
    for n in [200usize, 500] {
        let node = format!("room{n}");
        let mut clients: Vec<Client> = (0..n)
            .map(|i| h.connect(&format!("u{n}x{i}"), "r"))
            .collect();
        let start = Instant::now();
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(join(&node, &format!("n{i}")));
        }
        let joined = start.elapsed();
        let delivered = drain_all(&mut clients);
        println!(
            "{n} joins: {:.1} ms ({delivered} presences and subjects delivered)",
            joined.as_secs_f64() * 1000.0
        );
        assert_eq!(h.room(&node).unwrap().occupant_count(), n);
        if n == 200 {
            let messages = 200;
            let start = Instant::now();
            for i in 0..messages {
                clients[i % n].send(groupchat(
                    &node,
                    "a message of some ordinary length for a chat",
                ));
            }
            let elapsed = start.elapsed();
            let delivered = drain_all(&mut clients);
            assert_eq!(delivered, messages * n);
            println!(
                "200-occupant room: {messages} messages, {delivered} deliveries in {:.1} ms = {:.0} deliveries/s",
                elapsed.as_secs_f64() * 1000.0,
                delivered as f64 / elapsed.as_secs_f64()
            );
            let start = Instant::now();
            for i in 0..messages {
                let mut p = presence(&format!("{}/n{}", room_jid(&node), i % n));
                p.push_child(
                    xmpp_core::Element::new("status", xmpp_core::stanza::NS_CLIENT).text("busy"),
                );
                clients[i % n].send(p);
            }
            let elapsed = start.elapsed();
            let delivered = drain_all(&mut clients);
            println!(
                "200-occupant room: {messages} presence updates, {delivered} deliveries in {:.1} ms = {:.0} deliveries/s",
                elapsed.as_secs_f64() * 1000.0,
                delivered as f64 / elapsed.as_secs_f64()
            );
        }
    }
}
