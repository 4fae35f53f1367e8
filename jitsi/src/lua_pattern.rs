//! Lua's `string.match` for the patterns Jitsi's tokens use as room
//! "regex" (`context.room.regex = true`: the `room` claim is matched with
//! `room_node:match(auth_room)`). Supports anchors (`^`, `$`), `.`, the
//! classes `%a %c %d %g %l %p %s %u %w %x` and their complements, `%`
//! escapes, sets `[...]` with ranges, classes and `^`, and the quantifiers
//! `* + - ?`. Captures `(...)` group nothing here: the whole match is
//! returned (what `match` gives for a pattern without captures); `%b`,
//! `%f` and back-references are not supported (no match).

/// The first match of `pattern` in `subject` (byte-wise, as Lua).
pub fn lua_match<'a>(subject: &'a str, pattern: &str) -> Option<&'a str> {
    let s = subject.as_bytes();
    let p: Vec<u8> = pattern
        .bytes()
        .filter(|b| *b != b'(' && *b != b')')
        .collect();
    let (anchored, p) = match p.split_first() {
        Some((b'^', rest)) => (true, rest.to_vec()),
        _ => (false, p),
    };
    let mut start = 0;
    loop {
        if let Some(end) = do_match(s, start, &p, 0) {
            return subject.get(start..end);
        }
        start += 1;
        if anchored || start > s.len() {
            return None;
        }
    }
}

fn class_matches(class: u8, c: u8) -> bool {
    let m = match class.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        b's' => c.is_ascii_whitespace() || c == 0x0b,
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        _ => return class == c,
    };
    if class.is_ascii_uppercase() { !m } else { m }
}

/// The end of the single-character item at `pi` (after `%x` or `[...]`).
fn item_end(p: &[u8], pi: usize) -> Option<usize> {
    match p[pi] {
        b'%' => (pi + 1 < p.len()).then_some(pi + 2),
        b'[' => {
            let mut i = pi + 1;
            if p.get(i) == Some(&b'^') {
                i += 1;
            }
            // A `]` right after `[` or `[^` is a literal.
            if p.get(i) == Some(&b']') {
                i += 1;
            }
            while i < p.len() && p[i] != b']' {
                i += if p[i] == b'%' { 2 } else { 1 };
            }
            (i < p.len()).then_some(i + 1)
        }
        _ => Some(pi + 1),
    }
}

fn set_matches(set: &[u8], c: u8) -> bool {
    let (negate, mut body) = match set.split_first() {
        Some((b'^', rest)) => (true, rest),
        _ => (false, set),
    };
    let mut found = false;
    while let Some(&first) = body.first() {
        if first == b'%' && body.len() > 1 {
            found |= class_matches(body[1], c);
            body = &body[2..];
        } else if body.len() > 2 && body[1] == b'-' {
            found |= (first..=body[2]).contains(&c);
            body = &body[3..];
        } else {
            found |= first == c;
            body = &body[1..];
        }
    }
    found != negate
}

fn single(s: &[u8], si: usize, p: &[u8], pi: usize, ep: usize) -> bool {
    let Some(&c) = s.get(si) else {
        return false;
    };
    match p[pi] {
        b'.' => true,
        b'%' => class_matches(p[pi + 1], c),
        b'[' => set_matches(&p[pi + 1..ep - 1], c),
        lit => lit == c,
    }
}

/// Matches `p[pi..]` at `s[si..]`; the end of the match.
fn do_match(s: &[u8], si: usize, p: &[u8], pi: usize) -> Option<usize> {
    if pi == p.len() {
        return Some(si);
    }
    if p[pi] == b'$' && pi + 1 == p.len() {
        return (si == s.len()).then_some(si);
    }
    if p[pi] == b'%' && matches!(p.get(pi + 1), Some(b'b') | Some(b'f')) {
        return None;
    }
    let ep = item_end(p, pi)?;
    match p.get(ep) {
        Some(b'?') => {
            if single(s, si, p, pi, ep)
                && let Some(end) = do_match(s, si + 1, p, ep + 1)
            {
                return Some(end);
            }
            do_match(s, si, p, ep + 1)
        }
        Some(b'+') => {
            if single(s, si, p, pi, ep) {
                max_expand(s, si + 1, p, pi, ep)
            } else {
                None
            }
        }
        Some(b'*') => max_expand(s, si, p, pi, ep),
        Some(b'-') => {
            let mut i = si;
            loop {
                if let Some(end) = do_match(s, i, p, ep + 1) {
                    return Some(end);
                }
                if single(s, i, p, pi, ep) {
                    i += 1;
                } else {
                    return None;
                }
            }
        }
        _ => {
            if single(s, si, p, pi, ep) {
                do_match(s, si + 1, p, ep)
            } else {
                None
            }
        }
    }
}

fn max_expand(s: &[u8], si: usize, p: &[u8], pi: usize, ep: usize) -> Option<usize> {
    let mut n = 0;
    while single(s, si + n, p, pi, ep) {
        n += 1;
    }
    loop {
        if let Some(end) = do_match(s, si + n, p, ep + 1) {
            return Some(end);
        }
        if n == 0 {
            return None;
        }
        n -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::lua_match;

    #[test]
    fn plain_and_anchored() {
        assert_eq!(lua_match("myroom", "room"), Some("room"));
        assert_eq!(lua_match("myroom", "^room"), None);
        assert_eq!(lua_match("room42", "^room%d+$"), Some("room42"));
        assert_eq!(lua_match("room42x", "^room%d+$"), None);
    }

    #[test]
    fn classes_sets_and_quantifiers() {
        assert_eq!(
            lua_match("team-alpha", "^team%-[a-z]+$"),
            Some("team-alpha")
        );
        assert_eq!(lua_match("team-Alpha", "^team%-[a-z]+$"), None);
        assert_eq!(lua_match("abc123", "[^%a]+"), Some("123"));
        assert_eq!(lua_match("a.b", "a%.b"), Some("a.b"));
        assert_eq!(lua_match("axxb", "a.-b"), Some("axxb"));
        assert_eq!(lua_match("ab", "ax?b"), Some("ab"));
        assert_eq!(lua_match("sales1", "^(sales)%d$"), Some("sales1"));
        assert_eq!(lua_match("x", "%bxy"), None);
        assert_eq!(lua_match("", ".*"), Some(""));
    }
}
