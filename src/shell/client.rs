//! `lilt shell [--socket PATH] [--quiet] [COMMAND [ARGS...]]`, as
//! `prosodyctl shell`: with no command an interactive console (lines from
//! stdin, `quit`/`exit`/`bye` or end of input to leave); with one, the
//! result printed and the exit status the number of errors. `shell user
//! list example.com` is `user:list("example.com")`, as prosodyctl forms it.

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use xmpp_core::stanza::Element;
use xmpp_core::{ServerConfig, StreamEvent, StreamLimits, XmlStream};

use super::session::NS_ADMIN;

/// Why the console could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error(
        "** Unable to connect to server - is it running? Is mod_admin_shell enabled?\n\
         ** Connection error: {source} ({path})"
    )]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the console connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server's console stream is not XML this client reads: {0}")]
    Stream(String),
    #[error("unknown option {0} (options: --socket PATH, --quiet)")]
    Option(String),
}

/// What the command line asked for.
struct Invocation {
    socket: Option<PathBuf>,
    quiet: bool,
    words: Vec<String>,
}

fn parse_args(args: &[&str]) -> Result<Invocation, ShellError> {
    let mut inv = Invocation {
        socket: None,
        quiet: false,
        words: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--socket" => inv.socket = it.next().map(PathBuf::from),
            s if s.starts_with("--socket=") => {
                inv.socket = s.strip_prefix("--socket=").map(PathBuf::from)
            }
            "--quiet" | "-q" => inv.quiet = true,
            s if s.starts_with("--") && inv.words.is_empty() => {
                return Err(ShellError::Option(s.to_string()));
            }
            w => inv.words.push(w.to_string()),
        }
    }
    Ok(inv)
}

/// `user list example.com` → `user:list("example.com")` (Lua `%q` quoting).
pub fn command_line(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [object, method, args @ ..] => {
            let args: Vec<String> = args.iter().map(|a| lua_quote(a)).collect();
            format!("{object}:{method}({})", args.join(", "))
        }
    }
}

fn lua_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One connection to the console socket.
struct Console {
    conn: UnixStream,
    xml: XmlStream,
    buf: Vec<u8>,
    pending: std::collections::VecDeque<Element>,
}

impl Console {
    fn connect(path: PathBuf) -> Result<Console, ShellError> {
        let mut conn = UnixStream::connect(&path).map_err(|source| ShellError::Connect {
            path: path.clone(),
            source,
        })?;
        conn.write_all(
            format!(
                "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
                 xml:lang='en' xmlns='{NS_ADMIN}' id=''>"
            )
            .as_bytes(),
        )?;
        Ok(Console {
            conn,
            xml: XmlStream::new(StreamLimits::default()),
            buf: vec![0; 16 * 1024],
            pending: Default::default(),
        })
    }

    fn send_line(&mut self, line: &str) -> Result<(), ShellError> {
        let input = Element::new("repl-input", NS_ADMIN).text(line.to_string());
        self.conn.write_all(input.to_xml_in(NS_ADMIN).as_bytes())?;
        Ok(())
    }

    /// The next element from the server; `None` when the stream ends.
    fn next(&mut self) -> Result<Option<Element>, ShellError> {
        loop {
            if let Some(el) = self.pending.pop_front() {
                return Ok(Some(el));
            }
            let n = self.conn.read(&mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            let mut events = Vec::new();
            self.xml
                .feed(self.buf.get(..n).unwrap_or_default(), &mut events)
                .map_err(|e| ShellError::Stream(e.to_string()))?;
            for event in events {
                match event {
                    StreamEvent::Stanza(el) => self.pending.push_back(el),
                    StreamEvent::Close => return Ok(None),
                    StreamEvent::Open(_) => {}
                }
            }
        }
    }

    /// Prints the reply to one line; returns (errors, whether the stream
    /// is still open).
    fn print_reply(&mut self, prefixed: bool) -> Result<(u8, bool), ShellError> {
        let mut errors = 0u8;
        while let Some(el) = self.next()? {
            let is_error = el.get_attr("type") == Some("error");
            let text = el.text_content();
            match (prefixed, is_error) {
                (true, _) if el.name() == "repl-result" && text.is_empty() => {}
                (true, e) => println!("{} {text}", if e { "!" } else { "|" }),
                (false, true) => {
                    errors = errors.saturating_add(1);
                    eprintln!("{text}");
                }
                (false, false) => println!("{text}"),
            }
            if el.name() == "repl-result" {
                return Ok((errors, true));
            }
        }
        Ok((errors, false))
    }
}

const BANNER: &str = "Welcome to lilt's administration console (Prosody's admin shell). For a list \
                      of commands, type: help";

/// Runs `lilt shell ARGS`; `Ok(n)` is the number of errors (the exit status).
pub fn run(config: &ServerConfig, args: &[&str]) -> Result<u8, ShellError> {
    let inv = parse_args(args)?;
    let path = inv
        .socket
        .map(|p| config.resolve_path(&p.to_string_lossy()))
        .unwrap_or_else(|| super::socket_path(config));
    let mut console = Console::connect(path)?;
    if !inv.words.is_empty() {
        console.send_line(&command_line(&inv.words))?;
        return Ok(console.print_reply(false)?.0);
    }
    if !inv.quiet {
        println!("{BANNER}");
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print!("lilt> ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next().transpose()? else {
            println!();
            return Ok(0);
        };
        let line = line.trim();
        if matches!(line, "quit" | "exit" | "bye") {
            return Ok(0);
        }
        if line.is_empty() {
            continue;
        }
        console.send_line(line)?;
        if !console.print_reply(true)?.1 {
            println!("--- session closed ---");
            return Ok(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_a_call_as_prosodyctl_forms_it() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(command_line(&words(&["help"])), "help");
        assert_eq!(
            command_line(&words(&["user", "create", "a@b", "p\"w"])),
            r#"user:create("a@b", "p\"w")"#
        );
        assert_eq!(
            command_line(&words(&["server", "version"])),
            "server:version()"
        );
    }
}
