//! mod_http_file_share: a slot asked for over XMPP, the file PUT with the
//! slot's token and fetched by GET through the app's real handlers (the
//! HTTP transport is `bosh-websocket`'s; here a stand-in hands the app's
//! routes to the test), and what is refused.

use crate::im_common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use im_common::*;
use xmpp_core::http::{
    Extensions, HeaderMap, HeaderValue, HttpApp, HttpRequest, HttpService, Method, StatusCode,
};
use xmpp_core::module::{Registry, manager};
use xmpp_core::stanza::Element;
use xmpp_core::{Host, Server, Table, Value};

const SERVICE: &str = "upload.localhost";
const NS: &str = "urn:xmpp:http:upload:0";

/// Keeps the apps provided, serving them at `/<name>`.
#[derive(Default)]
struct Apps(Mutex<Vec<HttpApp>>);

impl HttpService for Apps {
    fn provide(
        &self,
        _server: &Arc<Server>,
        _host: Option<&Arc<Host>>,
        app: HttpApp,
    ) -> Result<String, String> {
        let base = format!("/{}", app.name);
        self.0.lock().unwrap().push(app);
        Ok(base)
    }
    fn remove(&self, _server: &Server, _host: Option<&str>, _app: &str) {}
}

impl Apps {
    fn call(
        &self,
        method: Method,
        url: &str,
        auth: Option<&str>,
        body: &[u8],
    ) -> (StatusCode, Vec<u8>, Option<String>) {
        let path = url
            .split_once("://")
            .and_then(|(_, r)| r.split_once('/'))
            .map(|(_, p)| format!("/{p}"))
            .expect("a URL with a path");
        let rest = path
            .strip_prefix("/file_share")
            .expect("the app's path")
            .to_string();
        let key = format!("{method} /*");
        let handler = {
            let apps = self.0.lock().unwrap();
            apps.iter()
                .flat_map(|a| a.routes.iter())
                .find(|(k, _)| *k == key)
                .map(|(_, h)| h.clone())
                .expect("route")
        };
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert("authorization", HeaderValue::from_str(a).unwrap());
        }
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
        let req = HttpRequest {
            method,
            path: path.clone(),
            query: None,
            headers,
            body: body.to_vec().into(),
            ip: peer.ip(),
            peer,
            secure: false,
            rest: Some(rest),
            extensions: Extensions::new(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let resp = rt.block_on(handler(req));
        let ct = resp
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (resp.status, resp.body.to_vec(), ct)
    }
}

fn harness(opts: Vec<(&'static str, Value)>) -> (Harness, Arc<Apps>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = opts;
    opts.push(("data_path", Value::str(dir.path().to_str().unwrap())));
    opts.push(("http_external_url", Value::str("https://files.example/")));
    let setup = Setup {
        extra_hosts: vec![(SERVICE, true, opts)],
        data_path: Some(dir.path().to_path_buf()),
        ..Setup::default()
    };
    let h = Harness::with(&["romeo"], IM_MODULES, setup);
    let apps = Arc::new(Apps::default());
    xmpp_core::http::set_service(&h.server, apps.clone());
    manager::register(&h.server, |r: &mut Registry| {
        r.add_loader("http", |_, _| Ok::<(), modules::ModuleError>(()));
    });
    let comp = h.server.host(SERVICE).unwrap();
    modules::load_module(&h.server, &comp, "iq").unwrap();
    modules::load_module(&h.server, &comp, "http_file_share").unwrap();
    (h, apps, dir)
}

fn request(name: &str, size: &str, ct: &str) -> Element {
    iq(
        "get",
        "slot",
        Some(SERVICE),
        Element::new("request", NS)
            .attr("filename", name)
            .attr("size", size)
            .attr("content-type", ct),
    )
}

/// (get URL, put URL, Authorization value) of a slot reply.
fn slot(reply: &Element) -> (String, String, String) {
    assert_eq!(reply.type_(), Some("result"), "{}", reply.to_xml());
    let slot = reply.get_child("slot", NS).unwrap();
    let get = slot
        .get_child("get", NS)
        .unwrap()
        .get_attr("url")
        .unwrap()
        .to_string();
    let put = slot.get_child("put", NS).unwrap();
    let header = put.get_child("header", NS).unwrap();
    assert_eq!(header.get_attr("name"), Some("Authorization"));
    (
        get,
        put.get_attr("url").unwrap().to_string(),
        header.text_content(),
    )
}

#[test]
fn upload_then_download() {
    let types = Value::Table(Table {
        seq: vec![Value::str("text/plain"), Value::str("image/*")],
        ..Table::default()
    });
    let (h, apps, dir) = harness(vec![("http_file_share_allowed_file_types", types)]);
    let mut romeo = h.connect("romeo", "1");
    let (get, put, auth) = slot(&romeo.iq(request("hello world.txt", "5", "text/plain")));
    assert!(
        put.starts_with("https://files.example/file_share/"),
        "{put}"
    );
    assert!(put.ends_with("/hello%20world.txt"), "{put}");
    assert_eq!(get, put);
    // Not yet uploaded.
    assert_eq!(
        apps.call(Method::GET, &get, None, b"").0,
        StatusCode::NOT_FOUND
    );
    // Without the token, with the wrong size: refused.
    assert_eq!(
        apps.call(Method::PUT, &put, None, b"hello").0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        apps.call(Method::PUT, &put, Some(&auth), b"hello!").0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        apps.call(Method::PUT, &put, Some(&auth), b"hello").0,
        StatusCode::CREATED
    );
    assert_eq!(
        apps.call(Method::PUT, &put, Some(&auth), b"hello").0,
        StatusCode::CONFLICT
    );
    let (status, body, ct) = apps.call(Method::GET, &get, None, b"");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"hello");
    assert_eq!(ct.as_deref(), Some("text/plain"));
    // Kept where Prosody keeps it.
    let files = dir
        .path()
        .join("upload%2elocalhost")
        .join("http_file_share");
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 1);
    // Another slot's token does not open this one.
    let (_, put2, auth2) = slot(&romeo.iq(request("b.png", "3", "image/png")));
    assert_eq!(
        apps.call(Method::PUT, &put, Some(&auth2), b"abc").0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        apps.call(Method::PUT, &put2, Some(&auth2), b"abc").0,
        StatusCode::CREATED
    );
    // A wrong name for a slot is not found.
    let wrong = get.replace("hello%20world.txt", "other.txt");
    assert_eq!(
        apps.call(Method::GET, &wrong, None, b"").0,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn refused_requests() {
    let (h, _apps, _dir) = harness(vec![
        ("http_file_share_size_limit", Value::Integer(100)),
        (
            "http_file_share_allowed_file_types",
            Value::Table(Table {
                seq: vec![Value::str("image/*")],
                ..Table::default()
            }),
        ),
    ]);
    let mut romeo = h.connect("romeo", "1");
    let r = romeo.iq(request("big.png", "101", "image/png"));
    assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
    let max = r
        .get_child("error", xmpp_core::stanza::NS_CLIENT)
        .and_then(|e| e.get_child("file-too-large", NS))
        .and_then(|f| f.get_child("max-file-size", NS))
        .map(|m| m.text_content());
    assert_eq!(max.as_deref(), Some("100"));
    for (name, size, ct, cond) in [
        ("a.txt", "10", "text/plain", "not-acceptable"),
        ("", "10", "image/png", "bad-request"),
        ("a/b.png", "10", "image/png", "bad-request"),
        ("a.png", "0", "image/png", "bad-request"),
        ("a.png", "ten", "image/png", "bad-request"),
    ] {
        let r = romeo.iq(request(name, size, ct));
        assert_eq!(
            error_condition(&r).as_deref(),
            Some(cond),
            "{name} {size} {ct}"
        );
    }
}
