//! Splitting an input into parts at [`crate::SEPARATOR`].

/// The parts of `data` (one part when there is no separator).
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let sep = crate::SEPARATOR;
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(sep.len()).position(|w| w == sep) {
        parts.push(&rest[..at]);
        rest = &rest[at + sep.len()..];
    }
    parts.push(rest);
    parts
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_at_the_separator() {
        assert_eq!(
            super::split(b"a\n#next\nb\n#next\n"),
            vec![&b"a"[..], b"b", b""]
        );
        assert_eq!(super::split(b"abc"), vec![&b"abc"[..]]);
    }
}
