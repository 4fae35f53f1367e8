//! `welcome`: Prosody's mod_welcome — a message to each account registered
//! in band (the host event `user-registered`, fields `username` and
//! `host`), from the host.
//!
//! Option `welcome_message`, default `Hello $username, welcome to the $host
//! IM server!`: `$username` and `$host` are replaced; other `$words` stay.

use std::sync::Arc;

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Host, Server};

use crate::ModuleError;

pub const DEFAULT_MESSAGE: &str = "Hello $username, welcome to the $host IM server!";

/// Replaces `$name` (letters and digits) with `lookup(name)`, leaving it
/// when that is `None` (Lua's `gsub("$(%w+)", table)`).
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = after
            .char_indices()
            .find(|(_, c)| !c.is_ascii_alphanumeric())
            .map_or(after.len(), |(i, _)| i);
        let name = &after[..len];
        match (len > 0).then(|| lookup(name)).flatten() {
            Some(value) => out.push_str(&value),
            None => {
                out.push('$');
                out.push_str(name);
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let text = host
        .option_str("welcome_message")
        .unwrap_or(DEFAULT_MESSAGE)
        .to_string();
    host.events.hook("user-registered", 0, move |event| {
        let Some(host) = event.host.clone() else {
            return false;
        };
        let Some(user) = event.field_str("username").map(str::to_string) else {
            return false;
        };
        let user_host = event
            .field_str("host")
            .unwrap_or(host.name.as_str())
            .to_string();
        let body = expand(&text, |name| match name {
            "username" => Some(user.clone()),
            "host" => Some(user_host.clone()),
            _ => None,
        });
        let welcome = Element::new("message", NS_CLIENT)
            .attr("to", format!("{user}@{user_host}"))
            .attr("from", host.name.as_str())
            .child(Element::new("body", NS_CLIENT).text(body));
        event.server.clone().send_from_host(&host, welcome);
        tracing::debug!(host = %host.name, "Welcomed user {user}@{user_host}");
        false
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_expanded() {
        let f = |n: &str| (n == "username").then(|| "alice".to_string());
        assert_eq!(
            expand("Hi $username! $other $ 5$", f),
            "Hi alice! $other $ 5$"
        );
        assert_eq!(
            expand(DEFAULT_MESSAGE, |n| Some(n.to_uppercase())),
            "Hello USERNAME, welcome to the HOST IM server!"
        );
    }
}
