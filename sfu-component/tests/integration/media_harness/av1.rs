//! The test side of the AV1 dependency descriptor (written here from the
//! AV1 RTP specification, independently of the bridge's parser): the
//! template structures the test sender uses, descriptors of its frames,
//! and reading a received descriptor back (mandatory fields and the
//! active decode targets bitmask, the structure being one of ours).
//!
//! Structures: per spatial layer four templates (T0 key, T0 delta, T1,
//! T2), a decode target per (spatial, temporal) pair (index 3 * S + T).
//! A frame of (s', t') is in decode target (s, t) when s' <= s and
//! t' <= t (upper spatial layers predict from the layer below, full SVC);
//! key frames are switch points of every decode target of their layer and
//! above, T0 frames of the decode targets of their own layer, T1 frames of
//! their layer's T2 target.

use super::svc::{LayerFrame, SIZES};

/// The template id offset of every simulcast layer's structure.
const L1T3_OFFSET: u8 = 1;

/// One template.
#[derive(Debug, Clone)]
pub struct Template {
    pub sid: u8,
    pub tid: u8,
    pub key: bool,
    /// Indication per decode target: 0 not present, 1 discardable, 2
    /// switch, 3 required.
    pub dtis: Vec<u32>,
    pub fdiffs: Vec<u32>,
}

/// A template dependency structure of the test sender.
#[derive(Debug, Clone)]
pub struct Structure {
    pub offset: u8,
    pub spatial: u8,
    pub templates: Vec<Template>,
    pub resolutions: Vec<(u16, u16)>,
}

#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    len: usize,
}

impl Bits {
    fn put(&mut self, value: u32, n: usize) {
        for i in (0..n).rev() {
            if self.len.is_multiple_of(8) {
                self.out.push(0);
            }
            if (value >> i) & 1 == 1 {
                *self.out.last_mut().unwrap() |= 0x80 >> (self.len % 8);
            }
            self.len += 1;
        }
    }
}

fn get(data: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut v = 0;
    for bit in at..at + n {
        let byte = data.get(bit / 8)?;
        v = (v << 1) | u32::from((byte >> (7 - bit % 8)) & 1);
    }
    Some(v)
}

/// A received descriptor as the test reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadDd {
    pub start: bool,
    pub end: bool,
    pub template_id: u8,
    pub frame_number: u16,
    pub has_structure: bool,
    /// The template id offset of the structure it carries.
    pub offset: Option<u8>,
    pub active: Option<u32>,
}

impl Structure {
    /// Three spatial layers by three temporal layers.
    pub fn l3t3() -> Structure {
        Structure::new(60, 3, SIZES.to_vec())
    }

    /// One spatial layer by three temporal layers, for simulcast layer
    /// `layer` (its own resolution). Every layer's templates start at the
    /// same id, as each simulcast encoder of a browser numbers its first
    /// structure's templates from 0: the bridge must shift them apart at a
    /// switch.
    pub fn l1t3(layer: usize) -> Structure {
        Structure::new(L1T3_OFFSET, 1, vec![SIZES[layer.min(2)]])
    }

    /// The number of templates.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// The template at `index` from the structure's first id.
    pub fn template_at(&self, index: usize) -> Option<&Template> {
        self.templates.get(index)
    }

    fn new(offset: u8, spatial: u8, resolutions: Vec<(u16, u16)>) -> Structure {
        let n = u32::from(spatial);
        let mut templates = Vec::new();
        for sid in 0..spatial {
            for (tid, key) in [(0u8, true), (0, false), (1, false), (2, false)] {
                let mut dtis = Vec::new();
                for s in 0..spatial {
                    for t in 0..3u8 {
                        let present = sid <= s && tid <= t;
                        let dti = if !present {
                            0
                        } else if key || (s == sid && tid == 0) || (s == sid && tid == 1 && t == 2)
                        {
                            2
                        } else if s == sid && tid == t && tid > 0 {
                            1
                        } else {
                            3
                        };
                        dtis.push(dti);
                    }
                }
                let mut fdiffs = match (key, tid) {
                    (true, _) => vec![],
                    (false, 0) => vec![4 * n],
                    (false, 1) => vec![2 * n],
                    _ => vec![n],
                };
                if sid > 0 {
                    fdiffs.push(1);
                }
                templates.push(Template {
                    sid,
                    tid,
                    key,
                    dtis,
                    fdiffs,
                });
            }
        }
        Structure {
            offset,
            spatial,
            templates,
            resolutions,
        }
    }

    pub fn decode_targets(&self) -> usize {
        3 * usize::from(self.spatial)
    }

    /// The template of a received template id.
    pub fn template(&self, id: u8) -> Option<&Template> {
        let index = (usize::from(id) + 64 - usize::from(self.offset)) % 64;
        self.templates.get(index)
    }

    fn index_of(&self, sid: u8, tid: u8, key: bool) -> usize {
        self.templates
            .iter()
            .position(|t| t.sid == sid && t.tid == tid && t.key == key)
            .unwrap()
    }

    fn write_structure(&self, w: &mut Bits) {
        w.put(u32::from(self.offset), 6);
        w.put(self.decode_targets() as u32 - 1, 5);
        for (i, t) in self.templates.iter().enumerate() {
            let next = self.templates.get(i + 1);
            let idc = match next {
                None => 3,
                Some(n) if n.sid != t.sid => 2,
                Some(n) if n.tid != t.tid => 1,
                Some(_) => 0,
            };
            w.put(idc, 2);
        }
        for t in &self.templates {
            for d in &t.dtis {
                w.put(*d, 2);
            }
        }
        for t in &self.templates {
            for f in &t.fdiffs {
                w.put(1, 1);
                w.put(f - 1, 4);
            }
            w.put(0, 1);
        }
        // chain_cnt = ns(DtCnt + 1) of 0: w - 1 zero bits, w = bits of
        // DtCnt + 1 (0 < m, so no extra bit). No chains.
        let n = self.decode_targets() as u32 + 1;
        let width = 32 - n.leading_zeros();
        w.put(0, width as usize - 1);
        // resolutions_present_flag, then each spatial layer's.
        w.put(1, 1);
        for (width, height) in &self.resolutions {
            w.put(u32::from(*width) - 1, 16);
            w.put(u32::from(*height) - 1, 16);
        }
    }

    /// Bits of the structure.
    fn structure_len(&self) -> usize {
        let mut w = Bits::default();
        self.write_structure(&mut w);
        w.len
    }

    /// The descriptor of one packet of a frame.
    pub fn descriptor(
        &self,
        f: &LayerFrame,
        first: bool,
        last: bool,
        number: u16,
        with_structure: bool,
    ) -> Vec<u8> {
        let index = self.index_of(f.sid, f.tid, f.key);
        let id = (usize::from(self.offset) + index) % 64;
        let mut w = Bits::default();
        w.put(u32::from(first), 1);
        w.put(u32::from(last), 1);
        w.put(id as u32, 6);
        w.put(u32::from(number), 16);
        if with_structure {
            w.put(0b10000, 5);
            self.write_structure(&mut w);
        }
        w.out
    }

    /// Reads a received descriptor of this structure.
    pub fn read(&self, d: &[u8]) -> Option<ReadDd> {
        let mut out = ReadDd {
            start: get(d, 0, 1)? == 1,
            end: get(d, 1, 1)? == 1,
            template_id: get(d, 2, 6)? as u8,
            frame_number: get(d, 8, 16)? as u16,
            has_structure: false,
            offset: None,
            active: None,
        };
        if d.len() > 3 {
            out.has_structure = get(d, 24, 1)? == 1;
            if out.has_structure {
                out.offset = Some(get(d, 29, 6)? as u8);
            }
            let mask = get(d, 25, 1)? == 1;
            let at = 29
                + if out.has_structure {
                    self.structure_len()
                } else {
                    0
                };
            if mask {
                out.active = Some(get(d, at, self.decode_targets())?);
            }
        }
        Some(out)
    }
}

#[test]
fn the_structures_dtis() {
    let s = Structure::l3t3();
    assert_eq!(s.templates.len(), 12);
    // S1 T1 in decode targets: (1,1) discardable, (1,2) switch, (2,1)
    // and (2,2) required.
    let t = &s.templates[6];
    assert_eq!((t.sid, t.tid, t.key), (1, 1, false));
    assert_eq!(t.dtis, vec![0, 0, 0, 0, 1, 2, 0, 3, 3]);
    assert_eq!(s.template(60).unwrap().dtis, vec![2; 9]);
    assert_eq!(s.template(3).unwrap().sid, 1);
}
