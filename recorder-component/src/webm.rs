//! A WebM (Matroska) writer of lilt's own: tracks of VP8/VP9/AV1 video and
//! Opus audio, SimpleBlocks in clusters, cues and duration on a clean stop.
//!
//! Crash safety: the Segment is opened with the unknown size, as live WebM
//! is, and each Cluster is written whole (known size) when it closes, so a
//! file cut by `kill -9` holds only complete clusters and plays up to the
//! last of them; the Duration is patched after each cluster, so even such a
//! file says how long it is. A cluster closes at a video keyframe, after
//! [`MAX_CLUSTER_MS`] or at [`MAX_CLUSTER_BYTES`]. [`WebmWriter::finish`]
//! writes the Cues, then patches the Segment size, the Duration and the
//! SeekHead into the room kept for them at the start.
//!
//! The video codec is known only from the first frames (the payload type
//! they come with; AV1's `av1C` from its first keyframe), after the header
//! is written: each video track is written as VP8 with room kept after its
//! CodecID, and [`WebmWriter::set_video_codec`] patches the CodecID (all
//! three are five bytes) and the CodecPrivate in place.

use std::io::{Seek, SeekFrom, Write};

use crate::ebml::{
    UNKNOWN_SIZE, write_bytes, write_float, write_id, write_master, write_size, write_uint,
    write_void,
};

/// Matroska element IDs used here.
pub mod ids {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const SEEK: u32 = 0x4DBB;
    pub const SEEK_ID: u32 = 0x53AB;
    pub const SEEK_POSITION: u32 = 0x53AC;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const DURATION: u32 = 0x4489;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9C;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const CUE_POINT: u32 = 0xBB;
    pub const CUE_TIME: u32 = 0xB3;
    pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
    pub const CUE_TRACK: u32 = 0xF7;
    pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
    pub const VOID: u32 = 0xEC;
}

/// A cluster closes after this long even without a keyframe (bounds what a
/// `kill -9` loses).
pub const MAX_CLUSTER_MS: u64 = 2_000;
/// A cluster closes past this many bytes.
pub const MAX_CLUSTER_BYTES: usize = 4 << 20;

/// Room kept at the start of the segment for the SeekHead.
const SEEK_HEAD_ROOM: usize = 96;
/// Room kept in Info for the Duration (2-byte ID, 1-byte size, 8 bytes).
const DURATION_ROOM: usize = 11;
/// Room kept after a video track's CodecID for its CodecPrivate (AV1's
/// `av1C`: 4 bytes and the sequence header OBU).
pub const CODEC_PRIVATE_ROOM: usize = 240;

/// A video codec copied into the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    Av1,
}

impl VideoCodec {
    fn codec_id(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "V_VP8",
            VideoCodec::Vp9 => "V_VP9",
            VideoCodec::Av1 => "V_AV1",
        }
    }
}

/// One track of the file; its track number is its index plus one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Track {
    Video {
        codec: VideoCodec,
        width: u32,
        height: u32,
    },
    /// Opus at 48 kHz; `pre_skip` in samples, as in the OpusHead.
    Opus { channels: u8, pre_skip: u16 },
}

#[derive(Debug, thiserror::Error)]
pub enum WebmError {
    #[error("cannot write the WebM file: {0}")]
    Io(#[from] std::io::Error),
    #[error("no track number {0}")]
    NoTrack(u64),
    #[error("CodecPrivate of {0} bytes does not fit the room kept for it")]
    CodecPrivateTooLarge(usize),
}

/// The OpusHead that Matroska keeps as the Opus track's CodecPrivate.
pub fn opus_head(channels: u8, pre_skip: u16) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels);
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

struct CuePoint {
    time_ms: u64,
    track: u64,
    cluster_pos: u64,
}

/// Writes one WebM file. Frames go in with [`WebmWriter::write_frame`] in
/// (roughly) increasing time; a block earlier than its cluster's start is
/// written at the start (Matroska's relative times are kept non-negative).
pub struct WebmWriter<W: Write + Seek> {
    out: W,
    tracks: Vec<Track>,
    /// File offset of the Segment's data (where positions count from).
    segment_data: u64,
    segment_size_at: u64,
    seek_head_at: u64,
    duration_at: u64,
    info_pos: u64,
    tracks_pos: u64,
    /// The cluster being built: start time, body, whether it starts at a
    /// video keyframe.
    cluster: Option<(u64, Vec<u8>, bool)>,
    cues: Vec<CuePoint>,
    /// Bytes written after the Segment's data start.
    written: u64,
    last_ms: u64,
    /// Each track's last block time: a track's blocks must have strictly
    /// increasing times (players and ffmpeg refuse repeated ones).
    track_last_ms: Vec<Option<u64>>,
    end_ms: u64,
    /// File offsets of each video track's CodecID value and of the room
    /// after it, by track number.
    codec_patch: Vec<(u64, u64, u64)>,
}

impl<W: Write + Seek> WebmWriter<W> {
    /// Writes the EBML header, the Segment start, Info and Tracks.
    pub fn new(mut out: W, tracks: Vec<Track>) -> Result<WebmWriter<W>, WebmError> {
        let start = out.stream_position()?;
        let mut buf = Vec::new();
        let mut header = Vec::new();
        write_uint(&mut header, ids::EBML_VERSION, 1);
        write_uint(&mut header, ids::EBML_READ_VERSION, 1);
        write_uint(&mut header, ids::EBML_MAX_ID_LENGTH, 4);
        write_uint(&mut header, ids::EBML_MAX_SIZE_LENGTH, 8);
        write_bytes(&mut header, ids::DOC_TYPE, b"webm");
        write_uint(&mut header, ids::DOC_TYPE_VERSION, 4);
        write_uint(&mut header, ids::DOC_TYPE_READ_VERSION, 2);
        write_master(&mut buf, ids::EBML, &header);

        write_id(&mut buf, ids::SEGMENT);
        let segment_size_at = start + buf.len() as u64;
        buf.extend_from_slice(&UNKNOWN_SIZE);
        let segment_data = start + buf.len() as u64;

        let seek_head_at = start + buf.len() as u64;
        write_void(&mut buf, SEEK_HEAD_ROOM);

        let info_pos = start + buf.len() as u64 - segment_data;
        let mut info = Vec::new();
        write_uint(&mut info, ids::TIMESTAMP_SCALE, 1_000_000);
        write_bytes(&mut info, ids::MUXING_APP, b"lilt-recorder");
        write_bytes(&mut info, ids::WRITING_APP, b"lilt-recorder");
        let duration_in_info = info.len();
        write_void(&mut info, DURATION_ROOM);
        write_id(&mut buf, ids::INFO);
        write_size(&mut buf, info.len() as u64);
        let duration_at = start + buf.len() as u64 + duration_in_info as u64;
        buf.extend_from_slice(&info);

        let tracks_pos = start + buf.len() as u64 - segment_data;
        let mut body = Vec::new();
        let mut patches = Vec::new();
        for (i, t) in tracks.iter().enumerate() {
            let (entry, codec_at) = track_entry(i as u64 + 1, t);
            if let Some((id_at, room_at)) = codec_at {
                let base = body.len() + entry_header_len(entry.len());
                patches.push((i as u64 + 1, base + id_at, base + room_at));
            }
            write_master(&mut body, ids::TRACK_ENTRY, &entry);
        }
        write_id(&mut buf, ids::TRACKS);
        write_size(&mut buf, body.len() as u64);
        let body_at = start + buf.len() as u64;
        let codec_patch = patches
            .into_iter()
            .map(|(n, id_at, room_at)| (n, body_at + id_at as u64, body_at + room_at as u64))
            .collect();
        buf.extend_from_slice(&body);

        out.write_all(&buf)?;
        out.flush()?;
        let written = start + buf.len() as u64 - segment_data;
        Ok(WebmWriter {
            out,
            tracks,
            segment_data,
            segment_size_at,
            seek_head_at,
            duration_at,
            info_pos,
            tracks_pos,
            cluster: None,
            cues: Vec::new(),
            written,
            last_ms: 0,
            track_last_ms: Vec::new(),
            end_ms: 0,
            codec_patch,
        })
    }

    /// Sets video track `track`'s codec and CodecPrivate (written in place
    /// in the header; call it before the track's first frame).
    pub fn set_video_codec(
        &mut self,
        track: u64,
        codec: VideoCodec,
        codec_private: Option<&[u8]>,
    ) -> Result<(), WebmError> {
        let Some(&(_, id_at, room_at)) = self.codec_patch.iter().find(|(n, _, _)| *n == track)
        else {
            return Err(WebmError::NoTrack(track));
        };
        let room = codec_private_room(codec_private)?;
        let end = self.out.stream_position()?;
        self.out.seek(SeekFrom::Start(id_at))?;
        self.out.write_all(codec.codec_id().as_bytes())?;
        self.out.seek(SeekFrom::Start(room_at))?;
        self.out.write_all(&room)?;
        self.out.seek(SeekFrom::Start(end))?;
        if let Some(Track::Video { codec: c, .. }) =
            self.tracks.get_mut((track as usize).wrapping_sub(1))
        {
            *c = codec;
        }
        Ok(())
    }

    /// The tracks, in track-number order.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// The end time so far (last frame plus its duration), in ms.
    pub fn duration_ms(&self) -> u64 {
        self.end_ms
    }

    /// Adds one frame of track `track` (1-based) at `time_ms`, lasting
    /// `duration_ms` (only used for the file's duration).
    pub fn write_frame(
        &mut self,
        track: u64,
        time_ms: u64,
        duration_ms: u64,
        keyframe: bool,
        data: &[u8],
    ) -> Result<(), WebmError> {
        let kind = self
            .tracks
            .get((track as usize).wrapping_sub(1))
            .ok_or(WebmError::NoTrack(track))?;
        let is_video = matches!(kind, Track::Video { .. });
        let video_key = is_video && keyframe;
        let has_video = self.tracks.iter().any(|t| matches!(t, Track::Video { .. }));
        let mut time_ms = time_ms.max(self.cluster.as_ref().map(|c| c.0).unwrap_or(0));
        let index = (track as usize).saturating_sub(1);
        if self.track_last_ms.len() <= index {
            self.track_last_ms.resize(index + 1, None);
        }
        if let Some(Some(last)) = self.track_last_ms.get(index)
            && time_ms <= *last
        {
            time_ms = last + 1;
        }
        if let Some(slot) = self.track_last_ms.get_mut(index) {
            *slot = Some(time_ms);
        }
        let close = match &self.cluster {
            None => false,
            Some((start, body, _)) => {
                video_key
                    || time_ms.saturating_sub(*start) >= MAX_CLUSTER_MS
                    || body.len() >= MAX_CLUSTER_BYTES
            }
        };
        if close {
            self.close_cluster()?;
        }
        if self.cluster.is_none() {
            let mut body = Vec::new();
            write_uint(&mut body, ids::TIMESTAMP, time_ms);
            // Without video, every cluster is a seek point.
            self.cluster = Some((time_ms, body, video_key || !has_video));
        }
        if let Some((start, body, _)) = &mut self.cluster {
            let rel = (time_ms - *start).min(i16::MAX as u64) as i16;
            write_id(body, ids::SIMPLE_BLOCK);
            write_size(body, 4 + data.len() as u64);
            body.push(0x80 | track as u8);
            body.extend_from_slice(&rel.to_be_bytes());
            body.push(if keyframe { 0x80 } else { 0 });
            body.extend_from_slice(data);
        }
        self.last_ms = self.last_ms.max(time_ms);
        self.end_ms = self.end_ms.max(time_ms + duration_ms);
        Ok(())
    }

    /// Writes the cluster being built, whole, and flushes.
    pub fn close_cluster(&mut self) -> Result<(), WebmError> {
        let Some((start, body, seekable)) = self.cluster.take() else {
            return Ok(());
        };
        let mut buf = Vec::with_capacity(body.len() + 12);
        write_master(&mut buf, ids::CLUSTER, &body);
        if seekable {
            let track = self
                .tracks
                .iter()
                .position(|t| matches!(t, Track::Video { .. }))
                .unwrap_or(0) as u64
                + 1;
            self.cues.push(CuePoint {
                time_ms: start,
                track,
                cluster_pos: self.written,
            });
        }
        self.out.write_all(&buf)?;
        self.written += buf.len() as u64;
        // Keep the Duration right up to this cluster, for a file that is
        // never finished.
        let end = self.out.stream_position()?;
        let mut dur = Vec::new();
        write_float(&mut dur, ids::DURATION, self.end_ms as f64);
        self.out.seek(SeekFrom::Start(self.duration_at))?;
        self.out.write_all(&dur)?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(())
    }

    /// Closes the last cluster, writes the Cues and patches the Segment
    /// size, Duration and SeekHead. Returns the output.
    pub fn finish(mut self) -> Result<W, WebmError> {
        self.close_cluster()?;
        let cues_pos = self.written;
        let mut cues = Vec::new();
        for c in &self.cues {
            let mut pos = Vec::new();
            write_uint(&mut pos, ids::CUE_TRACK, c.track);
            write_uint(&mut pos, ids::CUE_CLUSTER_POSITION, c.cluster_pos);
            let mut point = Vec::new();
            write_uint(&mut point, ids::CUE_TIME, c.time_ms);
            write_master(&mut point, ids::CUE_TRACK_POSITIONS, &pos);
            write_master(&mut cues, ids::CUE_POINT, &point);
        }
        let mut buf = Vec::new();
        if !self.cues.is_empty() {
            write_master(&mut buf, ids::CUES, &cues);
        }
        self.out.write_all(&buf)?;
        self.written += buf.len() as u64;
        let end = self.out.stream_position()?;

        // Segment size: 8 bytes, in place of the unknown size.
        let mut size = Vec::new();
        crate::ebml::write_size_with_len(&mut size, self.written, 8);
        self.out.seek(SeekFrom::Start(self.segment_size_at))?;
        self.out.write_all(&size)?;

        let mut dur = Vec::new();
        write_float(&mut dur, ids::DURATION, self.end_ms as f64);
        self.out.seek(SeekFrom::Start(self.duration_at))?;
        self.out.write_all(&dur)?;

        let mut seeks = Vec::new();
        let mut entries = vec![(ids::INFO, self.info_pos), (ids::TRACKS, self.tracks_pos)];
        if !self.cues.is_empty() {
            entries.push((ids::CUES, cues_pos));
        }
        for (id, pos) in entries {
            let mut seek = Vec::new();
            let mut idb = Vec::new();
            write_id(&mut idb, id);
            write_bytes(&mut seek, ids::SEEK_ID, &idb);
            write_uint(&mut seek, ids::SEEK_POSITION, pos);
            write_master(&mut seeks, ids::SEEK, &seek);
        }
        let mut head = Vec::new();
        write_master(&mut head, ids::SEEK_HEAD, &seeks);
        if head.len() + 2 <= SEEK_HEAD_ROOM {
            let rest = SEEK_HEAD_ROOM - head.len();
            write_void(&mut head, rest);
            self.out.seek(SeekFrom::Start(self.seek_head_at))?;
            self.out.write_all(&head)?;
        }
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        let _ = self.segment_data;
        Ok(self.out)
    }
}

/// The room after a video track's CodecID: a CodecPrivate (if any) and a
/// Void filling the rest, exactly [`CODEC_PRIVATE_ROOM`] bytes.
fn codec_private_room(private: Option<&[u8]>) -> Result<Vec<u8>, WebmError> {
    let mut out = Vec::new();
    if let Some(p) = private {
        // ID (2 bytes), a 2-byte size, the data: the rest is 0 or >= 2.
        if p.len() + 4 > CODEC_PRIVATE_ROOM || p.len() >= 0x3FFF {
            return Err(WebmError::CodecPrivateTooLarge(p.len()));
        }
        write_id(&mut out, ids::CODEC_PRIVATE);
        let rest = CODEC_PRIVATE_ROOM - (p.len() + 4);
        let size_len = if rest == 1 { 3 } else { 2 };
        crate::ebml::write_size_with_len(&mut out, p.len() as u64, size_len);
        out.extend_from_slice(p);
    }
    let rest = CODEC_PRIVATE_ROOM - out.len();
    if rest > 0 {
        write_void(&mut out, rest);
    }
    Ok(out)
}

/// Bytes of a TrackEntry's ID and size for a body of `len` bytes.
fn entry_header_len(len: usize) -> usize {
    let mut v = Vec::new();
    write_id(&mut v, ids::TRACK_ENTRY);
    write_size(&mut v, len as u64);
    v.len()
}

/// A TrackEntry's body, and for a video track the offsets in it of the
/// CodecID's value and of the CodecPrivate room.
fn track_entry(number: u64, track: &Track) -> (Vec<u8>, Option<(usize, usize)>) {
    let mut e = Vec::new();
    let mut codec_at = None;
    write_uint(&mut e, ids::TRACK_NUMBER, number);
    write_uint(&mut e, ids::TRACK_UID, number);
    write_uint(&mut e, ids::FLAG_LACING, 0);
    match track {
        Track::Video {
            codec,
            width,
            height,
        } => {
            write_uint(&mut e, ids::TRACK_TYPE, 1);
            write_bytes(&mut e, ids::CODEC_ID, codec.codec_id().as_bytes());
            let id_at = e.len() - codec.codec_id().len();
            let room_at = e.len();
            e.extend_from_slice(&codec_private_room(None).unwrap_or_default());
            codec_at = Some((id_at, room_at));
            let mut v = Vec::new();
            write_uint(&mut v, ids::PIXEL_WIDTH, u64::from(*width));
            write_uint(&mut v, ids::PIXEL_HEIGHT, u64::from(*height));
            write_master(&mut e, ids::VIDEO, &v);
        }
        Track::Opus { channels, pre_skip } => {
            write_uint(&mut e, ids::TRACK_TYPE, 2);
            write_bytes(&mut e, ids::CODEC_ID, b"A_OPUS");
            write_bytes(&mut e, ids::CODEC_PRIVATE, &opus_head(*channels, *pre_skip));
            write_uint(
                &mut e,
                ids::CODEC_DELAY,
                u64::from(*pre_skip) * 1_000_000_000 / 48_000,
            );
            write_uint(&mut e, ids::SEEK_PRE_ROLL, 80_000_000);
            let mut a = Vec::new();
            write_float(&mut a, ids::SAMPLING_FREQUENCY, 48_000.0);
            write_uint(&mut a, ids::CHANNELS, u64::from(*channels));
            write_master(&mut e, ids::AUDIO, &a);
        }
    }
    (e, codec_at)
}
