//! The tokens of Lua 5.4 that data files are made of: names, strings
//! (every escape, long brackets), numerals and punctuation, with white
//! space and comments skipped, as Lua's `llex.c` reads them.

use super::literal::LiteralError;

type Result<T> = std::result::Result<T, LiteralError>;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Name(Vec<u8>),
    Str(Vec<u8>),
    Int(i64),
    Float(f64),
    Punct(u8),
    Eof,
}

pub(super) struct Lexer<'a> {
    pub src: &'a [u8],
    pub pos: usize,
}

impl Lexer<'_> {
    fn error(&self, message: &str) -> LiteralError {
        LiteralError {
            offset: self.pos,
            message: message.to_string(),
        }
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.src.get(self.pos + i).copied()
    }

    /// Skips white space and comments; returns where the next token starts.
    pub(super) fn skip_space(&mut self) -> Result<usize> {
        loop {
            match self.at(0) {
                Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) => self.pos += 1,
                Some(b'-') if self.at(1) == Some(b'-') => {
                    self.pos += 2;
                    if let Some(level) = self.long_bracket_level() {
                        self.long_string(level)?;
                    } else {
                        while !matches!(self.at(0), None | Some(b'\n' | b'\r')) {
                            self.pos += 1;
                        }
                    }
                }
                _ => return Ok(self.pos),
            }
        }
    }

    /// At `[` followed by `=`* and `[`: the number of `=`.
    fn long_bracket_level(&self) -> Option<usize> {
        if self.at(0) != Some(b'[') {
            return None;
        }
        let mut n = 0;
        while self.at(1 + n) == Some(b'=') {
            n += 1;
        }
        (self.at(1 + n) == Some(b'[')).then_some(n)
    }

    pub(super) fn token(&mut self) -> Result<Token> {
        let Some(c) = self.at(0) else {
            return Ok(Token::Eof);
        };
        match c {
            b'"' | b'\'' => self.short_string(c),
            b'[' => match self.long_bracket_level() {
                Some(level) => self.long_string(level).map(Token::Str),
                None => {
                    self.pos += 1;
                    Ok(Token::Punct(b'['))
                }
            },
            b'0'..=b'9' => self.numeral(),
            b'.' if self.at(1).is_some_and(|d| d.is_ascii_digit()) => self.numeral(),
            b'{' | b'}' | b']' | b'(' | b')' | b'=' | b',' | b';' | b'-' | b'/' => {
                self.pos += 1;
                Ok(Token::Punct(c))
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.pos;
                while self
                    .at(0)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.pos += 1;
                }
                Ok(Token::Name(self.src[start..self.pos].to_vec()))
            }
            _ => Err(self.error("unexpected character")),
        }
    }

    fn numeral(&mut self) -> Result<Token> {
        let start = self.pos;
        let hex = self.at(0) == Some(b'0') && matches!(self.at(1), Some(b'x' | b'X'));
        let (exp_a, exp_b) = if hex { (b'p', b'P') } else { (b'e', b'E') };
        if hex {
            self.pos += 2;
        }
        // As Lua's read_numeral: digits, dots, exponent signs, then any alphanumerics.
        loop {
            match self.at(0) {
                Some(c) if c == exp_a || c == exp_b => {
                    self.pos += 1;
                    if matches!(self.at(0), Some(b'+' | b'-')) {
                        self.pos += 1;
                    }
                }
                Some(c) if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' => self.pos += 1,
                _ => break,
            }
        }
        let text = std::str::from_utf8(&self.src[start..self.pos])
            .map_err(|_| self.error("malformed number"))?;
        if hex {
            let digits = &text[2..];
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(self.error("hexadecimal floats are not handled here"));
            }
            // Lua wraps hexadecimal integers around.
            let mut v: u64 = 0;
            for c in digits.bytes() {
                let d = (c as char).to_digit(16).unwrap_or(0);
                v = v.wrapping_mul(16).wrapping_add(u64::from(d));
            }
            return Ok(Token::Int(v as i64));
        }
        if !text
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return Err(self.error("malformed number"));
        }
        if !text.contains(['.', 'e', 'E'])
            && let Ok(i) = text.parse::<i64>()
        {
            return Ok(Token::Int(i));
        }
        text.parse::<f64>()
            .map(Token::Float)
            .map_err(|_| self.error("malformed number"))
    }

    fn short_string(&mut self, quote: u8) -> Result<Token> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.at(0) else {
                return Err(self.error("unfinished string"));
            };
            self.pos += 1;
            match c {
                _ if c == quote => return Ok(Token::Str(out)),
                b'\n' | b'\r' => return Err(self.error("unfinished string")),
                b'\\' => self.escape(&mut out)?,
                _ => out.push(c),
            }
        }
    }

    /// After a backslash.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let Some(c) = self.at(0) else {
            return Err(self.error("unfinished string"));
        };
        self.pos += 1;
        match c {
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'\\' | b'"' | b'\'' => out.push(c),
            b'\n' | b'\r' => {
                // A line break; "\n\r" and "\r\n" count as one.
                if matches!(self.at(0), Some(d @ (b'\n' | b'\r')) if d != c) {
                    self.pos += 1;
                }
                out.push(b'\n');
            }
            b'x' => {
                let hex = |d: Option<u8>| d.and_then(|d| (d as char).to_digit(16));
                let (Some(h), Some(l)) = (hex(self.at(0)), hex(self.at(1))) else {
                    return Err(self.error("hexadecimal digit expected"));
                };
                self.pos += 2;
                out.push((h * 16 + l) as u8);
            }
            b'z' => {
                while matches!(self.at(0), Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)) {
                    self.pos += 1;
                }
            }
            b'u' => self.utf8_escape(out)?,
            b'0'..=b'9' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match self.at(0) {
                        Some(d @ b'0'..=b'9') => {
                            v = v * 10 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                if v > 255 {
                    return Err(self.error("decimal escape too large"));
                }
                out.push(v as u8);
            }
            _ => return Err(self.error("invalid escape sequence")),
        }
        Ok(())
    }

    /// `\u{XXX}`: the code point in (Lua's extended) UTF-8.
    fn utf8_escape(&mut self, out: &mut Vec<u8>) -> Result<()> {
        if self.at(0) != Some(b'{') {
            return Err(self.error("missing '{' in \\u{xxxx}"));
        }
        self.pos += 1;
        let mut v: u64 = 0;
        let mut digits = 0;
        while let Some(d) = self.at(0).and_then(|d| (d as char).to_digit(16)) {
            v = v * 16 + u64::from(d);
            digits += 1;
            self.pos += 1;
            if v > 0x7FFF_FFFF {
                return Err(self.error("UTF-8 value too large"));
            }
        }
        if digits == 0 || self.at(0) != Some(b'}') {
            return Err(self.error("malformed \\u{xxxx}"));
        }
        self.pos += 1;
        encode_utf8_extended(v as u32, out);
        Ok(())
    }

    /// A long string or comment body, at its opening bracket.
    fn long_string(&mut self, level: usize) -> Result<Vec<u8>> {
        self.pos += level + 2;
        // A line break right after the opening bracket is skipped.
        match (self.at(0), self.at(1)) {
            (Some(a @ (b'\n' | b'\r')), Some(b @ (b'\n' | b'\r'))) if a != b => self.pos += 2,
            (Some(b'\n' | b'\r'), _) => self.pos += 1,
            _ => {}
        }
        let mut out = Vec::new();
        loop {
            match self.at(0) {
                None => return Err(self.error("unfinished long string")),
                Some(b']')
                    if (0..level).all(|i| self.at(1 + i) == Some(b'='))
                        && self.at(1 + level) == Some(b']') =>
                {
                    self.pos += level + 2;
                    return Ok(out);
                }
                Some(c @ (b'\n' | b'\r')) => {
                    self.pos += 1;
                    if matches!(self.at(0), Some(d @ (b'\n' | b'\r')) if d != c) {
                        self.pos += 1;
                    }
                    out.push(b'\n');
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

/// UTF-8 as Lua 5.4's `luaO_utf8esc` writes it (up to 6 bytes, 31 bits).
fn encode_utf8_extended(mut x: u32, out: &mut Vec<u8>) {
    if x < 0x80 {
        out.push(x as u8);
        return;
    }
    let mut buf = [0u8; 8];
    let mut n = 1;
    let mut mfb: u32 = 0x3f;
    loop {
        buf[8 - n] = 0x80 | (x & 0x3f) as u8;
        n += 1;
        x >>= 6;
        mfb >>= 1;
        if x <= mfb {
            break;
        }
    }
    buf[8 - n] = ((!mfb << 1) | x) as u8;
    out.extend_from_slice(&buf[8 - n..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_escape_encoding() {
        let mut out = Vec::new();
        encode_utf8_extended(0x2713, &mut out);
        assert_eq!(out, "✓".as_bytes());
        out.clear();
        encode_utf8_extended(0x1F600, &mut out);
        assert_eq!(out, "😀".as_bytes());
    }
}
