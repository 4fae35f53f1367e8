//! `ping`: Prosody's mod_ping — XEP-0199 XMPP Ping, answered with an empty
//! result for the host and for accounts.

use std::sync::Arc;

use xmpp_core::{Event, Host, Server};

use crate::ModuleError;

pub const NS_PING: &str = "urn:xmpp:ping";

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_PING);
    for ev in [
        "iq-get/bare/urn:xmpp:ping:ping",
        "iq-get/host/urn:xmpp:ping:ping",
    ] {
        host.events.hook(ev, 0, ping_handler);
    }
    Ok(())
}

fn ping_handler(event: &mut Event) -> bool {
    let reply = event.stanza().reply();
    event.reply(reply);
    true
}
