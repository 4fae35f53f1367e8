//! Shared harness for the MUC tests: a `Server` with `localhost` (the IM
//! modules) and `conference.localhost` (`muc`, `iq`, `disco`), storage in
//! a memory driver the test keeps (or Prosody's data directory), and bound
//! client sessions whose outbound queues the tests read, raw broadcasts
//! parsed back into elements.
#![allow(dead_code)]

use std::sync::Arc;

use tokio::sync::mpsc;
use xmpp_core::config::{HostConfig, Section};
use xmpp_core::stanza::{Element, NS_CLIENT, NS_STANZAS};
use xmpp_core::stream::{StreamEvent, StreamLimits, XmlStream};
use xmpp_core::{
    Clock, Event, Host, HostKind, Jid, Outbound, Server, ServerConfig, Session, SessionKind, Value,
};

pub const HOST: &str = "localhost";
pub const MUC: &str = "conference.localhost";
pub const NOW: f64 = 1219439344.0;
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const NS_DATA: &str = "jabber:x:data";

/// Every user exists; no SASL (sessions are bound directly).
pub struct Accounts(pub &'static str);

impl xmpp_core::auth::AuthProvider for Accounts {
    fn name(&self) -> &str {
        self.0
    }
    fn sasl_mechanisms(&self, _: &xmpp_core::auth::SaslContext) -> Vec<String> {
        Vec::new()
    }
    fn sasl_start(
        &self,
        _: &str,
        _: &xmpp_core::auth::SaslContext,
    ) -> Result<Box<dyn xmpp_core::auth::SaslExchange>, xmpp_core::auth::SaslFailure> {
        Err(xmpp_core::auth::SaslFailure::new("invalid-mechanism"))
    }
    fn user_exists(&self, _: &str) -> xmpp_core::storage::StorageResult<bool> {
        Ok(true)
    }
}

/// How a test server is made.
pub struct Setup {
    /// Options of the MUC component.
    pub muc_options: Vec<(&'static str, Value)>,
    pub global: Vec<(&'static str, Value)>,
    /// Use the internal driver over this data directory (else memory).
    pub data_path: Option<std::path::PathBuf>,
    /// Share this memory driver (to restart over the same data).
    pub memory: Option<Arc<modules::storage::MemoryDriver>>,
    pub clock: Clock,
    /// Extra modules for the component (`muc_max_occupants`).
    pub muc_modules: Vec<&'static str>,
    /// The name of localhost's auth provider (`anonymous` makes guests).
    pub auth: &'static str,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            muc_options: Vec::new(),
            global: Vec::new(),
            data_path: None,
            memory: None,
            clock: Clock::Fixed(NOW),
            muc_modules: Vec::new(),
            auth: "internal_hashed",
        }
    }
}

pub struct Harness {
    pub server: Arc<Server>,
    pub host: Arc<Host>,
    pub muc: Arc<Host>,
    pub memory: Arc<modules::storage::MemoryDriver>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(Setup::default())
    }

    pub fn with(setup: Setup) -> Harness {
        let mut cfg = ServerConfig::default();
        cfg.global.set("storage", Value::str("memory"));
        if setup.data_path.is_some() {
            cfg.global.set("storage", Value::str("internal"));
        }
        for (k, v) in setup.global {
            cfg.global.set(k, v);
        }
        cfg.hosts.push(HostConfig {
            name: HOST.into(),
            kind: HostKind::VirtualHost,
            section: Section::default(),
            defined_at: Default::default(),
        });
        let mut section = Section::default();
        for (k, v) in setup.muc_options {
            section.set(k, v);
        }
        cfg.hosts.push(HostConfig {
            name: MUC.into(),
            kind: HostKind::Component {
                module: Some("muc".into()),
            },
            section,
            defined_at: Default::default(),
        });
        let server = Server::new(cfg, setup.clock);
        let memory = setup
            .memory
            .unwrap_or_else(|| Arc::new(modules::storage::MemoryDriver::new()));
        server.storage.register(memory.clone());
        if let Some(path) = setup.data_path {
            server
                .storage
                .register(Arc::new(modules::storage::InternalDriver::new(path)));
        }
        let host = server.host(HOST).expect("localhost");
        let muc = server.host(MUC).expect("conference host");
        host.set_auth_provider(Arc::new(Accounts(setup.auth)));
        for m in ["iq", "presence", "message", "disco", "ping"] {
            modules::load_module(&server, &host, m).expect("module loads");
        }
        muc::load_module(&server, &muc, "muc").expect("muc loads");
        for m in ["iq", "disco"] {
            modules::load_module(&server, &muc, m).expect("module loads");
        }
        for m in setup.muc_modules {
            match muc::load_module(&server, &muc, m) {
                Ok(muc::LoadOutcome::Loaded) => {}
                other => panic!("{m}: {other:?}"),
            }
        }
        Harness {
            server,
            host,
            muc,
            memory,
        }
    }

    pub fn service(&self) -> Arc<muc::MucService> {
        muc::service_for(&self.muc).expect("muc service")
    }

    pub fn room(&self, node: &str) -> Option<Arc<muc::Room>> {
        match self.service().get_room(&format!("{node}@{MUC}")) {
            muc::Lookup::Live(r) => Some(r),
            _ => None,
        }
    }

    /// Binds `user@localhost/resource`.
    pub fn connect(&self, user: &str, resource: &str) -> Client {
        let (tx, rx) = mpsc::unbounded_channel();
        let session = Arc::new(Session::new(SessionKind::C2s, HOST, None, tx));
        let jid = Jid::from_parts(Some(user), HOST, Some(resource)).expect("valid jid");
        {
            let mut st = session.state();
            st.username = Some(user.into());
            st.resource = Some(resource.into());
            st.full_jid = Some(jid.clone());
        }
        self.server.sessions.bind(&jid, &session);
        let mut ev = Event::new(&self.server, "resource-bind").with_origin(&session);
        self.server
            .fire_on_host(&self.host, "resource-bind", &mut ev);
        Client {
            session,
            rx,
            jid,
            server: self.server.clone(),
        }
    }

    /// What the c2s layer does when a stream ends: unbind, then `resource-unbind`.
    pub fn disconnect(&self, client: &Client) {
        self.server.sessions.unbind(&client.jid, &client.session);
        let mut ev = Event::new(&self.server, "resource-unbind").with_origin(&client.session);
        self.server
            .fire_on_host(&self.host, "resource-unbind", &mut ev);
    }
}

/// Parses what a client session got as raw bytes.
pub fn parse_raw(text: &str) -> Element {
    let mut stream = XmlStream::new(StreamLimits::default());
    let mut out = Vec::new();
    let data = format!(
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='x' version='1.0'>{text}"
    );
    stream
        .feed(data.as_bytes(), &mut out)
        .unwrap_or_else(|e| panic!("unparsable raw stanza {text}: {e}"));
    out.into_iter()
        .find_map(|e| match e {
            StreamEvent::Stanza(s) => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no stanza in {text}"))
}

pub struct Client {
    pub session: Arc<Session>,
    pub rx: mpsc::UnboundedReceiver<Outbound>,
    pub jid: Jid,
    pub server: Arc<Server>,
}

impl Client {
    pub fn full(&self) -> String {
        self.jid.to_string()
    }
    pub fn bare(&self) -> String {
        self.jid.to_bare().to_string()
    }
    /// The client sends a stanza (through the router, as the c2s layer does).
    pub fn send(&self, stanza: Element) {
        self.server.process_stanza(&self.session, stanza);
    }
    /// Everything queued for the client so far (raw broadcasts parsed).
    pub fn drain(&mut self) -> Vec<Element> {
        let mut out = Vec::new();
        while let Ok(o) = self.rx.try_recv() {
            match o {
                Outbound::Stanza(e) => out.push(e),
                Outbound::Raw(parts) => out.push(parse_raw(&muc::broadcast::raw_text(&parts))),
                Outbound::Close(_) => {}
            }
        }
        out
    }
    #[track_caller]
    pub fn expect_nothing(&mut self) {
        let left = self.drain();
        assert!(
            left.is_empty(),
            "{} expected nothing, got:\n{}",
            self.jid,
            xml_list(&left)
        );
    }
    /// Sends an IQ and returns the reply, skipping anything else.
    #[track_caller]
    pub fn iq(&mut self, stanza: Element) -> Element {
        let id = stanza.id().unwrap_or_default().to_string();
        self.send(stanza);
        self.drain()
            .into_iter()
            .find(|e| e.name() == "iq" && e.id() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{}: no reply to iq {id}", self.jid))
    }
    /// Joins `room/nick` and returns what arrived.
    pub fn join(&mut self, room: &str, nick: &str) -> Vec<Element> {
        self.send(join(room, nick));
        self.drain()
    }
}

pub fn xml_list(v: &[Element]) -> String {
    v.iter()
        .map(|e| format!("  {}", e.to_xml()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn room_jid(node: &str) -> String {
    format!("{node}@{MUC}")
}

pub fn presence(to: &str) -> Element {
    Element::new("presence", NS_CLIENT).attr("to", to)
}

/// A join presence to `node@conference.localhost/nick`.
pub fn join(node: &str, nick: &str) -> Element {
    presence(&format!("{}/{nick}", room_jid(node))).child(Element::new("x", NS_MUC))
}

pub fn iq(type_: &str, id: &str, to: &str, payload: Element) -> Element {
    Element::new("iq", NS_CLIENT)
        .attr("type", type_)
        .attr("id", id)
        .attr("to", to)
        .child(payload)
}

pub fn groupchat(node: &str, body: &str) -> Element {
    Element::new("message", NS_CLIENT)
        .attr("to", room_jid(node))
        .attr("type", "groupchat")
        .child(Element::new("body", NS_CLIENT).text(body))
}

/// A `muc#roomconfig` submission of these fields.
pub fn config_form(fields: &[(&str, &[&str])]) -> Element {
    let mut x = Element::new("x", NS_DATA).attr("type", "submit").child(
        Element::new("field", NS_DATA)
            .attr("var", "FORM_TYPE")
            .child(
                Element::new("value", NS_DATA).text("http://jabber.org/protocol/muc#roomconfig"),
            ),
    );
    for (var, values) in fields {
        let mut f = Element::new("field", NS_DATA).attr("var", *var);
        for v in *values {
            f.push_child(Element::new("value", NS_DATA).text(*v));
        }
        x.push_child(f);
    }
    Element::new("query", NS_MUC_OWNER).child(x)
}

pub fn admin_item(attrs: &[(&str, &str)], reason: Option<&str>) -> Element {
    let mut item = Element::new("item", NS_MUC_ADMIN);
    for (k, v) in attrs {
        item.set_attr(k, Some(v.to_string()));
    }
    if let Some(r) = reason {
        item.push_child(Element::new("reason", NS_MUC_ADMIN).text(r));
    }
    Element::new("query", NS_MUC_ADMIN).child(item)
}

/// The status codes of a stanza's muc#user payload, in order.
pub fn codes(e: &Element) -> Vec<String> {
    e.get_child("x", NS_MUC_USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "status")
                .filter_map(|c| c.get_attr("code").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The `<item/>`s of a stanza's muc#user payload.
pub fn items(e: &Element) -> Vec<Element> {
    e.get_child("x", NS_MUC_USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "item")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The defined condition of an error stanza.
pub fn error_condition(e: &Element) -> Option<String> {
    let err = e.get_child("error", NS_CLIENT)?;
    err.children()
        .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        .map(|c| c.name().to_string())
}

pub fn error_text(e: &Element) -> Option<String> {
    e.get_child("error", NS_CLIENT)?
        .get_child_text("text", NS_STANZAS)
}

/// Creates `node` with `owner` as an instant room (the owner's join, then
/// the empty configuration form); returns what the owner got on joining.
pub fn instant_room(owner: &mut Client, node: &str, nick: &str) -> Vec<Element> {
    let got = owner.join(node, nick);
    let reply = owner.iq(iq(
        "set",
        "instant",
        &room_jid(node),
        Element::new("query", NS_MUC_OWNER)
            .child(Element::new("x", NS_DATA).attr("type", "submit")),
    ));
    assert_eq!(reply.type_(), Some("result"), "{}", reply.to_xml());
    owner.drain();
    got
}

/// The first stanza named `name` from `from`.
#[track_caller]
pub fn find<'a>(got: &'a [Element], name: &str, from: &str) -> &'a Element {
    got.iter()
        .find(|e| e.name() == name && e.from() == Some(from))
        .unwrap_or_else(|| panic!("no <{name}/> from {from} in:\n{}", xml_list(got)))
}
