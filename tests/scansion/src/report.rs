//! Expected failures, per-script verdicts and the printed report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::runner::Failure;

/// `name.scs  reason` per line; `#` comments and blank lines are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedFailures {
    pub entries: BTreeMap<String, String>,
}

/// The expected-failures file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ExpectedFailuresError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: String,
        line: usize,
        reason: String,
    },
}

impl ExpectedFailures {
    pub fn load(path: &Path) -> Result<ExpectedFailures, ExpectedFailuresError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExpectedFailuresError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ExpectedFailures::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<ExpectedFailures, ExpectedFailuresError> {
        let mut entries = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, reason) = match line.split_once(char::is_whitespace) {
                Some((name, reason)) => (name, reason.trim()),
                None => (line, ""),
            };
            let syntax = |reason: &str| ExpectedFailuresError::Syntax {
                path: origin.to_string(),
                line: i + 1,
                reason: reason.to_string(),
            };
            if !name.ends_with(".scs") {
                return Err(syntax("expected `name.scs  reason`"));
            }
            if reason.is_empty() {
                return Err(syntax("every expected failure needs a reason"));
            }
            if entries
                .insert(name.to_string(), reason.to_string())
                .is_some()
            {
                return Err(syntax("script listed twice"));
            }
        }
        Ok(ExpectedFailures { entries })
    }

    pub fn reason(&self, script: &str) -> Option<&str> {
        self.entries.get(script).map(String::as_str)
    }
}

/// A script's result judged against the expected-failures list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(Failure),
    /// Failed, as listed.
    XFail {
        reason: String,
        failure: Failure,
    },
    /// Passed, though listed as failing: the list must shrink.
    XPass {
        reason: String,
    },
}

impl Verdict {
    pub fn judge(result: Result<(), Failure>, expected_reason: Option<&str>) -> Verdict {
        match (result, expected_reason) {
            (Ok(()), None) => Verdict::Pass,
            (Err(f), None) => Verdict::Fail(f),
            (Ok(()), Some(r)) => Verdict::XPass {
                reason: r.to_string(),
            },
            (Err(failure), Some(r)) => Verdict::XFail {
                reason: r.to_string(),
                failure,
            },
        }
    }

    /// Whether this verdict makes the run fail.
    pub fn is_bad(&self) -> bool {
        matches!(self, Verdict::Fail(_) | Verdict::XPass { .. })
    }

    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Pass | Verdict::XPass { .. })
    }
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}\n"))
        .collect::<String>()
}

/// Describes a failure over several lines: where, why, expected vs received.
pub fn describe_failure(f: &Failure) -> String {
    let mut out = String::new();
    match (&f.line, &f.action) {
        (Some(line), Some(action)) => {
            let _ = writeln!(out, "      line {line}: {action}: {}", f.message);
        }
        _ => {
            let _ = writeln!(out, "      {}", f.message);
        }
    }
    if let Some(expected) = &f.expected {
        out.push_str("      expected:\n");
        out.push_str(&indent(expected, "        "));
    }
    if let Some(received) = &f.received {
        out.push_str("      received:\n");
        out.push_str(&indent(received, "        "));
    }
    out
}

/// The report block for one script (first line `PASS name`, etc.).
pub fn format_verdict(name: &str, verdict: &Verdict, verbose: bool) -> String {
    match verdict {
        Verdict::Pass => format!("PASS  {name}\n"),
        Verdict::Fail(f) => format!("FAIL  {name}\n{}", describe_failure(f)),
        Verdict::XFail { reason, failure } => {
            let mut out = format!("XFAIL {name}  ({reason})\n");
            if verbose {
                out.push_str(&describe_failure(failure));
            } else if let (Some(line), Some(action)) = (failure.line, &failure.action) {
                let _ = writeln!(out, "      line {line}: {action}: {}", failure.message);
            } else {
                let _ = writeln!(out, "      {}", failure.message);
            }
            out
        }
        Verdict::XPass { reason } => format!(
            "XPASS {name}  (listed as an expected failure: {reason}; remove it from the list)\n"
        ),
    }
}

/// Totals over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub xfailed: usize,
    pub xpassed: usize,
}

impl Summary {
    pub fn add(&mut self, v: &Verdict) {
        self.total += 1;
        match v {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail(_) => self.failed += 1,
            Verdict::XFail { .. } => self.xfailed += 1,
            Verdict::XPass { .. } => {
                self.passed += 1;
                self.xpassed += 1;
            }
        }
    }

    pub fn ok(&self) -> bool {
        self.failed == 0 && self.xpassed == 0
    }

    pub fn line(&self) -> String {
        format!(
            "passed {}/{} (expected failures: {}, unexpected failures: {}, unexpected passes: {})",
            self.passed, self.total, self.xfailed, self.failed, self.xpassed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Failure {
        Failure {
            line: Some(12),
            action: Some("Romeo receives".into()),
            message: "stanza does not match at iq: attribute 'type': expected \"result\", received \"error\"".into(),
            expected: Some("<iq type='result'/>".into()),
            received: Some("<iq type='error'>\n  <error/>\n</iq>".into()),
        }
    }

    #[test]
    fn parses_the_expected_failures_format() {
        let ef = ExpectedFailures::parse(
            "# comment\n\nmuc_x.scs   mod_muc not implemented yet\npep.scs\tPEP missing\n",
            "f",
        )
        .unwrap();
        assert_eq!(ef.reason("muc_x.scs"), Some("mod_muc not implemented yet"));
        assert_eq!(ef.reason("pep.scs"), Some("PEP missing"));
        assert_eq!(ef.reason("basic.scs"), None);
        assert!(ExpectedFailures::parse("a.scs\n", "f").is_err());
        assert!(ExpectedFailures::parse("a.txt why\n", "f").is_err());
        assert!(ExpectedFailures::parse("a.scs x\na.scs y\n", "f").is_err());
    }

    #[test]
    fn verdicts_keep_the_list_honest() {
        assert_eq!(Verdict::judge(Ok(()), None), Verdict::Pass);
        assert!(Verdict::judge(Err(failure()), None).is_bad());
        let xfail = Verdict::judge(Err(failure()), Some("why"));
        assert!(!xfail.is_bad());
        let xpass = Verdict::judge(Ok(()), Some("why"));
        assert!(xpass.is_bad() && xpass.passed());
        let mut s = Summary::default();
        for v in [Verdict::Pass, xfail, xpass] {
            s.add(&v);
        }
        assert!(!s.ok());
        assert_eq!(
            s.line(),
            "passed 2/3 (expected failures: 1, unexpected failures: 0, unexpected passes: 1)"
        );
    }

    #[test]
    fn a_failure_shows_expected_and_received_xml() {
        let text = format_verdict("x.scs", &Verdict::Fail(failure()), false);
        assert_eq!(
            text,
            "FAIL  x.scs\n      line 12: Romeo receives: stanza does not match at iq: attribute 'type': expected \"result\", received \"error\"\n      expected:\n        <iq type='result'/>\n      received:\n        <iq type='error'>\n          <error/>\n        </iq>\n"
        );
    }
}
