//! rxml's errors as RFC 6120 §4.9.3 stream error conditions.

use rxml::Error;

use crate::error::{StreamError, StreamErrorCondition as Cond};

/// The stream error for an XML error rxml reported.
///
/// - a DTD, comment, processing instruction, entity other than the five
///   predefined ones, or an XML declaration with `version` other than 1.0 or
///   `standalone='no'`: `restricted-xml` (RFC 6120 §11.1);
/// - bytes that are not UTF-8, or an `encoding` other than UTF-8 declared:
///   `unsupported-encoding` (§4.9.3.22 names "violating the rules of the
///   UTF-8 encoding" and §11.6);
/// - a name, attribute value or reference longer than rxml's token limit
///   (which [`super::XmlStream`] sets from the stanza size limit):
///   `policy-violation`, as for an oversized stanza;
/// - anything else: `not-well-formed`.
///
/// Prosody 0.12 answers all of these with `not-well-formed` (its mod_c2s
/// maps every parse error to it); the RFC's finer conditions are used here.
pub(super) fn from_rxml(e: Error) -> StreamError {
    let cond = match e {
        Error::RestrictedXml(what) => match what {
            "long name or reference" | "event too long" => Cond::PolicyViolation,
            "only utf-8 encoding is allowed" => Cond::UnsupportedEncoding,
            _ => Cond::RestrictedXml,
        },
        // `<!` not starting a comment or CDATA section: a markup declaration
        // such as `<!DOCTYPE`.
        Error::InvalidSyntax("malformed cdata or comment section start") => Cond::RestrictedXml,
        Error::UndeclaredEntity => Cond::RestrictedXml,
        Error::InvalidUtf8Byte(_) => Cond::UnsupportedEncoding,
        _ => Cond::NotWellFormed,
    };
    StreamError::with_text(cond, e.to_string())
}
