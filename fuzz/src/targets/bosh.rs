//! BOSH request bodies (`bosh_websocket::bosh`): each part is one HTTP
//! request body, parsed as mod_bosh does, its attributes read (or sniffed
//! from the opening tag when the whole does not parse), and admitted into
//! one session's sans-IO state with virtual time.

use std::time::{Duration, Instant};

use bosh_websocket::bosh::body::{BodyAttrs, sniff_attrs, stanzas};
use bosh_websocket::bosh::state::{Admitted, BoshState, Output, Settings};
use bosh_websocket::fragment::parse_element;
use xmpp_core::stream::StreamLimits;

pub fn run(data: &[u8]) {
    let limits = StreamLimits {
        max_stanza_size: 16 * 1024,
        max_depth: 16,
    };
    let mut now = Instant::now();
    let settings = Settings {
        wait: Duration::from_secs(60),
        inactivity: Duration::from_secs(60),
        polling: Duration::from_secs(5),
        max_pause: Duration::from_secs(120),
    };
    let mut session: Option<BoshState> = None;
    for (id, part) in crate::parts::split(data).into_iter().enumerate() {
        let id = id as u64;
        now += Duration::from_millis(700);
        let parsed = parse_element(part, &limits)
            .ok()
            .and_then(|body| BodyAttrs::from_element(&body).map(|attrs| (attrs, body)));
        let Some((attrs, body)) = parsed else {
            if let (Some(state), Some(rid)) = (
                session.as_mut(),
                sniff_attrs(part).and_then(|attrs| attrs.rid),
            ) {
                state.skip(rid);
            }
            continue;
        };
        let Some(rid) = attrs.rid else { continue };
        let carried = stanzas(body, attrs.lang.as_deref());
        let state = session.get_or_insert_with(|| {
            BoshState::new("sid".into(), "localhost".into(), rid, settings.clone(), now)
        });
        match state.receive(now, id, rid, attrs.terminate, attrs.pause, carried) {
            Admitted::Process(batches) => {
                for stanza in batches.into_iter().flatten() {
                    state.push(stanza.to_xml());
                }
                state.finish(now);
            }
            Admitted::Done => {}
        }
        if id % 3 == 2 {
            state.request_gone(now, id);
        }
        while let Some(deadline) = state.poll_timeout() {
            if deadline > now + Duration::from_secs(3) {
                break;
            }
            now = now.max(deadline);
            state.handle_timeout(now);
        }
        while let Some(output) = state.poll_output() {
            if let Output::Expired { .. } = output {
                session = None;
                break;
            }
        }
    }
}
