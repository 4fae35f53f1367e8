//! The synthetic media the simulated endpoints send: Opus-sized audio
//! packets at 50 per second and VP8-like video frames split into packets of
//! about 1,100 bytes. Every payload carries a probe (magic, stream number,
//! send index, send time) so the receiver measures latency and loss; the
//! rest is filler, which an SFU does not look at.

use std::time::Duration;

/// Marks a probe inside a payload.
const MAGIC: [u8; 4] = *b"LlTb";
/// Where the probe starts: after a VP8 payload descriptor (up to three
/// bytes here) and key-frame header, which the servers may read.
const PROBE_AT: usize = 16;
/// Smallest payload that holds the probe.
pub const MIN_PAYLOAD: usize = PROBE_AT + 20;

/// What a received payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The sending stream (global number across the run's senders).
    pub stream: u32,
    /// Packet index within that stream.
    pub index: u32,
    /// Send time since the driver's epoch.
    pub sent: Duration,
}

/// One audio payload of `size` bytes (at least [`MIN_PAYLOAD`]).
pub fn audio(size: usize, probe: Probe) -> Vec<u8> {
    let mut p = vec![0u8; size.max(MIN_PAYLOAD)];
    // An Opus TOC byte (CELT fullband 20 ms, mono): only cosmetic.
    p[0] = 0xfc;
    write_probe(&mut p, probe);
    p
}

/// One video payload: a VP8 payload descriptor (start of partition on the
/// first packet of a frame, which also carries a key-frame header), then the
/// probe and filler.
pub fn video(size: usize, first_of_frame: bool, probe: Probe) -> Vec<u8> {
    let mut p = vec![0u8; size.max(MIN_PAYLOAD)];
    if first_of_frame {
        // Descriptor: S=1, partition 0.
        p[0] = 0x10;
        // Payload header: key frame (P=0), version 0, show_frame=1.
        p[1] = 0x10;
        // Key-frame start code and 640x360.
        p[4] = 0x9d;
        p[5] = 0x01;
        p[6] = 0x2a;
        p[7..9].copy_from_slice(&640u16.to_le_bytes());
        p[9..11].copy_from_slice(&360u16.to_le_bytes());
    }
    write_probe(&mut p, probe);
    p
}

/// One packet of a simulcast layer: a VP8 payload descriptor with a
/// temporal id (X=1, T=1; S=1 on a frame's first packet), on a key frame's
/// first packet the key-frame header with the layer's size (the bridge
/// measures heights from it), then the probe and filler.
pub fn layer_video(
    size: usize,
    first_of_frame: bool,
    tid: u8,
    keyframe: Option<(u16, u16)>,
    probe: Probe,
) -> Vec<u8> {
    let mut p = vec![0u8; size.max(MIN_PAYLOAD)];
    p[0] = if first_of_frame { 0x90 } else { 0x80 };
    p[1] = 0x20;
    p[2] = tid << 6;
    // Frame tag: P=1 (inter frame) unless a key frame; show_frame=1.
    p[3] = 0x11;
    if first_of_frame && let Some((width, height)) = keyframe {
        p[3] = 0x10;
        p[6] = 0x9d;
        p[7] = 0x01;
        p[8] = 0x2a;
        p[9..11].copy_from_slice(&width.to_le_bytes());
        p[11..13].copy_from_slice(&height.to_le_bytes());
    }
    write_probe(&mut p, probe);
    p
}

fn write_probe(p: &mut [u8], probe: Probe) {
    let nanos = u64::try_from(probe.sent.as_nanos()).unwrap_or(u64::MAX);
    let at = PROBE_AT;
    p[at..at + 4].copy_from_slice(&MAGIC);
    p[at + 4..at + 8].copy_from_slice(&probe.stream.to_be_bytes());
    p[at + 8..at + 12].copy_from_slice(&probe.index.to_be_bytes());
    p[at + 12..at + 20].copy_from_slice(&nanos.to_be_bytes());
}

/// The probe of a received payload, if it carries one.
pub fn read_probe(p: &[u8]) -> Option<Probe> {
    let at = PROBE_AT;
    let probe = p.get(at..at + 20)?;
    if probe[..4] != MAGIC {
        return None;
    }
    let stream = u32::from_be_bytes(probe[4..8].try_into().ok()?);
    let index = u32::from_be_bytes(probe[8..12].try_into().ok()?);
    let nanos = u64::from_be_bytes(probe[12..20].try_into().ok()?);
    Some(Probe {
        stream,
        index,
        sent: Duration::from_nanos(nanos),
    })
}

/// How one sender's video is cut: packets per frame and their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoShape {
    pub fps: u32,
    pub packets_per_frame: u32,
    pub packet_size: usize,
}

impl VideoShape {
    /// Frames of `kbps` at `fps`, cut into packets of at most `max_packet`.
    pub fn new(kbps: u32, fps: u32, max_packet: usize) -> VideoShape {
        let fps = fps.max(1);
        let frame_bytes = (kbps as usize * 1000 / 8 / fps as usize).max(MIN_PAYLOAD);
        let max_packet = max_packet.max(MIN_PAYLOAD);
        let packets = frame_bytes.div_ceil(max_packet).max(1);
        VideoShape {
            fps,
            packets_per_frame: packets as u32,
            packet_size: frame_bytes.div_ceil(packets),
        }
    }

    pub fn packets_per_second(&self) -> u32 {
        self.fps * self.packets_per_frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_round_trip() {
        let probe = Probe {
            stream: 7,
            index: 123_456,
            sent: Duration::from_micros(987_654_321),
        };
        assert_eq!(read_probe(&video(1100, true, probe)), Some(probe));
        assert_eq!(read_probe(&audio(120, probe)), Some(probe));
        assert_eq!(read_probe(&[0u8; 40]), None);
        assert_eq!(read_probe(&[0u8; 5]), None);
    }

    #[test]
    fn one_megabit_is_four_packets_a_frame() {
        let shape = VideoShape::new(1000, 30, 1100);
        assert_eq!(shape.packets_per_frame, 4);
        assert!(shape.packet_size > 1000 && shape.packet_size <= 1100);
        assert_eq!(shape.packets_per_second(), 120);
    }
}
