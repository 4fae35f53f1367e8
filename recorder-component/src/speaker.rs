//! Which participant's video is in the file: the dominant speaker, switched
//! only at a keyframe of the new speaker (until then the old one goes on),
//! so that the VP8 copied into the file never starts on a delta frame.

/// The video selection of one recording.
#[derive(Debug, Clone, Default)]
pub struct SpeakerSelector {
    current: Option<String>,
    wanted: Option<String>,
}

/// What to do with one video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Write it.
    Write,
    /// Write it: it is the new speaker's keyframe (a switch).
    Switch,
    /// Not the one being recorded.
    Skip,
}

impl SpeakerSelector {
    pub fn new() -> SpeakerSelector {
        SpeakerSelector::default()
    }

    /// The endpoint whose video is written now.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// The endpoint switched to at its next keyframe, if any.
    pub fn wanted(&self) -> Option<&str> {
        self.wanted.as_deref()
    }

    /// The dominant speaker changed.
    pub fn set_speaker(&mut self, endpoint: &str) {
        if self.current.as_deref() == Some(endpoint) {
            self.wanted = None;
        } else {
            self.wanted = Some(endpoint.to_string());
        }
    }

    /// A participant left (or stopped its video): stop writing it.
    pub fn remove(&mut self, endpoint: &str) {
        if self.current.as_deref() == Some(endpoint) {
            self.current = None;
        }
        if self.wanted.as_deref() == Some(endpoint) {
            self.wanted = None;
        }
    }

    /// Decides for one frame of `endpoint`.
    pub fn choose(&mut self, endpoint: &str, keyframe: bool) -> Choice {
        let is_wanted = self.wanted.as_deref() == Some(endpoint);
        if keyframe && (is_wanted || (self.current.is_none() && self.wanted.is_none())) {
            self.current = Some(endpoint.to_string());
            self.wanted = None;
            return Choice::Switch;
        }
        if self.current.as_deref() == Some(endpoint) {
            Choice::Write
        } else {
            Choice::Skip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_at_the_new_speakers_keyframe_only() {
        let mut s = SpeakerSelector::new();
        assert_eq!(s.choose("a", false), Choice::Skip);
        assert_eq!(s.choose("a", true), Choice::Switch);
        assert_eq!(s.choose("b", true), Choice::Skip);
        s.set_speaker("b");
        assert_eq!(s.choose("b", false), Choice::Skip);
        assert_eq!(s.choose("a", false), Choice::Write);
        assert_eq!(s.choose("b", true), Choice::Switch);
        assert_eq!(s.choose("a", false), Choice::Skip);
        assert_eq!(s.current(), Some("b"));
        s.remove("b");
        assert_eq!(s.choose("a", true), Choice::Switch);
    }
}
