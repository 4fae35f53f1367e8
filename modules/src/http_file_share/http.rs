//! The upload and download URLs: `PUT /file_share/<slot>/<name>` with the
//! slot's bearer token stores the file (once; 201), `GET` of the same URL
//! serves it with its type until it expires (404 after, or for a slot never
//! filled).

use std::sync::{Arc, OnceLock};

use xmpp_core::http::{HttpApp, HttpRequest, HttpResponse, StatusCode, handler};
use xmpp_core::storage::ArchiveQuery;

use super::{STORE, Service, token};

/// The service, set once the app's URL is known.
#[derive(Clone, Default)]
pub struct ServiceSlot(Arc<OnceLock<Arc<Service>>>);

impl ServiceSlot {
    pub fn set(&self, s: Arc<Service>) {
        let _ = self.0.set(s);
    }
    fn get(&self) -> Option<Arc<Service>> {
        self.0.get().cloned()
    }
}

/// The app (`/file_share`) and the slot its handlers read the service from.
pub fn app() -> (ServiceSlot, HttpApp) {
    let slot = ServiceSlot::default();
    let (put_slot, get_slot) = (slot.clone(), slot.clone());
    let put = handler(move |req: HttpRequest| {
        let s = put_slot.get();
        async move {
            match s {
                Some(s) => upload(&s, &req),
                None => HttpResponse::new(StatusCode::SERVICE_UNAVAILABLE),
            }
        }
    });
    let get = handler(move |req: HttpRequest| {
        let s = get_slot.get();
        async move {
            match s {
                Some(s) => download(&s, &req),
                None => HttpResponse::new(StatusCode::SERVICE_UNAVAILABLE),
            }
        }
    });
    let app = HttpApp {
        name: "file_share".into(),
        default_path: None,
        cors: None,
        routes: vec![("PUT /*".into(), put), ("GET /*".into(), get)],
    };
    (slot, app)
}

/// Percent-encodes a file name for a URL path segment.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `<slot>/<name>` of the request path.
fn slot_and_name(req: &HttpRequest) -> Option<(String, String)> {
    let rest = req.rest.as_deref()?.trim_start_matches('/');
    let (slot, name) = rest.split_once('/')?;
    Some((slot.to_string(), url_decode(name)?))
}

fn status(code: StatusCode) -> HttpResponse {
    HttpResponse::new(code)
}

fn upload(s: &Service, req: &HttpRequest) -> HttpResponse {
    let Some((slot, name)) = slot_and_name(req) else {
        return status(StatusCode::NOT_FOUND);
    };
    let now = s.clock.now() as i64;
    let grant = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| token::verify(&s.secret, t.trim(), now));
    let Some(grant) = grant else {
        return status(StatusCode::UNAUTHORIZED);
    };
    if grant.slot != slot || grant.filename != name {
        return status(StatusCode::UNAUTHORIZED);
    }
    if req.body.len() as u64 != grant.size {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let path = s.file_path(&slot);
    if path.exists() {
        return status(StatusCode::CONFLICT);
    }
    let written = std::fs::create_dir_all(&s.dir).and_then(|()| {
        let tmp = s.dir.join(format!("{slot}.tmp"));
        std::fs::write(&tmp, &req.body)?;
        std::fs::rename(&tmp, &path)
    });
    match written {
        Ok(()) => status(StatusCode::CREATED),
        Err(e) => {
            tracing::error!(host = %s.host.name, "could not store upload {slot}: {e}");
            status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

fn download(s: &Service, req: &HttpRequest) -> HttpResponse {
    let Some((slot, name)) = slot_and_name(req) else {
        return status(StatusCode::NOT_FOUND);
    };
    let record = s
        .host
        .open_archive(STORE)
        .and_then(|a| a.find(None, &ArchiveQuery::default()))
        .ok()
        .and_then(|all| all.into_iter().find(|i| i.key == slot));
    let Some(record) = record else {
        return status(StatusCode::NOT_FOUND);
    };
    if record.stanza.get_attr("filename") != Some(name.as_str())
        || record.when + s.expires_after as f64 <= s.clock.now()
    {
        return status(StatusCode::NOT_FOUND);
    }
    let Ok(body) = std::fs::read(s.file_path(&slot)) else {
        return status(StatusCode::NOT_FOUND);
    };
    let content_type = record
        .stanza
        .get_attr("content-type")
        .unwrap_or("application/octet-stream")
        .to_string();
    HttpResponse::new(StatusCode::OK)
        .with_header("content-type", &content_type)
        .with_header("content-disposition", "attachment")
        .with_body(body)
}
