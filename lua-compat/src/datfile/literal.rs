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

use super::lex::{Lexer, Token};
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
}
