//! All participants' audio mixed into one Opus stream: each participant's
//! Opus decoded at its place on the recording clock, summed on a bus of
//! 20 ms frames, and the bus encoded once per frame. Frames are written a
//! fixed delay ([`MIX_DELAY_FRAMES`]) behind the latest input so that late
//! packets still land; silence (nobody talking, a mute, a loss) is encoded
//! as silence, so the track is continuous.

use std::collections::{BTreeMap, HashMap};

use opus::{Application, Channels, Decoder, Encoder};

/// Samples per second.
pub const RATE: i64 = 48_000;
/// Samples in one mixed frame (20 ms).
pub const FRAME: usize = 960;
/// Frames the output stays behind the clock.
pub const MIX_DELAY_FRAMES: u64 = 10;
/// Audio further ahead of the mix than this (10 s) is dropped, which
/// bounds the bus.
pub const MAX_AHEAD_FRAMES: u64 = 500;
/// Largest Opus packet decoded (120 ms at 48 kHz).
const MAX_DECODED: usize = 5_760;

#[derive(Debug, thiserror::Error)]
pub enum MixerError {
    #[error("Opus: {0}")]
    Opus(#[from] opus::Error),
}

/// One mixed, encoded 20 ms frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixedFrame {
    /// Start on the recording clock, in ms.
    pub time_ms: u64,
    pub packet: Vec<u8>,
}

/// The audio mixer of one recording.
pub struct Mixer {
    encoder: Encoder,
    decoders: HashMap<String, Decoder>,
    /// Sum of the decoded audio, by frame index.
    bus: BTreeMap<u64, Vec<i32>>,
    /// The next frame index to encode.
    next_out: u64,
    pre_skip: u16,
    late_packets: u64,
}

impl Mixer {
    pub fn new() -> Result<Mixer, MixerError> {
        let mut encoder = Encoder::new(48_000, Channels::Mono, Application::Audio)?;
        encoder.set_bitrate(opus::Bitrate::Bits(48_000))?;
        let pre_skip = u16::try_from(encoder.get_lookahead()?).unwrap_or(312);
        Ok(Mixer {
            encoder,
            decoders: HashMap::new(),
            bus: BTreeMap::new(),
            next_out: 0,
            pre_skip,
            late_packets: 0,
        })
    }

    /// The encoder's lookahead, the OpusHead pre-skip.
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// Packets that came after their frame was written.
    pub fn late_packets(&self) -> u64 {
        self.late_packets
    }

    /// Adds one Opus packet of `endpoint` starting at `at_micros` on the
    /// recording clock. A packet that does not decode is dropped (a broken
    /// peer stream never reaches the file).
    pub fn push(
        &mut self,
        endpoint: &str,
        at_micros: i64,
        packet: &[u8],
    ) -> Result<(), MixerError> {
        if !self.decoders.contains_key(endpoint) {
            self.decoders
                .insert(endpoint.to_string(), Decoder::new(48_000, Channels::Mono)?);
        }
        let Some(decoder) = self.decoders.get_mut(endpoint) else {
            return Ok(());
        };
        let mut pcm = [0i16; MAX_DECODED];
        let Ok(n) = decoder.decode(packet, &mut pcm, false) else {
            return Ok(());
        };
        let start = at_micros.max(0) * RATE / 1_000_000;
        let start = start as u64;
        if start / FRAME as u64 > self.next_out + MAX_AHEAD_FRAMES {
            return Ok(()); // far ahead of the mix: not kept
        }
        if start / FRAME as u64 + 1 < self.next_out {
            self.late_packets += 1;
        }
        // Add the decoded samples frame by frame (one bus lookup each).
        let mut pos = start;
        let mut rest = pcm.get(..n).unwrap_or_default();
        while !rest.is_empty() {
            let frame = pos / FRAME as u64;
            let offset = (pos % FRAME as u64) as usize;
            let take = (FRAME - offset).min(rest.len());
            let (chunk, tail) = rest.split_at(take);
            if frame >= self.next_out {
                let slot = self.bus.entry(frame).or_insert_with(|| vec![0; FRAME]);
                if let Some(dst) = slot.get_mut(offset..offset + take) {
                    for (d, s) in dst.iter_mut().zip(chunk) {
                        *d += i32::from(*s);
                    }
                }
            }
            pos += take as u64;
            rest = tail;
        }
        Ok(())
    }

    /// A participant left: its decoder state goes.
    pub fn remove(&mut self, endpoint: &str) {
        self.decoders.remove(endpoint);
    }

    /// Encodes every frame that ends [`MIX_DELAY_FRAMES`] before `now_micros`.
    pub fn pull(&mut self, now_micros: i64) -> Result<Vec<MixedFrame>, MixerError> {
        let now_frame = (now_micros.max(0) * RATE / 1_000_000) as u64 / FRAME as u64;
        self.encode_until(now_frame.saturating_sub(MIX_DELAY_FRAMES))
    }

    /// Encodes everything up to the end of `until_micros` (a clean stop).
    pub fn flush(&mut self, until_micros: i64) -> Result<Vec<MixedFrame>, MixerError> {
        let end = (until_micros.max(0) * RATE / 1_000_000) as u64;
        self.encode_until(end.div_ceil(FRAME as u64))
    }

    fn encode_until(&mut self, end_frame: u64) -> Result<Vec<MixedFrame>, MixerError> {
        let mut out = Vec::new();
        let mut pcm = [0i16; FRAME];
        let mut buf = [0u8; 4_000];
        while self.next_out < end_frame {
            let sum = self.bus.remove(&self.next_out);
            for (i, p) in pcm.iter_mut().enumerate() {
                let v = sum.as_ref().and_then(|s| s.get(i)).copied().unwrap_or(0);
                *p = v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            }
            let n = self.encoder.encode(&pcm, &mut buf)?;
            out.push(MixedFrame {
                time_ms: self.next_out * 20,
                packet: buf.get(..n).unwrap_or_default().to_vec(),
            });
            self.next_out += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(encoder: &mut Encoder, n: usize) -> Vec<u8> {
        let pcm: Vec<i16> = (0..FRAME)
            .map(|i| {
                let t = (n * FRAME + i) as f64 / 48_000.0;
                ((t * 440.0 * std::f64::consts::TAU).sin() * 8_000.0) as i16
            })
            .collect();
        encoder.encode_vec(&pcm, 4_000).unwrap()
    }

    #[test]
    fn mixes_on_time_continuously_and_drops_what_is_late_or_broken() {
        let mut enc = Encoder::new(48_000, Channels::Mono, Application::Audio).unwrap();
        let mut m = Mixer::new().unwrap();
        // One participant from 100 ms to 300 ms.
        for n in 0..10 {
            let p = tone(&mut enc, n);
            m.push("a", 100_000 + n as i64 * 20_000, &p).unwrap();
        }
        m.push("a", 0, b"\xff\xff\xff garbage").unwrap();
        m.push("a", 3_600_000_000, &tone(&mut enc, 11)).unwrap();
        let frames = m.pull(600_000).unwrap();
        // 600 ms minus the delay of 10 frames: 20 frames, continuous.
        assert_eq!(frames.len(), 20);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.time_ms, i as u64 * 20);
        }
        assert_eq!(m.bus.len(), 0, "the packet an hour ahead was not kept");
        // A packet for a frame already written is late.
        m.push("a", 0, &tone(&mut enc, 12)).unwrap();
        assert_eq!(m.late_packets(), 1);
        assert_eq!(m.flush(700_000).unwrap().len(), 15);
    }
}
