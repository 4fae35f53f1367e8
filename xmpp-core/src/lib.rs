//! # xmpp-core
//!
//! The heart of lilt: JIDs, stanzas, the sans-IO XML stream, stream
//! negotiation, the router, events and hooks, hosts, sessions, the c2s
//! listener with TLS, and the storage and authentication interfaces that other
//! crates implement. It depends on no other workspace crate.
//!
//! Where to start reading: [`stanza`] (the tree every stanza is), [`stream`]
//! (bytes to stanzas), [`router`] (where a stanza goes), [`hooks`] (how
//! modules see it), then [`c2s`] (a client connection end to end).
//!
//! The configuration a [`Server`] and its [`Host`]s read is a
//! [`LiveConfig`]: a reload puts a new snapshot in force
//! ([`Server::reconfigure`], which also adds and removes hosts), so read
//! options per use rather than keeping copies.
//!
//! [`module`] is Prosody's module API: the [`Module`] trait, the
//! per-host [`ModuleContext`] that owns what a module registered, the
//! [`Registry`] of modules by name and run-time load/unload/reload.
//!
//! [`smacks`] is XEP-0198 stream management as Prosody's mod_smacks (acks,
//! resumption, hibernation), served by the c2s stream on hosts that load
//! `smacks`; [`smacks::username_of_resumable`] tells which account a
//! resumption id belongs to (for `jitsi-anonymous`).
//!
//! [`client`] is the XMPP client link lilt's focus, bridge and recorder
//! log in with: [`client::connect`](fn@client::connect) to any server over TCP, or
//! [`client::local`] in-process.
//!
//! [`component`] serves `Component "x"` hosts without a module as Prosody's
//! mod_component does: external components connect over XEP-0114
//! (`component_ports`, default 5347, on loopback unless
//! `component_interfaces` says otherwise) and authenticate with the SHA-1
//! handshake over `component_secret`; an in-process Rust
//! [`component::Component`] attaches with [`component::attach`] and is
//! routed the same way.
//!
//! [`s2s`] is federation: server-to-server streams with STARTTLS, SASL
//! EXTERNAL and dialback, as Prosody's mod_s2s, mod_s2s_auth_certs and
//! mod_dialback; [`s2s::start`] opens its listeners and routes stanzas for
//! remote domains.
//!
//! An idle client costs little (bench scenario 5: about 7 KiB per
//! authenticated TCP session): its connection reads on readiness into a
//! per-thread buffer, its [`XmlStream`] parses with a small token limit
//! (re-reading a stanza with a big one when a token is longer) and drops
//! its parser after a second without input ([`XmlStream::park`]), and its
//! session's outbound queue ([`session::outbound_queue`]) holds no buffer
//! while empty.

pub mod adhoc;
pub mod auth;
pub mod c2s;
pub mod client;
pub mod component;
pub mod config;
pub mod error;
pub mod extensions;
pub mod hooks;
pub mod host;
pub mod http;
pub mod jid;
pub mod limits;
pub mod listen;
pub mod live_config;
pub mod module;
pub mod router;
pub mod s2s;
pub mod server;
pub mod session;
pub mod smacks;
pub mod stanza;
pub mod storage;
pub mod stream;
pub mod tls;
pub mod transport;
pub mod value;

pub use config::{HostConfig, HostKind, ServerConfig};
pub use error::{ErrorType, StanzaError, StreamError, StreamErrorCondition};
pub use hooks::{Event, EventBus, HookId};
pub use host::Host;
pub use jid::Jid;
pub use live_config::LiveConfig;
pub use module::{Module, ModuleContext, ModuleError, Registry};
pub use server::{Clock, Reconfigured, Server};
pub use session::{Outbound, Session, SessionKind};
pub use stanza::Element;
pub use stream::{StreamEvent, StreamHeader, StreamLimits, XmlStream};
pub use value::{Table, Value};
