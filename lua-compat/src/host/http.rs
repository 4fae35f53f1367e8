//! HTTP requests to a module's routes (`module:provides("http", { route =
//! { ["GET /path"] = handler } })`): Prosody's `event.request` /
//! `event.response` tables in, the handler's answer out. A handler may
//! return a body (string), a status code (number), a table with
//! `status_code`, `headers`, `body`, or call `response:send(body)`.

use mlua::{Function, Lua, Table as LuaTable, Value as LuaValue};

use super::api::{HttpRequest, HttpResponse};

fn request_table(lua: &Lua, req: &HttpRequest) -> mlua::Result<LuaTable> {
    let t = lua.create_table()?;
    t.set("method", req.method.as_str())?;
    t.set("path", req.path.as_str())?;
    let url = lua.create_table()?;
    url.set("path", req.path.as_str())?;
    if let Some(q) = &req.query {
        url.set("query", q.as_str())?;
    }
    t.set("url", url)?;
    let headers = lua.create_table()?;
    for (k, v) in &req.headers {
        headers.set(k.to_ascii_lowercase().replace('-', "_"), v.as_str())?;
    }
    t.set("headers", headers)?;
    t.set("body", lua.create_string(&req.body)?)?;
    Ok(t)
}

fn response_table(lua: &Lua) -> mlua::Result<LuaTable> {
    let t = lua.create_table()?;
    t.set("status_code", 200)?;
    t.set("headers", lua.create_table()?)?;
    t.set(
        "send",
        lua.create_function(|_, (this, body): (LuaTable, Option<mlua::LuaString>)| {
            if let Some(b) = body {
                this.set("body", b)?;
            }
            this.set("sent", true)?;
            Ok(true)
        })?,
    )?;
    Ok(t)
}

fn headers_of(t: &LuaTable) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = t
        .pairs::<String, String>()
        .flatten()
        .map(|(k, v)| (k.replace('_', "-"), v))
        .collect();
    out.sort();
    out
}

fn bytes(v: &LuaValue) -> Vec<u8> {
    match v {
        LuaValue::String(s) => s.as_bytes().to_vec(),
        _ => Vec::new(),
    }
}

pub(crate) fn call(lua: &Lua, f: &Function, req: &HttpRequest) -> mlua::Result<HttpResponse> {
    let event = lua.create_table()?;
    let request = request_table(lua, req)?;
    let response = response_table(lua)?;
    event.set("request", &request)?;
    event.set("response", &response)?;
    let arg = req.wildcard.as_deref().unwrap_or(&req.path);
    let ret: LuaValue = f.call((&event, arg))?;
    let mut out = HttpResponse {
        status: response.get::<Option<u16>>("status_code")?.unwrap_or(200),
        headers: headers_of(&response.get::<LuaTable>("headers")?),
        body: bytes(&response.get::<LuaValue>("body")?),
    };
    match ret {
        LuaValue::String(s) => out.body = s.as_bytes().to_vec(),
        LuaValue::Integer(code) => out.status = u16::try_from(code).unwrap_or(500),
        LuaValue::Number(code) => out.status = code as u16,
        LuaValue::Table(t) => {
            if let Some(code) = t.get::<Option<u16>>("status_code")? {
                out.status = code;
            }
            if let Some(h) = t.get::<Option<LuaTable>>("headers")? {
                out.headers = headers_of(&h);
            }
            out.body = bytes(&t.get::<LuaValue>("body")?);
        }
        _ => {}
    }
    Ok(out)
}
