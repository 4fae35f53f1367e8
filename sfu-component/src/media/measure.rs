//! Measurements of one incoming video source's layers: which spatial
//! layers are active (`SIM` SSRCs, or the SIDs of a VP9 SVC source), each
//! one's height (from its last VP8 key frame or VP9 scalability
//! structure), and
//! bit rate and frame rate per temporal id over a sliding window of one
//! second (ten buckets of 100 ms). Reported cumulatively per temporal id,
//! as Videobridge does (`{s, t}` includes every `t' <= t` of `s`).

use std::time::{Duration, Instant};

use super::layers::{LayerId, LayerInfo};
use super::vp9::MAX_SPATIAL;

/// A spatial layer that carried nothing for this long is not active.
pub(crate) const LAYER_ACTIVE: Duration = Duration::from_millis(1000);
const BUCKET: Duration = Duration::from_millis(100);
const BUCKETS: usize = 10;
/// Temporal ids counted (VP8 has at most four).
const TIDS: usize = 4;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which 100 ms slot since the meter's epoch this bucket holds.
    slot: u64,
    bytes: [u64; TIDS],
    frames: [u32; TIDS],
}

/// One spatial layer (one SSRC of a `SIM` group).
#[derive(Debug, Clone, Default)]
pub(crate) struct SpatialMeter {
    pub last_seen: Option<Instant>,
    pub height: u32,
    last_timestamp: Option<u32>,
    /// Whether packets carry a temporal id (VP8 T bit).
    temporal: bool,
    /// One more than the window: the current, partial slot.
    buckets: [Bucket; BUCKETS + 1],
}

/// All spatial layers of one source.
#[derive(Debug, Clone)]
pub(crate) struct SourceMeter {
    epoch: Instant,
    pub spatial: Vec<SpatialMeter>,
}

impl SourceMeter {
    pub fn new(now: Instant, spatial_layers: usize) -> SourceMeter {
        SourceMeter {
            epoch: now,
            spatial: vec![SpatialMeter::default(); spatial_layers.max(1)],
        }
    }

    fn slot(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch);
        (since.as_millis() / BUCKET.as_millis()) as u64
    }

    /// One packet of spatial layer `spatial`: `bytes` on the wire (about),
    /// its RTP timestamp (a new one starts a frame), VP8 temporal id and
    /// key frame height when known.
    pub fn on_packet(
        &mut self,
        now: Instant,
        spatial: usize,
        bytes: usize,
        timestamp: u32,
        tid: Option<u8>,
        height: Option<u32>,
    ) {
        let slot = self.slot(now);
        self.grow(spatial);
        let Some(layer) = self.spatial.get_mut(spatial) else {
            return;
        };
        layer.last_seen = Some(now);
        if let Some(h) = height {
            layer.height = h;
        }
        if tid.is_some() {
            layer.temporal = true;
        }
        let t = usize::from(tid.unwrap_or(0)).min(TIDS - 1);
        let index = (slot % (BUCKETS as u64 + 1)) as usize;
        let Some(bucket) = layer.buckets.get_mut(index) else {
            return;
        };
        if bucket.slot != slot {
            *bucket = Bucket {
                slot,
                ..Bucket::default()
            };
        }
        if let Some(b) = bucket.bytes.get_mut(t) {
            *b = b.saturating_add(bytes as u64);
        }
        if layer.last_timestamp != Some(timestamp) {
            layer.last_timestamp = Some(timestamp);
            if let Some(f) = bucket.frames.get_mut(t) {
                *f = f.saturating_add(1);
            }
        }
    }

    /// Room for spatial layer `spatial` of a VP9 SVC source (one SSRC,
    /// spatial ids from the payload descriptor, at most eight).
    fn grow(&mut self, spatial: usize) {
        if spatial >= self.spatial.len() && spatial < MAX_SPATIAL {
            self.spatial.resize(spatial + 1, SpatialMeter::default());
        }
    }

    /// The height of spatial layer `spatial` (from a VP9 scalability
    /// structure).
    pub fn set_height(&mut self, spatial: usize, height: u32) {
        self.grow(spatial);
        if let Some(layer) = self.spatial.get_mut(spatial) {
            layer.height = height;
        }
    }

    /// Whether spatial layer `spatial` sent within [`LAYER_ACTIVE`].
    pub fn is_active(&self, now: Instant, spatial: usize) -> bool {
        self.spatial
            .get(spatial)
            .and_then(|l| l.last_seen)
            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_ACTIVE)
    }

    /// The active spatial layers as a bit set (bit `i`: layer `i`).
    pub fn active_mask(&self, now: Instant) -> u32 {
        (0..self.spatial.len().min(32))
            .filter(|i| self.is_active(now, *i))
            .fold(0, |mask, i| mask | (1 << i))
    }

    /// Every active layer, lowest first.
    pub fn layers(&self, now: Instant) -> Vec<LayerInfo> {
        let slot = self.slot(now);
        // The window is the last BUCKETS completed slots (the current one
        // is partial), fewer while the meter is younger than that; the
        // current slot only while there is no completed one.
        let (first_slot, last_slot) = if slot == 0 {
            (0, 0)
        } else {
            (slot.saturating_sub(BUCKETS as u64), slot - 1)
        };
        let window_slots = last_slot - first_slot + 1;
        let secs = window_slots as f64 * BUCKET.as_secs_f64();
        let mut out = Vec::new();
        for (s, layer) in self.spatial.iter().enumerate() {
            if !self.is_active(now, s) {
                continue;
            }
            let mut bytes = [0u64; TIDS];
            let mut frames = [0u64; TIDS];
            let in_window = |b: &&Bucket| (first_slot..=last_slot).contains(&b.slot);
            for b in layer.buckets.iter().filter(in_window) {
                for t in 0..TIDS {
                    bytes[t] += b.bytes[t];
                    frames[t] += u64::from(b.frames[t]);
                }
            }
            let top = if layer.temporal {
                (0..TIDS).rev().find(|t| frames[*t] > 0).unwrap_or(0)
            } else {
                0
            };
            let mut cum_bytes = 0u64;
            let mut cum_frames = 0u64;
            for t in 0..=top {
                cum_bytes += bytes[t];
                cum_frames += frames[t];
                out.push(LayerInfo {
                    layer: LayerId::new(s as u8, t as u8),
                    height: layer.height,
                    frame_rate: cum_frames as f64 / secs,
                    bitrate_bps: (cum_bytes as f64 * 8.0 / secs) as u64,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_rates_per_temporal_layer() {
        let start = Instant::now();
        let mut m = SourceMeter::new(start, 2);
        // Two seconds of layer 1 at 30 fps, TIDs 0,2,1,2; 1000 bytes each.
        for i in 0..60u32 {
            let now = start + Duration::from_millis(u64::from(i) * 1000 / 30);
            let tid = [0, 2, 1, 2][(i % 4) as usize];
            let h = (i == 0).then_some(360);
            m.on_packet(now, 1, 1000, i * 3000, Some(tid), h);
        }
        let now = start + Duration::from_millis(2000);
        let layers = m.layers(now);
        assert_eq!(layers.len(), 3, "{layers:?}");
        assert!(
            layers
                .iter()
                .all(|l| l.layer.spatial == 1 && l.height == 360)
        );
        let rate = |t: usize| layers[t].bitrate_bps as f64;
        // ~30 frames a second of 8000 bits: 240 kbit/s in all.
        assert!((rate(2) - 240_000.0).abs() < 30_000.0, "{}", rate(2));
        assert!((rate(0) - 60_000.0).abs() < 15_000.0, "{}", rate(0));
        assert!((layers[1].frame_rate - 15.0).abs() < 2.5);
        // Later, nothing is active.
        assert!(m.layers(now + Duration::from_secs(2)).is_empty());
        assert_eq!(m.active_mask(now), 0b10);
    }
}
