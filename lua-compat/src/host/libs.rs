//! The libraries Prosody implements in C, in Rust: `util.hashes`,
//! `util.encodings`, `util.random`, `util.uuid`, `util.id`, `util.time`,
//! `util.hex`. Each function is registered as a table of Lua functions.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use mlua::{Lua, LuaString, Table as LuaTable, Value as LuaValue};
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Bytes, or their lower-case hex when `as_hex` (Prosody's second argument).
fn digest_out(lua: &Lua, bytes: &[u8], as_hex: Option<bool>) -> mlua::Result<LuaString> {
    if as_hex.unwrap_or(false) {
        lua.create_string(hex(bytes))
    } else {
        lua.create_string(bytes)
    }
}

fn hmac_bytes<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this does not happen.
        Err(_) => Vec::new(),
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n.min(1 << 20)];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

pub(crate) fn hashes(lua: &Lua) -> mlua::Result<LuaTable> {
    let t = lua.create_table()?;
    t.set(
        "sha1",
        lua.create_function(|lua, (s, h): (LuaString, Option<bool>)| {
            digest_out(lua, &Sha1::digest(s.as_bytes()), h)
        })?,
    )?;
    t.set(
        "sha256",
        lua.create_function(|lua, (s, h): (LuaString, Option<bool>)| {
            digest_out(lua, &Sha256::digest(s.as_bytes()), h)
        })?,
    )?;
    t.set(
        "sha512",
        lua.create_function(|lua, (s, h): (LuaString, Option<bool>)| {
            digest_out(lua, &Sha512::digest(s.as_bytes()), h)
        })?,
    )?;
    t.set(
        "hmac_sha1",
        lua.create_function(|lua, (k, m, h): (LuaString, LuaString, Option<bool>)| {
            digest_out(
                lua,
                &hmac_bytes::<Hmac<Sha1>>(&k.as_bytes(), &m.as_bytes()),
                h,
            )
        })?,
    )?;
    t.set(
        "hmac_sha256",
        lua.create_function(|lua, (k, m, h): (LuaString, LuaString, Option<bool>)| {
            digest_out(
                lua,
                &hmac_bytes::<Hmac<Sha256>>(&k.as_bytes(), &m.as_bytes()),
                h,
            )
        })?,
    )?;
    t.set(
        "hmac_sha512",
        lua.create_function(|lua, (k, m, h): (LuaString, LuaString, Option<bool>)| {
            digest_out(
                lua,
                &hmac_bytes::<Hmac<Sha512>>(&k.as_bytes(), &m.as_bytes()),
                h,
            )
        })?,
    )?;
    let pbkdf2_sha1 = lua.create_function(|lua, (p, s, n): (LuaString, LuaString, u32)| {
        let mut out = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<Sha1>(
            &p.as_bytes(),
            &s.as_bytes(),
            n.clamp(1, 10_000_000),
            &mut out,
        );
        lua.create_string(out)
    })?;
    t.set("scram_Hi_sha1", pbkdf2_sha1.clone())?;
    t.set("pbkdf2_hmac_sha1", pbkdf2_sha1)?;
    t.set(
        "pbkdf2_hmac_sha256",
        lua.create_function(|lua, (p, s, n): (LuaString, LuaString, u32)| {
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(
                &p.as_bytes(),
                &s.as_bytes(),
                n.clamp(1, 10_000_000),
                &mut out,
            );
            lua.create_string(out)
        })?,
    )?;
    t.set(
        "equals",
        lua.create_function(|_, (a, b): (LuaString, LuaString)| {
            let (a, b) = (a.as_bytes(), b.as_bytes());
            if a.len() != b.len() {
                return Ok(false);
            }
            Ok(a.iter()
                .zip(b.iter())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0)
        })?,
    )?;
    Ok(t)
}

fn prep(
    lua: &Lua,
    s: &LuaString,
    f: fn(&str) -> Result<std::borrow::Cow<'_, str>, stringprep::Error>,
) -> mlua::Result<LuaValue> {
    let Ok(s) = s.to_str() else {
        return Ok(LuaValue::Nil);
    };
    match f(&s) {
        Ok(out) => Ok(LuaValue::String(lua.create_string(out.as_ref())?)),
        Err(_) => Ok(LuaValue::Nil),
    }
}

pub(crate) fn encodings(lua: &Lua) -> mlua::Result<LuaTable> {
    let t = lua.create_table()?;
    let b64 = lua.create_table()?;
    b64.set(
        "encode",
        lua.create_function(|_, s: LuaString| {
            Ok(base64::engine::general_purpose::STANDARD.encode(s.as_bytes()))
        })?,
    )?;
    b64.set(
        "decode",
        lua.create_function(|lua, s: LuaString| {
            let cleaned: Vec<u8> = s
                .as_bytes()
                .iter()
                .copied()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            match base64::engine::general_purpose::STANDARD.decode(cleaned) {
                Ok(v) => Ok(LuaValue::String(lua.create_string(v)?)),
                Err(_) => Ok(LuaValue::Nil),
            }
        })?,
    )?;
    t.set("base64", b64)?;
    let sp = lua.create_table()?;
    sp.set(
        "nameprep",
        lua.create_function(|lua, s: LuaString| prep(lua, &s, stringprep::nameprep))?,
    )?;
    sp.set(
        "nodeprep",
        lua.create_function(|lua, s: LuaString| prep(lua, &s, stringprep::nodeprep))?,
    )?;
    sp.set(
        "resourceprep",
        lua.create_function(|lua, s: LuaString| prep(lua, &s, stringprep::resourceprep))?,
    )?;
    sp.set(
        "saslprep",
        lua.create_function(|lua, s: LuaString| prep(lua, &s, stringprep::saslprep))?,
    )?;
    t.set("stringprep", sp)?;
    let idna = lua.create_table()?;
    idna.set(
        "to_ascii",
        lua.create_function(|_, s: String| Ok(idna::domain_to_ascii(&s).ok()))?,
    )?;
    idna.set(
        "to_unicode",
        lua.create_function(|_, s: String| Ok(idna::domain_to_unicode(&s).0))?,
    )?;
    t.set("idna", idna)?;
    let utf8 = lua.create_table()?;
    utf8.set(
        "valid",
        lua.create_function(|_, s: LuaString| Ok(std::str::from_utf8(&s.as_bytes()).is_ok()))?,
    )?;
    utf8.set(
        "length",
        lua.create_function(|_, s: LuaString| {
            Ok(std::str::from_utf8(&s.as_bytes())
                .ok()
                .map(|s| s.chars().count()))
        })?,
    )?;
    t.set("utf8", utf8)?;
    Ok(t)
}

/// `util.jid`'s stringprep step: (node, host, resource, strict) prepared,
/// or nothing when a part is invalid.
pub(crate) fn jid_prep(lua: &Lua) -> mlua::Result<mlua::Function> {
    lua.create_function(
        |_,
         (node, host, resource, _strict): (
            Option<String>,
            String,
            Option<String>,
            Option<bool>,
        )| {
            let node = match node {
                Some(n) => match stringprep::nodeprep(&n) {
                    Ok(n) if !n.is_empty() && n.len() <= 1023 => Some(n.into_owned()),
                    _ => return Ok((None, None, None)),
                },
                None => None,
            };
            let host = match stringprep::nameprep(&host) {
                Ok(h) if !h.is_empty() && h.len() <= 1023 => h.into_owned(),
                _ => return Ok((None, None, None)),
            };
            let resource = match resource {
                Some(r) => match stringprep::resourceprep(&r) {
                    Ok(r) if !r.is_empty() && r.len() <= 1023 => Some(r.into_owned()),
                    _ => return Ok((None, None, None)),
                },
                None => None,
            };
            Ok((node, Some(host), resource))
        },
    )
}

fn uuid_v4() -> String {
    let mut b = random_bytes(16);
    if b.len() < 16 {
        b.resize(16, 0);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn id_of(len: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(len))
}

pub(crate) fn random(lua: &Lua) -> mlua::Result<LuaTable> {
    let t = lua.create_table()?;
    t.set(
        "bytes",
        lua.create_function(|lua, n: usize| lua.create_string(random_bytes(n)))?,
    )?;
    Ok(t)
}

pub(crate) fn uuid(lua: &Lua) -> mlua::Result<LuaTable> {
    let t = lua.create_table()?;
    t.set("generate", lua.create_function(|_, ()| Ok(uuid_v4()))?)?;
    t.set("v4", lua.create_function(|_, ()| Ok(uuid_v4()))?)?;
    Ok(t)
}

pub(crate) fn id(lua: &Lua) -> mlua::Result<LuaTable> {
    let t = lua.create_table()?;
    t.set("short", lua.create_function(|_, ()| Ok(id_of(6)))?)?;
    t.set("medium", lua.create_function(|_, ()| Ok(id_of(12)))?)?;
    t.set("long", lua.create_function(|_, ()| Ok(id_of(24)))?)?;
    t.set("tiny", lua.create_function(|_, ()| Ok(id_of(3)))?)?;
    Ok(t)
}

pub(crate) fn time(lua: &Lua) -> mlua::Result<LuaTable> {
    let t = lua.create_table()?;
    t.set(
        "now",
        lua.create_function(|_, ()| {
            Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0))
        })?,
    )?;
    let start = std::time::Instant::now();
    t.set(
        "monotonic",
        lua.create_function(move |_, ()| Ok(start.elapsed().as_secs_f64()))?,
    )?;
    Ok(t)
}

pub(crate) fn hex_lib(lua: &Lua) -> mlua::Result<LuaTable> {
    let t = lua.create_table()?;
    let to = lua.create_function(|_, s: LuaString| Ok(hex(&s.as_bytes())))?;
    let from = lua.create_function(|lua, s: LuaString| {
        let b = s.as_bytes();
        if !b.len().is_multiple_of(2) {
            return Ok(LuaValue::Nil);
        }
        let mut out = Vec::with_capacity(b.len() / 2);
        for pair in b.chunks(2) {
            let Ok(text) = std::str::from_utf8(pair) else {
                return Ok(LuaValue::Nil);
            };
            match u8::from_str_radix(text, 16) {
                Ok(v) => out.push(v),
                Err(_) => return Ok(LuaValue::Nil),
            }
        }
        Ok(LuaValue::String(lua.create_string(out)?))
    })?;
    t.set("to", to.clone())?;
    t.set("encode", to)?;
    t.set("from", from.clone())?;
    t.set("decode", from)?;
    Ok(t)
}
