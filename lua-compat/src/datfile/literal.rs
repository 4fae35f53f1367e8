//! A parser for the Lua literal subset data files are written in, which,
//! unlike evaluating the chunk, sees the order table entries are written in.
//!
//! Accepted: `return <exp>` (`.dat`) or a sequence of `item(<exp>)` calls
//! (`.list`), each optionally followed by `;`, with comments anywhere;
//! expressions are `nil`, `true`, `false`, numerals (decimal and hexadecimal
//! integers, decimal floats), strings (every escape Lua 5.4 knows, long
//! brackets), table constructors (all field forms, `,` or `;`), unary minus
//! on numbers and parenthesised divisions (Prosody writes infinities as
//! `(1/0)` and NaN as `(0/0)`). Anything else is an error; the caller then
//! relies on Lua's own evaluation alone.

use super::{DatKey, DatTable, DatValue};

/// Deepest nesting accepted (Lua's parser gives up near 200 too).
const MAX_NESTING: usize = 200;

/// Why the literal parser did not accept the input (not shown to users:
/// the Lua evaluation is the authority on errors).
#[derive(Debug, Clone, PartialEq)]
pub struct LiteralError {
    pub offset: usize,
    pub message: String,
}

type Result<T> = std::result::Result<T, LiteralError>;

/// Parses `return <exp> [;]`; `Ok(None)` for nil.
pub fn parse_dat(src: &[u8]) -> Result<Option<DatValue>> {
    let mut p = Parser::new(src);
    p.expect_name(b"return")?;
    let value = if p.at_end_of_statement()? {
        None
    } else {
        p.exp(0)?
    };
    p.eat_punct(b';')?;
    p.expect_end()?;
    Ok(value)
}

/// Parses a sequence of `item(<exp>) [;]` calls, skipping nil items.
pub fn parse_list(src: &[u8]) -> Result<Vec<DatValue>> {
    let mut p = Parser::new(src);
    let mut items = Vec::new();
    while !p.at_end()? {
        p.expect_name(b"item")?;
        let arg = match p.peek()? {
            Token::Punct(b'(') => {
                p.next()?;
                let v = if matches!(p.peek()?, Token::Punct(b')')) {
                    None
                } else {
                    p.exp(0)?
                };
                p.expect_punct(b')')?;
                v
            }
            Token::Punct(b'{') => p.exp(0)?,
            Token::Str(_) => p.exp(0)?,
            _ => return Err(p.error("expected arguments to item")),
        };
        items.extend(arg);
        p.eat_punct(b';')?;
    }
    Ok(items)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(Vec<u8>),
    Str(Vec<u8>),
    Int(i64),
    Float(f64),
    Punct(u8),
    Eof,
}

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<(usize, Token)>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a [u8]) -> Parser<'a> {
        Parser {
            lex: Lexer { src, pos: 0 },
            peeked: None,
        }
    }

    fn error(&self, message: &str) -> LiteralError {
        let offset = self.peeked.as_ref().map_or(self.lex.pos, |(o, _)| *o);
        LiteralError {
            offset,
            message: message.to_string(),
        }
    }

    fn peek(&mut self) -> Result<&Token> {
        if self.peeked.is_none() {
            let start = self.lex.skip_space()?;
            let t = self.lex.token()?;
            self.peeked = Some((start, t));
        }
        match &self.peeked {
            Some((_, t)) => Ok(t),
            None => Err(self.error("internal: no token")),
        }
    }

    fn next(&mut self) -> Result<Token> {
        self.peek()?;
        match self.peeked.take() {
            Some((_, t)) => Ok(t),
            None => Err(self.error("internal: no token")),
        }
    }

    fn at_end(&mut self) -> Result<bool> {
        Ok(matches!(self.peek()?, Token::Eof))
    }

    fn at_end_of_statement(&mut self) -> Result<bool> {
        Ok(matches!(self.peek()?, Token::Eof | Token::Punct(b';')))
    }

    fn expect_end(&mut self) -> Result<()> {
        if self.at_end()? {
            Ok(())
        } else {
            Err(self.error("expected end of file"))
        }
    }

    fn expect_name(&mut self, name: &[u8]) -> Result<()> {
        match self.next()? {
            Token::Name(n) if n == name => Ok(()),
            _ => Err(self.error(&format!("expected {}", String::from_utf8_lossy(name)))),
        }
    }

    fn expect_punct(&mut self, c: u8) -> Result<()> {
        match self.next()? {
            Token::Punct(p) if p == c => Ok(()),
            _ => Err(self.error(&format!("expected '{}'", c as char))),
        }
    }

    fn eat_punct(&mut self, c: u8) -> Result<bool> {
        if matches!(self.peek()?, Token::Punct(p) if *p == c) {
            self.next()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// An expression; `None` is nil.
    fn exp(&mut self, depth: usize) -> Result<Option<DatValue>> {
        if depth > MAX_NESTING {
            return Err(self.error("nested too deep"));
        }
        Ok(Some(match self.next()? {
            Token::Name(n) => match n.as_slice() {
                b"nil" => return Ok(None),
                b"true" => DatValue::Bool(true),
                b"false" => DatValue::Bool(false),
                _ => return Err(self.error("a name is not data")),
            },
            Token::Str(s) => DatValue::String(s),
            Token::Int(i) => DatValue::Integer(i),
            Token::Float(f) => DatValue::Number(f),
            Token::Punct(b'-') => negate(self.number_operand(depth + 1)?),
            Token::Punct(b'{') => DatValue::Table(self.table(depth + 1)?),
            Token::Punct(b'(') => {
                let v = self.arith(depth + 1)?;
                self.expect_punct(b')')?;
                v
            }
            _ => return Err(self.error("unexpected symbol")),
        }))
    }

    /// Inside parentheses: a number, or a division of two numbers.
    fn arith(&mut self, depth: usize) -> Result<DatValue> {
        let left = self.number_operand(depth)?;
        if self.eat_punct(b'/')? {
            let right = self.number_operand(depth)?;
            let (Some(a), Some(b)) = (left.as_f64(), right.as_f64()) else {
                return Err(self.error("division of non-numbers"));
            };
            return Ok(DatValue::Number(a / b));
        }
        Ok(left)
    }

    fn number_operand(&mut self, depth: usize) -> Result<DatValue> {
        if depth > MAX_NESTING {
            return Err(self.error("nested too deep"));
        }
        match self.next()? {
            Token::Int(i) => Ok(DatValue::Integer(i)),
            Token::Float(f) => Ok(DatValue::Number(f)),
            Token::Punct(b'-') => Ok(negate(self.number_operand(depth + 1)?)),
            Token::Punct(b'(') => {
                let v = self.arith(depth + 1)?;
                self.expect_punct(b')')?;
                Ok(v)
            }
            _ => Err(self.error("expected a number")),
        }
    }

    /// A table constructor, after its `{`.
    fn table(&mut self, depth: usize) -> Result<DatTable> {
        let mut t = DatTable::new();
        let mut positional = 0i64;
        loop {
            if self.eat_punct(b'}')? {
                return Ok(t);
            }
            let (key, value) = match self.peek()?.clone() {
                Token::Punct(b'[') => {
                    self.next()?;
                    let k = self.exp(depth)?.ok_or_else(|| self.error("nil key"))?;
                    self.expect_punct(b']')?;
                    self.expect_punct(b'=')?;
                    (
                        Some(key_of(k).ok_or_else(|| self.error("not a valid key"))?),
                        self.exp(depth)?,
                    )
                }
                Token::Name(n) if !is_keyword(&n) && self.name_is_key()? => {
                    self.expect_punct(b'=')?;
                    (Some(DatKey::String(n)), self.exp(depth)?)
                }
                _ => {
                    positional += 1;
                    (Some(DatKey::Integer(positional)), self.exp(depth)?)
                }
            };
            if let (Some(k), Some(v)) = (key, value) {
                t.insert(k, v);
            }
            if !(self.eat_punct(b',')? || self.eat_punct(b';')?) {
                self.expect_punct(b'}')?;
                return Ok(t);
            }
        }
    }

    /// With a name peeked: consumes it when `=` follows (a `name = exp` field).
    fn name_is_key(&mut self) -> Result<bool> {
        let save = (self.lex.pos, self.peeked.clone());
        self.next()?;
        if matches!(self.peek()?, Token::Punct(b'=')) {
            return Ok(true);
        }
        self.lex.pos = save.0;
        self.peeked = save.1;
        Ok(false)
    }
}

fn negate(v: DatValue) -> DatValue {
    match v {
        DatValue::Integer(i) => DatValue::Integer(i.wrapping_neg()),
        DatValue::Number(f) => DatValue::Number(-f),
        other => other,
    }
}

fn key_of(v: DatValue) -> Option<DatKey> {
    match v {
        DatValue::Bool(b) => Some(DatKey::Bool(b)),
        DatValue::Integer(i) => Some(DatKey::Integer(i)),
        DatValue::Number(f) => DatKey::from_f64(f),
        DatValue::String(s) => Some(DatKey::String(s)),
        DatValue::Table(_) => None,
    }
}

fn is_keyword(n: &[u8]) -> bool {
    matches!(
        n,
        b"and"
            | b"break"
            | b"do"
            | b"else"
            | b"elseif"
            | b"end"
            | b"false"
            | b"for"
            | b"function"
            | b"goto"
            | b"if"
            | b"in"
            | b"local"
            | b"nil"
            | b"not"
            | b"or"
            | b"repeat"
            | b"return"
            | b"then"
            | b"true"
            | b"until"
            | b"while"
    )
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
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
    fn skip_space(&mut self) -> Result<usize> {
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

    fn token(&mut self) -> Result<Token> {
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

    fn s(v: &str) -> DatValue {
        DatValue::str(v)
    }

    #[test]
    fn keeps_written_order_and_key_types() {
        let src = b"return {\n\t[false] = {\n\t\t[\"version\"] = 2;\n\t};\n\t[\"b\"] = 1;\n\t[\"a\"] = 2;\n\t[3] = 4;\n};\n";
        let v = parse_dat(src).unwrap().unwrap();
        let t = v.as_table().unwrap();
        let keys: Vec<_> = t.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            vec![
                DatKey::Bool(false),
                DatKey::str("b"),
                DatKey::str("a"),
                DatKey::Integer(3)
            ]
        );
    }

    #[test]
    fn positional_items_are_numbered_in_order() {
        let v = parse_dat(b"return { \"x\", k = 1, 'y'; [[z]] }")
            .unwrap()
            .unwrap();
        let t = v.as_table().unwrap();
        assert_eq!(
            t.sequence().cloned().collect::<Vec<_>>(),
            vec![s("x"), s("y"), s("z")]
        );
        assert_eq!(t.get_str("k"), Some(&DatValue::Integer(1)));
    }

    #[test]
    fn string_escapes() {
        let v = parse_dat(
            br#"return "\a\b\f\n\r\t\v\\\"\'\065\x41\u{e9}\z
              end\0001""#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            v,
            DatValue::String(b"\x07\x08\x0c\n\r\t\x0b\\\"'AA\xc3\xa9end\x001".to_vec())
        );
    }

    #[test]
    fn long_strings_and_comments() {
        let v = parse_dat(b"-- a comment\nreturn --[==[ long\ncomment ]==] [==[\nline]]\r\n]==]")
            .unwrap()
            .unwrap();
        assert_eq!(v, DatValue::String(b"line]]\n".to_vec()));
    }

    #[test]
    fn numbers() {
        let v = parse_dat(b"return { 1, -2, 0x10, 1.5, -0.25e1, (1/0), (-1/0), 9223372036854775808, -9223372036854775808 }")
            .unwrap()
            .unwrap();
        let items: Vec<_> = v.as_table().unwrap().sequence().cloned().collect();
        assert_eq!(items[0], DatValue::Integer(1));
        assert_eq!(items[1], DatValue::Integer(-2));
        assert_eq!(items[2], DatValue::Integer(16));
        assert_eq!(items[3], DatValue::Number(1.5));
        assert_eq!(items[4], DatValue::Number(-2.5));
        assert_eq!(items[5], DatValue::Number(f64::INFINITY));
        assert_eq!(items[6], DatValue::Number(f64::NEG_INFINITY));
        assert_eq!(items[7], DatValue::Number(9223372036854775808.0));
        assert_eq!(items[8], DatValue::Number(-9223372036854775808.0));
        let nan = parse_dat(b"return (0/0)").unwrap().unwrap();
        assert!(matches!(nan, DatValue::Number(f) if f.is_nan()));
    }

    #[test]
    fn nil_and_list_items() {
        assert_eq!(parse_dat(b"return nil;").unwrap(), None);
        assert_eq!(parse_dat(b"return").unwrap(), None);
        let items = parse_list(b"item({ 1 });\nitem{ 2 }\nitem(nil);\n").unwrap();
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn refuses_code() {
        assert!(parse_dat(b"return os.exit()").is_err());
        assert!(parse_dat(b"local x = 1 return x").is_err());
        assert!(parse_dat(b"return { [{}] = 1 }").is_err());
        assert!(parse_dat(b"return \"unterminated").is_err());
        assert!(parse_dat(b"return {").is_err());
        assert!(parse_list(b"item({1}) x").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut src = b"return ".to_vec();
        src.extend(std::iter::repeat_n(b'{', 10_000));
        assert!(parse_dat(&src).is_err());
    }

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
