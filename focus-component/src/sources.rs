//! The conference's sources, by owner (endpoint id), and their validation
//! as Jicofo's `ValidatingConferenceSourceMap` does it: an SSRC, an msid or a
//! source name belongs to one endpoint only; groups are `SIM` or `FID` over
//! SSRCs the endpoint signalled, an `FID` pairs exactly two; at most
//! [`SourceLimits`] SSRCs and groups per endpoint. A refusal becomes a
//! `bad-request` with the reason as text, as Jicofo answers.

use std::collections::BTreeMap;

use media_signalling::{MediaKind, Source, SsrcGroup};

/// Per-endpoint limits (Jicofo's `max-ssrcs-per-user` and
/// `max-ssrc-groups-per-user`).
#[derive(Debug, Clone, Copy)]
pub struct SourceLimits {
    pub max_ssrcs: usize,
    pub max_groups: usize,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            max_ssrcs: 20,
            max_groups: 20,
        }
    }
}

/// Why sources were refused (the texts follow Jicofo's exceptions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("SSRC is already used: {0}")]
    SsrcAlreadyUsed(u32),
    #[error("Source name is already used: {0}")]
    NameAlreadyUsed(String),
    #[error("MSID is already used: {0}")]
    MsidConflict(String),
    #[error("SSRC limit ({0}) exceeded.")]
    SsrcLimitExceeded(usize),
    #[error("ssrc-group limit ({0}) exceeded.")]
    GroupLimitExceeded(usize),
    #[error("An SSRC group contains an SSRC, which hasn't been signaled as a source: {0:?}")]
    GroupContainsUnknownSource(Vec<u32>),
    #[error("Invalid FID group: {0:?}")]
    InvalidFidGroup(Vec<u32>),
    #[error("Invalid SIM group: {0:?}")]
    InvalidSimGroup(Vec<u32>),
    #[error("Source does not exist or is not owned by this endpoint: {0}")]
    SourceDoesNotExist(u32),
    #[error("{0}")]
    Parse(String),
}

/// Every endpoint's sources, keyed by endpoint id (the bridge's own
/// feedback sources are not kept here).
#[derive(Debug, Default, Clone)]
pub struct ConferenceSources {
    by_owner: BTreeMap<String, Vec<Source>>,
}

impl ConferenceSources {
    pub fn of(&self, owner: &str) -> &[Source] {
        self.by_owner.get(owner).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn owners(&self) -> impl Iterator<Item = (&String, &Vec<Source>)> {
        self.by_owner.iter()
    }

    fn others(&self, owner: &str) -> impl Iterator<Item = &Source> {
        self.by_owner
            .iter()
            .filter(move |(o, _)| o.as_str() != owner)
            .flat_map(|(_, v)| v.iter())
    }

    /// Checks `added` as sources of `owner` against everything signalled so
    /// far, without changing anything.
    pub fn validate_add(
        &self,
        owner: &str,
        added: &[Source],
        limits: SourceLimits,
    ) -> Result<(), SourceError> {
        let mine = self.of(owner);
        let mut all_ssrcs: Vec<u32> = mine.iter().flat_map(|s| s.ssrcs.iter().copied()).collect();
        for s in added {
            for ssrc in &s.ssrcs {
                if all_ssrcs.contains(ssrc) || self.others(owner).any(|o| o.ssrcs.contains(ssrc)) {
                    return Err(SourceError::SsrcAlreadyUsed(*ssrc));
                }
                all_ssrcs.push(*ssrc);
            }
            if !s.name.is_empty() && self.others(owner).any(|o| o.name == s.name) {
                return Err(SourceError::NameAlreadyUsed(s.name.clone()));
            }
            if let Some(msid) = &s.msid
                && self.others(owner).any(|o| o.msid.as_ref() == Some(msid))
            {
                return Err(SourceError::MsidConflict(msid.clone()));
            }
        }
        if all_ssrcs.len() > limits.max_ssrcs {
            return Err(SourceError::SsrcLimitExceeded(limits.max_ssrcs));
        }
        let group_count = mine
            .iter()
            .chain(added)
            .map(|s| s.groups.len())
            .sum::<usize>();
        if group_count > limits.max_groups {
            return Err(SourceError::GroupLimitExceeded(limits.max_groups));
        }
        for s in added {
            for g in &s.groups {
                check_group(g, &all_ssrcs)?;
            }
        }
        Ok(())
    }

    /// Validates and adds; returns the sources as added.
    pub fn add(
        &mut self,
        owner: &str,
        added: Vec<Source>,
        limits: SourceLimits,
    ) -> Result<Vec<Source>, SourceError> {
        self.validate_add(owner, &added, limits)?;
        let entry = self.by_owner.entry(owner.to_string()).or_default();
        for s in &added {
            if let Some(existing) = entry
                .iter_mut()
                .find(|e| e.kind == s.kind && e.name == s.name)
            {
                existing.ssrcs.extend(s.ssrcs.iter().copied());
                existing.groups.extend(s.groups.iter().cloned());
            } else {
                entry.push(s.clone());
            }
        }
        Ok(added)
    }

    /// Removes the SSRCs of `removed` from `owner`'s sources (with the
    /// groups over them); every SSRC must be `owner`'s. Returns what was
    /// removed, as sources with their groups, for the others.
    pub fn remove(&mut self, owner: &str, removed: &[Source]) -> Result<Vec<Source>, SourceError> {
        let mine = self.of(owner);
        for s in removed {
            for ssrc in &s.ssrcs {
                if !mine.iter().any(|m| m.ssrcs.contains(ssrc)) {
                    return Err(SourceError::SourceDoesNotExist(*ssrc));
                }
            }
        }
        let gone: Vec<u32> = removed
            .iter()
            .flat_map(|s| s.ssrcs.iter().copied())
            .collect();
        let mut out = Vec::new();
        if let Some(entry) = self.by_owner.get_mut(owner) {
            for s in entry.iter_mut() {
                let taken: Vec<u32> = s
                    .ssrcs
                    .iter()
                    .copied()
                    .filter(|x| gone.contains(x))
                    .collect();
                if taken.is_empty() {
                    continue;
                }
                let (dropped_groups, kept_groups): (Vec<SsrcGroup>, Vec<SsrcGroup>) = s
                    .groups
                    .drain(..)
                    .partition(|g| g.ssrcs.iter().any(|x| gone.contains(x)));
                s.groups = kept_groups;
                s.ssrcs.retain(|x| !gone.contains(x));
                out.push(Source {
                    kind: s.kind,
                    name: s.name.clone(),
                    ssrcs: taken,
                    groups: dropped_groups,
                    video_type: s.video_type.clone(),
                    msid: s.msid.clone(),
                });
            }
            entry.retain(|s| !s.ssrcs.is_empty());
            if entry.is_empty() {
                self.by_owner.remove(owner);
            }
        }
        Ok(out)
    }

    /// Forgets an endpoint; returns its sources.
    pub fn remove_owner(&mut self, owner: &str) -> Vec<Source> {
        self.by_owner.remove(owner).unwrap_or_default()
    }

    pub fn count(&self, kind: MediaKind) -> usize {
        self.by_owner
            .values()
            .flat_map(|v| v.iter())
            .filter(|s| s.kind == kind)
            .count()
    }
}

fn check_group(g: &SsrcGroup, known: &[u32]) -> Result<(), SourceError> {
    if g.ssrcs.iter().any(|x| !known.contains(x)) {
        return Err(SourceError::GroupContainsUnknownSource(g.ssrcs.clone()));
    }
    match g.semantics.as_str() {
        "FID" if g.ssrcs.len() != 2 || g.ssrcs.first() == g.ssrcs.get(1) => {
            Err(SourceError::InvalidFidGroup(g.ssrcs.clone()))
        }
        "SIM" if g.ssrcs.len() < 2 => Err(SourceError::InvalidSimGroup(g.ssrcs.clone())),
        "FID" | "SIM" => Ok(()),
        other => Err(SourceError::Parse(format!(
            "Invalid ssrc-group semantics: {other}"
        ))),
    }
}
