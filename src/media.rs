//! lilt's media half in-process: the conference focus (what Jicofo does)
//! and the media bridge (what Jitsi Videobridge does) started inside the
//! server when the config asks for them, each logging in as the Java
//! component would (`focus@auth.D`, `jvb@auth.D`) through an in-process
//! client session, so the rest of the config (client_proxy, the brewery
//! MUC) serves them unchanged:
//!
//! ```lua
//! jitsi_focus = { }          -- every field optional, derived from the Jitsi hosts
//! jitsi_videobridge = { addresses = { "192.0.2.10" } }
//! ```
//!
//! `jitsi_focus` fields (those of `lilt focus`): `jid` (default: the
//! `target_address` of the `focus.<domain>` client_proxy component),
//! `domain` (the main Jitsi domain, the one `focus.<domain>` belongs to),
//! `muc` (`conference.<domain>`, or `muc.<domain>` as docker-jitsi-meet
//! names it), `brewery` (`jvbbrewery@` the internal MUC: `internal.auth.<domain>`
//! on Debian, `internal-muc.<domain>` on docker), `jibri_brewery`
//! (`jibribrewery@` the same MUC); with several bridges, `bridge_selection`
//! (Jicofo's strategies: `"single"`, the default, a conference stays on one
//! bridge; `"split"`, spread over every bridge, for tests; `"region"`, the
//! participant's region from `<jitsi_participant_region>`, else
//! `local_region`; `"intra_region"`; Jicofo's class names work too), `octo`
//! (false: whether a conference may span bridges relayed to each other;
//! each bridge needs a `relay_id`, and one conference's bridges the same
//! version), `max_bridge_participants` (80 of one conference per bridge, 0
//! for no limit) and `local_region`.
//!
//! `jitsi_videobridge` fields (those of `lilt bridge`): `jid` (default
//! `jvb@auth.<domain>`), `brewery`, `nick`, `udp_port` (10000, as
//! Videobridge; 0 picks a free one), `addresses` (the ICE host candidates
//! offered to browsers; default: as `lilt bridge` without `--address`),
//! `http` (the bridge's own listener for colibri-ws, `/colibri/stats`,
//! `/about/health` and `/metrics`: `127.0.0.1:9090`, where Jitsi's nginx
//! config proxies `/colibri-ws/` to; `false` for none: colibri-ws and
//! `/colibri/stats` are on lilt's own HTTP server in any case),
//! `ws_url_base` (the public base of the colibri-ws URL: default
//! `wss://<domain>/colibri-ws`, or `ws://<http>/colibri-ws` when `http` is
//! not on port 9090), `initial_last_n` and `last_n` (Videobridge's
//! `initial-last-n` and `jvb-last-n`, -1 for unlimited, the default),
//! `relay_id` and `region` (published in the brewery stats: a focus with
//! relays spreads conferences over bridges that have a relay id).
//!
//! `jitsi_recorder` fields (those of `lilt recorder`): `jid` (default
//! `jibri@auth.<domain>`, in the Jibri brewery), `recorder_jid`
//! (`recorder@recorder.<domain>`, or `@hidden.<domain>` as docker names the
//! hidden domain), `brewery` (`jibribrewery@` the internal MUC), `dir`
//! (`<data_path>/recordings`), `max_concurrent` (4), `finalize_script`.
//!
//! `true` stands for `{ }`.

use std::net::{IpAddr, SocketAddr};

use xmpp_core::config::OptionError;
use xmpp_core::{HostKind, Jid, ServerConfig, Value};

/// Where the focus logs in and what it serves.
#[derive(Debug, Clone, PartialEq)]
pub struct FocusSettings {
    pub jid: Jid,
    pub domain: String,
    pub muc: String,
    pub brewery: Jid,
    pub jibri_brewery: Option<Jid>,
    /// Jicofo's bridge selection (strategy, octo, per-bridge limit, region).
    pub selection: focus_component::bridges::SelectionConfig,
}

/// Where the bridge logs in and what it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSettings {
    pub jid: Jid,
    pub brewery: Jid,
    pub nick: Option<String>,
    pub udp_port: u16,
    pub addresses: Vec<IpAddr>,
    /// The bridge's own listener; `None`: only lilt's HTTP server.
    pub http: Option<SocketAddr>,
    /// `None`: `ws://<the bound http address>/colibri-ws`.
    pub ws_url_base: Option<String>,
    /// Videobridge's `initial-last-n` and `jvb-last-n` (-1: unlimited).
    pub initial_last_n: i64,
    pub last_n: i64,
    /// Videobridge's `relay.relay-id` and `region`, for relays.
    pub relay_id: Option<String>,
    pub region: Option<String>,
}

/// Where the recorder logs in and where it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderSettings {
    /// The control login, in the Jibri brewery (`jibri@auth.<domain>`).
    pub jid: Jid,
    /// The login that joins conferences, on the hidden domain.
    pub recorder_jid: Jid,
    pub brewery: Jid,
    pub dir: std::path::PathBuf,
    pub max_concurrent: usize,
    pub finalize_script: Option<std::path::PathBuf>,
}

/// What the config asks to run in-process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaSettings {
    pub focus: Option<FocusSettings>,
    pub bridge: Option<BridgeSettings>,
    pub recorder: Option<RecorderSettings>,
}

/// The Jitsi deployment the config describes, as far as the defaults need.
struct Deployment {
    domain: String,
    focus_jid: Option<String>,
    internal_muc: Option<String>,
}

fn is_muc(config: &ServerConfig, name: &str) -> bool {
    config
        .host(name)
        .is_some_and(|h| matches!(&h.kind, HostKind::Component { module: Some(m) } if m == "muc"))
}

/// The main Jitsi domain: the one a `focus.<domain>` client_proxy serves.
fn deployment(config: &ServerConfig) -> Option<Deployment> {
    let proxy = config.hosts.iter().find(|h| {
        h.name.starts_with("focus.")
            && matches!(&h.kind, HostKind::Component { module: Some(m) } if m == "client_proxy")
    })?;
    let domain = proxy.name.trim_start_matches("focus.").to_string();
    let focus_jid = proxy
        .section
        .get("target_address")
        .and_then(Value::as_str)
        .map(str::to_string);
    let internal_muc = [
        format!("internal.auth.{domain}"),
        format!("internal-muc.{domain}"),
    ]
    .into_iter()
    .find(|h| is_muc(config, h));
    Some(Deployment {
        domain,
        focus_jid,
        internal_muc,
    })
}

/// Reads one table option (`true` = `{}`); `None` when absent or `false`.
fn table<'a>(
    config: &'a ServerConfig,
    option: &str,
) -> Result<Option<MediaOption<'a>>, OptionError> {
    let fail = |problem: String| OptionError {
        option: option.to_string(),
        defined_at: config.source_of(None, option).cloned(),
        problem,
    };
    match config.get_global(option) {
        None | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(MediaOption {
            option: option.to_string(),
            value: None,
            config,
        })),
        Some(v @ Value::Table(_)) => Ok(Some(MediaOption {
            option: option.to_string(),
            value: Some(v),
            config,
        })),
        Some(v) => Err(fail(format!(
            "must be a table (or true), not a {}",
            v.type_name()
        ))),
    }
}

/// A media option's table, with typed field getters whose errors name the
/// option, the field and where the option was set.
struct MediaOption<'a> {
    option: String,
    value: Option<&'a Value>,
    config: &'a ServerConfig,
}

impl MediaOption<'_> {
    fn error(&self, field: &str, problem: String) -> OptionError {
        OptionError {
            option: format!("{}.{field}", self.option),
            defined_at: self.config.source_of(None, &self.option).cloned(),
            problem,
        }
    }

    fn string(&self, field: &str) -> Result<Option<String>, OptionError> {
        match self.value.and_then(|v| v.get(field)) {
            None => Ok(None),
            Some(v) => v.as_str().map(|s| Some(s.to_string())).ok_or_else(|| {
                self.error(field, format!("must be a string, not a {}", v.type_name()))
            }),
        }
    }

    fn jid(&self, field: &str, default: Option<String>) -> Result<Jid, OptionError> {
        let text = self
            .string(field)?
            .or(default)
            .ok_or_else(|| self.error(field, "is not set and cannot be derived from the Jitsi hosts (no focus.<domain> client_proxy component)".into()))?;
        Jid::parse(&text).map_err(|e| self.error(field, format!("is not a JID ({text:?}): {e}")))
    }

    fn port(&self, field: &str, default: u16) -> Result<u16, OptionError> {
        match self.value.and_then(|v| v.get(field)) {
            None => Ok(default),
            Some(v) => v
                .as_i64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| self.error(field, "must be a port number (0 to 65535)".into())),
        }
    }

    /// A last-N: a whole number, -1 (the default) for unlimited.
    fn last_n(&self, field: &str) -> Result<i64, OptionError> {
        match self.value.and_then(|v| v.get(field)) {
            None => Ok(-1),
            Some(v) => v
                .as_i64()
                .filter(|n| *n >= -1)
                .ok_or_else(|| self.error(field, "must be a whole number (-1: unlimited)".into())),
        }
    }

    fn boolean(&self, field: &str, default: bool) -> Result<bool, OptionError> {
        match self.value.and_then(|v| v.get(field)) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.error(
                field,
                format!("must be true or false, not a {}", v.type_name()),
            )),
        }
    }

    fn count(&self, field: &str, default: usize) -> Result<usize, OptionError> {
        match self.value.and_then(|v| v.get(field)) {
            None => Ok(default),
            Some(v) => v
                .as_i64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| self.error(field, "must be a whole number, 0 or more".into())),
        }
    }

    fn addresses(&self, field: &str) -> Result<Option<Vec<IpAddr>>, OptionError> {
        let Some(v) = self.value.and_then(|v| v.get(field)) else {
            return Ok(None);
        };
        let list = v
            .as_string_list()
            .ok_or_else(|| self.error(field, "must be a list of IP addresses".into()))?;
        list.iter()
            .map(|a| {
                a.parse()
                    .map_err(|_| self.error(field, format!("{a:?} is not an IP address")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// Reads `jitsi_focus`, `jitsi_videobridge` and `jitsi_recorder` from the
/// global section.
pub fn settings(config: &ServerConfig) -> Result<MediaSettings, OptionError> {
    let jitsi = deployment(config);
    let domain = jitsi.as_ref().map(|d| d.domain.clone());
    let brewery_in = |room: &str| {
        jitsi
            .as_ref()
            .and_then(|d| d.internal_muc.as_ref())
            .map(|muc| format!("{room}@{muc}"))
    };
    let mut out = MediaSettings::default();
    if let Some(t) = table(config, "jitsi_focus")? {
        let domain = t
            .string("domain")?
            .or(domain.clone())
            .ok_or_else(|| t.error("domain", "is not set and there is no focus.<domain> client_proxy component to derive it from".into()))?;
        let muc = match t.string("muc")? {
            Some(m) => m,
            None => [format!("conference.{domain}"), format!("muc.{domain}")]
                .into_iter()
                .find(|m| is_muc(config, m))
                .ok_or_else(|| t.error("muc", format!("is not set and neither conference.{domain} nor muc.{domain} is a MUC component")))?,
        };
        let jibri_brewery = match t.string("jibri_brewery")?.or(brewery_in("jibribrewery")) {
            Some(j) => Some(
                Jid::parse(&j)
                    .map_err(|e| t.error("jibri_brewery", format!("is not a JID ({j:?}): {e}")))?,
            ),
            None => None,
        };
        let mut selection = focus_component::bridges::SelectionConfig::default();
        if let Some(name) = t.string("bridge_selection")? {
            selection.strategy =
                name.parse()
                    .map_err(|e: focus_component::selection::UnknownStrategy| {
                        t.error("bridge_selection", e.to_string())
                    })?;
        }
        selection.octo = t.boolean("octo", selection.octo)?;
        selection.max_participants_per_bridge = t.count(
            "max_bridge_participants",
            selection.max_participants_per_bridge,
        )?;
        selection.local_region = t.string("local_region")?;
        out.focus = Some(FocusSettings {
            jid: t.jid(
                "jid",
                jitsi
                    .as_ref()
                    .and_then(|d| d.focus_jid.clone())
                    .or(Some(format!("focus@auth.{domain}"))),
            )?,
            brewery: t.jid("brewery", brewery_in("jvbbrewery"))?,
            jibri_brewery,
            domain,
            muc,
            selection,
        });
    }
    if let Some(t) = table(config, "jitsi_videobridge")? {
        let http = match t.value.and_then(|v| v.get("http")) {
            Some(Value::Bool(false)) => None,
            _ => {
                let text = t.string("http")?.unwrap_or_else(|| "127.0.0.1:9090".into());
                Some(text.parse::<SocketAddr>().map_err(|_| {
                    t.error(
                        "http",
                        format!("{text:?} is not an address:port (or false)"),
                    )
                })?)
            }
        };
        let ws_url_base = match (t.string("ws_url_base")?, &domain) {
            (Some(base), _) => Some(base),
            (None, Some(d)) if http.is_none_or(|h| h.port() == 9090) => {
                Some(format!("wss://{d}/colibri-ws"))
            }
            (None, _) => None,
        };
        out.bridge = Some(BridgeSettings {
            jid: t.jid("jid", domain.as_ref().map(|d| format!("jvb@auth.{d}")))?,
            brewery: t.jid("brewery", brewery_in("jvbbrewery"))?,
            nick: t.string("nick")?,
            udp_port: t.port("udp_port", 10000)?,
            addresses: t.addresses("addresses")?.unwrap_or_default(),
            http,
            ws_url_base,
            initial_last_n: t.last_n("initial_last_n")?,
            last_n: t.last_n("last_n")?,
            relay_id: t.string("relay_id")?,
            region: t.string("region")?,
        });
    }
    if let Some(t) = table(config, "jitsi_recorder")? {
        let hidden = domain.as_ref().and_then(|d| {
            [format!("recorder.{d}"), format!("hidden.{d}")]
                .into_iter()
                .find(|h| {
                    config
                        .host(h)
                        .is_some_and(|h| h.kind == HostKind::VirtualHost)
                })
        });
        let max_concurrent = match t.value.and_then(|v| v.get("max_concurrent")) {
            None => 4,
            Some(v) => v
                .as_i64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| t.error("max_concurrent", "must be a positive number".into()))?,
        };
        let dir = match t.string("dir")? {
            Some(d) => config.resolve_path(&d),
            None => crate::startup::data_path(config).join("recordings"),
        };
        out.recorder = Some(RecorderSettings {
            jid: t.jid("jid", domain.as_ref().map(|d| format!("jibri@auth.{d}")))?,
            recorder_jid: t.jid("recorder_jid", hidden.map(|h| format!("recorder@{h}")))?,
            brewery: t.jid("brewery", brewery_in("jibribrewery"))?,
            dir,
            max_concurrent,
            finalize_script: t
                .string("finalize_script")?
                .map(|p| config.resolve_path(&p)),
        });
    }
    Ok(out)
}

/// The main domain's logins make moderators when it authenticates (the
/// docker fixture's `ENABLE_AUTH`): Jicofo's XMPP authentication.
fn login_domain(config: &ServerConfig, domain: &str) -> Option<String> {
    let auth = config
        .get(Some(domain), "authentication")
        .and_then(Value::as_str);
    match auth {
        None | Some("anonymous") | Some("jitsi-anonymous") => None,
        Some(_) => Some(domain.to_string()),
    }
}

/// Why the in-process focus or bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum MediaStartError {
    #[error("jitsi_focus: {0}")]
    Focus(String),
    #[error("jitsi_videobridge: {0}")]
    Bridge(String),
    #[error("jitsi_recorder: {0}")]
    Recorder(String),
}

/// What [`start`] started: the tasks, and the sockets the bridge listens on.
#[derive(Debug, Default)]
pub struct StartedMedia {
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// `("bridge_media", udp)` and `("bridge_http", tcp)`.
    pub listening: Vec<(&'static str, SocketAddr)>,
}

/// Starts what `settings` asks for on `server` (inside its tokio runtime);
/// the tasks end when their in-process sessions end.
pub async fn start(
    server: &std::sync::Arc<xmpp_core::Server>,
    settings: &MediaSettings,
) -> Result<StartedMedia, MediaStartError> {
    let mut started = StartedMedia::default();
    if let Some(bridge) = &settings.bridge {
        start_bridge(server, bridge, &mut started).await?;
    }
    if let Some(focus) = &settings.focus {
        let link = xmpp_core::client::local(server, &focus.jid)
            .map_err(|e| MediaStartError::Focus(format!("cannot log in as {}: {e}", focus.jid)))?;
        let mut options = focus_component::FocusOptions::new(&link.jid.to_string(), &focus.domain);
        options.muc = focus.muc.clone();
        options.brewery = focus.brewery.to_string();
        options.jibri_brewery = focus.jibri_brewery.as_ref().map(Jid::to_string);
        options.selection = focus.selection.clone();
        options.authentication = login_domain(&server.config, &focus.domain)
            .map(|login_domain| focus_component::AuthOptions { login_domain });
        tracing::info!(jid = %link.jid, muc = %focus.muc, brewery = %focus.brewery, "conference focus started in-process");
        let stats = focus_component::run::StatsHandle::default();
        provide_focus_http(server, &stats).map_err(MediaStartError::Focus)?;
        started
            .tasks
            .push(tokio::spawn(focus_component::run::run_with_stats(
                link, options, stats,
            )));
    }
    if let Some(recorder) = &settings.recorder {
        let login = |jid: &Jid| {
            xmpp_core::client::local(server, jid)
                .map_err(|e| MediaStartError::Recorder(format!("cannot log in as {jid}: {e}")))
        };
        let control = login(&recorder.jid)?;
        let call = login(&recorder.recorder_jid)?;
        let mut options = recorder_component::events::RecorderOptions::new(
            &control.jid.to_string(),
            &recorder.brewery.to_string(),
            &call.jid.to_string(),
            recorder.dir.clone(),
        );
        options.max_concurrent = recorder.max_concurrent;
        tracing::info!(jid = %recorder.jid, dir = %recorder.dir.display(), "recorder started in-process");
        started
            .tasks
            .push(tokio::spawn(recorder_component::run::run_with_links(
                control,
                call,
                options,
                recorder.finalize_script.clone(),
            )));
    }
    Ok(started)
}

/// Jicofo's REST endpoints on lilt's HTTP server, as the app `focus`
/// (`/focus/about/health`, `/focus/stats`, `/focus/metrics`; the base path
/// moves with `http_paths = { focus = "..." }` as any Prosody HTTP app's).
fn provide_focus_http(
    server: &std::sync::Arc<xmpp_core::Server>,
    stats: &focus_component::run::StatsHandle,
) -> Result<(), String> {
    let routes = ["/about/health", "/stats", "/metrics"]
        .into_iter()
        .map(|path| {
            let stats = stats.clone();
            let route = bosh_websocket::handler(move |_request| {
                let stats = stats.clone();
                async move {
                    let snapshot = stats.lock().map(|s| s.clone()).unwrap_or(None);
                    let (status, content_type, body) =
                        focus_component::cli::http_response(path, snapshot.as_ref());
                    let code = status
                        .get(..3)
                        .and_then(|c| c.parse::<u16>().ok())
                        .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                    bosh_websocket::HttpResponse::new(code)
                        .with_header("content-type", content_type)
                        .with_body(body)
                }
            });
            (format!("GET {path}"), route)
        })
        .collect();
    bosh_websocket::provide(
        server,
        None,
        bosh_websocket::HttpApp {
            name: "focus".into(),
            default_path: Some("/focus".into()),
            cors: None,
            routes,
        },
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

async fn start_bridge(
    server: &std::sync::Arc<xmpp_core::Server>,
    bridge: &BridgeSettings,
    started: &mut StartedMedia,
) -> Result<(), MediaStartError> {
    let link = xmpp_core::client::local(server, &bridge.jid)
        .map_err(|e| MediaStartError::Bridge(format!("cannot log in as {}: {e}", bridge.jid)))?;
    let nick = bridge
        .nick
        .clone()
        .unwrap_or_else(|| link.jid.resource().unwrap_or("jvb").to_string());
    let mut options = sfu_component::run::BridgeOptions::new(&nick);
    options.brewery = Some(bridge.brewery.to_string());
    options.udp_bind = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), bridge.udp_port);
    options.addresses = bridge.addresses.clone();
    options.http = bridge.http;
    options.ws_url_base = bridge.ws_url_base.clone();
    options.allocation.initial_last_n = bridge.initial_last_n;
    options.allocation.jvb_last_n = bridge.last_n;
    options.relay_id = bridge.relay_id.clone();
    options.region = bridge.region.clone();
    let running = sfu_component::run::run_with_link(link, options)
        .await
        .map_err(|e| MediaStartError::Bridge(e.to_string()))?;
    // The bridge channel and /colibri/stats on lilt's own HTTP server too.
    server
        .extension::<bosh_websocket::routes::HttpRoutes>()
        .mount(running.shared_router());
    started
        .listening
        .push(("bridge_media", running.udp_address));
    if let Some(http) = running.http_address {
        started.listening.push(("bridge_http", http));
    }
    tracing::info!(jid = %bridge.jid, brewery = %bridge.brewery, udp = %running.udp_address, "media bridge started in-process");
    started.tasks.push(tokio::spawn(async move {
        if let Err(e) = running.wait().await {
            tracing::error!("the media bridge stopped: {e}");
        }
    }));
    Ok(())
}
