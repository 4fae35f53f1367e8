//! `xmpp_core::Jid::parse`, and what a parsed JID prints as.

use xmpp_core::Jid;

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(jid) = Jid::parse(&text) {
        let again = jid.to_string();
        let _ = Jid::parse(&again);
        let _ = (jid.node(), jid.domain(), jid.is_bare());
    }
}
