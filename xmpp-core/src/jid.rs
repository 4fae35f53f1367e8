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
        let parsed = jid::Jid::new(s).map_err(|e| err(&e))?;
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
    fn rejects_malformed() {
        for bad in ["", "@example.com", "a@", "a@b/", "a b@example.com", "a@b@c"] {
            assert!(Jid::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
