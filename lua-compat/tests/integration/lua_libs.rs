//! The libraries and module API of the Lua host, exercised from Lua as a
//! module uses them (assertions run inside the module's state), plus the
//! host side of timers, IQ responses, stores and HTTP routes.

use crate::lua_host;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lua_compat::host::{HttpRequest, Item, Limits, LuaModule, ModuleSearch, TimerId};
use lua_host::{TestHost, list};
use xmpp_core::value::Value;

fn module(host: TestHost, code: &str) -> (Arc<TestHost>, Arc<LuaModule>) {
    let host = Arc::new(host);
    let m = LuaModule::load_code(
        host.clone(),
        "test",
        Path::new("/test/mod_test.lua"),
        code.as_bytes(),
        &ModuleSearch::default(),
        Limits::default(),
    )
    .unwrap_or_else(|e| panic!("module loads: {e}"));
    let m = Arc::new(m);
    let _ = host.module.set(Arc::downgrade(&m));
    (host, m)
}

fn check(m: &LuaModule, code: &str) {
    match m.eval(code) {
        Ok(Some(Value::Bool(true))) => {}
        other => panic!("check failed: {other:?}\n{code}"),
    }
}

#[test]
fn util_stanza() {
    let (_h, m) = module(TestHost::new("example.com"), "");
    check(
        &m,
        r#"
        local st = require "util.stanza"
        local s = st.message({ to = "a@b", type = "chat" }, "hi & bye")
            :tag("x", { xmlns = "urn:x" }):tag("y"):text("deep"):up():up()
            :tag("html", { xmlns = "urn:h" })
        s:reset()
        s:tag("after"):up()
        assert(tostring(s) == "<message to='a@b' type='chat'><body>hi &amp; bye</body><x xmlns='urn:x'><y>deep</y></x><html xmlns='urn:h'/><after/></message>", tostring(s))
        assert(s:get_child_text("body") == "hi & bye")
        assert(s:get_child("x", "urn:x"):get_child_text("y") == "deep")
        assert(s:find("{urn:x}x/y#") == "deep")
        assert(s:find("body#") == "hi & bye")
        assert(s:find("@type") == "chat")
        assert(s:get_child("x") == nil)
        local n = 0
        for tag in s:childtags() do n = n + 1 end
        assert(n == 2, n) -- body and after share the stanza's namespace
        local all = 0
        for _ in s:children() do all = all + 1 end
        assert(all == 4)
        s:maptags(function(tag) if tag.name == "html" then return nil end return tag end)
        assert(#s.tags == 3 and s:get_child("html", "urn:h") == nil)
        assert(s:top_tag() == "<message to='a@b' type='chat'>")
        local c = st.clone(s)
        c.attr.to = "other@b"
        assert(s.attr.to == "a@b" and tostring(c):find("other@b"))
        assert(st.is_stanza(c) and not st.is_stanza({}))
        local back = st.deserialize(st.preserialize(s))
        assert(tostring(back) == tostring(s))
        local iq = st.iq({ type = "get", id = "1", from = "u@h/r", to = "h" }):query("jabber:iq:version")
        local r = st.reply(iq)
        assert(r.attr.type == "result" and r.attr.to == "u@h/r" and r.attr.from == "h" and r.attr.id == "1")
        local e = st.error_reply(iq, "cancel", "item-not-found", "nope")
        local t, cond, text = e:get_error()
        assert(t == "cancel" and cond == "item-not-found" and text == "nope", tostring(e))
        assert(not pcall(st.iq, { type = "get" }))
        assert(s:pretty_print():find("\n"))
        return true
    "#,
    );
}

#[test]
fn util_jid_set_array() {
    let (_h, m) = module(TestHost::new("example.com"), "");
    check(
        &m,
        r#"
        local jid = require "util.jid"
        local n, h, r = jid.split("juliet@capulet.lit/balcony")
        assert(n == "juliet" and h == "capulet.lit" and r == "balcony")
        assert(jid.bare("juliet@capulet.lit/balcony") == "juliet@capulet.lit")
        assert(jid.bare("capulet.lit/x") == "capulet.lit")
        assert(jid.split("@bad") == nil)
        assert(jid.prep("JULIET@Capulet.LIT/Balcony") == "juliet@capulet.lit/Balcony")
        assert(jid.prep("a b@c") == nil)
        assert(jid.join("u", "h", "r") == "u@h/r" and jid.join(nil, "h") == "h")
        assert(jid.host("u@h/r") == "h" and jid.node("u@h") == "u" and jid.resource("h/r") == "r")
        assert(jid.compare("u@h/r", "u@h") and jid.compare("u@h/r", "h") and not jid.compare("u@h", "v@h"))
        assert(jid.unescape(jid.escape("a b@c")) == "a b@c")

        local set = require "util.set"
        local s = set.new({ "a", "b" })
        assert(s:contains("a") and not s:contains("c"))
        local up = s / string.upper
        assert(up:contains("A") and up:contains("B"))
        local u = s + set.new({ "c" })
        assert(#u == 3 and (u - s):contains("c") and #(u - s) == 1)
        local seen = {}
        for item in s do seen[#seen + 1] = item end
        assert(#seen == 2)
        assert(set.intersection(s, u) == s)

        local array = require "util.array"
        local a = array { 3, 1, 2 }
        assert(a:sort():concat(",") == "1,2,3")
        assert((a / function(x) return x * 2 end):concat(",") == "2,4,6")
        assert(array.collect(s):length() == 2)
        assert(a:filter(function(x) return x > 1 end):length() == 2)
        return true
    "#,
    );
}

#[test]
fn util_json_hashes_encodings() {
    let (_h, m) = module(TestHost::new("example.com"), "");
    check(
        &m,
        r#"
        local json = require "util.json"
        local t = json.decode('{"a":[1,2,{"b":null}],"c":"d"}')
        assert(t.a[1] == 1 and t.a[3].b == json.null and t.c == "d")
        assert(json.encode({ 1, 2, 3 }) == "[1,2,3]")
        assert(json.decode(json.encode({ x = "y" })).x == "y")
        assert(json.decode("{bad") == nil)

        local hashes = require "util.hashes"
        assert(hashes.sha1("abc", true) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        assert(hashes.sha256("abc", true) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        assert(hashes.hmac_sha256("key", "The quick brown fox jumps over the lazy dog", true)
            == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
        -- RFC 6070 PBKDF2-HMAC-SHA1 vector
        local hex = require "util.hex"
        assert(hex.to(hashes.scram_Hi_sha1("password", "salt", 2)) == "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957")

        local enc = require "util.encodings"
        assert(enc.base64.encode("hello") == "aGVsbG8=" and enc.base64.decode("aGVsbG8=") == "hello")
        assert(enc.stringprep.nodeprep("JuLiEt") == "juliet")
        assert(enc.stringprep.nodeprep("a@b") == nil)
        assert(enc.stringprep.nameprep("EXAMPLE.com") == "example.com")
        assert(enc.idna.to_ascii("bücher.example") == "xn--bcher-kva.example")
        assert(enc.utf8.valid("ok") and not enc.utf8.valid("\xff"))

        local uuid = require "util.uuid"
        local id = uuid.generate()
        assert(#id == 36 and id:sub(15, 15) == "4" and id ~= uuid.generate())
        assert(#require "util.random".bytes(16) == 16)
        assert(#require "util.id".medium() > 8)
        return true
    "#,
    );
}

#[test]
fn util_datetime_dataforms_cache_events() {
    let (_h, m) = module(TestHost::new("example.com"), "");
    check(
        &m,
        r#"
        local dt = require "util.datetime"
        assert(dt.datetime(0) == "1970-01-01T00:00:00Z")
        assert(dt.date(86400 * 365) == "1971-01-01")
        assert(dt.parse("2024-02-29T12:34:56Z") == 1709210096)
        assert(dt.parse("2024-02-29T14:34:56+02:00") == 1709210096)
        assert(dt.parse("2024-02-29T12:34:56.5Z") == 1709210096.5)
        assert(dt.parse("nonsense") == nil)

        local dataforms = require "util.dataforms"
        local form = dataforms.new {
            title = "T";
            { name = "FORM_TYPE", type = "hidden", value = "urn:t" };
            { name = "name", type = "text-single", required = true };
            { name = "lines", type = "text-multi" };
            { name = "tags", type = "list-multi" };
            { name = "ok", type = "boolean" };
        }
        local x = form:form({ name = "n", lines = "a\nb", tags = { "x", "y" }, ok = true }, "submit")
        local data, errors = form:data(x)
        assert(errors == nil, errors and next(errors))
        assert(data.name == "n" and data.lines == "a\nb" and data.tags[2] == "y" and data.ok == true)
        local _, errs = form:data(form:form({}, "submit"))
        assert(errs.name == "Required value missing")
        assert(form:form():get_child_text("title") == "T")
        assert(dataforms.get_type(x) == "urn:t")

        local cache = require "util.cache"
        local evicted = {}
        local c = cache.new(2, function(k) evicted[#evicted + 1] = k end)
        c:set("a", 1); c:set("b", 2); c:get("a"); c:set("c", 3)
        assert(c:get("b") == nil and c:get("a") == 1 and c:count() == 2 and evicted[1] == "b")

        local events = require "util.events".new()
        local order = {}
        events.add_handler("e", function() order[#order + 1] = "low" end, -1)
        events.add_handler("e", function() order[#order + 1] = "high" end, 10)
        events.add_handler("e", function() order[#order + 1] = "mid"; return "stop" end, 5)
        assert(events.fire_event("e") == "stop")
        assert(table.concat(order, ",") == "high,mid")
        return true
    "#,
    );
}

#[test]
fn options_in_prosodys_typed_forms() {
    let host = TestHost::new("example.com")
        .option("s", Value::str("text"))
        .option("n", Value::str("42"))
        .option("b", Value::str("yes"))
        .option("l", list(&["x", "y"]))
        .option("p", Value::str("2 hours"))
        .option("e", Value::str("b"))
        .global_option("inh", list(&["g"]))
        .option("inh", list(&["h"]));
    let (_h, m) = module(host, "");
    check(
        &m,
        r#"
        assert(module:get_option_string("s") == "text")
        assert(module:get_option_string("missing", "dflt") == "dflt")
        assert(module:get_option_number("n") == 42)
        assert(module:get_option_boolean("b") == true)
        assert(module:get_option_array("l")[2] == "y")
        assert(module:get_option_set("l"):contains("x"))
        local inh = module:get_option_inherited_set("inh")
        assert(inh:contains("g") and inh:contains("h"))
        assert(module:get_option_period("p") == 7200)
        assert(module:get_option_enum("e", "a", "b") == "b")
        assert(module:get_option_string("l") == "x") -- first item of a list
        assert(module.host == "example.com" and module.name == "test")
        assert(module:get_host() == "example.com")
        return true
    "#,
    );
}

#[test]
fn events_items_timers_and_unload() {
    let code = r#"
        local st = require "util.stanza"
        module:add_feature("urn:feature")
        module:add_identity("pubsub", "pep", "PEP")
        module:hook_tag("urn:x", "ping", function(origin, stanza) return "tag" end)
        module:hook("custom", function(event) return event.value * 2 end, 5)
        fired = 0
        module:add_timer(30, function(now)
            fired = fired + 1
            if fired < 2 then return 10 end
        end)
        module:hourly("tick", function() end)
    "#;
    let (host, m) = module(TestHost::new("example.com"), code);
    assert_eq!(host.hooked("stanza/urn:x:ping").len(), 1);
    assert_eq!(host.hooked("custom")[0].1, 5);
    check(
        &m,
        r#"return module:fire_event("custom", { value = 21 }) == 42"#,
    );
    let identity = &host.items_of("identity")[0];
    let Item::Value(Value::Table(t)) = identity else {
        panic!("{identity:?}")
    };
    assert_eq!(t.get("category").and_then(Value::as_str), Some("pubsub"));

    // The first timer asks again after 10 s, then stops.
    let timers = host.timers.lock().unwrap().clone();
    assert_eq!(timers.len(), 2);
    let (delay, first): (Duration, TimerId) = timers[0];
    assert_eq!(delay, Duration::from_secs(30));
    // A fired timer is gone from the host, as a real host forgets it.
    host.stop_timer_for_test(first);
    m.fire_timer(first, 1000.0).unwrap();
    let again = host.timers.lock().unwrap().clone();
    let (delay, second) = *again.iter().find(|(_, t)| *t != timers[1].1).unwrap();
    host.stop_timer_for_test(second);
    assert_eq!(delay, Duration::from_secs(10));
    m.fire_timer(second, 1010.0).unwrap();
    assert_eq!(m.eval("return fired").unwrap(), Some(Value::Integer(2)));
    assert_eq!(
        host.timers.lock().unwrap().len(),
        1,
        "only the hourly task left"
    );

    m.unload();
    assert!(host.hooks.lock().unwrap().is_empty());
    assert!(host.items.lock().unwrap().is_empty());
    assert!(host.timers.lock().unwrap().is_empty());
}

#[test]
fn send_iq_promise_and_stores() {
    let (host, m) = module(
        TestHost::new("example.com"),
        r#"
        local st = require "util.stanza"
        result = nil
        module:send_iq(st.iq({ type = "get", id = "q1", to = "other.example" }):query("urn:q"))
            :next(function(r) result = r.stanza.attr.type end, function(e) result = e.condition end)
        local kv = module:open_store("things")
        assert(kv:set("juliet", { colour = "red" }))
        assert(kv:get("juliet").colour == "red")
        local map = module:open_store("prefs", "map")
        map:set("juliet", "k", "v")
        assert(map:get("juliet", "k") == "v")
        local archive = module:open_store("log", "archive")
        archive:append("juliet", nil, st.message({ to = "r@x" }, "one"), 100, "r@x")
        archive:append("juliet", nil, st.message({ to = "r@x" }, "two"), 200, "r@x")
        found = {}
        for key, item, when, with in archive:find("juliet", { start = 150 }) do
            found[#found + 1] = item:get_child_text("body")
        end
    "#,
    );
    assert_eq!(m.eval("return found[1]").unwrap(), Some(Value::str("two")));
    assert_eq!(m.eval("return #found").unwrap(), Some(Value::Integer(1)));
    // The host answers the IQ later; the promise resolves then.
    assert_eq!(m.eval("return result").unwrap(), None);
    m.iq_response(
        lua_compat::host::IqRequestId(1),
        Err(Some(lua_host::stanza(
            "<iq type='error' id='q1'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        ))),
    )
    .unwrap();
    assert_eq!(
        m.eval("return result").unwrap(),
        Some(Value::str("service-unavailable"))
    );
    assert!(host.stores.lock().unwrap().contains_key("things"));
}

#[test]
fn http_routes() {
    let (host, m) = module(
        TestHost::new("example.com"),
        r#"
        module:provides("http", {
            route = {
                ["GET /hello"] = function(event, path)
                    event.response.headers.content_type = "text/plain"
                    return "hello " .. (event.request.url.query or "")
                end;
            };
        })
    "#,
    );
    let routes = host.routes.lock().unwrap().clone();
    assert_eq!(routes.len(), 1);
    let (method, path, route) = routes[0].clone();
    assert_eq!((method.as_str(), path.as_str()), ("GET", "/hello"));
    let r = m
        .handle_http(lua_compat::host::RouteId(999), &HttpRequest::default())
        .unwrap();
    assert_eq!(r.status, 404);
    let r = m
        .handle_http(
            route,
            &HttpRequest {
                method: "GET".into(),
                path: "/hello".into(),
                query: Some("world".into()),
                ..HttpRequest::default()
            },
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world");
    assert_eq!(
        r.headers,
        [("content-type".to_string(), "text/plain".to_string())]
    );
    m.unload();
    assert!(host.routes.lock().unwrap().is_empty());
}
