//! `uptime`: Prosody's mod_uptime — XEP-0012 Last Activity asked of the
//! host answers how long the server has been running, in whole seconds.
//!
//! With a fixed clock (tests) the server has been up for no time at all, as
//! Prosody's answer is with its clock mocked.

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::{Clock, Event, Host, Server};

use crate::ModuleError;

pub const NS_LAST: &str = "jabber:iq:last";

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_LAST);
    host.events
        .hook("iq-get/host/jabber:iq:last:query", 0, uptime_handler);
    Ok(())
}

/// Whole seconds since start-up, by the server's clock.
pub fn uptime_seconds(server: &Server) -> u64 {
    match server.clock {
        Clock::Fixed(_) => 0,
        Clock::System => server.uptime().floor() as u64,
    }
}

fn uptime_handler(event: &mut Event) -> bool {
    let seconds = uptime_seconds(&event.server);
    let reply = event
        .stanza()
        .reply()
        .child(Element::new("query", NS_LAST).attr("seconds", seconds.to_string()));
    event.reply(reply);
    true
}
