//! One recording clock for every stream: RTP timestamps mapped to
//! microseconds since the recording started.
//!
//! Each stream is anchored at its first packet (the arrival time of that
//! packet is its RTP timestamp's place on the clock); from then on its own
//! RTP clock is followed, so gaps (mutes, loss) stay gaps and jitter does
//! not move frames. Once RTCP sender reports are known, streams are placed
//! by their NTP times instead, which aligns audio and video of one sender
//! (and different senders) as they were captured; the NTP-to-recording
//! offset is fixed by the first sender report seen.

use crate::rtp::Unwrapper;

/// Microseconds on the recording clock.
pub type Micros = i64;

/// A stream whose RTP time strays this far from its arrival time (a sender
/// that restarted its RTP clock, a bogus timestamp) is anchored again at the
/// arrival time. Mutes keep RTP time and arrival time together, so they
/// never trigger it.
pub const MAX_STRAY_MICROS: i64 = 3_000_000;

/// The offset shared by every stream of a recording.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// recording µs = NTP µs + this, once the first sender report arrived.
    ntp_offset: Option<i64>,
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline::default()
    }
}

/// Converts a 64-bit NTP timestamp (32.32 fixed point) to microseconds.
pub fn ntp_to_micros(ntp: u64) -> i64 {
    let secs = (ntp >> 32) as i64;
    let frac = ((ntp & 0xFFFF_FFFF) * 1_000_000) >> 32;
    secs * 1_000_000 + frac as i64
}

/// The clock of one RTP stream (one SSRC).
#[derive(Debug, Clone)]
pub struct StreamClock {
    rate: u32,
    unwrap: Unwrapper,
    /// (extended RTP timestamp, recording µs) of the first packet.
    anchor: Option<(u64, Micros)>,
    /// (extended RTP timestamp, NTP µs) from the last sender report.
    report: Option<(u64, i64)>,
    last: Option<Micros>,
}

impl StreamClock {
    /// A stream whose RTP clock runs at `rate` Hz (90000 video, 48000 Opus).
    pub fn new(rate: u32) -> StreamClock {
        StreamClock {
            rate: rate.max(1),
            unwrap: Unwrapper::default(),
            anchor: None,
            report: None,
            last: None,
        }
    }

    /// Extends a 32-bit RTP timestamp of this stream.
    pub fn extend(&mut self, rtp_ts: u32) -> u64 {
        self.unwrap.unwrap(rtp_ts, 32)
    }

    fn ticks_to_micros(&self, ticks: i64) -> i64 {
        ticks.saturating_mul(1_000_000) / i64::from(self.rate)
    }

    /// Places an (extended) RTP timestamp that arrived at `arrival` on the
    /// recording clock. Never earlier than the stream's previous frame.
    pub fn place(&mut self, ext_ts: u64, arrival: Micros, timeline: &Timeline) -> Micros {
        let mut t = self.raw_place(ext_ts, arrival, timeline);
        if (t - arrival).abs() > MAX_STRAY_MICROS {
            self.anchor = Some((ext_ts, arrival));
            self.report = None;
            self.last = None;
            t = arrival;
        }
        let t = t.max(self.last.unwrap_or(i64::MIN)).max(0);
        self.last = Some(t);
        t
    }

    fn raw_place(&mut self, ext_ts: u64, arrival: Micros, timeline: &Timeline) -> Micros {
        let (anchor_ts, anchor_at) = *self.anchor.get_or_insert((ext_ts, arrival));
        match (self.report, timeline.ntp_offset) {
            (Some((sr_ts, sr_ntp)), Some(offset)) => {
                sr_ntp + offset + self.ticks_to_micros(ext_ts as i64 - sr_ts as i64)
            }
            _ => anchor_at + self.ticks_to_micros(ext_ts as i64 - anchor_ts as i64),
        }
    }

    /// Takes an RTCP sender report (RTP timestamp and NTP time of one
    /// instant) that arrived at `arrival`.
    pub fn on_sender_report(
        &mut self,
        rtp_ts: u32,
        ntp: u64,
        arrival: Micros,
        timeline: &mut Timeline,
    ) {
        let ext = self.unwrap.unwrap(rtp_ts, 32);
        let ntp_us = ntp_to_micros(ntp);
        if timeline.ntp_offset.is_none() {
            timeline.ntp_offset = Some(arrival - ntp_us);
        }
        self.report = Some((ext, ntp_us));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_follow_their_rtp_clock_from_their_first_packet() {
        let tl = Timeline::new();
        let mut v = StreamClock::new(90_000);
        let a = v.extend(1_000_000);
        assert_eq!(v.place(a, 500_000, &tl), 500_000);
        // 1 s later by RTP, arriving late by 30 ms: still 1 s later.
        let b = v.extend(1_090_000);
        assert_eq!(v.place(b, 1_530_000, &tl), 1_500_000);
        // A mute gap of 10 s stays a gap.
        let c = v.extend(1_090_000 + 900_000);
        assert_eq!(v.place(c, 11_600_000, &tl), 11_500_000);
    }

    #[test]
    fn a_restarted_rtp_clock_is_anchored_again() {
        let tl = Timeline::new();
        let mut a = StreamClock::new(48_000);
        let x = a.extend(1_000);
        assert_eq!(a.place(x, 100_000, &tl), 100_000);
        // The sender jumps its timestamps by an hour.
        let y = a.extend(1_000 + 48_000 * 3_600);
        assert_eq!(a.place(y, 120_000, &tl), 120_000);
        let z = a.extend(1_000 + 48_000 * 3_600 + 960);
        assert_eq!(a.place(z, 141_000, &tl), 140_000);
    }

    #[test]
    fn sender_reports_align_two_streams() {
        let mut tl = Timeline::new();
        let mut audio = StreamClock::new(48_000);
        let mut video = StreamClock::new(90_000);
        let ntp0: u64 = 3_900_000_000 << 32;
        // Both report the same instant at different RTP timestamps.
        audio.on_sender_report(48_000, ntp0, 1_000_000, &mut tl);
        video.on_sender_report(9_000, ntp0, 1_020_000, &mut tl);
        let a = audio.extend(48_000 + 4_800);
        let v = video.extend(9_000 + 9_000);
        // 100 ms after the report, whatever the arrival jitter.
        assert_eq!(audio.place(a, 1_200_000, &tl), 1_100_000);
        assert_eq!(video.place(v, 1_050_000, &tl), 1_100_000);
    }
}
