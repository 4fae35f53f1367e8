//! The BOSH state machine on virtual time.

use super::*;
use xmpp_core::stanza::NS_CLIENT;

fn settings() -> Settings {
    Settings {
        wait: Duration::from_secs(60),
        inactivity: Duration::from_secs(60),
        polling: Duration::from_secs(5),
        max_pause: Duration::from_secs(120),
    }
}

fn msg(n: u32) -> Element {
    Element::new("message", NS_CLIENT).attr("id", n.to_string())
}

struct Harness {
    s: BoshState,
    t0: Instant,
}

impl Harness {
    fn new() -> Harness {
        let t0 = Instant::now();
        Harness {
            s: BoshState::new("sid1".into(), "localhost".into(), 100, settings(), t0),
            t0,
        }
    }
    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }
    /// A request processed like the glue does: each stanza answered with
    /// `<echo/>` pushed while processing.
    fn request(&mut self, secs: u64, id: RequestId, rid: u64, stanzas: Vec<Element>) -> usize {
        let now = self.at(secs);
        match self.s.receive(now, id, rid, false, None, stanzas) {
            Admitted::Process(batches) => {
                let n = batches.iter().map(Vec::len).sum();
                for batch in batches {
                    for e in batch {
                        self.s
                            .push(format!("<echo id='{}'/>", e.id().unwrap_or("")));
                    }
                }
                self.s.finish(now);
                n
            }
            Admitted::Done => 0,
        }
    }
    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.s.poll_output()).collect()
    }
    fn responses(&mut self) -> Vec<(RequestId, String)> {
        self.outputs()
            .into_iter()
            .filter_map(|o| match o {
                Output::Respond { id, body } => Some((id, body)),
                Output::Expired { .. } => None,
            })
            .collect()
    }
}

#[test]
fn creation_response_carries_the_session_attributes_and_data() {
    let mut h = Harness::new();
    assert_eq!(h.request(0, 1, 100, vec![msg(1)]), 1);
    let r = h.responses();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, 1);
    assert!(
        r[0].1
            .contains("requests='2' hold='1' inactivity='60' polling='5' wait='60'"),
        "{}",
        r[0].1
    );
    assert!(r[0].1.contains("<echo id='1'/></body>"));
    // Later responses are plain.
    h.request(1, 2, 101, vec![msg(2)]);
    let r = h.responses();
    assert!(!r[0].1.contains("requests="));
}

#[test]
fn an_empty_request_is_held_until_data_arrives() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    h.request(1, 2, 101, vec![]);
    assert!(h.responses().is_empty(), "held");
    assert_eq!(h.s.held(), 1);
    h.s.push("<message/>".into());
    let r = h.responses();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, 2);
    assert!(r[0].1.ends_with("<message/></body>"));
}

#[test]
fn a_second_request_releases_the_first() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![]);
    // The creation request is held (nothing to say): it was answered by
    // the features in real use; here it waits.
    assert_eq!(h.s.held(), 1);
    h.request(1, 2, 101, vec![]);
    let r = h.responses();
    assert_eq!(r.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![1]);
    assert_eq!(h.s.held(), 1);
}

#[test]
fn wait_expiry_answers_empty() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    h.request(10, 2, 101, vec![]);
    assert_eq!(h.s.poll_timeout(), Some(h.at(70)));
    h.s.handle_timeout(h.at(69));
    assert!(h.responses().is_empty());
    h.s.handle_timeout(h.at(70));
    let r = h.responses();
    assert_eq!(r.len(), 1);
    assert!(r[0].1.ends_with("'></body>"), "{}", r[0].1);
    // Now idle: inactivity counts from here.
    assert_eq!(h.s.poll_timeout(), Some(h.at(130)));
}

#[test]
fn inactivity_expires_the_session() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    assert_eq!(h.s.poll_timeout(), Some(h.at(60)));
    h.s.handle_timeout(h.at(59));
    assert!(h.outputs().is_empty());
    h.s.handle_timeout(h.at(60));
    assert_eq!(
        h.outputs(),
        vec![Output::Expired {
            reason: "BOSH client silent for over 60 seconds".into()
        }]
    );
    assert!(h.s.is_closed());
    assert_eq!(h.s.poll_timeout(), None);
}

#[test]
fn a_dropped_request_is_answered_again_by_rid() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    let first = h.responses();
    h.request(1, 2, 101, vec![]);
    h.s.push("<message id='lost'/>".into());
    let lost = h.responses();
    assert_eq!(lost.len(), 1);
    // The client never got it and sends rid 101 again.
    assert_eq!(
        h.request(2, 3, 101, vec![msg(9)]),
        0,
        "stanzas of a repeated rid are not processed"
    );
    let again = h.responses();
    assert_eq!(again, vec![(3, lost[0].1.clone())]);
    // The one before that too; older ones are gone.
    h.request(3, 4, 100, vec![]);
    assert_eq!(h.responses(), vec![(4, first[0].1.clone())]);
    h.request(4, 5, 102, vec![msg(3)]);
    h.request(5, 6, 103, vec![msg(4)]);
    h.responses();
    h.request(6, 7, 100, vec![]);
    let r = h.responses();
    assert!(r[0].1.contains("condition='item-not-found'"), "{}", r[0].1);
}

#[test]
fn the_current_rid_repeated_before_its_answer_is_held() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    h.request(1, 2, 101, vec![]);
    h.s.request_gone(h.at(2), 2);
    assert_eq!(h.s.held(), 0);
    h.request(3, 3, 101, vec![msg(5)]);
    assert_eq!(h.s.held(), 1);
    h.s.push("<message/>".into());
    assert_eq!(h.responses()[0].0, 3);
}

#[test]
fn out_of_window_rids_get_item_not_found_and_the_session_stays() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    h.request(1, 2, 5000, vec![msg(2)]);
    let r = h.responses();
    assert_eq!(r.len(), 1);
    assert!(r[0].1.contains("type='terminate'") && r[0].1.contains("item-not-found"));
    assert!(!h.s.is_closed());
    assert_eq!(h.request(2, 3, 101, vec![msg(3)]), 1);
}

#[test]
fn a_request_after_a_gap_waits_for_the_missing_one() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    assert_eq!(h.request(1, 3, 102, vec![msg(3)]), 0, "deferred");
    assert!(h.responses().is_empty());
    // The missing request arrives: both are processed, in rid order.
    assert_eq!(h.request(2, 2, 101, vec![msg(2)]), 2);
    let r = h.responses();
    assert_eq!(r.len(), 1);
    assert!(
        r[0].1.contains("<echo id='2'/><echo id='3'/>"),
        "{}",
        r[0].1
    );
    assert_eq!(h.s.held(), 1);
}

#[test]
fn terminate_answers_every_held_request() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    h.request(1, 2, 101, vec![]);
    let now = h.at(2);
    assert!(matches!(
        h.s.receive(now, 3, 102, true, None, vec![msg(7)]),
        Admitted::Process(_)
    ));
    h.s.push("<echo/>".into());
    h.s.finish(now);
    let r = h.responses();
    assert_eq!(r.len(), 2);
    assert!(r[0].1.contains("type='terminate'") && r[0].1.contains("<echo/>"));
    assert!(r[1].1.contains("type='terminate'"));
    assert!(h.s.is_closed());
    h.s.receive(h.at(3), 4, 103, false, None, vec![]);
    assert!(h.responses()[0].1.contains("item-not-found"));
}

#[test]
fn closing_with_a_stream_error() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    h.request(1, 2, 101, vec![]);
    h.s.close(Some(
        "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    ));
    let r = h.responses();
    assert!(
        r[0].1
            .contains("condition='remote-stream-error'><stream:error><conflict")
    );
}

#[test]
fn pause_answers_now_and_stretches_inactivity() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    h.request(1, 2, 101, vec![]);
    let now = h.at(2);
    assert!(matches!(
        h.s.receive(now, 3, 102, false, Some(100), vec![]),
        Admitted::Process(_)
    ));
    h.s.finish(now);
    assert_eq!(h.responses().len(), 2, "both held requests answered");
    assert_eq!(h.s.poll_timeout(), Some(h.at(102)));
    h.s.handle_timeout(h.at(90));
    assert!(!h.s.is_closed());
    // Coming back ends the pause.
    h.request(95, 4, 103, vec![]);
    assert_eq!(h.s.poll_timeout(), Some(h.at(155)));
    // Too long a pause is a policy violation.
    let now = h.at(96);
    assert_eq!(
        h.s.receive(now, 5, 104, false, Some(1000), vec![]),
        Admitted::Done
    );
    assert!(
        h.responses()
            .iter()
            .any(|(_, b)| b.contains("policy-violation"))
    );
    assert!(h.s.is_closed());
}

#[test]
fn data_while_no_request_is_open_waits_in_the_buffer() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    h.s.push("<message id='a'/>".into());
    h.s.push("<message id='b'/>".into());
    assert_eq!(h.s.pending_bytes(), 34);
    h.request(5, 2, 101, vec![]);
    let r = h.responses();
    assert!(r[0].1.contains("<message id='a'/><message id='b'/>"));
    assert_eq!(h.s.pending_bytes(), 0);
}

#[test]
fn an_unparsable_request_still_counts_its_rid() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    h.s.skip(101);
    assert_eq!(h.request(1, 2, 102, vec![msg(2)]), 1, "not deferred");
    h.s.skip(500);
    assert_eq!(h.request(2, 3, 103, vec![msg(3)]), 1);
}

/// Issue 21's soak: what waited in the buffer when the session expired
/// was dropped; it is handed back for offline storage or an error.
#[test]
fn data_buffered_when_the_session_ends_is_handed_back_not_dropped() {
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![msg(1)]);
    h.responses();
    h.s.push("<message id='a'/>".into());
    h.s.push("<message id='b'/>".into());
    h.s.handle_timeout(h.at(60));
    assert!(h.s.is_closed());
    assert_eq!(
        h.s.take_undelivered(),
        ["<message id='a'/>", "<message id='b'/>"]
    );
    assert!(h.s.take_undelivered().is_empty(), "once");
    // What a request carried away is not handed back.
    let mut h = Harness::new();
    h.request(0, 1, 100, vec![]);
    h.s.push("<message id='c'/>".into());
    h.s.close(None);
    assert!(h.s.take_undelivered().is_empty());
}
