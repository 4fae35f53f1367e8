//! A console line as Prosody's shell reads it, for the calls it serves:
//! `object:method(arg, ...)` with Lua literal arguments (strings in single
//! or double quotes with Lua's escapes, numbers, `true`, `false`, `nil`), or
//! a bare command word (`help`, `quit`). Anything else is not understood
//! (lilt runs no Lua in the console).

/// A Lua literal argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Str(String),
    Number(f64),
    Bool(bool),
    Nil,
}

impl Arg {
    /// The argument as a string, as Lua's `tostring` would give it for the
    /// strings and numbers the commands take.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Arg::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// What a line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// `object:method(args)`.
    Call {
        object: String,
        method: String,
        args: Vec<Arg>,
    },
    /// A bare word (`help`, `quit`, ...), lower-cased.
    Word(String),
}

/// Why a line was not understood (after Prosody's "Sorry, I couldn't
/// understand that... ").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn fail<T>(why: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(why.into()))
}

/// Parses one console line.
pub fn parse(line: &str) -> Result<Line, ParseError> {
    let line = line.trim();
    let mut p = Cursor { s: line, at: 0 };
    let object = p.identifier();
    if object.is_empty() {
        return fail(format!("unexpected symbol near '{}'", first_char(line)));
    }
    p.skip_space();
    if p.done() {
        return Ok(Line::Word(object.to_lowercase()));
    }
    if !p.eat(':') && !p.eat('.') {
        return fail(format!("syntax error near '{}'", p.rest()));
    }
    let method = p.identifier();
    if method.is_empty() {
        return fail(format!("<name> expected near '{}'", p.rest()));
    }
    p.skip_space();
    if !p.eat('(') {
        return fail(format!("function arguments expected near '{}'", p.rest()));
    }
    let mut args = Vec::new();
    p.skip_space();
    if !p.eat(')') {
        loop {
            p.skip_space();
            args.push(p.literal()?);
            p.skip_space();
            if p.eat(')') {
                break;
            }
            if !p.eat(',') {
                return fail(format!("')' expected near '{}'", p.rest()));
            }
        }
    }
    p.skip_space();
    p.eat(';');
    p.skip_space();
    if !p.done() {
        return fail(format!("syntax error near '{}'", p.rest()));
    }
    Ok(Line::Call {
        object: object.to_string(),
        method: method.to_string(),
        args,
    })
}

fn first_char(s: &str) -> String {
    s.chars().next().map(String::from).unwrap_or_default()
}

struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        self.s.get(self.at..).unwrap_or("")
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn done(&self) -> bool {
        self.rest().is_empty()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }
    fn identifier(&mut self) -> &'a str {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.bump();
        }
        self.s.get(start..self.at).unwrap_or("")
    }

    fn literal(&mut self) -> Result<Arg, ParseError> {
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.bump();
                self.string(q).map(Arg::Str)
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '.' => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
                {
                    self.bump();
                }
                let text = self.s.get(start..self.at).unwrap_or("");
                text.parse::<f64>()
                    .map(Arg::Number)
                    .or_else(|_| fail(format!("malformed number near '{text}'")))
            }
            _ => match self.identifier() {
                "true" => Ok(Arg::Bool(true)),
                "false" => Ok(Arg::Bool(false)),
                "nil" => Ok(Arg::Nil),
                "" => fail(format!(
                    "unexpected symbol near '{}'",
                    first_char(self.rest())
                )),
                other => fail(format!(
                    "lilt's console takes literal arguments only (strings, numbers, true, false, \
                     nil), not '{other}'"
                )),
            },
        }
    }

    /// The rest of a string literal opened by `quote`, with Lua's escapes.
    fn string(&mut self, quote: char) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return fail("unfinished string near the end of the line"),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('a') => out.push('\u{7}'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some('v') => out.push('\u{b}'),
                    Some(c @ ('\\' | '"' | '\'')) => out.push(c),
                    Some(d) if d.is_ascii_digit() => {
                        let mut code = d.to_digit(10).unwrap_or(0);
                        for _ in 0..2 {
                            match self.peek().and_then(|c| c.to_digit(10)) {
                                Some(n) => {
                                    code = code * 10 + n;
                                    self.bump();
                                }
                                None => break,
                            }
                        }
                        match char::from_u32(code).filter(|_| code < 256) {
                            Some(c) => out.push(c),
                            None => return fail("decimal escape too large"),
                        }
                    }
                    _ => return fail("invalid escape sequence"),
                },
                Some(c) => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(object: &str, method: &str, args: Vec<Arg>) -> Line {
        Line::Call {
            object: object.into(),
            method: method.into(),
            args,
        }
    }

    #[test]
    fn calls_with_literals() {
        assert_eq!(
            parse(r#"user:create("alice@localhost", 'p\'w\65')"#),
            Ok(call(
                "user",
                "create",
                vec![Arg::Str("alice@localhost".into()), Arg::Str("p'wA".into())]
            ))
        );
        assert_eq!(
            parse("server:version()"),
            Ok(call("server", "version", vec![]))
        );
        assert_eq!(
            parse(" server:shutdown( nil , 2 ); "),
            Ok(call("server", "shutdown", vec![Arg::Nil, Arg::Number(2.0)]))
        );
        assert_eq!(parse("HELP"), Ok(Line::Word("help".into())));
    }

    #[test]
    fn what_is_not_understood() {
        assert!(parse("user:create(\"alice").is_err());
        assert!(parse("user:create(os.exit())").is_err());
        assert!(parse("user:list(\"a\") extra").is_err());
        assert!(parse("user:").is_err());
        assert!(parse("(").is_err());
        assert!(parse("user:create('\\999')").is_err());
    }
}
