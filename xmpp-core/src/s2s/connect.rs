//! Connecting to the first of a domain's addresses that answers, in
//! staggered parallel ("happy eyeballs", RFC 8305's connection attempt
//! delay): the next address is tried when the previous attempt failed or
//! has not succeeded within [`ATTEMPT_DELAY`], earlier attempts going on;
//! the first connection made wins and the others are dropped. An address
//! that swallows SYNs (a host that is down) thus costs a quarter second,
//! not the whole `s2s_timeout`.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::resolve::Target;

/// How long an attempt has before the next address is tried as well.
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Connects to one of `targets` (tried in their order); returns the index
/// of the one connected, or why none was.
pub async fn connect_staggered(
    targets: &[Target],
    deadline: Instant,
) -> Result<(usize, TcpStream), String> {
    let mut attempts = JoinSet::new();
    let mut next = 0;
    let mut reason = "no address to connect to".to_string();
    loop {
        if let Some(target) = targets.get(next) {
            let addr = target.addr;
            let index = next;
            tracing::debug!(%addr, "connecting");
            attempts.spawn(async move { (index, addr, TcpStream::connect(addr).await) });
            next += 1;
        } else if attempts.is_empty() {
            return Err(reason);
        }
        let more = next < targets.len();
        tokio::select! {
            Some(done) = attempts.join_next() => match done {
                Ok((index, _, Ok(tcp))) => return Ok((index, tcp)),
                Ok((_, addr, Err(e))) => {
                    tracing::debug!(%addr, "connect failed: {e}");
                    reason = format!("connection to {addr} failed: {e}");
                }
                Err(e) => reason = format!("connect task failed: {e}"),
            },
            _ = tokio::time::sleep(ATTEMPT_DELAY), if more => {}
            _ = tokio::time::sleep_until(deadline) => return Err("timed out".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn target(addr: SocketAddr) -> Target {
        Target {
            addr,
            direct_tls: false,
        }
    }

    /// A closed port first: its refusal starts the next attempt at once.
    #[tokio::test]
    async fn a_refused_address_is_skipped() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let targets = [target(closed_addr), target(open.local_addr().unwrap())];
        let deadline = Instant::now() + Duration::from_secs(60);
        let (index, _tcp) = connect_staggered(&targets, deadline).await.unwrap();
        assert_eq!(index, 1);
    }

    #[tokio::test]
    async fn nothing_to_connect_to_is_an_error() {
        let deadline = Instant::now() + Duration::from_secs(60);
        assert!(connect_staggered(&[], deadline).await.is_err());
    }
}
