//! Writing values exactly as Prosody 0.12's `util.serialization` does with
//! its default options (the ones `util.datamanager` uses).

use std::fmt::Write as _;

use super::{DatKey, DatTable, DatValue, MAX_DEPTH};

/// Serialises a value: tables one entry per line, indented with tabs,
/// sequence items (keys 1, 2, ... in the order they come) without a key,
/// every other key in brackets, `;` after each entry.
pub fn serialize(v: &DatValue) -> Result<String, String> {
    let mut out = String::new();
    write_value(&mut out, v, 1)?;
    Ok(out)
}

fn write_value(out: &mut String, v: &DatValue, depth: usize) -> Result<(), String> {
    match v {
        DatValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        DatValue::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        DatValue::Number(f) => out.push_str(&format_number(*f)),
        DatValue::String(s) => quote_into(out, s),
        DatValue::Table(t) => write_table(out, t, depth)?,
    }
    Ok(())
}

fn write_key(out: &mut String, k: &DatKey) {
    match k {
        DatKey::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        DatKey::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        DatKey::Number(f) => out.push_str(&format_number(*f)),
        DatKey::String(s) => quote_into(out, s),
    }
}

fn write_table(out: &mut String, t: &DatTable, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("Can't serialize table: max table depth reached".to_string());
    }
    out.push('{');
    let mut next_index = 1i64;
    for (k, v) in t.iter() {
        out.push('\n');
        push_tabs(out, depth);
        if matches!(k, DatKey::Integer(i) if *i == next_index) {
            next_index += 1;
        } else {
            out.push('[');
            write_key(out, k);
            out.push_str("] = ");
        }
        write_value(out, v, depth + 1)?;
        out.push(';');
    }
    if !t.is_empty() {
        out.push('\n');
        push_tabs(out, depth - 1);
    }
    out.push('}');
    Ok(())
}

fn push_tabs(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push('\t');
    }
}

/// A string in double quotes; control characters, quotes, backslash and
/// every byte from 127 up are escaped (`\n`-style where Lua has a letter
/// for it, else `\ddd` with three digits), so the result is plain ASCII.
pub fn quote_string(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    quote_into(&mut out, s);
    out
}

fn quote_into(out: &mut String, s: &[u8]) {
    out.push('"');
    for &b in s {
        match b {
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x0b => out.push_str("\\v"),
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\'' => out.push_str("\\'"),
            0..=31 | 127..=255 => {
                let _ = write!(out, "\\{b:03}");
            }
            _ => out.push(b as char),
        }
    }
    out.push('"');
}

/// A float as `util.serialization` writes it: `(1/0)`, `(-1/0)`, `(0/0)`,
/// else C's `%.18g`.
pub fn format_number(f: f64) -> String {
    if f.is_nan() {
        "(0/0)".to_string()
    } else if f == f64::INFINITY {
        "(1/0)".to_string()
    } else if f == f64::NEG_INFINITY {
        "(-1/0)".to_string()
    } else {
        format_g(f, 18)
    }
}

/// C's `printf("%.<precision>g", f)` for finite `f`.
pub(crate) fn format_g(f: f64, precision: usize) -> String {
    let p = precision.max(1);
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // The exponent the e-style conversion has after rounding to p digits.
    let e_style = format!("{:.*e}", p - 1, f);
    let Some((mantissa, exp)) = e_style.split_once('e') else {
        return e_style;
    };
    let x: i64 = exp.parse().unwrap_or(0);
    if x < -4 || x >= p as i64 {
        let mantissa = strip_fraction_zeros(mantissa);
        let sign = if x < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", x.abs())
    } else {
        let decimals = (p as i64 - 1 - x).max(0) as usize;
        strip_fraction_zeros(&format!("{f:.decimals$}")).to_string()
    }
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_c_formats_them() {
        assert_eq!(format_number(0.1), "0.100000000000000006");
        assert_eq!(format_number(1.5), "1.5");
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(-0.0), "-0");
        assert_eq!(format_number(1e100), "1.00000000000000002e+100");
        assert_eq!(format_number(1e-5), "1.00000000000000008e-05");
        assert_eq!(format_number(0.0001), "0.000100000000000000005");
        assert_eq!(format_number(123456789012345678.0), "123456789012345680");
        assert_eq!(format_number(1e18), "1e+18");
        assert_eq!(format_number(1795241225.25), "1795241225.25");
        assert_eq!(format_number(f64::INFINITY), "(1/0)");
        assert_eq!(format_number(f64::NEG_INFINITY), "(-1/0)");
        assert_eq!(format_number(f64::NAN), "(0/0)");
        assert_eq!(format_g(0.5, 14), "0.5");
        assert_eq!(format_g(1e20, 14), "1e+20");
    }

    #[test]
    fn strings_escape_bytes() {
        assert_eq!(
            quote_string("é\"'\\\n\0\x7f".as_bytes()),
            r#""\195\169\"\'\\\n\000\127""#
        );
    }

    #[test]
    fn tables_nest_with_tabs() {
        let mut inner = DatTable::new();
        inner.insert_str("c", DatValue::Integer(2));
        let mut t = DatTable::new();
        t.push(DatValue::str("x"));
        t.insert(DatKey::Bool(false), DatValue::Table(inner));
        t.insert_str("e", DatValue::Table(DatTable::new()));
        assert_eq!(
            serialize(&DatValue::Table(t)).unwrap(),
            "{\n\t\"x\";\n\t[false] = {\n\t\t[\"c\"] = 2;\n\t};\n\t[\"e\"] = {};\n}"
        );
    }

    #[test]
    fn out_of_order_indices_get_keys() {
        let t: DatTable = [
            (DatKey::Integer(2), DatValue::Integer(20)),
            (DatKey::Integer(1), DatValue::Integer(10)),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            serialize(&DatValue::Table(t)).unwrap(),
            "{\n\t[2] = 20;\n\t10;\n}"
        );
    }
}
