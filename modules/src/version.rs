//! `version`: Prosody's mod_version — XEP-0092 Software Version for the
//! host: name `lilt`, its version, and the operating system unless
//! `hide_os_type = true`. As in Prosody, `os_version_command` (run through
//! the shell once, at load) replaces the system name.

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::{Host, Server};

use crate::ModuleError;

pub const NS_VERSION: &str = "jabber:iq:version";
pub const SOFTWARE_NAME: &str = "lilt";
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_VERSION);
    let mut query = Element::new("query", NS_VERSION)
        .text_tag("name", SOFTWARE_NAME)
        .text_tag("version", SOFTWARE_VERSION);
    if !host.option_bool("hide_os_type", false)?
        && let Some(os) = platform(host.option_str("os_version_command"))
    {
        query = query.text_tag("os", os);
    }
    host.events
        .hook("iq-get/host/jabber:iq:version:query", 0, move |event| {
            let reply = event.stanza().reply().child(query.clone());
            event.reply(reply);
            true
        });
    Ok(())
}

/// The system name as `uname` gives it, or the command's output.
fn platform(command: Option<&str>) -> Option<String> {
    if let Some(cmd) = command {
        return match std::process::Command::new("sh").arg("-c").arg(cmd).output() {
            Ok(out) => Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
                .filter(|s| !s.is_empty()),
            Err(e) => {
                tracing::warn!("os_version_command {cmd:?} failed: {e}");
                None
            }
        };
    }
    Some(uname_sysname(std::env::consts::OS))
}

/// `uname -s` for Rust's name of the OS.
fn uname_sysname(os: &str) -> String {
    match os {
        "linux" | "android" => "Linux".into(),
        "macos" | "ios" => "Darwin".into(),
        "freebsd" => "FreeBSD".into(),
        "netbsd" => "NetBSD".into(),
        "openbsd" => "OpenBSD".into(),
        "dragonfly" => "DragonFly".into(),
        "solaris" | "illumos" => "SunOS".into(),
        "windows" => "Windows".into(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_names_are_unames() {
        assert_eq!(uname_sysname("linux"), "Linux");
        assert_eq!(uname_sysname("macos"), "Darwin");
        assert_eq!(uname_sysname("haiku"), "Haiku");
        assert_eq!(
            platform(Some("echo '  Plan 9 '")).as_deref(),
            Some("Plan 9")
        );
        assert_eq!(platform(Some("true")), None);
    }
}
