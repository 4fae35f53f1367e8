//! The AV1 Dependency Descriptor RTP header extension (the AV1 RTP
//! specification, appendix A), as far as a forwarding unit needs it: the
//! mandatory fields (start/end of frame, template id, frame number), the
//! template dependency structure (templates with their spatial and
//! temporal ids, decode target indications, frame diffs and chains; the
//! decode targets' layers; resolutions), the active decode targets
//! bitmask, and the frame's own layer and decode target indications
//! (from its template or sent custom).
//!
//! A packet without a structure refers to the last one its SSRC sent:
//! [`parse`] takes that one and returns the new one when the packet
//! carries it. [`rewrite`] writes a descriptor back with another frame
//! number and an active decode targets bitmask of the receiver's (what
//! Videobridge's AV1 projection does so that a receiver does not wait for
//! frames of decode targets it never gets).
//!
//! The parser takes bytes a peer sent: short or malformed input gives an
//! error, never a panic.

use std::sync::Arc;

use str0m::rtp::{ExtensionSerializer, ExtensionValues};

/// The extension's URI (lib-jitsi-meet and Chromium negotiate it as id 11).
pub(crate) const URI: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";
/// Template ids are 6 bits.
const MAX_TEMPLATES: usize = 64;

/// Decode target indication: what a frame is to a decode target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dti {
    /// Not part of the decode target.
    NotPresent,
    /// Part of it, but no later frame of it depends on this one.
    Discardable,
    /// A point where a receiver may start decoding the decode target.
    Switch,
    /// Part of it and needed by later frames.
    Required,
}

impl Dti {
    fn from_bits(v: u32) -> Dti {
        match v & 3 {
            0 => Dti::NotPresent,
            1 => Dti::Discardable,
            2 => Dti::Switch,
            _ => Dti::Required,
        }
    }
}

/// Why a descriptor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DdError {
    #[error("dependency descriptor shorter than its fields")]
    Truncated,
    #[error("dependency descriptor refers to a structure its SSRC never sent")]
    NoStructure,
    #[error("dependency descriptor names a template the structure lacks")]
    UnknownTemplate,
    #[error("dependency descriptor structure has too many templates")]
    TooManyTemplates,
}

/// One frame dependency template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub spatial: u8,
    pub temporal: u8,
    /// Decode target indications, 2 bits per decode target (index 0 low).
    pub dtis: u64,
    /// How many earlier frames it depends on.
    pub fdiff_count: u8,
}

/// A template dependency structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Structure {
    pub template_id_offset: u8,
    pub decode_targets: u8,
    pub templates: Vec<Template>,
    pub chains: u8,
    /// The (spatial, temporal) ids of each decode target.
    pub target_layers: Vec<(u8, u8)>,
    /// Render width and height of each spatial layer, when sent.
    pub resolutions: Vec<(u16, u16)>,
}

impl Structure {
    /// The bitmask of every decode target.
    pub fn all_targets(&self) -> u32 {
        mask_of(self.decode_targets)
    }
}

fn mask_of(count: u8) -> u32 {
    if count >= 32 {
        u32::MAX
    } else {
        (1u32 << count) - 1
    }
}

/// What one packet's descriptor says of its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    pub start_of_frame: bool,
    pub end_of_frame: bool,
    pub template_id: u8,
    pub frame_number: u16,
    pub spatial: u8,
    pub temporal: u8,
    /// Decode target indications of the frame, 2 bits per decode target.
    pub dtis: u64,
    pub decode_targets: u8,
    /// Whether the frame depends on no earlier frame.
    pub independent: bool,
    /// The packet carried a structure.
    pub has_structure: bool,
    /// The active decode targets bitmask, when the packet sent one (or
    /// all of them with a structure).
    pub active_targets: Option<u32>,
    /// Bit position after the structure: where the bitmask is (or goes).
    mask_at: usize,
    /// Whether the packet has the bitmask.
    mask_sent: bool,
    /// Whether the packet has the extended fields at all.
    extended: bool,
}

impl FrameInfo {
    /// The frame's indication for decode target `dt`.
    pub fn dti(&self, dt: usize) -> Dti {
        if dt >= usize::from(self.decode_targets) {
            return Dti::NotPresent;
        }
        Dti::from_bits((self.dtis >> (2 * dt)) as u32)
    }

    /// A key frame: spatial layer 0, no dependency, sent with a structure.
    pub fn is_keyframe(&self) -> bool {
        self.start_of_frame && self.has_structure && self.independent && self.spatial == 0
    }
}

#[cfg(test)]
impl FrameInfo {
    /// A one-packet frame of template `index` (for forwarding tests).
    pub(crate) fn of_template(
        structure: &Structure,
        index: usize,
        number: u16,
        with_structure: bool,
    ) -> FrameInfo {
        let t = &structure.templates[index];
        FrameInfo {
            start_of_frame: true,
            end_of_frame: true,
            template_id: (structure.template_id_offset + index as u8) % 64,
            frame_number: number,
            spatial: t.spatial,
            temporal: t.temporal,
            dtis: t.dtis,
            decode_targets: structure.decode_targets,
            independent: t.fdiff_count == 0,
            has_structure: with_structure,
            active_targets: with_structure.then(|| structure.all_targets()),
            mask_at: 0,
            mask_sent: false,
            extended: with_structure,
        }
    }
}

/// Reads bits most significant first.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Result<u32, DdError> {
        let byte = self.data.get(self.at / 8).ok_or(DdError::Truncated)?;
        let v = (byte >> (7 - self.at % 8)) & 1;
        self.at += 1;
        Ok(u32::from(v))
    }

    /// f(n), n at most 32.
    fn f(&mut self, n: usize) -> Result<u32, DdError> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    /// ns(n): a non-symmetric unsigned value below n.
    fn ns(&mut self, n: u32) -> Result<u32, DdError> {
        let mut w = 0;
        let mut x = n;
        while x != 0 {
            x >>= 1;
            w += 1;
        }
        if w == 0 {
            return Ok(0);
        }
        let m = (1u32 << w) - n;
        let v = self.f(w - 1)?;
        if v < m {
            return Ok(v);
        }
        let extra = self.bit()?;
        Ok((v << 1) - m + extra)
    }
}

/// Parses one packet's descriptor; `last` is the structure its SSRC sent
/// last. Returns the frame and, when the packet carries one, the new
/// structure (which later packets of the SSRC refer to).
pub(crate) fn parse(
    data: &[u8],
    last: Option<&Arc<Structure>>,
) -> Result<(FrameInfo, Option<Arc<Structure>>), DdError> {
    let mut r = Bits { data, at: 0 };
    let start_of_frame = r.bit()? == 1;
    let end_of_frame = r.bit()? == 1;
    let template_id = r.f(6)? as u8;
    let frame_number = r.f(16)? as u16;
    let extended = data.len() > 3;
    let (mut has_structure, mut mask_sent) = (false, false);
    let (mut custom_dtis, mut custom_fdiffs, mut custom_chains) = (false, false, false);
    if extended {
        has_structure = r.bit()? == 1;
        mask_sent = r.bit()? == 1;
        custom_dtis = r.bit()? == 1;
        custom_fdiffs = r.bit()? == 1;
        custom_chains = r.bit()? == 1;
    }
    let new_structure = if has_structure {
        Some(Arc::new(parse_structure(&mut r)?))
    } else {
        None
    };
    let structure = new_structure
        .as_ref()
        .or(last)
        .ok_or(DdError::NoStructure)?;
    let mask_at = r.at;
    let mut active_targets = has_structure.then(|| structure.all_targets());
    if mask_sent {
        active_targets = Some(r.f(usize::from(structure.decode_targets))?);
    }
    let index = (usize::from(template_id) + MAX_TEMPLATES
        - usize::from(structure.template_id_offset))
        % MAX_TEMPLATES;
    let template = structure
        .templates
        .get(index)
        .ok_or(DdError::UnknownTemplate)?;
    let mut dtis = template.dtis;
    if custom_dtis {
        dtis = 0;
        for dt in 0..usize::from(structure.decode_targets) {
            dtis |= u64::from(r.f(2)?) << (2 * dt);
        }
    }
    let mut fdiffs = u32::from(template.fdiff_count);
    if custom_fdiffs {
        fdiffs = 0;
        loop {
            let size = r.f(2)? as usize;
            if size == 0 {
                break;
            }
            r.f(4 * size)?;
            fdiffs += 1;
        }
    }
    if custom_chains {
        for _ in 0..structure.chains {
            r.f(8)?;
        }
    }
    let frame = FrameInfo {
        start_of_frame,
        end_of_frame,
        template_id,
        frame_number,
        spatial: template.spatial,
        temporal: template.temporal,
        dtis,
        decode_targets: structure.decode_targets,
        independent: fdiffs == 0,
        has_structure,
        active_targets,
        mask_at,
        mask_sent,
        extended,
    };
    Ok((frame, new_structure))
}

fn parse_structure(r: &mut Bits) -> Result<Structure, DdError> {
    let template_id_offset = r.f(6)? as u8;
    let decode_targets = r.f(5)? as u8 + 1;
    let dt_count = usize::from(decode_targets);
    // Template layers.
    let mut templates = Vec::new();
    let (mut spatial, mut temporal) = (0u8, 0u8);
    loop {
        if templates.len() >= MAX_TEMPLATES {
            return Err(DdError::TooManyTemplates);
        }
        templates.push(Template {
            spatial,
            temporal,
            dtis: 0,
            fdiff_count: 0,
        });
        match r.f(2)? {
            1 => temporal = temporal.saturating_add(1),
            2 => {
                temporal = 0;
                spatial = spatial.saturating_add(1);
            }
            3 => break,
            _ => {}
        }
    }
    let max_spatial = spatial;
    for t in templates.iter_mut() {
        for dt in 0..dt_count {
            t.dtis |= u64::from(r.f(2)?) << (2 * dt);
        }
    }
    for t in templates.iter_mut() {
        while r.bit()? == 1 {
            r.f(4)?;
            t.fdiff_count = t.fdiff_count.saturating_add(1);
        }
    }
    let chains = r.ns(u32::from(decode_targets) + 1)? as u8;
    if chains > 0 {
        for _ in 0..dt_count {
            r.ns(u32::from(chains))?;
        }
        for _ in 0..templates.len() * usize::from(chains) {
            r.f(4)?;
        }
    }
    // Each decode target's layers: the highest of the templates in it.
    let target_layers = (0..dt_count)
        .map(|dt| {
            templates
                .iter()
                .filter(|t| (t.dtis >> (2 * dt)) & 3 != 0)
                .fold((0u8, 0u8), |(s, tl), t| {
                    (s.max(t.spatial), tl.max(t.temporal))
                })
        })
        .collect();
    let mut resolutions = Vec::new();
    if r.bit()? == 1 {
        for _ in 0..=max_spatial {
            let w = r.f(16)? as u16;
            let h = r.f(16)? as u16;
            resolutions.push((w.saturating_add(1), h.saturating_add(1)));
        }
    }
    Ok(Structure {
        template_id_offset,
        decode_targets,
        templates,
        chains,
        target_layers,
        resolutions,
    })
}

/// Writes bits most significant first.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    len: usize,
}

impl Writer {
    fn put(&mut self, value: u32, bits: usize) {
        for i in (0..bits).rev() {
            if self.len.is_multiple_of(8) {
                self.out.push(0);
            }
            if (value >> i) & 1 == 1
                && let Some(last) = self.out.last_mut()
            {
                *last |= 0x80 >> (self.len % 8);
            }
            self.len += 1;
        }
    }

    /// Copies bits `from..to` of `data`.
    fn copy(&mut self, data: &[u8], from: usize, to: usize) {
        let mut r = Bits { data, at: from };
        while r.at < to {
            match r.bit() {
                Ok(b) => self.put(b, 1),
                Err(_) => return,
            }
        }
    }
}

/// `data` (whose parse gave `frame`) with frame number `frame_number` and,
/// given `active`, that active decode targets bitmask (restricted to the
/// structure's decode targets). The rest is copied bit for bit.
pub(crate) fn rewrite(
    data: &[u8],
    frame: &FrameInfo,
    frame_number: u16,
    active: Option<u32>,
) -> Vec<u8> {
    let Some(active) = active else {
        let mut out = data.to_vec();
        if let Some(n) = out.get_mut(1..3) {
            n.copy_from_slice(&frame_number.to_be_bytes());
        }
        return out;
    };
    let count = usize::from(frame.decode_targets);
    let mut w = Writer::default();
    w.copy(data, 0, 8);
    w.put(u32::from(frame_number), 16);
    if frame.extended {
        w.put(u32::from(frame.has_structure), 1);
        w.put(1, 1);
        w.copy(data, 26, frame.mask_at);
    } else {
        // Extended fields: no structure, a bitmask, no custom fields.
        w.put(0b01000, 5);
    }
    w.put(active & mask_of(frame.decode_targets), count);
    if frame.extended {
        let rest = frame.mask_at + if frame.mask_sent { count } else { 0 };
        w.copy(data, rest, data.len() * 8);
    }
    w.out
}

/// The raw descriptor of a packet, as str0m hands it over in
/// `ExtensionValues::user_values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawDescriptor(pub Arc<[u8]>);

/// str0m's serializer for the extension: bytes in, bytes out.
#[derive(Debug)]
pub(crate) struct Serializer;

impl ExtensionSerializer for Serializer {
    fn write_to(&self, buf: &mut [u8], ev: &ExtensionValues) -> usize {
        let Some(raw) = ev.user_values.get::<RawDescriptor>() else {
            return 0;
        };
        match buf.get_mut(..raw.0.len()) {
            Some(dst) => {
                dst.copy_from_slice(&raw.0);
                raw.0.len()
            }
            None => 0,
        }
    }

    fn parse_value(&self, buf: &[u8], ev: &mut ExtensionValues) -> bool {
        if buf.len() < 3 {
            return false;
        }
        ev.user_values.set(RawDescriptor(Arc::from(buf)));
        true
    }

    fn is_video(&self) -> bool {
        true
    }

    fn is_audio(&self) -> bool {
        false
    }

    fn requires_two_byte_form(&self, ev: &ExtensionValues) -> bool {
        ev.user_values
            .get::<RawDescriptor>()
            .is_some_and(|raw| raw.0.len() > 16)
    }
}

/// For the fuzz target: parses `descriptors` as one SSRC's in turn (the
/// last structure remembered), and rewrites each parsed one with another
/// frame number and bitmask. Panics only if a rewrite does not read back
/// as the frame it was made from: parsing itself never panics.
pub fn check_descriptors(descriptors: &[&[u8]]) {
    let mut last: Option<Arc<Structure>> = None;
    for data in descriptors {
        let Ok((frame, new)) = parse(data, last.as_ref()) else {
            continue;
        };
        if let Some(new) = new {
            last = Some(new);
        }
        let number = frame.frame_number.wrapping_add(1);
        let out = rewrite(data, &frame, number, Some(u32::MAX));
        let again = parse(&out, last.as_ref()).map(|(f, _)| f);
        let same = again.is_ok_and(|f| {
            f.frame_number == number
                && (f.spatial, f.temporal, f.dtis) == (frame.spatial, frame.temporal, frame.dtis)
                && f.active_targets == Some(mask_of(frame.decode_targets))
        });
        assert!(same, "rewrite of {data:02x?} reads back as {again:?}");
    }
}

#[cfg(test)]
#[path = "dependency_descriptor_tests.rs"]
mod tests;
