//! `muc_filter_access` (Jitsi's mod_muc_filter_access), on the internal MUC
//! (the brewery): presence from any domain not in `muc_filter_whitelist`
//! (a string or a list of domains) is dropped without an answer, before
//! anything else sees it. Without the option the module is inactive.

use std::sync::Arc;

use xmpp_core::Host;

use super::util::split;

pub fn register(host: &Arc<Host>) {
    if host.option("muc_filter_whitelist").is_none() {
        tracing::warn!(host = %host.name, "no 'muc_filter_whitelist' option set, muc_filter_access inactive");
        return;
    }
    let whitelist = host.option_list("muc_filter_whitelist");
    for kind in ["host", "bare", "full"] {
        let whitelist = whitelist.clone();
        host.events
            .hook(&format!("presence/{kind}"), 2000, move |event| {
                let stanza = event.stanza();
                let allowed = stanza
                    .from()
                    .is_some_and(|f| whitelist.iter().any(|w| w == split(f).1));
                if !allowed {
                    tracing::error!("filtering unauthorized presence from {:?}", stanza.from());
                }
                !allowed
            });
    }
}
