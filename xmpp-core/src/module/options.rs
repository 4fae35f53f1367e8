//! Prosody's typed option getters (`module:get_option_string`, `_number`,
//! `_boolean`, `_array`, `_set`, `_inherited_set`, `_path`, `_period`,
//! `_enum`): the host's value, else the global one; `Ok(None)` when the
//! option is not set; a value of a shape Prosody would refuse is an
//! [`OptionError`] naming the option and where it was set. Conversions are
//! Prosody's: a number is a string where a string is asked for, `"yes"` is
//! true, a single string is a one-element list.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::ModuleContext;
use crate::config::OptionError;
use crate::value::Value;

impl ModuleContext {
    fn option_error(&self, name: &str, problem: String) -> OptionError {
        self.host().option_error(name, problem)
    }

    /// `get_option_string`.
    pub fn get_option_string(&self, name: &str) -> Result<Option<String>, OptionError> {
        match self.get_option(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Integer(i)) => Ok(Some(i.to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            // Prosody takes a one-element table's element, with a warning.
            Some(Value::Table(t)) if t.map.is_empty() && t.seq.len() == 1 => match t.seq.first() {
                Some(Value::String(s)) => Ok(Some(s.clone())),
                _ => Err(self.option_error(name, "must be a string".into())),
            },
            Some(v) => {
                Err(self.option_error(name, format!("must be a string, not a {}", v.type_name())))
            }
        }
    }

    /// `get_option_number` (a string holding a number is accepted).
    pub fn get_option_number(&self, name: &str) -> Result<Option<f64>, OptionError> {
        match self.get_option(name) {
            None => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .map(Some)
                .map_err(|_| self.option_error(name, format!("must be a number, not {s:?}"))),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                self.option_error(name, format!("must be a number, not a {}", v.type_name()))
            }),
        }
    }

    /// `get_option_integer` (Prosody 13): a number with no fraction.
    pub fn get_option_integer(&self, name: &str) -> Result<Option<i64>, OptionError> {
        match self.get_option_number(name)? {
            None => Ok(None),
            Some(n) if n.fract() == 0.0 && n.is_finite() => Ok(Some(n as i64)),
            Some(n) => Err(self.option_error(name, format!("must be a whole number, not {n}"))),
        }
    }

    /// `get_option_boolean`: true, false, and the strings Prosody accepts.
    pub fn get_option_boolean(&self, name: &str) -> Result<Option<bool>, OptionError> {
        match self.get_option(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if matches!(s.as_str(), "true" | "yes" | "1" | "on") => {
                Ok(Some(true))
            }
            Some(Value::String(s)) if matches!(s.as_str(), "false" | "no" | "0" | "off") => {
                Ok(Some(false))
            }
            Some(Value::Integer(1)) => Ok(Some(true)),
            Some(Value::Integer(0)) => Ok(Some(false)),
            Some(v) => Err(self.option_error(
                name,
                format!("must be true or false, not a {}", v.type_name()),
            )),
        }
    }

    /// `get_option_array`: a list of strings (a single string is one).
    pub fn get_option_array(&self, name: &str) -> Result<Option<Vec<String>>, OptionError> {
        match self.get_option(name) {
            None => Ok(None),
            Some(Value::Table(t)) => Ok(Some(
                t.seq
                    .iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Integer(i) => Some(i.to_string()),
                        _ => None,
                    })
                    .collect(),
            )),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(v) => {
                Err(self.option_error(name, format!("must be a list, not a {}", v.type_name())))
            }
        }
    }

    /// `get_option_set`: a list or a `{ name = true }` table, as a set.
    pub fn get_option_set(&self, name: &str) -> Result<Option<BTreeSet<String>>, OptionError> {
        match self.get_option(name) {
            None => Ok(None),
            Some(v) => v
                .as_string_list()
                .map(|l| Some(l.into_iter().collect()))
                .ok_or_else(|| {
                    self.option_error(name, format!("must be a list, not a {}", v.type_name()))
                }),
        }
    }

    /// `get_option_inherited_set`: the global set and the host's together.
    pub fn get_option_inherited_set(&self, name: &str) -> Result<BTreeSet<String>, OptionError> {
        let config = self.host().config();
        let mut out = BTreeSet::new();
        let global = config.get_global(name);
        let own = config
            .host(&self.host().name)
            .and_then(|h| h.section.get(name));
        for v in [global, own].into_iter().flatten() {
            let list = v.as_string_list().ok_or_else(|| {
                self.option_error(name, format!("must be a list, not a {}", v.type_name()))
            })?;
            out.extend(list);
        }
        Ok(out)
    }

    /// `get_option_path`: a path, relative ones resolved against the config
    /// file's directory.
    pub fn get_option_path(&self, name: &str) -> Result<Option<PathBuf>, OptionError> {
        Ok(self
            .get_option_string(name)?
            .map(|p| self.host().config().resolve_path(&p)))
    }

    /// `get_option_period`: seconds as a number, or a duration such as
    /// `"30s"`, `"5 minutes"`, `"1 day"`, `"2w"`; `"never"` and
    /// `math.huge` are `Duration::MAX`.
    pub fn get_option_period(&self, name: &str) -> Result<Option<Duration>, OptionError> {
        let bad =
            |what: String| self.option_error(name, format!("must be a time period, not {what}"));
        match self.get_option(name) {
            None => Ok(None),
            Some(Value::String(s)) => parse_period(s)
                .map(Some)
                .ok_or_else(|| bad(format!("{s:?}"))),
            Some(v) => match v.as_f64() {
                Some(n) if n.is_infinite() && n > 0.0 => Ok(Some(Duration::MAX)),
                Some(n) if n >= 0.0 && n.is_finite() => Ok(Some(Duration::from_secs_f64(n))),
                Some(n) => Err(bad(n.to_string())),
                None => Err(bad(format!("a {}", v.type_name()))),
            },
        }
    }

    /// `get_option_enum`: a string that must be one of `allowed`.
    pub fn get_option_enum(
        &self,
        name: &str,
        allowed: &[&str],
    ) -> Result<Option<String>, OptionError> {
        match self.get_option_string(name)? {
            None => Ok(None),
            Some(s) if allowed.contains(&s.as_str()) => Ok(Some(s)),
            Some(s) => Err(self.option_error(
                name,
                format!("must be one of {}, not {s:?}", allowed.join(", ")),
            )),
        }
    }
}

/// A duration as Prosody's `util.human.io.parse_duration` reads it.
pub fn parse_period(text: &str) -> Option<Duration> {
    let t = text.trim().to_ascii_lowercase();
    if t == "never" || t == "inf" {
        return Some(Duration::MAX);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = if num.is_empty() {
        1.0
    } else {
        num.parse().ok()?
    };
    let unit = unit.trim();
    let unit = unit
        .strip_suffix('s')
        .filter(|u| u.len() > 1)
        .unwrap_or(unit);
    let secs = match unit {
        "" | "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hr" | "hour" => 3600.0,
        "d" | "day" => 86400.0,
        "w" | "week" => 7.0 * 86400.0,
        "month" => 30.0 * 86400.0,
        "y" | "year" => 365.0 * 86400.0,
        _ => return None,
    };
    let total = n * secs;
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::parse_period;
    use std::time::Duration;

    #[test]
    fn periods_read_as_prosody_writes_them() {
        assert_eq!(parse_period("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_period("5 minutes"), Some(Duration::from_secs(300)));
        assert_eq!(parse_period("1 day"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_period("2w"), Some(Duration::from_secs(14 * 86400)));
        assert_eq!(parse_period("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_period("never"), Some(Duration::MAX));
        assert_eq!(parse_period("soon"), None);
    }
}
