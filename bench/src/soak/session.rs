//! One soak user's life: log in (SASL PLAIN, bind, presence) over its
//! transport, then until the end send messages to random users, change its
//! presence, join and leave MUC rooms, and now and then disconnect and log
//! in again; every message and error it receives goes to the ledger.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, sleep_until, timeout};

use super::ledger::{Ledger, message_id};
use super::link::{Endpoints, Link, LinkError, Transport};
use crate::xml;

/// How often each session does what (mean seconds between two).
#[derive(Debug, Clone)]
pub struct Rates {
    pub message: f64,
    pub presence: f64,
    pub muc: f64,
    pub reconnect: f64,
}

/// What every session shares.
pub struct Shared {
    pub at: Endpoints,
    pub muc_domain: String,
    pub password: String,
    pub users: usize,
    pub rooms: usize,
    pub rates: Rates,
    pub ledger: Ledger,
    /// No new action after this.
    pub stop_sending: Instant,
    /// Sessions close (gracefully, keeping what still arrives) at this.
    pub close_at: Instant,
    /// When the soak began.
    pub started: Instant,
}

pub fn username(i: usize) -> String {
    crate::accounts::username(i)
}

/// Waits for an element that `want` accepts, giving every other one to
/// `other` (messages that arrive while logging in).
async fn expect(
    link: &mut Link,
    shared: &Shared,
    want: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, LinkError> {
    let limit = Duration::from_secs(60);
    loop {
        let el = timeout(limit, link.next())
            .await
            .map_err(|_| LinkError::Timeout)??;
        if want(&el) {
            return Ok(el);
        }
        account(shared, &el);
    }
}

async fn login(shared: &Shared, i: usize, transport: Transport) -> Result<Link, LinkError> {
    let mut link = Link::open(transport, &shared.at).await?;
    let _features = expect(&mut link, shared, |el| xml::name(el) == b"features").await?;
    let user = username(i);
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{}", shared.password));
    link.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
    ))
    .await?;
    let outcome = expect(&mut link, shared, |el| {
        matches!(xml::name(el), b"success" | b"failure")
    })
    .await?;
    if xml::name(&outcome) != b"success" {
        return Err(LinkError::Protocol(format!(
            "{user}: {}",
            String::from_utf8_lossy(&outcome)
        )));
    }
    link.restart().await?;
    let _features = expect(&mut link, shared, |el| xml::name(el) == b"features").await?;
    link.send(
        "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>soak</resource></bind></iq>",
    )
    .await?;
    let bound = expect(&mut link, shared, |el| {
        xml::name(el) == b"iq" && xml::attr(el, "id") == Some(b"bind")
    })
    .await?;
    if xml::attr(&bound, "type") != Some(b"result") {
        return Err(LinkError::Protocol(format!(
            "{user}: bind: {}",
            String::from_utf8_lossy(&bound)
        )));
    }
    link.send("<presence/>").await?;
    Ok(link)
}

/// Books one received element.
fn account(shared: &Shared, el: &[u8]) {
    match xml::name(el) {
        b"message" => {
            // Groupchat and headline traffic is not ours.
            if let Some(id) = xml::attr(el, "id") {
                let error = xml::attr(el, "type") == Some(b"error");
                if id.starts_with(b"soak-") {
                    shared.ledger.received(id, error);
                }
            }
        }
        b"presence" => {
            Ledger::add(&shared.ledger.presences_received, 1);
            // A room's self-presence carries status code 110.
            let own = el
                .windows(10)
                .any(|w| w == b"code='110'" || w == b"code=\"110\"");
            if own && xml::attr(el, "type").is_none() {
                Ledger::add(&shared.ledger.muc_joined, 1);
            }
        }
        _ => {}
    }
}

fn next_in(rng: &mut impl Rng, mean: f64) -> Instant {
    // Exponential gaps, as independent users would have.
    let u: f64 = rng.r#gen::<f64>().max(1e-9);
    Instant::now() + Duration::from_secs_f64(-mean * u.ln())
}

/// The session's whole life; returns when the soak ends.
pub async fn life(shared: Arc<Shared>, i: usize, transport: Transport, start: Instant) {
    sleep_until(start).await;
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut seq: u64 = 0;
    let mut first = true;
    while Instant::now() < shared.stop_sending {
        let mut link = match login(&shared, i, transport).await {
            Ok(link) => link,
            Err(e) => {
                Ledger::add(&shared.ledger.login_failures, 1);
                if Ledger::get(&shared.ledger.login_failures) <= 20 {
                    eprintln!(
                        "soak: {} login over {} failed: {e}",
                        username(i),
                        transport.label()
                    );
                }
                let pause = Duration::from_millis(rng.gen_range(1000..5000));
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        Ledger::add(&shared.ledger.logins, 1);
        if !first {
            Ledger::add(&shared.ledger.reconnects, 1);
        }
        first = false;
        Ledger::add(&shared.ledger.online, 1);
        let mut room: Option<usize> = None;
        let mut next_message = next_in(&mut rng, shared.rates.message);
        let mut next_presence = next_in(&mut rng, shared.rates.presence);
        let mut next_muc = next_in(&mut rng, shared.rates.muc);
        let reconnect_at = next_in(&mut rng, shared.rates.reconnect);
        let ended = loop {
            let now = Instant::now();
            if now >= shared.close_at {
                break false;
            }
            if now < shared.stop_sending && now >= reconnect_at {
                break false;
            }
            let sending = now < shared.stop_sending;
            let mut result = Ok(());
            if sending && now >= next_message {
                next_message = next_in(&mut rng, shared.rates.message);
                let mut to = rng.gen_range(0..shared.users);
                if to == i {
                    to = (to + 1) % shared.users;
                }
                seq += 1;
                shared
                    .ledger
                    .sent(i, seq, to, shared.started.elapsed().as_secs_f32());
                result = link
                    .send(&format!(
                        "<message to='{}@{}' id='{}' type='chat'><body>soak {seq}</body></message>",
                        username(to),
                        shared.at.domain,
                        message_id(i, seq)
                    ))
                    .await;
            } else if sending && now >= next_presence {
                next_presence = next_in(&mut rng, shared.rates.presence);
                Ledger::add(&shared.ledger.presences_sent, 1);
                let show = ["away", "chat", "dnd", "xa"][rng.gen_range(0..4)];
                result = link
                    .send(&format!(
                        "<presence><show>{show}</show><status>soak {}</status></presence>",
                        rng.r#gen::<u16>()
                    ))
                    .await;
            } else if sending && now >= next_muc {
                next_muc = next_in(&mut rng, shared.rates.muc);
                let nick = username(i);
                result = match room.take() {
                    Some(r) => {
                        Ledger::add(&shared.ledger.muc_leaves, 1);
                        link.send(&format!(
                            "<presence type='unavailable' to='room{r}@{}/{nick}'/>",
                            shared.muc_domain
                        ))
                        .await
                    }
                    None => {
                        let r = rng.gen_range(0..shared.rooms.max(1));
                        room = Some(r);
                        Ledger::add(&shared.ledger.muc_joins, 1);
                        link.send(&format!(
                            "<presence to='room{r}@{}/{nick}'><x xmlns='http://jabber.org/protocol/muc'>\
                             <history maxstanzas='0'/></x></presence>",
                            shared.muc_domain
                        ))
                        .await
                    }
                };
            }
            if result.is_err() {
                break true;
            }
            let wake = [
                next_message,
                next_presence,
                next_muc,
                reconnect_at,
                shared.close_at,
            ]
            .into_iter()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(shared.close_at)
            .min(if sending {
                shared.stop_sending
            } else {
                shared.close_at
            });
            tokio::select! {
                el = link.next() => match el {
                    Ok(el) => account(&shared, &el),
                    Err(e) => {
                        if Ledger::get(&shared.ledger.disconnects) < 30 {
                            eprintln!(
                                "soak: {} over {} dropped at {:.1} s: {e}",
                                username(i),
                                transport.label(),
                                shared.started.elapsed().as_secs_f64()
                            );
                        }
                        break true;
                    }
                },
                _ = sleep_until(wake) => {}
            }
        };
        Ledger::add(&shared.ledger.online, u64::MAX); // wrapping -1
        if ended {
            Ledger::add(&shared.ledger.disconnects, 1);
            continue;
        }
        for el in link.close(Duration::from_secs(10)).await {
            account(&shared, &el);
        }
        if Instant::now() >= shared.close_at {
            return;
        }
    }
}
