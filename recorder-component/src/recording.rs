//! One recording's media: RTP of every participant in, one WebM out — the
//! dominant speaker's video copied (switching at keyframes) and everyone's
//! audio mixed into one Opus track, all on one clock.
//!
//! Video is VP8, VP9 or AV1, as the payload type of each stream says (the
//! focus's Jingle names them; an unknown one is taken for VP8). The file's
//! video track takes the codec of the first frame written (its CodecID and,
//! for AV1, its `av1C` are patched into the header then); a speaker
//! sending another codec is not shown in it (the per-participant files
//! have each participant's own).
//!
//! Sans-IO apart from the file it is given (any `Write + Seek`): packets
//! and time (`Instant`) in, keyframe requests and the next deadline out.
//! Call [`Recording::handle_timeout`] at [`Recording::next_timeout`]; it
//! encodes the mix and writes audio and the video waiting for it in time
//! order. The SSRC-to-endpoint mapping (from the Jingle sources) is the
//! caller's: packets come in already tagged with their endpoint.

use std::collections::{HashMap, VecDeque};
use std::io::{Seek, Write};
use std::time::{Duration, Instant};

use crate::depacketizer::{VideoDepacketizer, VideoFrame};
use crate::mixer::{Mixer, MixerError};
use crate::participant_files::ParticipantFiles;
use crate::rtp::{RtpPacket, is_rtcp, pli, sender_report, ssrc_of};
use crate::sources::SourceMap;
use crate::speaker::{Choice, SpeakerSelector};
use crate::timeline::{Micros, StreamClock, Timeline};
use crate::webm::{Track, VideoCodec, WebmError, WebmWriter};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Media {
    Audio,
    Video,
}

const VIDEO_TRACK: u64 = 1;
const AUDIO_TRACK: u64 = 2;
/// Keyframe requests to one endpoint at most this often.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// Least distance between two video frames in the file.
const MIN_VIDEO_GAP_MS: u64 = 1;
/// Least distance between the last frame of one speaker and the first of
/// the next (one frame at 30 fps).
const SWITCH_GAP_MS: u64 = 34;
/// Frame duration assumed for the last video frame.
const VIDEO_FRAME_MS: u64 = 33;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error(transparent)]
    Webm(#[from] WebmError),
    #[error(transparent)]
    Mixer(#[from] MixerError),
}

/// Counters of one recording (what went into the file, what did not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingStats {
    pub video_frames: u64,
    pub audio_frames: u64,
    pub bad_packets: u64,
    pub video_frames_lost: u64,
    /// (time in ms, endpoint) of each video switch.
    pub switches: Vec<(u64, String)>,
}

#[derive(Default)]
struct Streams {
    audio: Option<StreamClock>,
    video: Option<StreamClock>,
    depacketizer: Option<VideoDepacketizer>,
    last_keyframe_request: Option<Instant>,
}

/// The media side of one recording.
pub struct Recording<W: Write + Seek> {
    start: Instant,
    writer: WebmWriter<W>,
    timeline: Timeline,
    participants: HashMap<String, Streams>,
    ssrcs: HashMap<u32, (String, Media)>,
    speaker: SpeakerSelector,
    mixer: Mixer,
    /// Video frames waiting for the audio to reach their time.
    video_queue: VecDeque<(u64, bool, Vec<u8>)>,
    last_video_ms: Option<u64>,
    video_shift_ms: u64,
    keyframe_requests: VecDeque<String>,
    next_tick: Instant,
    stats: RecordingStats,
    participant_files: Option<ParticipantFiles>,
    sources: SourceMap,
    /// Video payload types to codecs, from the focus's Jingle.
    video_codecs: HashMap<u8, VideoCodec>,
    /// The file's video codec, once its first frame is written.
    video_codec: Option<VideoCodec>,
}

impl<W: Write + Seek> Recording<W> {
    /// Starts a recording at `now` into `out`; `width`×`height` is what the
    /// video track announces (the VP8 frames carry their own sizes).
    pub fn new(
        out: W,
        now: Instant,
        width: u32,
        height: u32,
    ) -> Result<Recording<W>, RecordingError> {
        let mixer = Mixer::new()?;
        let writer = WebmWriter::new(
            out,
            vec![
                Track::Video {
                    codec: VideoCodec::Vp8,
                    width,
                    height,
                },
                Track::Opus {
                    channels: 1,
                    pre_skip: mixer.pre_skip(),
                },
            ],
        )?;
        Ok(Recording {
            start: now,
            writer,
            timeline: Timeline::new(),
            participants: HashMap::new(),
            ssrcs: HashMap::new(),
            speaker: SpeakerSelector::new(),
            mixer,
            video_queue: VecDeque::new(),
            last_video_ms: None,
            video_shift_ms: 0,
            keyframe_requests: VecDeque::new(),
            next_tick: now,
            stats: RecordingStats::default(),
            participant_files: None,
            sources: SourceMap::new(),
            video_codecs: HashMap::new(),
            video_codec: None,
        })
    }

    /// Also writes one file per participant (its own video and audio,
    /// copied, on this recording's clock) into `dir`.
    pub fn with_participant_files(mut self, dir: &std::path::Path) -> Recording<W> {
        self.participant_files = Some(ParticipantFiles::new(dir, 1280, 720));
        self
    }

    pub fn stats(&self) -> &RecordingStats {
        &self.stats
    }

    fn micros(&self, now: Instant) -> Micros {
        now.saturating_duration_since(self.start).as_micros() as Micros
    }

    /// The dominant speaker changed (from the bridge's
    /// DominantSpeakerEndpointChangeEvent). The switch happens at the new
    /// speaker's next keyframe, which is requested now.
    pub fn set_speaker(&mut self, now: Instant, endpoint: &str) {
        self.speaker.set_speaker(endpoint);
        if self.speaker.wanted() == Some(endpoint) {
            self.request_keyframe(now, endpoint, true);
        }
    }

    /// A participant left: its streams go; if it was on screen, the next
    /// keyframe of anyone (or of the wanted speaker) takes its place.
    pub fn remove_participant(&mut self, endpoint: &str) -> Result<(), RecordingError> {
        if let Some(p) = &mut self.participant_files {
            p.close(endpoint)?;
        }
        self.participants.remove(endpoint);
        self.ssrcs.retain(|_, (e, _)| e != endpoint);
        self.mixer.remove(endpoint);
        self.speaker.remove(endpoint);
        Ok(())
    }

    /// The next endpoint to send a keyframe request (RTCP PLI) to.
    pub fn poll_keyframe_request(&mut self) -> Option<String> {
        self.keyframe_requests.pop_front()
    }

    fn request_keyframe(&mut self, now: Instant, endpoint: &str, force: bool) {
        let streams = self.participants.entry(endpoint.to_string()).or_default();
        let due = streams
            .last_keyframe_request
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_REQUEST_INTERVAL);
        if force || due {
            streams.last_keyframe_request = Some(now);
            self.keyframe_requests.push_back(endpoint.to_string());
        }
    }

    /// A Jingle element from the focus (`session-initiate`, `source-add`,
    /// `source-remove`): whose SSRCs are whose.
    pub fn handle_jingle(&mut self, jingle: &xmpp_core::Element) {
        if let Err(e) = self.sources.apply(jingle) {
            tracing::debug!(%e, "sources in a Jingle element");
        }
        for desc in jingle
            .children()
            .filter_map(|c| c.get_child("description", media_signalling::xml::ns::RTP))
        {
            let Ok(d) = media_signalling::xml::parse_jingle_description(desc) else {
                continue;
            };
            for pt in &d.payload_types {
                if let Some(codec) = video_codec_named(&pt.name) {
                    self.video_codecs.insert(pt.id, codec);
                }
            }
        }
    }

    /// Video payload type `pt` is `codec` (what the focus's Jingle says;
    /// for callers that feed RTP without it).
    pub fn set_video_payload_type(&mut self, pt: u8, codec: VideoCodec) {
        self.video_codecs.insert(pt, codec);
    }

    /// The SSRC map the Jingle elements built.
    pub fn sources(&self) -> &SourceMap {
        &self.sources
    }

    /// One datagram from the bridge (RTP or RTCP, already decrypted),
    /// demultiplexed by SSRC with the sources the focus announced. Unknown
    /// SSRCs and RTX are counted as bad and dropped.
    pub fn handle_packet(&mut self, now: Instant, data: &[u8]) -> Result<(), RecordingError> {
        if is_rtcp(data) {
            self.handle_rtcp(now, data);
            return Ok(());
        }
        let owner = ssrc_of(data).and_then(|s| self.sources.lookup(s)).cloned();
        match owner {
            Some(o) if !o.rtx => self.handle_rtp(now, &o.endpoint, o.media, data),
            _ => {
                self.stats.bad_packets += 1;
                Ok(())
            }
        }
    }

    /// An RTCP PLI for an endpoint's video, from `sender_ssrc` (one per
    /// video SSRC the focus announced for it).
    pub fn pli_for(&self, endpoint: &str, sender_ssrc: u32) -> Vec<Vec<u8>> {
        self.sources
            .video_ssrcs(endpoint)
            .into_iter()
            .map(|s| pli(sender_ssrc, s))
            .collect()
    }

    /// One RTP packet of `endpoint`'s `media`. A packet that does not parse
    /// is counted and dropped.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        endpoint: &str,
        media: Media,
        packet: &[u8],
    ) -> Result<(), RecordingError> {
        let arrival = self.micros(now);
        let Ok(rtp) = RtpPacket::parse(packet) else {
            self.stats.bad_packets += 1;
            return Ok(());
        };
        self.ssrcs.insert(rtp.ssrc, (endpoint.to_string(), media));
        let streams = self.participants.entry(endpoint.to_string()).or_default();
        match media {
            Media::Audio => {
                let clock = streams
                    .audio
                    .get_or_insert_with(|| StreamClock::new(48_000));
                let ext = clock.extend(rtp.timestamp);
                let at = clock.place(ext, arrival, &self.timeline);
                self.mixer.push(endpoint, at, rtp.payload)?;
                if let Some(p) = &mut self.participant_files {
                    p.audio(endpoint, (at / 1000).max(0) as u64, rtp.payload)?;
                }
            }
            Media::Video => {
                let codec = self
                    .video_codecs
                    .get(&rtp.payload_type)
                    .copied()
                    .unwrap_or(VideoCodec::Vp8);
                let depacketizer = match &mut streams.depacketizer {
                    Some(d) if d.codec() == codec => d,
                    slot => slot.insert(VideoDepacketizer::new(codec)),
                };
                if depacketizer.push(&rtp).is_err() {
                    self.stats.bad_packets += 1;
                    return Ok(());
                }
                let mut frames = Vec::new();
                while let Some(f) = depacketizer.pop_frame() {
                    frames.push(f);
                }
                let needs_key = depacketizer.keyframe_needed();
                self.stats.video_frames_lost = self
                    .participants
                    .values()
                    .filter_map(|s| s.depacketizer.as_ref())
                    .map(|d| d.frames_lost())
                    .sum();
                for f in frames {
                    self.video_frame(endpoint, arrival, codec, f)?;
                }
                let on_screen = self.speaker.current() == Some(endpoint)
                    || self.speaker.wanted() == Some(endpoint)
                    || self.speaker.current().is_none();
                if needs_key && on_screen {
                    self.request_keyframe(now, endpoint, false);
                }
            }
        }
        Ok(())
    }

    /// An RTCP packet from `endpoint`: its sender report aligns its streams.
    pub fn handle_rtcp(&mut self, now: Instant, packet: &[u8]) {
        let arrival = self.micros(now);
        let Some((ssrc, ntp, rtp_ts)) = sender_report(packet) else {
            return;
        };
        let Some((endpoint, media)) = self.ssrcs.get(&ssrc).cloned() else {
            return;
        };
        let Some(streams) = self.participants.get_mut(&endpoint) else {
            return;
        };
        let clock = match media {
            Media::Audio => streams
                .audio
                .get_or_insert_with(|| StreamClock::new(48_000)),
            Media::Video => streams
                .video
                .get_or_insert_with(|| StreamClock::new(90_000)),
        };
        clock.on_sender_report(rtp_ts, ntp, arrival, &mut self.timeline);
    }

    fn video_frame(
        &mut self,
        endpoint: &str,
        arrival: Micros,
        codec: VideoCodec,
        frame: VideoFrame,
    ) -> Result<(), RecordingError> {
        let Some(streams) = self.participants.get_mut(endpoint) else {
            return Ok(());
        };
        let clock = streams
            .video
            .get_or_insert_with(|| StreamClock::new(90_000));
        let ext = clock.extend(frame.timestamp as u32);
        let at = clock.place(ext, arrival, &self.timeline);
        if let Some(p) = &mut self.participant_files {
            p.video(endpoint, (at / 1000).max(0) as u64, codec, &frame)?;
        }
        if self.video_codec.is_some_and(|c| c != codec) {
            return Ok(()); // another codec than the file's
        }
        let choice = self.speaker.choose(endpoint, frame.keyframe);
        if choice == Choice::Skip {
            return Ok(());
        }
        if self.video_codec.is_none() {
            self.writer
                .set_video_codec(VIDEO_TRACK, codec, frame.codec_private.as_deref())?;
            self.video_codec = Some(codec);
        }
        let ms = (at / 1000).max(0) as u64;
        // At a switch the new speaker's clock may be a little behind the
        // old one's: its frames are shifted (for this stint) to come at
        // least one frame interval after the last written, so that players
        // and ffmpeg's frame-rate grid see increasing times.
        if choice == Choice::Switch {
            self.video_shift_ms = self
                .last_video_ms
                .map(|last| (last + SWITCH_GAP_MS).saturating_sub(ms))
                .unwrap_or(0);
        }
        let ms = ms + self.video_shift_ms;
        let ms = match self.last_video_ms {
            Some(last) => ms.max(last + MIN_VIDEO_GAP_MS),
            None => ms,
        };
        self.last_video_ms = Some(ms);
        if choice == Choice::Switch {
            self.stats.switches.push((ms, endpoint.to_string()));
        }
        self.video_queue.push_back((ms, frame.keyframe, frame.data));
        Ok(())
    }

    /// When [`Recording::handle_timeout`] is due.
    pub fn next_timeout(&self) -> Instant {
        self.next_tick
    }

    /// Encodes the mix that is due and writes it with the video before it.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), RecordingError> {
        let frames = self.mixer.pull(self.micros(now))?;
        self.write_audio(frames)?;
        self.next_tick = now + Duration::from_millis(20);
        Ok(())
    }

    fn write_audio(&mut self, frames: Vec<crate::mixer::MixedFrame>) -> Result<(), RecordingError> {
        for a in frames {
            while let Some((ms, key, data)) = self.video_queue.front() {
                if *ms > a.time_ms {
                    break;
                }
                self.writer
                    .write_frame(VIDEO_TRACK, *ms, VIDEO_FRAME_MS, *key, data)?;
                self.stats.video_frames += 1;
                self.video_queue.pop_front();
            }
            self.writer
                .write_frame(AUDIO_TRACK, a.time_ms, 20, true, &a.packet)?;
            self.stats.audio_frames += 1;
        }
        Ok(())
    }

    /// A clean stop at `now`: the rest of the mix, the rest of the video,
    /// cues and duration. Returns the file.
    pub fn finish(self, now: Instant) -> Result<W, RecordingError> {
        self.finish_all(now).map(|(w, _)| w)
    }

    /// [`Recording::finish`], also returning the per-participant files.
    pub fn finish_all(
        mut self,
        now: Instant,
    ) -> Result<(W, Vec<std::path::PathBuf>), RecordingError> {
        let participant_files = match self.participant_files.take() {
            Some(p) => p.finish()?,
            None => Vec::new(),
        };
        let frames = self.mixer.flush(self.micros(now))?;
        self.write_audio(frames)?;
        while let Some((ms, key, data)) = self.video_queue.pop_front() {
            self.writer
                .write_frame(VIDEO_TRACK, ms, VIDEO_FRAME_MS, key, &data)?;
            self.stats.video_frames += 1;
        }
        Ok((self.writer.finish()?, participant_files))
    }
}

/// The video codec of a payload-type name (`VP8`, `VP9`, `AV1`).
pub fn video_codec_named(name: &str) -> Option<VideoCodec> {
    match name.to_ascii_lowercase().as_str() {
        "vp8" => Some(VideoCodec::Vp8),
        "vp9" => Some(VideoCodec::Vp9),
        "av1" => Some(VideoCodec::Av1),
        _ => None,
    }
}
