//! [`local`]: an in-process client session on a running lilt, for a
//! component that runs inside the server (the focus, the bridge).
//!
//! The session is made as a c2s stream makes one after SASL and resource
//! binding (`../c2s/sasl.rs`, `../c2s/bind.rs`): a [`SessionKind::C2s`]
//! session with the account's username, `authentication-success` fired,
//! the resource bound in the server's registry (an older session on the
//! same full JID is replaced, as Prosody's default `kick_old`) and
//! `resource-bind` fired. So presence, rosters, MUC and IQ routing treat it
//! as any client. What it sends goes through [`crate::Server::process_stanza`]
//! as a client's stanzas do (its `from` stamped). What it is sent, shared
//! broadcasts ([`Outbound::Raw`]) included, arrives as [`Element`]s.
//!
//! There is no password: this is trusted in-process code, and the account
//! need not exist. The session is secure (nothing leaves the process).
//!
//! The link ends when the [`ClientLink`] and every [`LinkSender`] are
//! dropped, or when the server closes the session (a newer session on the
//! same full JID, say); either way the resource is unbound and
//! `resource-unbind` fired, as when a client disconnects (mod_presence
//! then sends unavailable presence, MUC rooms see the occupant leave).
//! Stanzas for the link wait in a channel of
//! [`super::connect::INCOMING_QUEUE`]; while it is full the session's own
//! (server-side) outbound queue holds the rest, as for a slow client.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{ClientError, ClientLink, LinkSender};
use crate::error::{StanzaError, StreamError, StreamErrorCondition as Cond};
use crate::hooks::Event;
use crate::host::Host;
use crate::jid::Jid;
use crate::server::Server;
use crate::session::{Outbound, OutboundRx, Session, SessionKind};
use crate::stanza::{Element, NS_BIND, NS_CLIENT, NS_SESSION};

/// Binds an in-process session for `jid` (`focus@auth.example.com`, with
/// a resource or one is made up) on `server`, whose local VirtualHost the
/// JID's domain must be. Needs a tokio runtime (the link runs on a task).
pub fn local(server: &Arc<Server>, jid: &Jid) -> Result<ClientLink, ClientError> {
    let host = server
        .host(jid.domain())
        .filter(|h| !h.is_component())
        .ok_or_else(|| ClientError::UnknownHost(jid.domain().to_string()))?;
    let username = jid
        .node()
        .ok_or_else(|| ClientError::Protocol(format!("{jid} names no account")))?
        .to_string();
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| ClientError::Protocol("a local client link needs a tokio runtime".into()))?;
    let resource = jid
        .resource()
        .map(str::to_string)
        .unwrap_or_else(|| format!("local-{}", crate::session::new_session_id("")));
    let full = Jid::from_parts(Some(&username), &host.name, Some(&resource))
        .map_err(|e| ClientError::Protocol(format!("{jid}: {e}")))?;

    let (tx, rx) = crate::session::outbound_queue();
    let session = Arc::new(Session::new(SessionKind::C2s, &host.name, None, tx));
    {
        let mut st = session.state();
        st.username = Some(username.clone());
        st.secure = true;
        st.auth_mechanism = Some("in-process".to_string());
    }
    let mut ev = Event::new(server, "authentication-success")
        .with_origin(&session)
        .with_field("username", username)
        .with_object(
            crate::limits::SESSION_LIMITS,
            Arc::new(crate::limits::SessionLimits::new()),
        );
    server.fire_on_host(&host, "authentication-success", &mut ev);

    if let Some(old) = server.sessions.get_full(&full)
        && !crate::smacks::registry::destroy_hibernating(server, &old, "Replaced by new connection")
    {
        old.close(Some(StreamError::with_text(
            Cond::Conflict,
            "Replaced by new connection",
        )));
        server.sessions.unbind(&full, &old);
        let mut ev = Event::new(server, "resource-unbind").with_origin(&old);
        server.fire_on_host(&host, "resource-unbind", &mut ev);
    }
    {
        let mut st = session.state();
        st.resource = Some(resource);
        st.full_jid = Some(full.clone());
    }
    server.sessions.bind(&full, &session);
    let mut ev = Event::new(server, "resource-bind").with_origin(&session);
    server.fire_on_host(&host, "resource-bind", &mut ev);
    tracing::info!(session = %session.id, jid = %full, "in-process client link bound");

    let (in_tx, in_rx) = mpsc::channel(super::connect::INCOMING_QUEUE);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    runtime.spawn(run(
        server.clone(),
        host,
        session,
        full.clone(),
        rx,
        in_tx,
        out_rx,
    ));
    Ok(ClientLink {
        jid: full,
        sender: LinkSender { tx: out_tx },
        incoming: in_rx,
    })
}

/// Moves stanzas between the session and the link until either ends.
async fn run(
    server: Arc<Server>,
    host: Arc<Host>,
    session: Arc<Session>,
    jid: Jid,
    mut rx: OutboundRx,
    in_tx: mpsc::Sender<Element>,
    mut out_rx: mpsc::UnboundedReceiver<Element>,
) {
    // Taken from the session's queue, not yet by the link.
    let mut pending: Option<Element> = None;
    loop {
        tokio::select! {
            biased;
            permit = in_tx.reserve(), if pending.is_some() => {
                // An error: the ClientLink is gone, and what it is sent too.
                if let (Ok(permit), Some(e)) = (permit, pending.take()) {
                    permit.send(e);
                }
            }
            out = out_rx.recv() => match out {
                Some(stanza) => handle_outgoing(&server, &session, stanza),
                // The ClientLink and every LinkSender are gone.
                None => break,
            },
            item = rx.recv(), if pending.is_none() => match item {
                Some(Outbound::Stanza(e)) => pending = Some(e),
                Some(Outbound::Raw(parts)) => {
                    pending = crate::smacks::registry::parse_raw(&parts);
                    if pending.is_none() {
                        tracing::warn!(session = %session.id, "dropping an unparsable shared stanza");
                    }
                }
                Some(Outbound::Close(reason)) => {
                    tracing::info!(session = %session.id, %jid, "the server closed the client link: {:?}", reason.map(|r| r.to_string()));
                    break;
                }
                None => break,
            },
        }
    }
    rx.close();
    out_rx.close();
    if let Some(e) = pending.take() {
        let _ = in_tx.try_send(e);
    }
    if server.sessions.unbind(&jid, &session) {
        let mut ev = Event::new(&server, "resource-unbind").with_origin(&session);
        server.fire_on_host(&host, "resource-unbind", &mut ev);
    }
    tracing::info!(session = %session.id, %jid, "in-process client link ended");
}

/// A stanza from the component, as a c2s stream hands a bound client's
/// stanza on: session establishment is a no-op, a second bind is refused,
/// everything else goes to the router.
fn handle_outgoing(server: &Arc<Server>, session: &Arc<Session>, mut stanza: Element) {
    if stanza.ns() != NS_CLIENT {
        stanza.set_ns(NS_CLIENT);
    }
    let iq_set_with = |name: &str, ns: &str| {
        stanza.name() == "iq"
            && stanza.type_() == Some("set")
            && stanza.get_child(name, ns).is_some()
    };
    if iq_set_with("session", NS_SESSION) {
        let reply = Element::new("iq", NS_CLIENT)
            .attr("type", "result")
            .attr_opt("id", stanza.id());
        session.send(reply);
        return;
    }
    if iq_set_with("bind", NS_BIND) {
        let reply = StanzaError::not_allowed()
            .with_text("Resource already bound")
            .reply_to(&stanza);
        session.send(reply);
        return;
    }
    server.process_stanza(session, stanza);
}
