//! Dominant speaker identification for one conference, after the idea of
//! Videobridge's `DominantSpeakerIdentification` (Volfin & Cohen, "Dominant
//! speaker identification for multipoint videoconferencing"): speech
//! activity is scored on three time scales and a speaker only takes over
//! when it beats the current one on all of them, so a cough or a short
//! "yes" does not move the dominant speaker. This is lilt's own, simpler
//! implementation:
//!
//! - Each audio packet's audio level (RFC 6464, 0 = loudest, 127 = silence,
//!   str0m reports it negated) is folded into 20 ms frames per endpoint; a
//!   frame is *active* when its loudest packet is at or above
//!   [`ACTIVE_LEVEL`] dBov.
//! - Scores are the fraction of active frames over the last 0.4 s
//!   (immediate), 1.6 s (medium) and 4 s (long).
//! - Every [`DECISION_INTERVAL`] the endpoint with the best immediate score
//!   (ties broken by medium, then long) challenges the current dominant
//!   speaker; it wins when its immediate score exceeds the dominant one's by
//!   [`IMMEDIATE_MARGIN`], its medium score is not lower, and its long score
//!   reaches at least a half of the dominant's (hysteresis).
//! - Nobody active for [`SILENCE_AFTER`]: a silence event (`silence: true`,
//!   naming the last dominant speaker), as Videobridge signals it.
//!
//! `previous` speakers are kept most recent first, without duplicates, at
//! most [`MAX_PREVIOUS`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Frame length over which levels are folded.
const FRAME: Duration = Duration::from_millis(20);
/// Frames kept per endpoint (4 s).
const HISTORY_FRAMES: usize = 200;
const IMMEDIATE_FRAMES: usize = 20;
const MEDIUM_FRAMES: usize = 80;
/// A frame at least this loud (-dBov) is speech.
pub(crate) const ACTIVE_LEVEL: i8 = -50;
pub(crate) const DECISION_INTERVAL: Duration = Duration::from_millis(300);
const IMMEDIATE_MARGIN: f32 = 0.15;
pub(crate) const SILENCE_AFTER: Duration = Duration::from_secs(3);
pub(crate) const MAX_PREVIOUS: usize = 10;

/// A change to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpeakerChange {
    pub endpoint: String,
    pub previous: Vec<String>,
    pub silence: bool,
}

#[derive(Debug, Default)]
struct Activity {
    /// Active/inactive per completed frame, newest last.
    frames: VecDeque<bool>,
    frame_start: Option<Instant>,
    frame_active: bool,
    last_active: Option<Instant>,
}

impl Activity {
    fn roll(&mut self, now: Instant) {
        let Some(mut start) = self.frame_start else {
            self.frame_start = Some(now);
            return;
        };
        let mut pushed = 0;
        while now.saturating_duration_since(start) >= FRAME && pushed <= HISTORY_FRAMES {
            self.frames.push_back(self.frame_active);
            self.frame_active = false;
            start += FRAME;
            pushed += 1;
        }
        if pushed > HISTORY_FRAMES {
            start = now;
        }
        while self.frames.len() > HISTORY_FRAMES {
            self.frames.pop_front();
        }
        self.frame_start = Some(start);
    }

    fn score(&self, frames: usize) -> f32 {
        let count = frames.min(HISTORY_FRAMES);
        let active = self.frames.iter().rev().take(count).filter(|a| **a).count();
        active as f32 / count as f32
    }

    fn scores(&self) -> (f32, f32, f32) {
        (
            self.score(IMMEDIATE_FRAMES),
            self.score(MEDIUM_FRAMES),
            self.score(HISTORY_FRAMES),
        )
    }
}

/// The dominant speaker state of one conference.
#[derive(Debug, Default)]
pub(crate) struct DominantSpeaker {
    activity: HashMap<String, Activity>,
    dominant: Option<String>,
    previous: Vec<String>,
    silent: bool,
    next_decision: Option<Instant>,
    last_speech: Option<Instant>,
}

impl DominantSpeaker {
    /// One audio packet's level (str0m's value: 0 loudest, -127 silence).
    pub fn on_level(&mut self, now: Instant, endpoint: &str, level: i8) {
        let activity = self.activity.entry(endpoint.to_string()).or_default();
        activity.roll(now);
        if level >= ACTIVE_LEVEL {
            activity.frame_active = true;
            activity.last_active = Some(now);
            self.last_speech = Some(now);
        }
        if self.next_decision.is_none() {
            self.next_decision = Some(now + DECISION_INTERVAL);
        }
    }

    pub fn remove(&mut self, endpoint: &str) {
        self.activity.remove(endpoint);
        self.previous.retain(|e| e != endpoint);
        if self.dominant.as_deref() == Some(endpoint) {
            self.dominant = None;
        }
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.next_decision
    }

    /// Runs a decision when due; returns the change to report, if any.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<SpeakerChange> {
        let due = self.next_decision.is_some_and(|t| t <= now);
        if !due {
            return None;
        }
        self.next_decision = if self.activity.is_empty() {
            None
        } else {
            Some(now + DECISION_INTERVAL)
        };
        for activity in self.activity.values_mut() {
            activity.roll(now);
        }
        let silent_now = self
            .last_speech
            .is_none_or(|t| now.saturating_duration_since(t) >= SILENCE_AFTER);
        if silent_now {
            if self.silent || self.dominant.is_none() {
                return None;
            }
            self.silent = true;
            let endpoint = self.dominant.clone().unwrap_or_default();
            return Some(SpeakerChange {
                endpoint,
                previous: self.previous.clone(),
                silence: true,
            });
        }
        let best = self
            .activity
            .iter()
            .map(|(id, a)| (id, a.scores()))
            .filter(|(_, s)| s.0 > 0.0)
            .max_by(|a, b| {
                let (x, y) = (a.1, b.1);
                x.0.total_cmp(&y.0)
                    .then(x.1.total_cmp(&y.1))
                    .then(x.2.total_cmp(&y.2))
                    .then(b.0.cmp(a.0))
            })
            .map(|(id, s)| (id.clone(), s));
        let (challenger, scores) = best?;
        let wins = match self.dominant.as_ref() {
            None => true,
            Some(d) if *d == challenger => false,
            Some(d) => match self.activity.get(d) {
                None => true,
                Some(a) => {
                    let current = a.scores();
                    scores.0 > current.0 + IMMEDIATE_MARGIN
                        && scores.1 >= current.1
                        && scores.2 >= current.2 * 0.5
                }
            },
        };
        if !wins {
            if self.silent && self.dominant.as_deref() == Some(challenger.as_str()) {
                self.silent = false;
                return Some(SpeakerChange {
                    endpoint: challenger,
                    previous: self.previous.clone(),
                    silence: false,
                });
            }
            return None;
        }
        if let Some(old) = self.dominant.take() {
            self.previous.retain(|e| *e != old && *e != challenger);
            self.previous.insert(0, old);
            self.previous.truncate(MAX_PREVIOUS);
        }
        self.previous.retain(|e| *e != challenger);
        self.dominant = Some(challenger.clone());
        self.silent = false;
        Some(SpeakerChange {
            endpoint: challenger,
            previous: self.previous.clone(),
            silence: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talk(
        d: &mut DominantSpeaker,
        from: Instant,
        ms: u64,
        loud: &str,
        quiet: &[&str],
    ) -> Vec<SpeakerChange> {
        let mut changes = Vec::new();
        for i in 0..ms / 20 {
            let now = from + Duration::from_millis(i * 20);
            d.on_level(now, loud, -20);
            for q in quiet {
                d.on_level(now, q, -110);
            }
            changes.extend(d.handle_timeout(now));
        }
        changes
    }

    #[test]
    fn follows_the_loud_endpoint_with_previous_and_silence() {
        let start = Instant::now();
        let mut d = DominantSpeaker::default();
        let c = talk(&mut d, start, 2000, "a", &["b", "c"]);
        assert_eq!(c.last().map(|c| c.endpoint.as_str()), Some("a"));
        let c = talk(
            &mut d,
            start + Duration::from_secs(2),
            4000,
            "b",
            &["a", "c"],
        );
        let last = c.last().unwrap();
        assert_eq!(last.endpoint, "b");
        assert_eq!(last.previous, vec!["a".to_string()]);
        // Everybody quiet: a silence event.
        let mut silence = None;
        for i in 0..250u64 {
            let now = start + Duration::from_secs(6) + Duration::from_millis(i * 20);
            for e in ["a", "b", "c"] {
                d.on_level(now, e, -120);
            }
            if let Some(c) = d.handle_timeout(now) {
                silence = Some(c);
            }
        }
        let silence = silence.unwrap();
        assert!(silence.silence);
    }

    #[test]
    fn a_short_burst_does_not_take_over() {
        let start = Instant::now();
        let mut d = DominantSpeaker::default();
        talk(&mut d, start, 3000, "a", &["b"]);
        // b coughs for 60 ms while a keeps talking.
        let mut changes = Vec::new();
        for i in 0..50u64 {
            let now = start + Duration::from_secs(3) + Duration::from_millis(i * 20);
            d.on_level(now, "a", -20);
            d.on_level(now, "b", if i < 3 { -10 } else { -110 });
            changes.extend(d.handle_timeout(now));
        }
        assert!(changes.iter().all(|c| c.endpoint == "a"));
    }
}
