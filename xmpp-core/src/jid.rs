//! JIDs (RFC 7622), normalised with stringprep as Prosody's `util.jid.prep` does.
//!
//! A [`Jid`] keeps its three parts already normalised (nodeprep, nameprep,
//! resourceprep), so comparing two `Jid`s compares what Prosody compares.

use std::fmt;

/// Why a JID string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed JID {input:?}: {reason}")]
pub struct JidError {
    pub input: String,
    pub reason: String,
}

/// A normalised JID: `node@domain/resource`, node and resource optional.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    node: Option<String>,
    domain: String,
    resource: Option<String>,
}

impl Jid {
    /// Parses and normalises a JID string (Prosody's `jid.prep`).
    pub fn parse(s: &str) -> Result<Jid, JidError> {
        let err = |reason: &dyn fmt::Display| JidError {
            input: s.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        // Prosody strips one trailing dot from the domain before nameprep.
        let parsed = match jid::Jid::new(s) {
            Ok(p) => p,
            Err(e) => return Jid::parse_unassigned(s).ok_or_else(|| err(&e)),
        };
        let mut domain = parsed.domain().as_str().to_string();
        if domain.ends_with('.') {
            domain.pop();
            if domain.is_empty() {
                return Err(err(&"empty domain"));
            }
        }
        Ok(Jid {
            node: parsed.node().map(|n| n.as_str().to_string()),
            domain,
            resource: parsed.resource().map(|r| r.as_str().to_string()),
        })
    }

    /// Prosody's `jid.prep` is not strict: code points unassigned in
    /// Unicode 3.2 (most emoji) are allowed, where the stringprep the jid
    /// crate does refuses them. Those are set aside (replaced by a letter no
    /// step of stringprep changes), the rest prepared, and put back.
    fn parse_unassigned(s: &str) -> Option<Jid> {
        const STAND_IN: char = '\u{0298}';
        if s.contains(STAND_IN) {
            return None;
        }
        let mut set_aside = Vec::new();
        let replaced: String = s
            .chars()
            .map(|c| {
                if stringprep::tables::unassigned_code_point(c) {
                    set_aside.push(c);
                    STAND_IN
                } else {
                    c
                }
            })
            .collect();
        if set_aside.is_empty() {
            return None;
        }
        let prepped = Jid::parse(&replaced).ok()?;
        let mut next = set_aside.into_iter();
        let mut put_back = |part: &str| -> String {
            part.chars()
                .map(|c| {
                    if c == STAND_IN {
                        next.next().unwrap_or(c)
                    } else {
                        c
                    }
                })
                .collect()
        };
        Some(Jid {
            node: prepped.node.as_deref().map(&mut put_back),
            domain: put_back(&prepped.domain),
            resource: prepped.resource.as_deref().map(&mut put_back),
        })
    }

    /// Builds a JID from parts, normalising each one.
    pub fn from_parts(
        node: Option<&str>,
        domain: &str,
        resource: Option<&str>,
    ) -> Result<Jid, JidError> {
        let mut s = String::new();
        if let Some(n) = node {
            s.push_str(n);
            s.push('@');
        }
        s.push_str(domain);
        if let Some(r) = resource {
            s.push('/');
            s.push_str(r);
        }
        Jid::parse(&s)
    }

    /// A domain-only JID (a host).
    pub fn domain_jid(domain: &str) -> Result<Jid, JidError> {
        Jid::from_parts(None, domain, None)
    }

    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }
    pub fn is_bare(&self) -> bool {
        self.resource.is_none()
    }
    pub fn is_full(&self) -> bool {
        self.resource.is_some()
    }
    /// Is this only a domain (no node, no resource)?
    pub fn is_host(&self) -> bool {
        self.node.is_none() && self.resource.is_none()
    }
    /// The bare JID (`node@domain`).
    pub fn to_bare(&self) -> Jid {
        Jid {
            node: self.node.clone(),
            domain: self.domain.clone(),
            resource: None,
        }
    }
    /// This JID with another resource (already valid: it is normalised here).
    pub fn with_resource(&self, resource: &str) -> Result<Jid, JidError> {
        Jid::from_parts(self.node.as_deref(), &self.domain, Some(resource))
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.node {
            write!(f, "{n}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(r) = &self.resource {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jid({self})")
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Jid, JidError> {
        Jid::parse(s)
    }
}

/// Nameprep a host name as Prosody does for `VirtualHost`/`Component` names.
pub fn nameprep(host: &str) -> Result<String, JidError> {
    Ok(Jid::domain_jid(host)?.domain().to_string())
}

/// Nodeprep a username (for account names given on the command line).
pub fn nodeprep(user: &str) -> Result<String, JidError> {
    let j = Jid::from_parts(Some(user), "example.invalid", None)?;
    j.node().map(str::to_string).ok_or_else(|| JidError {
        input: user.into(),
        reason: "empty node".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_parts() {
        let j = Jid::parse("Juliet@Capulet.LIT/Balcony").unwrap();
        assert_eq!(j.to_string(), "juliet@capulet.lit/Balcony");
        assert_eq!(j.to_bare().to_string(), "juliet@capulet.lit");
        assert!(Jid::parse("example.com.").unwrap().is_host());
        assert_eq!(Jid::parse("example.com.").unwrap().domain(), "example.com");
    }

    #[test]
    fn allows_unassigned_code_points_as_prosody() {
        // U+1F916 is unassigned in Unicode 3.2; U+FE0F is mapped to nothing.
        let j = Jid::parse("room@muc.example/\u{1F916}\u{FE0F}").unwrap();
        assert_eq!(j.resource(), Some("\u{1F916}"));
        assert!(Jid::parse("a@b/\u{1F916}\u{7}").is_err());
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "@example.com", "a@", "a@b/", "a b@example.com", "a@b@c"] {
            assert!(Jid::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
