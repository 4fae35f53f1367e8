//! Strict parsing of the client's SCRAM messages (RFC 5802 §7) before rsasl
//! sees them: rsasl's own parser slices attributes without checking their
//! length, so anything it is given has been shaped here first. This is
//! also where the username is unescaped and prepared, as Prosody's
//! `util.sasl.scram` does.

use std::borrow::Cow;

/// `gs2-cbind-flag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CbFlag {
    /// `n`: the client does not support channel binding.
    No,
    /// `y`: the client supports it but thinks the server does not.
    ClientOnly,
    /// `p=<name>`: the client binds to channel binding type `name`.
    Used(String),
}

/// A parsed `client-first-message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst<'a> {
    pub cb_flag: CbFlag,
    /// `a=` as sent (still escaped).
    pub authzid: Option<&'a str>,
    /// `n=` as sent (still escaped).
    pub username: &'a str,
    pub nonce: &'a str,
    /// `gs2-header`, i.e. everything up to and including the second comma.
    pub gs2_header: &'a str,
}

/// A parsed `client-final-message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal<'a> {
    /// `c=`: base64 of the gs2 header and channel binding data.
    pub channel_binding: &'a str,
    pub nonce: &'a str,
    pub proof: &'a str,
}

/// Why a message was refused; the text goes into the SASL `<failure/>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScramSyntaxError(pub &'static str);

/// One `x=value` attribute; `None` unless it is a letter, `=`, then a value.
fn attribute(part: &str) -> Option<(u8, &str)> {
    let bytes = part.as_bytes();
    (bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b'=')
        .then(|| (bytes[0], &part[2..]))
}

fn is_printable_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

fn is_base64(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

impl<'a> ClientFirst<'a> {
    pub fn parse(input: &'a [u8]) -> Result<ClientFirst<'a>, ScramSyntaxError> {
        let malformed = ScramSyntaxError("Malformed client-first-message.");
        let text = std::str::from_utf8(input).map_err(|_| malformed.clone())?;
        let mut parts = text.splitn(3, ',');
        let flag = parts.next().ok_or(malformed.clone())?;
        let authzid = parts.next().ok_or(malformed.clone())?;
        let bare = parts.next().ok_or(malformed.clone())?;
        let gs2_header = &text[..flag.len() + authzid.len() + 2];

        let cb_flag = match flag {
            "n" => CbFlag::No,
            "y" => CbFlag::ClientOnly,
            _ => match attribute(flag) {
                Some((b'p', name))
                    if !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
                {
                    CbFlag::Used(name.to_string())
                }
                _ => return Err(malformed),
            },
        };
        let authzid = match authzid {
            "" => None,
            a => match attribute(a) {
                Some((b'a', value)) if !value.is_empty() => Some(value),
                _ => return Err(malformed),
            },
        };

        let mut attrs = bare.split(',');
        let username = match attrs.next().and_then(attribute) {
            Some((b'n', name)) => name,
            Some((b'm', _)) => {
                return Err(ScramSyntaxError("Mandatory extensions are not supported."));
            }
            _ => return Err(malformed),
        };
        let nonce = match attrs.next().and_then(attribute) {
            Some((b'r', nonce)) if is_printable_nonce(nonce) => nonce,
            _ => return Err(malformed),
        };
        // Optional extensions may follow; they must at least be attributes.
        if attrs.any(|a| attribute(a).is_none()) {
            return Err(malformed);
        }
        Ok(ClientFirst {
            cb_flag,
            authzid,
            username,
            nonce,
            gs2_header,
        })
    }
}

impl<'a> ClientFinal<'a> {
    pub fn parse(input: &'a [u8]) -> Result<ClientFinal<'a>, ScramSyntaxError> {
        let missing = ScramSyntaxError("Missing an attribute(p, r or c) in SASL message.");
        let text = std::str::from_utf8(input).map_err(|_| missing.clone())?;
        let parts: Vec<&str> = text.split(',').collect();
        let attrs: Option<Vec<(u8, &str)>> = parts.iter().map(|p| attribute(p)).collect();
        let attrs = attrs.ok_or(missing.clone())?;
        match attrs.as_slice() {
            [(b'c', cb), (b'r', nonce), .., (b'p', proof)] if attrs.len() >= 3 => {
                if !is_base64(cb) || !is_base64(proof) || proof.is_empty() || nonce.is_empty() {
                    return Err(missing);
                }
                Ok(ClientFinal {
                    channel_binding: cb,
                    nonce,
                    proof,
                })
            }
            _ => Err(missing),
        }
    }
}

/// Undoes SCRAM's `saslname` escaping (`=2C` is `,`, `=3D` is `=`); any
/// other `=` is an error.
pub fn unescape_saslname(name: &str) -> Option<Cow<'_, str>> {
    if !name.contains('=') {
        return Some(Cow::Borrowed(name));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        let escape = rest.get(pos + 1..pos + 3)?;
        out.push(match escape {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
}

/// The server-first message's combined nonce (`r=`).
pub fn server_first_nonce(message: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(message).ok()?;
    match text.split(',').next().and_then(attribute) {
        Some((b'r', nonce)) => Some(nonce),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_first() {
        let m = ClientFirst::parse(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
        assert_eq!(m.cb_flag, CbFlag::No);
        assert_eq!(
            (m.authzid, m.username, m.nonce, m.gs2_header),
            (None, "user", "fyko+d2lbbFgONRv9qkxdawL", "n,,")
        );
        let m = ClientFirst::parse(b"p=tls-exporter,a=u@h,n=u,r=abc,x=ext").unwrap();
        assert_eq!(m.cb_flag, CbFlag::Used("tls-exporter".into()));
        assert_eq!(
            (m.authzid, m.gs2_header),
            (Some("u@h"), "p=tls-exporter,a=u@h,")
        );
    }

    #[test]
    fn refuses_malformed_client_first() {
        for bad in [
            &b""[..],
            b"n",
            b"n,",
            b"n,,",
            b"n,,n",
            b"n,,n=u",
            b"n,,n=u,r",
            b"n,,n=u,r=",
            b"n,,x=u,r=abc",
            b"q,,n=u,r=abc",
            b"p=,,n=u,r=abc",
            b"p=a b,,n=u,r=abc",
            b"n,a,n=u,r=abc",
            b"n,b=x,n=u,r=abc",
            b"n,,m=ext,n=u,r=abc",
            b"n,,n=u,r=ab,c",
            b"n,,n=u,r=abc,",
            b"n,,n=\xff,r=abc",
        ] {
            assert!(
                ClientFirst::parse(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn parses_client_final() {
        let m = ClientFinal::parse(b"c=biws,r=abcdef,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=").unwrap();
        assert_eq!(
            (m.channel_binding, m.nonce, m.proof),
            ("biws", "abcdef", "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
        );
        assert!(ClientFinal::parse(b"c=biws,r=abc,x=1,p=AAAA").is_ok());
        for bad in [
            &b"c=biws,r=abc"[..],
            b"c=biws,p=AAAA",
            b"r=abc,c=biws,p=AAAA",
            b"c=biws,r=abc,p=",
            b"c",
            b"c=biws,r=abc,,p=AAAA",
            b"c=bi ws,r=a,p=AAAA",
        ] {
            assert!(
                ClientFinal::parse(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn unescapes_saslnames() {
        assert_eq!(unescape_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(unescape_saslname("plain").as_deref(), Some("plain"));
        for bad in ["a=", "a=2", "a=2D", "=41"] {
            assert!(unescape_saslname(bad).is_none(), "{bad}");
        }
    }
}
