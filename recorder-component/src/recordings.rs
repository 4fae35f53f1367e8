//! The runtime's side of the recorder's events: the files. On
//! [`RecorderEvent::Started`] it makes `<dir>/<session id>/` and opens the
//! session's WebM ([`Recording`]); the media side then feeds that
//! recording (see [`Recordings::recording_mut`]); on
//! [`RecorderEvent::Stopped`] it finishes the file (cues, duration), writes
//! `metadata.json` and runs the finalize script with the directory (on its
//! own thread, as Jibri runs it after the recording).
//!
//! Many recordings run at once; each one's failure (a full disk, a write
//! error) is reported with its session id for [`crate::Recorder::media_failed`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::files::{FilesError, create_session_dir, run_finalize, write_metadata};
use crate::recorder::RecorderEvent;
use crate::recording::{Recording, RecordingError};

/// Width and height the video track announces until frames say otherwise.
pub const DEFAULT_SIZE: (u32, u32) = (1280, 720);

#[derive(Debug, thiserror::Error)]
pub enum RecordingsError {
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error("{0}: {1}")]
    Open(PathBuf, std::io::Error),
    #[error(transparent)]
    Recording(#[from] RecordingError),
}

struct Active {
    file: PathBuf,
    recording: Recording<BufWriter<File>>,
}

/// What a finished recording left on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub session_id: String,
    pub dir: PathBuf,
    pub file: PathBuf,
    /// The finalize script's thread, when there is a script.
    pub finalize: bool,
}

/// The open recordings of one recorder.
pub struct Recordings {
    base: PathBuf,
    finalize_script: Option<PathBuf>,
    active: BTreeMap<String, Active>,
    finalizers: Vec<std::thread::JoinHandle<()>>,
}

impl Recordings {
    pub fn new(base: &Path, finalize_script: Option<PathBuf>) -> Recordings {
        Recordings {
            base: base.to_path_buf(),
            finalize_script,
            active: BTreeMap::new(),
            finalizers: Vec::new(),
        }
    }

    /// The recording of a session, to feed its media.
    pub fn recording_mut(&mut self, session_id: &str) -> Option<&mut Recording<BufWriter<File>>> {
        self.active.get_mut(session_id).map(|a| &mut a.recording)
    }

    /// The file a session is writing.
    pub fn file(&self, session_id: &str) -> Option<&Path> {
        self.active.get(session_id).map(|a| a.file.as_path())
    }

    /// Acts on one event of the recorder. `Stopped` returns what was left.
    pub fn handle_event(
        &mut self,
        now: Instant,
        event: &RecorderEvent,
    ) -> Result<Option<Finished>, RecordingsError> {
        match event {
            RecorderEvent::Started {
                session_id, room, ..
            } => {
                let dir = create_session_dir(&self.base, session_id)?;
                let name = room.split('@').next().unwrap_or("recording");
                let safe: String = name
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                let file = dir.join(format!("{safe}_{}.webm", timestamp(SystemTime::now())));
                let out =
                    File::create(&file).map_err(|e| RecordingsError::Open(file.clone(), e))?;
                let recording =
                    Recording::new(BufWriter::new(out), now, DEFAULT_SIZE.0, DEFAULT_SIZE.1)?;
                self.active
                    .insert(session_id.clone(), Active { file, recording });
                Ok(None)
            }
            RecorderEvent::ParticipantLeft {
                session_id,
                endpoint,
            } => {
                if let Some(a) = self.active.get_mut(session_id) {
                    a.recording.remove_participant(endpoint)?;
                }
                Ok(None)
            }
            RecorderEvent::Stopped {
                session_id,
                dir,
                metadata,
                ..
            } => {
                let Some(a) = self.active.remove(session_id) else {
                    return Ok(None);
                };
                let finished = a.recording.finish(now);
                write_metadata(dir, metadata)?;
                let finalize = match &self.finalize_script {
                    Some(script) => {
                        let (script, d) = (script.clone(), dir.clone());
                        self.finalizers.push(std::thread::spawn(move || {
                            match run_finalize(&script, &d) {
                                Ok(s) if s.success() => {}
                                Ok(s) => {
                                    tracing::warn!(dir = %d.display(), %s, "finalize script failed")
                                }
                                Err(e) => tracing::warn!(%e, "finalize script"),
                            }
                        }));
                        true
                    }
                    None => false,
                };
                finished?;
                Ok(Some(Finished {
                    session_id: session_id.clone(),
                    dir: dir.clone(),
                    file: a.file,
                    finalize,
                }))
            }
            RecorderEvent::CallIq { session_id, iq } => {
                // The sources of the focus's Jingle; answering it is the
                // media link's (crate::media_runtime).
                if let (Some(a), Some(j)) = (
                    self.active.get_mut(session_id),
                    iq.get_child("jingle", "urn:xmpp:jingle:1"),
                ) {
                    a.recording.handle_jingle(j);
                }
                Ok(None)
            }
            RecorderEvent::ParticipantJoined { .. } => Ok(None),
        }
    }

    /// The earliest deadline of the open recordings.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.active
            .values()
            .map(|a| a.recording.next_timeout())
            .min()
    }

    /// Runs the due recordings; returns the sessions that failed.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(String, RecordingError)> {
        let mut failed = Vec::new();
        for (id, a) in &mut self.active {
            if a.recording.next_timeout() <= now
                && let Err(e) = a.recording.handle_timeout(now)
            {
                failed.push((id.clone(), e));
            }
        }
        failed
    }

    /// Waits for the finalize scripts started so far.
    pub fn wait_finalizers(&mut self) {
        for h in self.finalizers.drain(..) {
            let _ = h.join();
        }
    }
}

/// `YYYY-MM-DD-HH-MM-SS` in UTC, as Jibri names its files.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}-{:02}-{:02}-{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_in_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01-00-00-00");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // 2024-02-29 23:59:59
        assert_eq!(timestamp(t), "2024-02-29-23-59-59");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_600); // 2027-01-01
        assert_eq!(timestamp(t), "2027-01-01-00-00-00");
    }
}
