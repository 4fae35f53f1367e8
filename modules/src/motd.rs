//! `motd`: Prosody's mod_motd — a message of the day sent to each resource
//! when it sends its initial presence.
//!
//! Options: `motd_text` (without it the module does nothing; surrounding
//! whitespace and each line's indentation are stripped, as Prosody strips
//! the config's), `motd_jid` (the sender, default the host).

use std::sync::Arc;

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Host, Server};

use crate::ModuleError;

/// The text as Prosody sends it: trimmed, and no indentation after a newline.
pub fn clean_text(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.trim().split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(line.trim_start_matches([' ', '\t']));
        } else {
            out.push_str(line);
        }
    }
    out
}

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let Some(text) = host.option_str("motd_text").map(clean_text) else {
        return Ok(());
    };
    let from = host
        .option_str("motd_jid")
        .unwrap_or(host.name.as_str())
        .to_string();
    host.events.hook("presence/initial", 1, move |event| {
        let (Some(host), Some(full)) = (
            event.host.clone(),
            event.origin.as_ref().and_then(|o| o.full_jid()),
        ) else {
            return false;
        };
        let motd = Element::new("message", NS_CLIENT)
            .attr("to", full.to_string())
            .attr("from", from.as_str())
            .child(Element::new("body", NS_CLIENT).text(text.clone()));
        tracing::debug!(host = %host.name, "MOTD send to user {full}");
        event.server.clone().send_from_host(&host, motd);
        false
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indentation_is_stripped() {
        assert_eq!(
            clean_text("\n    Welcome!\n    Be nice.\n  \t Really.\n  "),
            "Welcome!\nBe nice.\nReally."
        );
    }
}
