//! Per-participant files, for post-production (what Jibri cannot give):
//! one WebM per participant with its own video (every frame from its first
//! keyframe, copied) and its own Opus (copied, not transcoded), all on the
//! recording's one clock, so the files line up with each other and with the
//! mixed recording.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::depacketizer::VideoFrame;
use crate::webm::{Track, VideoCodec, WebmError, WebmWriter};

const VIDEO_TRACK: u64 = 1;
const AUDIO_TRACK: u64 = 2;

struct ParticipantFile {
    writer: WebmWriter<BufWriter<File>>,
    last_video_ms: Option<u64>,
    last_audio_ms: Option<u64>,
    /// The video's codec, from its first keyframe.
    codec: Option<VideoCodec>,
}

/// The per-participant files of one recording, in one directory.
pub struct ParticipantFiles {
    dir: PathBuf,
    width: u32,
    height: u32,
    files: HashMap<String, ParticipantFile>,
    done: Vec<PathBuf>,
}

impl ParticipantFiles {
    /// Files go to `dir/participant-<endpoint>.webm`.
    pub fn new(dir: &Path, width: u32, height: u32) -> ParticipantFiles {
        ParticipantFiles {
            dir: dir.to_path_buf(),
            width,
            height,
            files: HashMap::new(),
            done: Vec::new(),
        }
    }

    /// The path of an endpoint's file (endpoint ids are sanitised).
    pub fn path(&self, endpoint: &str) -> PathBuf {
        let safe: String = endpoint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("participant-{safe}.webm"))
    }

    fn file(&mut self, endpoint: &str) -> Result<&mut ParticipantFile, WebmError> {
        if !self.files.contains_key(endpoint) {
            let out = BufWriter::new(File::create(self.path(endpoint))?);
            let writer = WebmWriter::new(
                out,
                vec![
                    Track::Video {
                        codec: VideoCodec::Vp8,
                        width: self.width,
                        height: self.height,
                    },
                    Track::Opus {
                        channels: 2,
                        pre_skip: 312,
                    },
                ],
            )?;
            self.files.insert(
                endpoint.to_string(),
                ParticipantFile {
                    writer,
                    last_video_ms: None,
                    last_audio_ms: None,
                    codec: None,
                },
            );
        }
        self.files
            .get_mut(endpoint)
            .ok_or(WebmError::NoTrack(VIDEO_TRACK))
    }

    /// One Opus packet of `endpoint` at `ms` on the recording clock.
    pub fn audio(&mut self, endpoint: &str, ms: u64, packet: &[u8]) -> Result<(), WebmError> {
        let f = self.file(endpoint)?;
        let ms = f.last_audio_ms.map_or(ms, |l| ms.max(l + 1));
        f.last_audio_ms = Some(ms);
        f.writer.write_frame(AUDIO_TRACK, ms, 20, true, packet)
    }

    /// One whole video frame of `endpoint` at `ms`; the file's video
    /// starts at its first keyframe, in that frame's codec (frames of
    /// another codec after it are left out).
    pub fn video(
        &mut self,
        endpoint: &str,
        ms: u64,
        codec: VideoCodec,
        frame: &VideoFrame,
    ) -> Result<(), WebmError> {
        let f = self.file(endpoint)?;
        match f.codec {
            None if frame.keyframe => {
                f.writer
                    .set_video_codec(VIDEO_TRACK, codec, frame.codec_private.as_deref())?;
                f.codec = Some(codec);
            }
            Some(c) if c == codec => {}
            _ => return Ok(()),
        }
        let ms = f.last_video_ms.map_or(ms, |l| ms.max(l + 1));
        f.last_video_ms = Some(ms);
        f.writer
            .write_frame(VIDEO_TRACK, ms, 33, frame.keyframe, &frame.data)
    }

    /// A participant left: its file is finished.
    pub fn close(&mut self, endpoint: &str) -> Result<(), WebmError> {
        if let Some(f) = self.files.remove(endpoint) {
            f.writer.finish()?;
            self.done.push(self.path(endpoint));
        }
        Ok(())
    }

    /// Finishes every file; returns all the files written.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, WebmError> {
        let endpoints: Vec<String> = self.files.keys().cloned().collect();
        for e in endpoints {
            self.close(&e)?;
        }
        self.done.sort();
        Ok(self.done)
    }
}
