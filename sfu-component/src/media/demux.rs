//! Which endpoint a datagram on the bridge's one UDP socket belongs to.
//!
//! A datagram from a known source address goes to the endpoint that address
//! was learnt for (a hash map, not a scan over endpoints). A datagram from a
//! new address must be a STUN binding request whose USERNAME starts with
//! the local ufrag of one of the bridge's endpoints (RFC 8445 §7.2.2:
//! `<receiver ufrag>:<sender ufrag>`); anything else belongs to no one.

use std::collections::HashMap;
use std::net::SocketAddr;

/// A conference id and an endpoint id.
pub(crate) type EndpointKey = (String, String);

const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const STUN_HEADER: usize = 20;
const ATTRIBUTE_USERNAME: u16 = 0x0006;

/// The routing tables.
#[derive(Debug, Default)]
pub(crate) struct Demux {
    by_ufrag: HashMap<String, EndpointKey>,
    by_address: HashMap<SocketAddr, EndpointKey>,
}

impl Demux {
    pub fn add_ufrag(&mut self, ufrag: &str, key: EndpointKey) {
        self.by_ufrag.insert(ufrag.to_string(), key);
    }

    /// Forgets every ufrag and address of an endpoint.
    pub fn remove_endpoint(&mut self, key: &EndpointKey) {
        self.by_ufrag.retain(|_, k| k != key);
        self.by_address.retain(|_, k| k != key);
    }

    /// The endpoint a datagram from `source` belongs to; learns `source`
    /// when a STUN request names an endpoint's ufrag.
    pub fn route(&mut self, source: SocketAddr, contents: &[u8]) -> Option<&EndpointKey> {
        if let Some(username) = stun_username(contents) {
            let local = username.split(':').next().unwrap_or_default();
            if let Some(key) = self.by_ufrag.get(local) {
                let key = key.clone();
                return Some(self.by_address.entry(source).insert_entry(key).into_mut());
            }
        }
        self.by_address.get(&source)
    }
}

/// The USERNAME attribute of a STUN message, if `contents` is one.
pub(crate) fn stun_username(contents: &[u8]) -> Option<&str> {
    if contents.len() < STUN_HEADER || contents.first()? & 0xc0 != 0 {
        return None;
    }
    if contents.get(4..8)? != STUN_MAGIC_COOKIE {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([*contents.get(2)?, *contents.get(3)?]));
    let body = contents.get(STUN_HEADER..STUN_HEADER + length)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
        let len = usize::from(u16::from_be_bytes([*body.get(at + 2)?, *body.get(at + 3)?]));
        let value = body.get(at + 4..at + 4 + len)?;
        if kind == ATTRIBUTE_USERNAME {
            return std::str::from_utf8(value).ok();
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&ATTRIBUTE_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        msg.extend_from_slice(&STUN_MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attr);
        msg
    }

    #[test]
    fn learns_address_from_stun_username() {
        let mut demux = Demux::default();
        let key = ("c".to_string(), "e".to_string());
        demux.add_ufrag("abcd", key.clone());
        let from: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(demux.route(from, b"not stun, unknown address"), None);
        assert_eq!(demux.route(from, &binding_request("abcd:peer")), Some(&key));
        assert_eq!(demux.route(from, b"now known"), Some(&key));
        assert_eq!(demux.route(from, &binding_request("zzzz:peer")), Some(&key));
        demux.remove_endpoint(&key);
        assert_eq!(demux.route(from, b"forgotten"), None);
    }

    #[test]
    fn truncated_stun_is_not_a_username() {
        let msg = binding_request("abcd:peer");
        for cut in 0..msg.len() {
            let _ = stun_username(&msg[..cut]);
        }
        assert_eq!(stun_username(&msg), Some("abcd:peer"));
    }
}
