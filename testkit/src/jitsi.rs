//! lilt in-process with the config of a Jitsi Meet install: an anonymous
//! main domain `example.com`, `auth.example.com` for the focus (an admin),
//! the conference MUC, the internal MUC (breweries) and `client_proxy` at
//! `focus.example.com`; optionally HTTP, a recorder domain and lilt's own
//! focus and bridge. Everything listens on 127.0.0.1, ports chosen by the
//! system.

use std::path::Path;
use std::sync::Arc;

use xmpp_core::Clock;

/// What a test's lilt has beyond the Jitsi basics.
#[derive(Debug, Clone, Copy, Default)]
pub struct JitsiConfig {
    /// An HTTP listener (BOSH, WebSocket, colibri-ws).
    pub http: bool,
    /// `recorder.example.com`, where recorders log in.
    pub recorder_domain: bool,
    /// lilt's own focus and bridge (`jitsi_focus`, `jitsi_videobridge`).
    pub focus_and_bridge: bool,
    /// Only errors logged.
    pub quiet: bool,
}

impl JitsiConfig {
    /// The `prosody.cfg.lua` text.
    pub fn to_lua(&self) -> String {
        let mut cfg = String::from("interfaces = { \"127.0.0.1\" }\nc2s_ports = { 0 }\n");
        if self.http {
            cfg.push_str("http_ports = { 0 }\nhttp_interfaces = { \"127.0.0.1\" }\n");
        }
        cfg.push_str("storage = \"memory\"\n");
        if self.quiet {
            cfg.push_str("log = { error = \"*console\" }\n");
        }
        cfg.push_str(
            "modules_enabled = { \"ping\"; \"roster\"; \"disco\"; \"presence\" }\n\
             muc_room_locking = false\n\
             admins = { \"focus@auth.example.com\" }\n",
        );
        if self.focus_and_bridge {
            cfg.push_str(
                "jitsi_focus = { }\n\
                 jitsi_videobridge = { addresses = { \"127.0.0.1\" }; udp_port = 0; http = \"127.0.0.1:0\" }\n",
            );
        }
        cfg.push_str(
            "VirtualHost \"example.com\"\n    authentication = \"anonymous\"\n\
             VirtualHost \"auth.example.com\"\n    authentication = \"internal_hashed\"\n",
        );
        if self.recorder_domain {
            cfg.push_str(
                "VirtualHost \"recorder.example.com\"\n    authentication = \"internal_hashed\"\n",
            );
        }
        cfg.push_str(
            "Component \"conference.example.com\" \"muc\"\n\
             Component \"internal.auth.example.com\" \"muc\"\n\
             Component \"focus.example.com\" \"client_proxy\"\n    target_address = \"focus@auth.example.com\"\n",
        );
        cfg
    }
}

/// A running lilt: the server (for in-process sessions) and what keeps
/// its listeners up.
pub struct Lilt {
    pub server: Arc<xmpp_core::Server>,
    pub running: lilt::startup::RunningServer,
}

/// Starts lilt with `config` (`name`: the config file's name in errors).
pub async fn start(config: &JitsiConfig, name: &str) -> Result<Lilt, String> {
    start_lua(&config.to_lua(), name).await
}

/// Starts lilt with a config file's text.
pub async fn start_lua(text: &str, name: &str) -> Result<Lilt, String> {
    let config = lua_compat::config::load_str(text, Path::new(name)).map_err(|e| e.to_string())?;
    let server = lilt::startup::build_server(config, Clock::System).map_err(|e| e.to_string())?;
    let running = lilt::startup::start(server.clone())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Lilt { server, running })
}
