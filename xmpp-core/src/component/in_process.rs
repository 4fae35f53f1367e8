//! The in-process component API: a Rust value attached to a component host
//! gets what an external component would be sent, and what it sends is
//! routed as an external component's stanzas are.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::routing::{ComponentLink, load, parse_raw};
use super::stream::into_client_ns;
use crate::error::{StreamError, StreamErrorCondition};
use crate::hooks::Event;
use crate::host::Host;
use crate::server::Server;
use crate::session::{Outbound, Session, SessionKind};
use crate::stanza::Element;

/// A component served in-process. Stanzas arrive in `jabber:client`, one
/// at a time, on a task of their own (so handlers may block briefly, and
/// may send: nothing is delivered re-entrantly).
pub trait Component: Send + Sync + 'static {
    /// A stanza for the component's domain or a JID at it.
    fn handle(&self, stanza: Element, sender: &ComponentSender);
    /// The component is attached; called before any stanza.
    fn connected(&self, _sender: &ComponentSender) {}
    /// The component was detached (by [`AttachedComponent::detach`], a
    /// newer component replacing it, or the server).
    fn disconnected(&self) {}
}

/// Why a component could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no host {domain} in this server's configuration")]
    UnknownHost { domain: String },
    #[error(
        "host {domain} is not a component host without a module (declare it as `Component \"{domain}\"`)"
    )]
    NotAComponentHost { domain: String },
    #[error(
        "a component is already connected to {domain} (component_conflict_resolve = \"kick_new\")"
    )]
    Conflict { domain: String },
    #[error("attaching a component to {domain} needs a running tokio runtime")]
    NoRuntime { domain: String },
}

/// Why a stanza from a component was not routed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("component {domain} tried to send from <{from}>, which is not in its domain")]
    InvalidFrom { domain: String, from: String },
    #[error("component {domain} sent a <{name}/> without a 'to' address")]
    NoTo { domain: String, name: String },
    #[error("component {domain} is detached (or its connection closed)")]
    Detached { domain: String },
}

/// What a component sends with: in-process, it routes stanzas from the
/// component's session; connected with [`super::connect`], it writes them
/// to the XEP-0114 stream.
#[derive(Clone)]
pub struct ComponentSender {
    domain: String,
    route: Route,
}

#[derive(Clone)]
enum Route {
    Local {
        server: Arc<Server>,
        host: Arc<Host>,
        session: Arc<Session>,
    },
    Remote {
        tx: mpsc::UnboundedSender<Element>,
        validate_from: bool,
    },
}

impl std::fmt::Debug for ComponentSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ComponentSender({})", self.domain)
    }
}

impl ComponentSender {
    /// A sender writing to a component stream's queue (see [`super::connect`]).
    pub(super) fn remote(domain: &str, tx: mpsc::UnboundedSender<Element>) -> ComponentSender {
        ComponentSender {
            domain: domain.to_string(),
            route: Route::Remote {
                tx,
                validate_from: true,
            },
        }
    }

    /// The component's domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// In-process: the session its stanzas come from (kind
    /// [`SessionKind::Component`]); `None` over a connection.
    pub fn session(&self) -> Option<&Arc<Session>> {
        match &self.route {
            Route::Local { session, .. } => Some(session),
            Route::Remote { .. } => None,
        }
    }

    /// Sends a stanza as a connected component: a missing `from` is the
    /// domain, a `from` in another domain is refused (in-process, unless the
    /// host sets `validate_from_addresses = false`), a `to` is required.
    pub fn send(&self, mut stanza: Element) -> Result<(), SendError> {
        let validate = match &self.route {
            Route::Local { host, session, .. } => {
                let link = host.extension::<ComponentLink>();
                if !link.session().is_some_and(|s| Arc::ptr_eq(&s, session)) {
                    return Err(self.detached());
                }
                host.option_bool("validate_from_addresses", true)
                    .unwrap_or(true)
            }
            Route::Remote { validate_from, .. } => *validate_from,
        };
        into_client_ns(&mut stanza);
        match stanza.from() {
            None => stanza.set_attr("from", Some(self.domain.clone())),
            Some(from) => {
                let domain_ok = crate::jid::Jid::parse(from)
                    .map(|j| j.domain() == self.domain)
                    .unwrap_or(false);
                if validate && !domain_ok {
                    return Err(SendError::InvalidFrom {
                        domain: self.domain.clone(),
                        from: from.to_string(),
                    });
                }
            }
        }
        if stanza.to().is_none() {
            return Err(SendError::NoTo {
                domain: self.domain.clone(),
                name: stanza.name().to_string(),
            });
        }
        match &self.route {
            Route::Local {
                server, session, ..
            } => {
                server.process_stanza(session, stanza);
                Ok(())
            }
            Route::Remote { tx, .. } => tx.send(stanza).map_err(|_| self.detached()),
        }
    }

    fn detached(&self) -> SendError {
        SendError::Detached {
            domain: self.domain.clone(),
        }
    }
}

/// An attached in-process component. Dropping it leaves the component
/// attached (for the server's lifetime); [`AttachedComponent::detach`]
/// ends it.
pub struct AttachedComponent {
    sender: ComponentSender,
}

impl AttachedComponent {
    pub fn sender(&self) -> &ComponentSender {
        &self.sender
    }
    /// Detaches the component: stanzas for its domain bounce again.
    pub fn detach(self) {
        if let Some(session) = self.sender.session() {
            session.close(None);
        }
    }
}

/// Attaches `component` to the component host `domain` (declared as
/// `Component "domain"` without a module), as an external component's
/// handshake would: the conflict rule is the host's
/// `component_conflict_resolve`. Needs a tokio runtime.
pub fn attach(
    server: &Arc<Server>,
    domain: &str,
    component: Arc<dyn Component>,
) -> Result<AttachedComponent, AttachError> {
    let host = server
        .host(domain)
        .ok_or_else(|| AttachError::UnknownHost {
            domain: domain.to_string(),
        })?;
    if !matches!(host.kind, crate::HostKind::Component { module: None }) {
        return Err(AttachError::NotAComponentHost {
            domain: domain.to_string(),
        });
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| AttachError::NoRuntime {
        domain: domain.to_string(),
    })?;
    load(&host);
    let (tx, rx) = mpsc::unbounded_channel();
    let session = Arc::new(Session::new(SessionKind::Component, &host.name, None, tx));
    let kick_old = host.option_str("component_conflict_resolve") == Some("kick_old");
    if let Err(old) = host
        .extension::<ComponentLink>()
        .connect(&session, kick_old)
    {
        match old {
            Some(old) => old.close(Some(StreamError::with_text(
                StreamErrorCondition::Conflict,
                "Replaced by a new connection",
            ))),
            None => {
                return Err(AttachError::Conflict {
                    domain: domain.to_string(),
                });
            }
        }
    }
    tracing::info!(session = %session.id, host = %host.name, "in-process component attached");
    let sender = ComponentSender {
        domain: host.name.clone(),
        route: Route::Local {
            server: server.clone(),
            host: host.clone(),
            session: session.clone(),
        },
    };
    component.connected(&sender);
    let mut ev = Event::new(server, "component-authenticated").with_origin(&session);
    server.fire_on_host(&host, "component-authenticated", &mut ev);
    runtime.spawn(run(
        server.clone(),
        host,
        session,
        sender.clone(),
        component,
        rx,
    ));
    Ok(AttachedComponent { sender })
}

/// Delivers what the session is sent until it is closed.
async fn run(
    server: Arc<Server>,
    host: Arc<Host>,
    session: Arc<Session>,
    sender: ComponentSender,
    component: Arc<dyn Component>,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
) {
    while let Some(item) = rx.recv().await {
        match item {
            Outbound::Stanza(e) => component.handle(e, &sender),
            Outbound::Raw(parts) => {
                if let Some(e) = parse_raw(&parts) {
                    component.handle(e, &sender);
                }
            }
            Outbound::Close(_) => break,
        }
    }
    rx.close();
    if host.extension::<ComponentLink>().disconnect(&session) {
        let mut ev = Event::new(&server, "component-disconnected")
            .with_origin(&session)
            .with_field("reason", "detached");
        server.fire_on_host(&host, "component-disconnected", &mut ev);
    }
    tracing::info!(session = %session.id, host = %host.name, "in-process component detached");
    component.disconnected();
}
