//! `http_file_share`: Prosody's mod_http_file_share — XEP-0363 HTTP File
//! Upload as a component (`Component "upload.example.com"
//! "http_file_share"`).
//!
//! A user of the parent host (or one listed in `http_file_share_access`)
//! asks for a slot (`<request filename size content-type/>`); the slot's
//! PUT URL carries a signed bearer token ([`token`]) the upload must show;
//! the file is then served by GET at the same URL until it expires. Both
//! URLs are under the app's path (`/file_share`) on lilt's HTTP server
//! ([`http`]).
//!
//! Options, as Prosody names them and with its defaults:
//! `http_file_share_size_limit` (10 MiB), `http_file_share_allowed_file_types`
//! (any; `type/*` wildcards), `http_file_share_expires_after` (one week,
//! seconds), `http_file_share_secret` (random per start),
//! `http_file_share_access`, `http_external_url` (else the URLs carry the
//! port the HTTP server is bound to, which `http_ports = { 0 }` leaves to the
//! system: see [`base_url`]). Storage: the archive store
//! `uploads` (the service's, keyed by slot: the request element, the
//! uploader's bare JID) and the files in
//! `<data_path>/<host>/http_file_share/<slot>.bin`, as Prosody keeps them.

pub mod http;
pub mod token;

use std::path::PathBuf;
use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::module::ModuleContext;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::value::Value;
use xmpp_core::{Event, Host, Jid, Server};

use crate::ModuleError;

pub const NS_UPLOAD: &str = "urn:xmpp:http:upload:0";
/// The archive store of upload records.
pub const STORE: &str = "uploads";
const DEFAULT_SIZE_LIMIT: i64 = 10 * 1024 * 1024;
const DEFAULT_EXPIRES_AFTER: i64 = 7 * 86400;
/// How long a slot's PUT token is good for (Prosody: 5 minutes).
const TOKEN_LIFETIME: i64 = 300;

/// The service as configured at load.
pub struct Service {
    pub host: Arc<Host>,
    pub clock: xmpp_core::Clock,
    pub secret: Vec<u8>,
    pub size_limit: u64,
    pub allowed_types: Vec<String>,
    pub expires_after: i64,
    pub access: Vec<String>,
    /// Where files are kept.
    pub dir: PathBuf,
    /// The app's path on the HTTP server (no trailing `/`).
    pub base: String,
}

impl Service {
    /// Is `content_type` one of the allowed types (all when none are set)?
    pub fn type_allowed(&self, content_type: &str) -> bool {
        self.allowed_types.is_empty()
            || self
                .allowed_types
                .iter()
                .any(|t| match t.strip_suffix("/*") {
                    Some(major) => content_type
                        .split_once('/')
                        .is_some_and(|(m, _)| m.eq_ignore_ascii_case(major)),
                    None => t.eq_ignore_ascii_case(content_type),
                })
    }

    /// May `jid` upload: a user of the parent host, or listed in
    /// `http_file_share_access`.
    pub fn may_upload(&self, jid: &Jid) -> bool {
        let parent = self.host.name.split_once('.').map(|(_, p)| p);
        (jid.node().is_some() && Some(jid.domain()) == parent)
            || self
                .access
                .iter()
                .any(|a| a == jid.domain() || *a == jid.to_bare().to_string())
    }

    pub fn file_path(&self, slot: &str) -> PathBuf {
        self.dir.join(format!("{slot}.bin"))
    }
}

/// Prosody's `datamanager.path_encode`.
fn path_encode(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' => c.to_string(),
            c => {
                let mut buf = [0u8; 4];
                c.encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("%{b:02x}"))
                    .collect()
            }
        })
        .collect()
}

fn random_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut b = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

/// The URL at which `base` (the app's path) is reached: under
/// `http_external_url` when set, else `http://HOST:PORT` with `http_host` (or
/// the host's name) and the port the HTTP server actually listens on (so
/// `http_ports = { 0 }` gives the port the system chose), else the first of
/// `http_ports` (default 5280).
pub fn base_url(server: &Server, host: &Host, base: &str) -> String {
    if let Some(external) = host.option_str("http_external_url") {
        return format!("{}{base}", external.trim_end_matches('/'));
    }
    let configured = match host.option("http_ports") {
        Some(Value::Table(t)) => t.seq.first().and_then(Value::as_i64),
        Some(v) => v.as_i64(),
        None => None,
    };
    let bound = xmpp_core::http::bound(server, "http")
        .first()
        .map(|a| i64::from(a.port()));
    let port = bound.or(configured.filter(|p| *p != 0)).unwrap_or(5280);
    let name = host.option_str("http_host").unwrap_or(host.name.as_str());
    format!("http://{name}:{port}{base}")
}

pub fn load_module(ctx: &ModuleContext) -> Result<(), ModuleError> {
    let host = ctx.host().clone();
    let size_limit = host.option_i64("http_file_share_size_limit", DEFAULT_SIZE_LIMIT)?;
    let expires_after = host.option_i64("http_file_share_expires_after", DEFAULT_EXPIRES_AFTER)?;
    let secret = host
        .option_str("http_file_share_secret")
        .map(|s| s.as_bytes().to_vec())
        .unwrap_or_else(random_secret);
    let data_path = host.option_str("data_path").unwrap_or("data").to_string();
    let dir = PathBuf::from(data_path)
        .join(path_encode(&host.name))
        .join("http_file_share");
    let (service_slot, app) = http::app();
    let base = ctx.provide_http(app, false)?;
    let service = Arc::new(Service {
        host: host.clone(),
        clock: ctx.server().clock,
        secret,
        size_limit: u64::try_from(size_limit).unwrap_or(0),
        allowed_types: host.option_list("http_file_share_allowed_file_types"),
        expires_after,
        access: host.option_list("http_file_share_access"),
        dir,
        base,
    });
    service_slot.set(service.clone());
    let s = service.clone();
    host.events.hook(
        &format!("iq-get/host/{NS_UPLOAD}:request"),
        0,
        move |event| handle_request(event, &s),
    );
    crate::disco::add_identity(&host, "store", "file", Some("HTTP File Upload"));
    crate::disco::add_feature(&host, NS_UPLOAD);
    crate::disco::add_extension(
        &host,
        Element::new("x", "jabber:x:data")
            .attr("type", "result")
            .child(
                Element::new("field", "jabber:x:data")
                    .attr("var", "FORM_TYPE")
                    .attr("type", "hidden")
                    .child(Element::new("value", "jabber:x:data").text(NS_UPLOAD)),
            )
            .child(
                Element::new("field", "jabber:x:data")
                    .attr("var", "max-file-size")
                    .child(Element::new("value", "jabber:x:data").text(size_limit.to_string())),
            ),
    );
    ctx.depends("disco")
}

fn modify(cond: &'static str, text: &str) -> StanzaError {
    StanzaError::new(ErrorType::Modify, cond).with_text(text)
}

/// A slot request: Prosody's checks in its order, then the slot.
fn handle_request(event: &mut Event, service: &Service) -> bool {
    let stanza = event.stanza().clone();
    let Some(request) = stanza.get_child("request", NS_UPLOAD) else {
        return false;
    };
    let reply = match slot(&event.server, service, &stanza, request) {
        Ok(reply) => reply,
        Err(e) => e,
    };
    event.reply(reply);
    true
}

fn slot(
    server: &Arc<Server>,
    service: &Service,
    stanza: &Element,
    request: &Element,
) -> Result<Element, Element> {
    let from = stanza.from().and_then(|f| Jid::parse(f).ok());
    let Some(from) = from.filter(|f| service.may_upload(f)) else {
        return Err(StanzaError::new(ErrorType::Auth, "forbidden").reply_to(stanza));
    };
    let filename = request.get_attr("filename").unwrap_or_default();
    if filename.is_empty() || filename.contains('/') || filename.contains('\0') {
        return Err(modify("bad-request", "Invalid filename").reply_to(stanza));
    }
    let size = match request.get_attr("size").map(|s| s.parse::<i64>()) {
        Some(Ok(n)) if n > 0 => n as u64,
        _ => {
            return Err(
                modify("bad-request", "File size must be positive integer").reply_to(stanza)
            );
        }
    };
    if size > service.size_limit {
        let mut reply = modify("not-acceptable", "File too large").reply_to(stanza);
        if let Some(error) = reply.get_child_mut("error", NS_CLIENT) {
            error.push_child(Element::new("file-too-large", NS_UPLOAD).child(
                Element::new("max-file-size", NS_UPLOAD).text(service.size_limit.to_string()),
            ));
        }
        return Err(reply);
    }
    let content_type = request
        .get_attr("content-type")
        .unwrap_or("application/octet-stream");
    if !service.type_allowed(content_type) {
        return Err(modify("not-acceptable", "File type not allowed").reply_to(stanza));
    }
    let slot_id = crate::pep::node::uuid();
    let now = server.clock.now();
    let record = Element::new("request", NS_UPLOAD)
        .attr("filename", filename)
        .attr("size", size.to_string())
        .attr("content-type", content_type);
    let stored = service.host.open_archive(STORE).and_then(|a| {
        a.append_keyed(
            None,
            &slot_id,
            &record,
            now.floor(),
            &from.to_bare().to_string(),
        )
    });
    if let Err(e) = stored {
        tracing::error!(host = %service.host.name, "could not record an upload slot: {e}");
        return Err(StanzaError::new(ErrorType::Wait, "internal-server-error").reply_to(stanza));
    }
    let grant = token::Grant {
        slot: slot_id.clone(),
        filename: filename.to_string(),
        size,
        content_type: content_type.to_string(),
        expires: now as i64 + TOKEN_LIFETIME,
    };
    let url = format!(
        "{}/{slot_id}/{}",
        base_url(server, &service.host, &service.base),
        http::url_encode(filename)
    );
    let bearer = format!("Bearer {}", token::sign(&service.secret, &grant));
    Ok(stanza.reply().child(
        Element::new("slot", NS_UPLOAD)
            .child(Element::new("get", NS_UPLOAD).attr("url", &url))
            .child(
                Element::new("put", NS_UPLOAD).attr("url", &url).child(
                    Element::new("header", NS_UPLOAD)
                        .attr("name", "Authorization")
                        .text(bearer),
                ),
            ),
    ))
}
