use super::*;

/// An L1T2 structure (template id offset 5): templates T0 key, T0 delta,
/// T1; decode targets 0 (T0) and 1 (T0+T1); one chain; 640x360.
fn l1t2_structure(w: &mut Writer) {
    w.put(5, 6); // template_id_offset
    w.put(1, 5); // dt_cnt_minus_one
    // Layers: T0, T0 (same layer), T1 (next temporal), end.
    w.put(0, 2);
    w.put(1, 2);
    w.put(3, 2);
    // DTIs: key S S; delta S S; T1 - D.
    for dtis in [[2, 2], [2, 2], [0, 1]] {
        for d in dtis {
            w.put(d, 2);
        }
    }
    // Fdiffs: none; 2; 1.
    w.put(0, 1);
    w.put(1, 1);
    w.put(1, 4);
    w.put(0, 1);
    w.put(1, 1);
    w.put(0, 4);
    w.put(0, 1);
    // chain_cnt = ns(3) of 1: bits 1 0; protected_by ns(1): no bits.
    w.put(0b10, 2);
    for fdiff in [0, 2, 1] {
        w.put(fdiff, 4);
    }
    // Resolutions.
    w.put(1, 1);
    w.put(639, 16);
    w.put(359, 16);
}

fn key_frame_packet() -> Vec<u8> {
    let mut w = Writer::default();
    w.put(1, 1); // start
    w.put(0, 1); // end
    w.put(5, 6); // template 0 (offset 5)
    w.put(0x1234, 16);
    w.put(0b10000, 5); // structure present
    l1t2_structure(&mut w);
    w.out
}

#[test]
fn key_frame_with_structure() {
    let data = key_frame_packet();
    let (frame, structure) = parse(&data, None).unwrap();
    let s = structure.unwrap();
    assert_eq!(s.template_id_offset, 5);
    assert_eq!(s.decode_targets, 2);
    assert_eq!(s.templates.len(), 3);
    assert_eq!(s.chains, 1);
    assert_eq!(s.target_layers, vec![(0, 0), (0, 1)]);
    assert_eq!(s.resolutions, vec![(640, 360)]);
    assert_eq!(
        s.templates
            .iter()
            .map(|t| (t.spatial, t.temporal, t.fdiff_count))
            .collect::<Vec<_>>(),
        vec![(0, 0, 0), (0, 0, 1), (0, 1, 1)]
    );
    assert!(frame.start_of_frame && !frame.end_of_frame);
    assert_eq!(frame.frame_number, 0x1234);
    assert!(frame.is_keyframe());
    assert_eq!(frame.active_targets, Some(0b11));
    assert_eq!((frame.dti(0), frame.dti(1)), (Dti::Switch, Dti::Switch));
    assert_eq!(frame.dti(2), Dti::NotPresent);
}

#[test]
fn later_packets_use_the_last_structure() {
    let (_, s) = parse(&key_frame_packet(), None).unwrap();
    let s = s.unwrap();
    // Mandatory fields only: end of frame, template 7 (T1), frame 0x1236.
    let data = [0x40 | 7, 0x12, 0x36];
    assert_eq!(parse(&data, None).unwrap_err(), DdError::NoStructure);
    let (frame, new) = parse(&data, Some(&s)).unwrap();
    assert!(new.is_none());
    assert!(!frame.start_of_frame && frame.end_of_frame);
    assert_eq!((frame.spatial, frame.temporal), (0, 1));
    assert_eq!(
        (frame.dti(0), frame.dti(1)),
        (Dti::NotPresent, Dti::Discardable)
    );
    assert!(!frame.is_keyframe() && frame.active_targets.is_none());
    // Template 4 is below the offset and 8 beyond the three templates.
    for id in [4u8, 8] {
        assert_eq!(
            parse(&[0x80 | id, 0, 1], Some(&s)).unwrap_err(),
            DdError::UnknownTemplate
        );
    }
    // Custom DTIs (T1 made a switch point of target 1), custom fdiffs
    // (1 and 300) and a chain fdiff; an active decode targets bitmask.
    let mut w = Writer::default();
    w.put(0b10, 2);
    w.put(7, 6);
    w.put(9, 16);
    w.put(0b01111, 5);
    w.put(0b01, 2); // bitmask: target 0 only
    w.put(0, 2);
    w.put(2, 2);
    w.put(1, 2);
    w.put(0, 4);
    w.put(3, 2);
    w.put(299, 12);
    w.put(0, 2);
    w.put(3, 8);
    let (frame, _) = parse(&w.out, Some(&s)).unwrap();
    assert_eq!(frame.active_targets, Some(0b01));
    assert_eq!((frame.dti(0), frame.dti(1)), (Dti::NotPresent, Dti::Switch));
    assert!(!frame.independent);
    // 65 bits: a byte less cuts the chain fdiff.
    assert_eq!(w.len, 65);
    let cut = &w.out[..w.out.len() - 1];
    assert_eq!(parse(cut, Some(&s)).unwrap_err(), DdError::Truncated);
}

#[test]
fn rewriting_sets_frame_number_and_active_targets() {
    let data = key_frame_packet();
    let (frame, s) = parse(&data, None).unwrap();
    let s = s.unwrap();
    let out = rewrite(&data, &frame, 77, Some(0b01));
    let (again, s2) = parse(&out, None).unwrap();
    assert_eq!(s2.as_deref(), Some(&*s));
    assert_eq!(again.frame_number, 77);
    assert_eq!(again.active_targets, Some(0b01));
    assert_eq!(again.dtis, frame.dtis);
    assert!(again.is_keyframe());
    // A mandatory-only packet grows the extended fields.
    let short = [0xc0 | 7, 0x12, 0x36];
    let (frame, _) = parse(&short, Some(&s)).unwrap();
    let out = rewrite(&short, &frame, 0xfffe, Some(0b10));
    assert_eq!(out.len(), 4);
    let (again, _) = parse(&out, Some(&s)).unwrap();
    assert_eq!(again.frame_number, 0xfffe);
    assert_eq!(again.active_targets, Some(0b10));
    assert_eq!((again.spatial, again.temporal), (0, 1));
    assert!(again.start_of_frame && again.end_of_frame);
    // A bitmask already there is replaced, what follows kept.
    let (frame, _) = parse(&out, Some(&s)).unwrap();
    let out2 = rewrite(&out, &frame, 1, Some(0b11));
    let (again, _) = parse(&out2, Some(&s)).unwrap();
    assert_eq!((again.frame_number, again.active_targets), (1, Some(0b11)));
    // Without a bitmask only the frame number changes.
    assert_eq!(rewrite(&short, &frame, 0x0102, None), vec![0xc7, 1, 2]);
}

#[test]
fn truncated_or_garbage_never_panics() {
    let full = key_frame_packet();
    let (_, s) = parse(&full, None).unwrap();
    for n in 0..full.len() {
        let _ = parse(&full[..n], None);
        let _ = parse(&full[..n], s.as_ref());
    }
    assert!(parse(&full[..full.len() - 2], None).is_err());
    let mut x = 0x1234_5678u32;
    for len in 0..40 {
        for _ in 0..200 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            check_descriptors(&[&full, &data]);
            if let Ok((frame, new)) = parse(&data, s.as_ref()) {
                let _ = frame.dti(40);
                let _ = rewrite(&data, &frame, 3, Some(u32::MAX));
                if let Some(new) = new {
                    let _ = new.all_targets();
                }
            }
        }
    }
}
