//! `util.json`: Lua values to JSON text and back (serde_json underneath).
//!
//! As Prosody's: a table with only keys 1..n (or marked with
//! `json.array_mt`) is an array, any other table an object; an empty table
//! is an object unless marked; `json.null` stands for JSON null.

use mlua::{Lua, Table as LuaTable, Value as LuaValue};
use serde_json::{Map, Number, Value as Json};

const MAX_DEPTH: usize = 128;

fn to_json(v: &LuaValue, null: &LuaTable, array_mt: &LuaTable, depth: usize) -> mlua::Result<Json> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime("json: table nested too deeply"));
    }
    Ok(match v {
        LuaValue::Nil => Json::Null,
        LuaValue::Boolean(b) => Json::Bool(*b),
        LuaValue::Integer(i) => Json::Number((*i).into()),
        LuaValue::Number(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        LuaValue::String(s) => Json::String(s.to_string_lossy()),
        LuaValue::Table(t) if t == null => Json::Null,
        LuaValue::Table(t) => {
            let len = t.raw_len();
            let marked = t.metatable().is_some_and(|m| m == *array_mt);
            let mut count = 0usize;
            for pair in t.clone().pairs::<LuaValue, LuaValue>() {
                pair?;
                count += 1;
            }
            if marked || (len > 0 && count == len) {
                let mut out = Vec::with_capacity(len);
                for i in 1..=len {
                    out.push(to_json(&t.raw_get(i)?, null, array_mt, depth + 1)?);
                }
                Json::Array(out)
            } else {
                let mut out = Map::new();
                for pair in t.clone().pairs::<LuaValue, LuaValue>() {
                    let (k, v) = pair?;
                    let key = match k {
                        LuaValue::String(s) => s.to_string_lossy(),
                        LuaValue::Integer(i) => i.to_string(),
                        LuaValue::Number(f) => f.to_string(),
                        _ => continue,
                    };
                    if matches!(v, LuaValue::Function(_) | LuaValue::UserData(_)) {
                        continue;
                    }
                    out.insert(key, to_json(&v, null, array_mt, depth + 1)?);
                }
                Json::Object(out)
            }
        }
        _ => return Err(mlua::Error::runtime("json: cannot encode this value")),
    })
}

fn from_json(lua: &Lua, j: &Json, null: &LuaTable, array_mt: &LuaTable) -> mlua::Result<LuaValue> {
    Ok(match j {
        Json::Null => LuaValue::Table(null.clone()),
        Json::Bool(b) => LuaValue::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => LuaValue::Integer(i),
            None => LuaValue::Number(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => LuaValue::String(lua.create_string(s)?),
        Json::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, v) in a.iter().enumerate() {
                t.raw_set(i + 1, from_json(lua, v, null, array_mt)?)?;
            }
            t.set_metatable(Some(array_mt.clone()))?;
            LuaValue::Table(t)
        }
        Json::Object(o) => {
            let t = lua.create_table_with_capacity(0, o.len())?;
            for (k, v) in o {
                t.raw_set(k.as_str(), from_json(lua, v, null, array_mt)?)?;
            }
            LuaValue::Table(t)
        }
    })
}

pub(crate) fn json(lua: &Lua) -> mlua::Result<LuaTable> {
    let t = lua.create_table()?;
    let null = lua.create_table()?;
    let array_mt = lua.create_table()?;
    t.set("null", &null)?;
    t.set("array_mt", &array_mt)?;
    let (n, a) = (null.clone(), array_mt.clone());
    let encode = lua.create_function(move |_, v: LuaValue| {
        let j = to_json(&v, &n, &a, 0)?;
        serde_json::to_string(&j).map_err(|e| mlua::Error::runtime(e.to_string()))
    })?;
    t.set("encode", encode.clone())?;
    t.set("encode_ordered", encode)?;
    let (n, a) = (null.clone(), array_mt.clone());
    t.set(
        "decode",
        lua.create_function(move |lua, s: mlua::LuaString| {
            match serde_json::from_slice::<Json>(&s.as_bytes()) {
                Ok(j) => Ok((from_json(lua, &j, &n, &a)?, None)),
                Err(e) => Ok((LuaValue::Nil, Some(e.to_string()))),
            }
        })?,
    )?;
    let a = array_mt.clone();
    t.set(
        "array",
        lua.create_function(move |_, t: Option<LuaTable>| {
            let t = match t {
                Some(t) => t,
                None => return Ok(None),
            };
            t.set_metatable(Some(a.clone()))?;
            Ok(Some(t))
        })?,
    )?;
    Ok(t)
}
