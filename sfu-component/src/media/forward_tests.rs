use super::*;
use crate::media::codec::parse_vp8;

/// A VP8 payload: X=1, S=1, partition 0; I, L and T set; 15-bit picture
/// id; the given TID.
fn vp8(picture_id: u16, tl0: u8, tid: u8, key: bool) -> Vec<u8> {
    vec![
        0x90,
        0xe0,
        0x80 | (picture_id >> 8) as u8,
        picture_id as u8,
        tl0,
        tid << 6,
        if key { 0x00 } else { 0x01 },
        0,
        0,
        0x9d,
        0x01,
        0x2a,
        0,
        0,
        0,
        0,
    ]
}

fn packet(spatial: usize, seq_no: u64, timestamp: u32, payload: &[u8]) -> Incoming<'_> {
    let vp8 = parse_vp8(payload);
    Incoming {
        spatial,
        seq_no,
        timestamp,
        payload,
        keyframe: vp8.is_some_and(|v| v.starts_keyframe),
        vp8,
        vp9: None,
        marker: false,
        dd: None,
    }
}

fn forwarded(d: LayerDecision) -> (u64, u32, Option<Vp8Patch>) {
    match d {
        LayerDecision::Forward {
            seq_no,
            timestamp,
            vp8,
            ..
        } => (seq_no, timestamp, vp8),
        LayerDecision::Drop => panic!("dropped"),
    }
}

#[test]
fn switches_up_and_down_at_keyframes_with_continuous_numbers() {
    let start = Instant::now();
    let all = 0b111;
    let mut f = LayerForwarder::new(Target::Layer(LayerId::new(0, 3)));
    // The first packet must be a key frame.
    let p = vp8(5, 1, 0, false);
    let (d, kf) = f.on_packet(start, &packet(0, 70_000, 1000, &p), all);
    assert_eq!((d, kf), (LayerDecision::Drop, Some(0)));
    let p = vp8(6, 1, 0, true);
    let (seq, ts, _) = forwarded(f.on_packet(start, &packet(0, 70_001, 1000, &p), all).0);
    assert_eq!((seq, ts), (70_001 & 0xffff, 1000));
    // Layer 2 is ignored until targeted.
    let p = vp8(900, 40, 0, true);
    assert_eq!(
        f.on_packet(start, &packet(2, 5000, 77_000, &p), all),
        (LayerDecision::Drop, None)
    );
    // Target up: layer 0 keeps flowing, a key frame of 2 is asked.
    f.set_target(Target::Layer(LayerId::new(2, 3)));
    let t = start + Duration::from_millis(10);
    let p = vp8(7, 2, 0, false);
    let (d, kf) = f.on_packet(t, &packet(0, 70_002, 4000, &p), all);
    assert_eq!(forwarded(d).0, (70_002 & 0xffff));
    assert_eq!(kf, Some(2));
    let p = vp8(901, 41, 0, false);
    assert_eq!(
        f.on_packet(t, &packet(2, 5001, 80_000, &p), all).0,
        LayerDecision::Drop
    );
    // Its key frame switches; numbers continue.
    let t = start + Duration::from_millis(40);
    let p = vp8(902, 42, 0, true);
    let (seq, ts, patch) = forwarded(f.on_packet(t, &packet(2, 5002, 83_000, &p), all).0);
    assert_eq!(seq, (70_002 & 0xffff) + 1);
    assert_eq!(ts, 4000 + 30 * 90);
    assert!(patch.is_some());
    assert_eq!(f.current(), Some(2));
    // Down again: at a key frame of layer 1.
    f.set_target(Target::Layer(LayerId::new(1, 3)));
    let p = vp8(903, 43, 0, false);
    let (d, kf) = f.on_packet(t, &packet(2, 5003, 86_000, &p), all);
    assert_eq!(forwarded(d).0, seq + 1);
    assert_eq!(kf, Some(1));
    let p = vp8(300, 9, 0, true);
    let (s, _, _) = forwarded(f.on_packet(t, &packet(1, 100, 9000, &p), all).0);
    assert_eq!(s, seq + 2);
    // Suspended: nothing.
    f.set_target(Target::Suspended);
    let p = vp8(301, 10, 0, true);
    assert_eq!(
        f.on_packet(t, &packet(1, 101, 12_000, &p), all),
        (LayerDecision::Drop, None)
    );
}

#[test]
fn inactive_target_falls_back_to_the_highest_active_below() {
    let mut f = LayerForwarder::new(Target::Layer(LayerId::new(2, 0)));
    assert_eq!(f.wanted(0b011), Some((1, 0)));
    assert_eq!(f.wanted(0b100), Some((2, 0)));
    f.set_target(Target::Layer(LayerId::new(0, 1)));
    assert_eq!(f.wanted(0b110), Some((1, 1)));
    assert_eq!(f.wanted(0), None);
    f.set_target(Target::Top);
    assert_eq!(f.wanted(0b011), Some((1, u8::MAX)));
}

#[test]
fn temporal_dropping_keeps_numbers_continuous() {
    let start = Instant::now();
    let mut f = LayerForwarder::new(Target::Layer(LayerId::new(0, 0)));
    let tids = [0u8, 2, 1, 2];
    let mut out = Vec::new();
    let mut tl0 = 0u8;
    // Two packets per frame.
    for frame in 0..16u16 {
        let tid = tids[usize::from(frame % 4)];
        if tid == 0 {
            tl0 = tl0.wrapping_add(1);
        }
        for part in 0..2u64 {
            let mut p = vp8(100 + frame, tl0, tid, frame == 0);
            if part == 1 {
                p[0] = 0x80; // not the start of the frame
            }
            let seq = 10 + u64::from(frame) * 2 + part;
            let t = start + Duration::from_millis(u64::from(frame) * 33);
            let (d, _) = f.on_packet(t, &packet(0, seq, u32::from(frame) * 3000, &p), 1);
            if let LayerDecision::Forward { seq_no, vp8, .. } = d {
                let pid = vp8.map(|_| 0).unwrap_or(100 + frame);
                out.push((seq_no, tid, pid, frame));
            }
        }
        if frame == 7 {
            // From TID 0 only to all: effective at the next TID 0 frame.
            f.set_target(Target::Layer(LayerId::new(0, 2)));
        }
    }
    // Frames 0, 4 (TID 0 only), then from frame 8 every frame.
    let frames: Vec<u16> = out.iter().map(|o| o.3).collect();
    assert_eq!(
        frames,
        vec![
            0, 0, 4, 4, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15
        ]
    );
    for pair in out.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "seq gap: {out:?}");
    }
}

#[test]
fn garbage_payload_never_panics() {
    let now = Instant::now();
    let mut f = LayerForwarder::default();
    for p in [
        &[][..],
        &[0x80][..],
        &[0x90, 0x80][..],
        &[0x90, 0xff, 0x80][..],
    ] {
        let _ = f.on_packet(now, &packet(0, 1, 1, p), 1);
        let _ = f.on_packet(now, &packet(5, u64::MAX, 1, p), u32::MAX);
    }
}

#[test]
fn a_late_packet_gets_the_number_of_its_time() {
    let start = Instant::now();
    let mut f = LayerForwarder::new(Target::Layer(LayerId::new(0, 0)));
    let key = vp8(10, 1, 0, true);
    let (s0, _, _) = forwarded(f.on_packet(start, &packet(0, 100, 0, &key), 1).0);
    // 101 is lost on the way in; 102 (TID 2) is dropped; 103 (TID 0).
    let p = vp8(12, 1, 2, false);
    assert_eq!(
        f.on_packet(start, &packet(0, 102, 6000, &p), 1).0,
        LayerDecision::Drop
    );
    let p = vp8(13, 2, 0, false);
    let (s3, _, _) = forwarded(f.on_packet(start, &packet(0, 103, 9000, &p), 1).0);
    assert_eq!(s3, s0 + 2);
    // 101 (TID 0, picture 11) comes late through RTX: the slot before the
    // drop.
    let p = vp8(11, 1, 0, false);
    let (s1, _, _) = forwarded(f.on_packet(start, &packet(0, 101, 3000, &p), 1).0);
    assert_eq!(s1, s0 + 1);
}

/// A non-flexible VP9 packet: I (7-bit picture id), L; B and E as given;
/// P unless a key picture.
fn vp9(picture_id: u8, sid: u8, tid: u8, key: bool, begins: bool, ends: bool) -> Vec<u8> {
    let mut first = 0xa0;
    if !key {
        first |= 0x40;
    }
    if begins {
        first |= 0x08;
    }
    if ends {
        first |= 0x04;
    }
    let d = u8::from(sid > 0);
    vec![
        first,
        picture_id & 0x7f,
        (tid << 5) | (sid << 1) | d,
        0,
        0xee,
    ]
}

fn svc_packet(seq_no: u64, timestamp: u32, payload: &[u8], marker: bool) -> Incoming<'_> {
    let vp9 = crate::media::vp9::parse_vp9(payload);
    Incoming {
        spatial: 0,
        seq_no,
        timestamp,
        payload,
        keyframe: vp9.is_some_and(|v| v.starts_keyframe()),
        vp8: None,
        vp9,
        marker,
        dd: None,
    }
}

/// One picture of three spatial layers, two packets per layer frame.
/// Returns each packet's decision as (sid, out seq, marker), `None` when
/// dropped.
fn svc_picture(
    f: &mut LayerForwarder,
    now: Instant,
    seq: &mut u64,
    picture: u8,
    tid: u8,
    key: bool,
) -> Vec<Option<(u8, u64, bool)>> {
    let mut out = Vec::new();
    for sid in 0..3u8 {
        for part in 0..2 {
            let p = vp9(picture, sid, tid, key, part == 0, part == 1);
            let marker = sid == 2 && part == 1;
            let ts = u32::from(picture) * 3000;
            let (d, _) = f.on_packet(now, &svc_packet(*seq, ts, &p, marker), 1);
            *seq += 1;
            out.push(match d {
                LayerDecision::Forward { seq_no, marker, .. } => Some((sid, seq_no, marker)),
                LayerDecision::Drop => None,
            });
        }
    }
    out
}

#[test]
fn vp9_svc_drops_upper_spatial_layers_with_continuous_numbers_and_marker() {
    let start = Instant::now();
    let mut f = LayerForwarder::new(Target::Layer(LayerId::new(0, 2)));
    let mut seq = 1000;
    // Not a key picture first: nothing, a key frame asked.
    let p = vp9(1, 0, 0, false, true, false);
    let (d, kf) = f.on_packet(start, &svc_packet(seq, 0, &p, false), 1);
    assert_eq!((d, kf), (LayerDecision::Drop, Some(0)));
    seq += 1;
    let mut sent = Vec::new();
    for picture in 2..8u8 {
        let got = svc_picture(&mut f, start, &mut seq, picture, 0, picture == 2);
        sent.extend(got.into_iter().flatten());
    }
    // Only SID 0, numbered 1000.. without gaps (low 16 bits first), the
    // second packet of each layer frame marked.
    assert_eq!(sent.len(), 12);
    for (i, (sid, out, marker)) in sent.iter().enumerate() {
        assert_eq!(*sid, 0);
        assert_eq!(*out, 1001 + i as u64, "{sent:?}");
        assert_eq!(*marker, i % 2 == 1);
    }
    // Up to SID 1: waits for a key picture, then SID 0 and 1 flow and the
    // marker moves to the end of SID 1.
    f.set_target(Target::Layer(LayerId::new(1, 2)));
    let got = svc_picture(&mut f, start, &mut seq, 8, 0, false);
    let kept: Vec<_> = got.iter().flatten().collect();
    assert_eq!(kept.len(), 2);
    let got = svc_picture(&mut f, start, &mut seq, 9, 0, true);
    let kept: Vec<_> = got.into_iter().flatten().collect();
    let sids: Vec<u8> = kept.iter().map(|k| k.0).collect();
    assert_eq!(sids, [0, 0, 1, 1]);
    let markers: Vec<bool> = kept.iter().map(|k| k.2).collect();
    assert_eq!(markers, [false, false, false, true]);
    let first = kept[0].1;
    assert_eq!(first, 1001 + 14);
    assert!(kept.windows(2).all(|w| w[1].1 == w[0].1 + 1));
    // Top: every layer, the sender's own marker.
    f.set_target(Target::Top);
    let got = svc_picture(&mut f, start, &mut seq, 10, 0, true);
    let kept: Vec<_> = got.into_iter().flatten().collect();
    assert_eq!(kept.len(), 6);
    assert_eq!(kept[0].1, first + 4);
    assert_eq!(kept.iter().filter(|k| k.2).count(), 1);
    assert!(kept[5].2);
    // Down to SID 0 at the next picture, at once.
    f.set_target(Target::Layer(LayerId::new(0, 0)));
    let got = svc_picture(&mut f, start, &mut seq, 11, 0, false);
    let kept: Vec<_> = got.into_iter().flatten().collect();
    assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), [0, 0]);
    assert_eq!(kept[0].1, first + 10);
    // Temporal: TID 1 pictures dropped with the limit at 0.
    let got = svc_picture(&mut f, start, &mut seq, 12, 1, false);
    assert!(got.iter().all(Option::is_none));
    let got = svc_picture(&mut f, start, &mut seq, 13, 0, false);
    let kept: Vec<_> = got.into_iter().flatten().collect();
    assert_eq!(kept[0].1, first + 12);
}
