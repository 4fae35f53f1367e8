//! The recordings on disk, in Jibri's layout: `<dir>/<session id>/` holds
//! the recording and a `metadata.json` (`meeting_url`, `participants`, and
//! whatever the focus passed as `file_recording_metadata` in `app_data`);
//! when a recording is done the finalize script runs with that directory as
//! its only argument. Free space is read with `statvfs`.
//!
//! This is the recorder's IO on files; the [`crate::recorder::Recorder`]
//! only says when (its events), the runtime calls these.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use serde_json::{Map, Value, json};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("session id {0:?} cannot name a directory")]
    BadSessionId(String),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("finalize script {0} failed: {1}")]
    Finalize(PathBuf, std::io::Error),
}

/// One participant as metadata.json lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    /// The endpoint id (the participant's nick in the room).
    pub id: String,
    pub name: Option<String>,
}

/// What metadata.json says about a recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub meeting_url: String,
    pub participants: Vec<ParticipantInfo>,
    /// `app_data`'s `file_recording_metadata`, merged at the top level as
    /// Jibri does.
    pub extra: Map<String, Value>,
}

impl Metadata {
    pub fn to_json(&self) -> Value {
        let mut m = self.extra.clone();
        m.insert("meeting_url".into(), json!(self.meeting_url));
        let participants: Vec<Value> = self
            .participants
            .iter()
            .map(|p| match &p.name {
                Some(n) => json!({"id": p.id, "name": n}),
                None => json!({"id": p.id}),
            })
            .collect();
        m.insert("participants".into(), Value::Array(participants));
        Value::Object(m)
    }
}

/// The `file_recording_metadata` object of a start request's `app_data`.
pub fn app_data_metadata(app_data: Option<&str>) -> Map<String, Value> {
    app_data
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .and_then(|v| v.get("file_recording_metadata").cloned())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default()
}

/// `<base>/<session id>`, refusing ids that would leave `base`.
pub fn session_dir(base: &Path, session_id: &str) -> Result<PathBuf, FilesError> {
    let ok = !session_id.is_empty()
        && session_id != "."
        && session_id != ".."
        && session_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(FilesError::BadSessionId(session_id.into()));
    }
    Ok(base.join(session_id))
}

/// Creates the session's directory.
pub fn create_session_dir(base: &Path, session_id: &str) -> Result<PathBuf, FilesError> {
    let dir = session_dir(base, session_id)?;
    std::fs::create_dir_all(&dir).map_err(|e| FilesError::Io(dir.clone(), e))?;
    Ok(dir)
}

/// Writes `metadata.json` into `dir`.
pub fn write_metadata(dir: &Path, metadata: &Metadata) -> Result<(), FilesError> {
    let path = dir.join("metadata.json");
    let text = serde_json::to_string_pretty(&metadata.to_json()).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| FilesError::Io(path, e))
}

/// Runs the finalize script with the directory as its argument and waits.
pub fn run_finalize(script: &Path, dir: &Path) -> Result<ExitStatus, FilesError> {
    Command::new(script)
        .arg(dir)
        .status()
        .map_err(|e| FilesError::Finalize(script.to_path_buf(), e))
}

/// Bytes free for an unprivileged user on the filesystem of `path`.
pub fn free_space(path: &Path) -> Result<u64, FilesError> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        FilesError::Io(
            path.to_path_buf(),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"),
        )
    })?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to memory
    // large enough for a statvfs, which the call fills on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(FilesError::Io(
            path.to_path_buf(),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_metadata_and_finalize() {
        let base = tempfile::tempdir().unwrap();
        assert!(session_dir(base.path(), "../etc").is_err());
        assert!(session_dir(base.path(), "a/b").is_err());
        assert!(session_dir(base.path(), "").is_err());
        let dir = create_session_dir(base.path(), "abc-123_x").unwrap();
        assert_eq!(dir, base.path().join("abc-123_x"));
        let meta = Metadata {
            meeting_url: "https://meet.example/room1".into(),
            participants: vec![
                ParticipantInfo {
                    id: "a1b2c3d4".into(),
                    name: Some("Alice".into()),
                },
                ParticipantInfo {
                    id: "e5f6a7b8".into(),
                    name: None,
                },
            ],
            extra: app_data_metadata(Some(
                r#"{"file_recording_metadata":{"share":true,"upload_credentials":{"x":1}}}"#,
            )),
        };
        write_metadata(&dir, &meta).unwrap();
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap())
                .unwrap();
        assert_eq!(v["meeting_url"], "https://meet.example/room1");
        assert_eq!(v["participants"][0]["id"], "a1b2c3d4");
        assert_eq!(v["participants"][0]["name"], "Alice");
        assert_eq!(v["participants"][1].get("name"), None);
        assert_eq!(v["share"], true);

        // The finalize script gets the directory.
        let script = base.path().join("finalize.sh");
        std::fs::write(&script, "#!/bin/sh\necho \"$1\" > \"$1/finalized\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(run_finalize(&script, &dir).unwrap().success());
        let said = std::fs::read_to_string(dir.join("finalized")).unwrap();
        assert_eq!(said.trim(), dir.to_str().unwrap());
        assert!(run_finalize(&base.path().join("missing.sh"), &dir).is_err());

        assert!(free_space(base.path()).unwrap() > 0);
        assert!(free_space(&base.path().join("nope")).is_err());
    }
}
