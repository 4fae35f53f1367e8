//! Counters and one-second rates of the media core (what brewery presence,
//! `/colibri/stats` and the OpenMetrics page report).

use std::time::{Duration, Instant};

use super::MediaCore;

const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Packets and bits per second over the last completed window.
#[derive(Debug, Default, Clone)]
pub(crate) struct Rate {
    window_start: Option<Instant>,
    bytes: u64,
    packets: u64,
    pub bps: u64,
    pub pps: u64,
}

impl Rate {
    /// Closes the window when it is over (also with no traffic).
    pub fn roll(&mut self, now: Instant) {
        let Some(start) = self.window_start else {
            self.window_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed < RATE_WINDOW {
            return;
        }
        let millis = elapsed.as_millis().max(1) as u64;
        if elapsed >= RATE_WINDOW * 2 {
            // Idle for a whole window: nothing was flowing.
            self.bps = 0;
            self.pps = 0;
        } else {
            self.bps = self.bytes.saturating_mul(8_000) / millis;
            self.pps = self.packets.saturating_mul(1_000) / millis;
        }
        self.bytes = 0;
        self.packets = 0;
        self.window_start = Some(now);
    }

    pub fn add(&mut self, now: Instant, bytes: usize) {
        self.roll(now);
        self.bytes = self.bytes.saturating_add(bytes as u64);
        self.packets = self.packets.saturating_add(1);
    }
}

/// Everything the core counts.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counters {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub packets_dropped: u64,
    pub nacks_received: u64,
    pub retransmissions_sent: u64,
    pub keyframe_requests: u64,
    pub download: Rate,
    pub upload: Rate,
}

impl Counters {
    pub fn received(&mut self, now: Instant, bytes: usize) {
        self.packets_received += 1;
        self.bytes_received += bytes as u64;
        self.download.add(now, bytes);
    }

    pub fn sent(&mut self, now: Instant, bytes: usize) {
        self.packets_sent += 1;
        self.bytes_sent += bytes as u64;
        self.upload.add(now, bytes);
    }
}

/// Counters and rates of the whole core (brewery stats, /colibri/stats).
#[derive(Debug, Clone, Default)]
pub struct MediaStats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Malformed datagrams and datagrams that belong to no endpoint.
    pub packets_dropped: u64,
    pub nacks_received: u64,
    pub retransmissions_sent: u64,
    pub keyframe_requests: u64,
    pub conferences: u64,
    pub endpoints: u64,
    pub endpoints_sending_audio: u64,
    pub endpoints_sending_video: u64,
    pub bitrate_download_bps: u64,
    pub bitrate_upload_bps: u64,
    pub packet_rate_download: u64,
    pub packet_rate_upload: u64,
}

impl MediaCore {
    pub fn stats(&self) -> MediaStats {
        let c = &self.counters;
        let mut stats = MediaStats {
            packets_received: c.packets_received,
            packets_sent: c.packets_sent,
            bytes_received: c.bytes_received,
            bytes_sent: c.bytes_sent,
            packets_dropped: c.packets_dropped,
            nacks_received: c.nacks_received,
            retransmissions_sent: c.retransmissions_sent,
            keyframe_requests: c.keyframe_requests,
            conferences: self.conferences.len() as u64,
            bitrate_download_bps: c.download.bps,
            bitrate_upload_bps: c.upload.bps,
            packet_rate_download: c.download.pps,
            packet_rate_upload: c.upload.pps,
            ..MediaStats::default()
        };
        let recent = |t: Option<Instant>, last: Instant| {
            t.is_some_and(|t| last.saturating_duration_since(t) < SENDING_WINDOW)
        };
        for conf in self.conferences.values() {
            for e in conf.endpoints.values() {
                stats.endpoints += 1;
                // Relative to the endpoint's own last datagram: no clock here.
                if recent(e.last_audio_received, e.last_activity) && !e.mute_audio {
                    stats.endpoints_sending_audio += 1;
                }
                if recent(e.last_video_received, e.last_activity) && !e.mute_video {
                    stats.endpoints_sending_video += 1;
                }
            }
        }
        stats
    }
}

/// An endpoint counts as sending a kind of media when a packet of it came
/// within this long of its last datagram.
const SENDING_WINDOW: Duration = Duration::from_secs(3);
