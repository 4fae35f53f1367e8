//! The store operations of `bench storage`, driven over c2s by logged-in
//! clients at once, each in a closed loop (the next request when the
//! previous one is answered), so a figure is the server's (and its
//! store's) throughput at that concurrency:
//!
//! - private set / get (XEP-0049): keyval writes and reads of the `private`
//!   map store, each client on its own fragments (four namespaces in turn);
//! - MAM appends: clients in pairs, one sends chat messages to the other's
//!   bare JID in windows and waits until they have all arrived, so each
//!   message is two archive appends (the sender's and the recipient's);
//! - MAM queries (XEP-0313 with RSM): each client pages backwards through
//!   its own archive, `max` items a page, back to the newest page when it
//!   reaches the start.
//!
//! Every reply is checked (an error reply stops the run), so a store that
//! fails cannot look fast.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::client::{ClientError, Conn};
use crate::xml;

/// How one operation went: how many were done in how long.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub ops: usize,
    pub elapsed: Duration,
}

impl Measured {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The operations, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    PrivateSet,
    PrivateGet,
    MamAppend,
    MamQuery,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::PrivateSet, Op::PrivateGet, Op::MamAppend, Op::MamQuery];

    pub fn label(self) -> &'static str {
        match self {
            Op::PrivateSet => "keyval writes/s (private XML set)",
            Op::PrivateGet => "keyval reads/s (private XML get)",
            Op::MamAppend => "archive appends/s (2 per message)",
            Op::MamQuery => "archive queries/s (MAM page)",
        }
    }
}

/// What the operations need to know.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Requests per client (private set/get, MAM queries).
    pub ops: usize,
    /// Messages per sending client.
    pub messages: usize,
    /// Messages in flight per pair.
    pub window: usize,
    /// Items per MAM page.
    pub page: usize,
}

const NS_PRIVATE: &str = "jabber:iq:private";
const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";

/// A fragment of a few hundred bytes, as a client's bookmarks would be.
fn fragment(k: usize, i: usize) -> String {
    let mut items = String::new();
    for n in 0..4 {
        items.push_str(&format!(
            "<conference jid='room{n}@conference.localhost' autojoin='true' name='Room number {n}'><nick>bench{i}</nick></conference>"
        ));
    }
    format!("<storage xmlns='urn:lilt:bench:{k}'><rev>{i}</rev>{items}</storage>")
}

fn refused(conn: &Conn, step: &'static str, reply: &[u8]) -> ClientError {
    ClientError::Refused {
        user: conn.jid.clone(),
        step,
        stanza: String::from_utf8_lossy(reply).into_owned(),
    }
}

async fn iq(
    conn: &mut Conn,
    text: &str,
    id: &str,
    step: &'static str,
) -> Result<Vec<u8>, ClientError> {
    conn.send(text.as_bytes(), step).await?;
    let reply = conn.wait_iq(id, step).await?;
    if xml::attr(&reply, "type") != Some(b"result") {
        return Err(refused(conn, step, &reply));
    }
    Ok(reply)
}

async fn private_set(mut conn: Conn, n: usize) -> Result<(Conn, usize), ClientError> {
    for i in 0..n {
        let id = format!("ps{i}");
        let text = format!(
            "<iq type='set' id='{id}'><query xmlns='{NS_PRIVATE}'>{}</query></iq>",
            fragment(i % 4, i)
        );
        iq(&mut conn, &text, &id, "private set").await?;
    }
    Ok((conn, n))
}

async fn private_get(mut conn: Conn, n: usize) -> Result<(Conn, usize), ClientError> {
    for i in 0..n {
        let id = format!("pg{i}");
        let text = format!(
            "<iq type='get' id='{id}'><query xmlns='{NS_PRIVATE}'><storage xmlns='urn:lilt:bench:{}'/></query></iq>",
            i % 4
        );
        let reply = iq(&mut conn, &text, &id, "private get").await?;
        if !xml::has_child(&reply, "rev") {
            return Err(refused(&conn, "private get (the stored fragment)", &reply));
        }
    }
    Ok((conn, n))
}

/// One pair: `from` sends, `to` receives; returns both and the appends.
async fn mam_append(
    mut from: Conn,
    mut to: Conn,
    messages: usize,
    window: usize,
) -> Result<(Conn, Conn, usize), ClientError> {
    let bare = to.jid.split('/').next().unwrap_or_default().to_string();
    let window = window.max(1);
    let mut sent = 0;
    while sent < messages {
        let batch = window.min(messages - sent);
        let mut text = String::new();
        for i in sent..sent + batch {
            text.push_str(&format!(
                "<message type='chat' to='{}' id='m{i}'><body>Message {i} of the storage benchmark, about as long as a chat line.</body></message>",
                xml::escape(&bare)
            ));
        }
        from.send(text.as_bytes(), "MAM append").await?;
        let mut got = 0;
        while got < batch {
            let el = to.wait_element("MAM append (delivery)").await?;
            if xml::name(&el) == b"message" {
                if xml::attr(&el, "type") == Some(b"error") {
                    return Err(refused(&to, "MAM append (delivery)", &el));
                }
                got += 1;
            }
        }
        sent += batch;
    }
    // The sender's own archive write is done once this is answered.
    from.ping("localhost", "appended").await?;
    Ok((from, to, 2 * messages))
}

async fn mam_query(mut conn: Conn, n: usize, page: usize) -> Result<(Conn, usize), ClientError> {
    let mut before: Option<String> = None;
    for i in 0..n {
        let id = format!("mq{i}");
        let before_el = match &before {
            Some(key) => format!("<before>{}</before>", xml::escape(key)),
            None => "<before/>".into(),
        };
        let text = format!(
            "<iq type='set' id='{id}'><query xmlns='{NS_MAM}' queryid='{id}'><set xmlns='{NS_RSM}'><max>{page}</max>{before_el}</set></query></iq>"
        );
        conn.send(text.as_bytes(), "MAM query").await?;
        let mut results = 0;
        let reply = loop {
            let el = conn.wait_element("MAM query").await?;
            if xml::name(&el) == b"message" && xml::has_child(&el, "result") {
                results += 1;
            } else if xml::name(&el) == b"iq" && xml::attr(&el, "id") == Some(id.as_bytes()) {
                break el;
            }
        };
        if xml::attr(&reply, "type") != Some(b"result") || results == 0 {
            return Err(refused(&conn, "MAM query (a non-empty page)", &reply));
        }
        let complete = fin_complete(&reply);
        before = match xml::child_text(&reply, "first") {
            Some(first) if !complete && !first.is_empty() => Some(xml::unescape(first)),
            _ => None,
        };
    }
    Ok((conn, n))
}

/// Whether the `<fin/>` of a MAM reply says the page reached the start.
fn fin_complete(reply: &[u8]) -> bool {
    reply
        .windows(4)
        .position(|w| w == b"<fin")
        .and_then(|at| reply.get(at..))
        .and_then(|fin| xml::attr(fin, "complete"))
        == Some(b"true")
}

/// Runs one operation on every client at once; returns the clients (in
/// the same order) and the measurement.
pub async fn run(
    op: Op,
    conns: Vec<Conn>,
    sizes: Sizes,
) -> Result<(Vec<Conn>, Measured), ClientError> {
    let start = Instant::now();
    let mut out: Vec<Option<Conn>> = Vec::new();
    out.resize_with(conns.len(), || None);
    let mut ops = 0;
    match op {
        Op::MamAppend => {
            let mut set = JoinSet::new();
            let mut it = conns.into_iter().enumerate();
            while let (Some((i, a)), Some((j, b))) = (it.next(), it.next()) {
                let (m, w) = (sizes.messages, sizes.window);
                set.spawn(async move { mam_append(a, b, m, w).await.map(|r| (i, j, r)) });
            }
            while let Some(done) = set.join_next().await {
                let (i, j, (a, b, n)) = done.map_err(join_error)??;
                out[i] = Some(a);
                out[j] = Some(b);
                ops += n;
            }
        }
        _ => {
            let mut set = JoinSet::new();
            for (i, c) in conns.into_iter().enumerate() {
                let s = sizes;
                set.spawn(async move {
                    let r = match op {
                        Op::PrivateSet => private_set(c, s.ops).await,
                        Op::PrivateGet => private_get(c, s.ops).await,
                        _ => mam_query(c, s.ops, s.page).await,
                    };
                    r.map(|r| (i, r))
                });
            }
            while let Some(done) = set.join_next().await {
                let (i, (c, n)) = done.map_err(join_error)??;
                out[i] = Some(c);
                ops += n;
            }
        }
    }
    let elapsed = start.elapsed();
    Ok((
        out.into_iter().flatten().collect(),
        Measured { ops, elapsed },
    ))
}

fn join_error(e: tokio::task::JoinError) -> ClientError {
    ClientError::Closed {
        user: "bench storage".into(),
        step: "a client task",
        detail: Some(e.to_string()),
    }
}
