//! Compatibility with Prosody's account records: RFC test vectors, records
//! Debian's Prosody 0.12.3 wrote (kept verbatim below, and produced afresh
//! with `reference-prosody ctl ... register` when ../shared is there), and
//! records lilt wrote being accepted by a running Prosody.

use crate::common;

use std::sync::Arc;

use auth::{AccountProvider, ScramCredentials, ScramHash, provider_for_host};
use common::*;
use xmpp_core::Value;
use xmpp_core::auth::SaslStep;

/// `prosodyctl register u localhost pw` (Prosody 0.12.3, default options).
const PROSODY_SHA1_RECORD: &str = r#"return {
	["iteration_count"] = 10000;
	["salt"] = "d52ab125-46b2-48ed-a77a-b6f7e9592fac";
	["server_key"] = "95734b378cc8aa4d6afa613e3a28fbf078e7a2a5";
	["stored_key"] = "028d0a186c20beb0c49d23cc02dcf93b3e23e2d6";
};
"#;

/// The same with `password_hash = "SHA-256"`.
const PROSODY_SHA256_RECORD: &str = r#"return {
	["salt"] = "29c45ba8-9632-40f3-87aa-2600f7609af7";
	["iteration_count"] = 10000;
	["server_key"] = "5cda782ab802e77afbecc8fee1813efdbee8915553a6e6b48ffc0b0d7b03cf89";
	["stored_key"] = "8a771a966d832b636eca0540159211f718fc45b62330f2464bbf28a01ef376a5";
};
"#;

#[test]
fn rfc_test_vectors() {
    // RFC 5802 §5 and RFC 7677 §3: user "user", password "pencil".
    let cases = [
        (
            ScramHash::Sha1,
            Hash::Sha1,
            "QSXCR+Q6sek8bf92",
            "n=user,r=fyko+d2lbbFgONRv9qkxdawL,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
            "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        ),
        (
            ScramHash::Sha256,
            Hash::Sha256,
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        ),
    ];
    for (hash, h, salt, auth_message, proof, verifier) in cases {
        let keys = ScramCredentials::derive(hash, "pencil", &unb64(salt), 4096);
        // ClientKey = proof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) = StoredKey.
        let signature = hmac_for(h, &keys.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = unb64(proof)
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let salted = hi(h, b"pencil", &unb64(salt), 4096);
        assert_eq!(
            client_key,
            hmac_for(h, &salted, b"Client Key"),
            "{hash:?} client key"
        );
        assert_eq!(
            b64(&hmac_for(h, &keys.server_key, auth_message.as_bytes())),
            verifier,
            "{hash:?} server signature"
        );
    }
}

fn hmac_for(h: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    match h {
        Hash::Sha1 => {
            let mut m = <hmac::SimpleHmac<sha1::Sha1> as Mac>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Hash::Sha256 => {
            let mut m = <hmac::SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// Puts a Prosody record for `u` into a fresh host and checks SCRAM and
/// PLAIN logins with "pw", and refusals with another password.
fn logs_in_with(record: &str, options: &[(&str, Value)], hash: Hash) {
    let (_server, host, driver) = host_with(options);
    driver.put(
        "localhost",
        "accounts",
        "u",
        Value::Table(parse_flat_dat(record)),
    );
    let p = provider_for_host(&host).unwrap();
    let mech = if hash == Hash::Sha1 {
        "SCRAM-SHA-1"
    } else {
        "SCRAM-SHA-256"
    };
    let mut ex = p.sasl_start(mech, &tls_ctx()).unwrap();
    let mut client = ScramClient::new(hash, "u", "pw");
    match scram_login(&mut ex, &mut client) {
        SaslStep::Success {
            username,
            additional: Some(v),
        } => {
            assert_eq!(username, "u");
            assert!(client.verify(&v));
        }
        other => panic!("{mech}: {other:?}"),
    }
    let mut ex = p.sasl_start(mech, &tls_ctx()).unwrap();
    assert_eq!(
        failure(scram_login(&mut ex, &mut ScramClient::new(hash, "u", "px"))).0,
        "not-authorized"
    );
    let mut ex = p.sasl_start("PLAIN", &tls_ctx()).unwrap();
    assert_eq!(
        ex.step(Some(b"\0u\0pw")),
        SaslStep::Success {
            username: "u".into(),
            additional: None
        }
    );
    assert!(p.test_password("u", "pw").unwrap());
    assert!(!p.test_password("u", "px").unwrap());
}

#[test]
fn prosody_sha1_record_authenticates() {
    let record = parse_flat_dat(PROSODY_SHA1_RECORD);
    let salt = record.get("salt").unwrap().as_str().unwrap();
    let keys = ScramCredentials::derive(ScramHash::Sha1, "pw", salt.as_bytes(), 10000);
    assert_eq!(
        auth::hashing::to_hex(&keys.stored_key),
        record.get("stored_key").unwrap().as_str().unwrap()
    );
    assert_eq!(
        auth::hashing::to_hex(&keys.server_key),
        record.get("server_key").unwrap().as_str().unwrap()
    );
    logs_in_with(PROSODY_SHA1_RECORD, &[], Hash::Sha1);
}

#[test]
fn prosody_sha256_record_authenticates() {
    logs_in_with(
        PROSODY_SHA256_RECORD,
        &[("password_hash", Value::str("SHA-256"))],
        Hash::Sha256,
    );
}

#[test]
fn lilt_records_round_trip_through_the_dat_format() {
    let (_server, host, driver) = host_with(&[]);
    let p = provider_for_host(&host).unwrap();
    p.create_user("u", Some("pw")).unwrap();
    let text = write_flat_dat(&driver.record("u").unwrap());
    assert_eq!(parse_flat_dat(&text), driver.record("u").unwrap());
    logs_in_with(&text, &[], Hash::Sha1);
}

// -- against Debian's Prosody ---------------------------------------------------

fn reference_prosody() -> Option<std::path::PathBuf> {
    let Some(shared) = shared_dir() else {
        eprintln!("skipping: ../shared not found");
        return None;
    };
    // The tool installs prosody with apt and runs it with runuser: root only.
    let uid = std::process::Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("skipping: reference-prosody needs root");
        return None;
    }
    Some(shared.join("tools/reference-prosody"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A data directory with a prosody.cfg.lua for VirtualHost "localhost".
fn prosody_dir(extra: &str) -> (tempfile::TempDir, u16) {
    let dir = tempfile::Builder::new()
        .prefix("lilt-auth-")
        .tempdir_in("/tmp")
        .unwrap();
    let port = free_port();
    let root = dir.path().display();
    let cfg = format!(
        "interfaces = {{ \"127.0.0.1\" }}\nc2s_ports = {{ {port} }}\ns2s_ports = {{ {} }}\n\
         data_path = \"{root}/data\"\npidfile = \"{root}/prosody.pid\"\n\
         log = {{ debug = \"{root}/debug.log\" }}\nmodules_enabled = {{ \"saslauth\" }}\n\
         c2s_require_encryption = false\nallow_unencrypted_plain_auth = true\n{extra}\nVirtualHost \"localhost\"\n",
        free_port()
    );
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("prosody.cfg.lua"), cfg).unwrap();
    (dir, port)
}

#[test]
fn records_prosodyctl_writes_authenticate_in_lilt() {
    let Some(tool) = reference_prosody() else {
        return;
    };
    for (extra, hash) in [
        ("", Hash::Sha1),
        ("password_hash = \"SHA-256\"", Hash::Sha256),
    ] {
        let (dir, _port) = prosody_dir(extra);
        let out = std::process::Command::new(&tool)
            .arg("ctl")
            .arg(dir.path())
            .args(["register", "u", "localhost", "pw"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "prosodyctl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text =
            std::fs::read_to_string(dir.path().join("data/localhost/accounts/u.dat")).unwrap();
        let options: Vec<(&str, Value)> = if hash == Hash::Sha256 {
            vec![("password_hash", Value::str("SHA-256"))]
        } else {
            vec![]
        };
        logs_in_with(&text, &options, hash);
    }
}

mod wire {
    //! Just enough of a c2s client to run one SASL exchange against Prosody.
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    pub struct Conn(TcpStream, String, pub String);

    impl Conn {
        pub fn open(port: u16) -> Conn {
            let deadline = Instant::now() + Duration::from_secs(15);
            let stream = loop {
                match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(s) => break s,
                    Err(e) if Instant::now() > deadline => panic!("prosody did not start: {e}"),
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut c = Conn(stream, String::new(), String::new());
            c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>");
            c.2 = c.read_until("</stream:features>");
            c
        }
        /// The SASL mechanisms the stream features offered, sorted.
        pub fn mechanisms(&self) -> Vec<String> {
            let mut out: Vec<String> = self
                .2
                .split("<mechanism>")
                .skip(1)
                .filter_map(|s| s.split("</mechanism>").next())
                .map(str::to_string)
                .collect();
            out.sort();
            out
        }
        pub fn send(&mut self, s: &str) {
            self.0.write_all(s.as_bytes()).unwrap();
        }
        fn read_until(&mut self, end: &str) -> String {
            let mut buf = [0u8; 4096];
            while !self.1.contains(end) {
                let n = self.0.read(&mut buf).unwrap();
                assert!(n > 0, "connection closed; got {}", self.1);
                self.1.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            let at = self.1.find(end).unwrap() + end.len();
            let out = self.1[..at].to_string();
            self.1.drain(..at);
            out
        }
        /// Sends a SASL element and returns (element name, text or condition).
        pub fn sasl(&mut self, name: &str, attrs: &str, data: &[u8]) -> (String, String) {
            let body = if data.is_empty() {
                "=".to_string()
            } else {
                super::b64(data)
            };
            self.send(&format!(
                "<{name} xmlns='urn:ietf:params:xml:ns:xmpp-sasl'{attrs}>{body}</{name}>"
            ));
            let mut got = String::new();
            for _ in 0..2 {
                got.push_str(&self.read_until(">"));
                if got.contains("<challenge")
                    || got.contains("<success")
                    || got.contains("<failure")
                {
                    break;
                }
            }
            let kind = ["challenge", "success", "failure"]
                .into_iter()
                .find(|k| got.contains(&format!("<{k}")))
                .unwrap()
                .to_string();
            if got.ends_with("/>") && !got.contains("<failure") {
                return (kind, String::new());
            }
            let rest = self.read_until(&format!("</{kind}>"));
            let inner = rest.trim_end_matches(&format!("</{kind}>")).to_string();
            if kind == "failure" {
                let cond = inner
                    .trim_start_matches('<')
                    .split([' ', '/', '>'])
                    .next()
                    .unwrap_or("")
                    .to_string();
                (kind, cond)
            } else {
                (kind, inner)
            }
        }
    }
}

fn prosody_scram(port: u16, mech: &str, client: &mut ScramClient) -> (String, String) {
    let mut c = wire::Conn::open(port);
    let (kind, sf) = c.sasl("auth", &format!(" mechanism='{mech}'"), &client.first());
    if kind != "challenge" {
        return (kind, sf);
    }
    let (kind, v) = c.sasl("response", "", &client.last(&unb64(&sf)));
    if kind == "success" {
        assert!(client.verify(&unb64(&v)), "Prosody's server signature");
    }
    (kind, v)
}

fn prosody_plain(port: u16, message: &[u8]) -> (String, String) {
    wire::Conn::open(port).sasl("auth", " mechanism='PLAIN'", message)
}

#[test]
fn prosody_accepts_records_lilt_wrote() {
    let Some(tool) = reference_prosody() else {
        return;
    };
    for (extra, option, hash, mech) in [
        ("", None, Hash::Sha1, "SCRAM-SHA-1"),
        (
            "password_hash = \"SHA-256\"",
            Some(("password_hash", Value::str("SHA-256"))),
            Hash::Sha256,
            "SCRAM-SHA-256",
        ),
    ] {
        let (dir, port) = prosody_dir(extra);
        let (_server, host, driver) = host_with(&option.into_iter().collect::<Vec<_>>());
        let p: Arc<dyn AccountProvider> = provider_for_host(&host).unwrap();
        p.create_user("lilt", Some("s3cret")).unwrap();
        let accounts = dir.path().join("data/localhost/accounts");
        std::fs::create_dir_all(&accounts).unwrap();
        std::fs::write(
            accounts.join("lilt.dat"),
            write_flat_dat(&driver.record("lilt").unwrap()),
        )
        .unwrap();

        let out = std::process::Command::new(&tool)
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && !pid.is_empty(),
            "prosody start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (kind, _) =
                prosody_scram(port, mech, &mut ScramClient::new(hash, "lilt", "s3cret"));
            assert_eq!(kind, "success", "{mech} with a record lilt wrote");
            assert_eq!(
                prosody_plain(port, b"\0lilt\0s3cret").0,
                "success",
                "PLAIN with a record lilt wrote"
            );
            differential(port, hash, mech);
        }));
        let _ = std::process::Command::new(&tool)
            .arg("stop")
            .arg(&pid)
            .status();
        if let Err(e) = result {
            let log = std::fs::read_to_string(dir.path().join("debug.log")).unwrap_or_default();
            eprintln!(
                "prosody log:\n{}",
                log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
            );
            std::panic::resume_unwind(e);
        }
    }
}

/// The same bad inputs to Prosody and to lilt give the same SASL condition.
fn differential(port: u16, hash: Hash, mech: &str) {
    let ctx = xmpp_core::auth::SaslContext {
        host: "localhost".into(),
        secure: false,
        tls_exporter: None,
        ..Default::default()
    };
    // lilt's side is checked with a host whose options match the Prosody config.
    let (_server, host, driver) = host_with(&[
        ("c2s_require_encryption", Value::Bool(false)),
        ("allow_unencrypted_plain_auth", Value::Bool(true)),
        (
            "password_hash",
            Value::str(if hash == Hash::Sha1 {
                "SHA-1"
            } else {
                "SHA-256"
            }),
        ),
    ]);
    let lilt = provider_for_host(&host).unwrap();
    lilt.create_user("lilt", Some("s3cret")).unwrap();
    assert!(driver.record("lilt").is_some());

    let lilt_scram = |client: &mut ScramClient| -> String {
        let mut ex = lilt.sasl_start(mech, &ctx).unwrap();
        match scram_login(&mut ex, client) {
            SaslStep::Success { .. } => "success".into(),
            SaslStep::Failure(f) => f.condition.into(),
            SaslStep::Challenge(_) => "challenge".into(),
        }
    };
    for (user, password) in [("lilt", "wrong"), ("nobody", "s3cret")] {
        let theirs = prosody_scram(port, mech, &mut ScramClient::new(hash, user, password)).1;
        let ours = lilt_scram(&mut ScramClient::new(hash, user, password));
        assert_eq!(ours, theirs, "{mech} {user}/{password}");
    }
    // Tampered channel-binding field and a bad gs2 header.
    let mut tampered = ScramClient::new(hash, "lilt", "s3cret");
    tampered.gs2_header = "y,,".into();
    let theirs = prosody_scram(port, mech, &mut tampered).0;
    assert_eq!(
        theirs, "success",
        "Prosody without channel binding accepts y"
    );
    let mut ex = lilt.sasl_start(mech, &ctx).unwrap();
    let mut tampered = ScramClient::new(hash, "lilt", "s3cret");
    tampered.gs2_header = "y,,".into();
    assert!(matches!(
        scram_login(&mut ex, &mut tampered),
        SaslStep::Success { .. }
    ));

    // What the stream offers.
    let mut ours = lilt.sasl_mechanisms(&ctx);
    ours.sort();
    assert_eq!(
        ours,
        wire::Conn::open(port).mechanisms(),
        "offered mechanisms"
    );

    // Raw SCRAM messages: a broken client-first, then broken client-finals.
    for first in [
        "n,,n=lilt",
        "n,,r=abc",
        "q,,n=lilt,r=abc",
        "n,,n=,r=abc",
        "n,,n=li=XXlt,r=abc",
    ] {
        let theirs = wire::Conn::open(port)
            .sasl("auth", &format!(" mechanism='{mech}'"), first.as_bytes())
            .1;
        let mut ex = lilt.sasl_start(mech, &ctx).unwrap();
        assert_eq!(
            failure(ex.step(Some(first.as_bytes()))).0,
            theirs,
            "client-first {first}"
        );
    }
    type Final = fn(&str, &str) -> String;
    let finals: [(&str, Final); 3] = [
        ("wrong nonce", |cb, _| format!("c={cb},r=0123456789,p=AAAA")),
        ("wrong binding", |_, n| format!("c=eSws,r={n},p=AAAA")),
        ("no proof", |cb, n| format!("c={cb},r={n}")),
    ];
    for (what, make) in finals {
        let first = b"n,,n=lilt,r=abcdefgh";
        let mut conn = wire::Conn::open(port);
        let (kind, sf) = conn.sasl("auth", &format!(" mechanism='{mech}'"), first);
        assert_eq!(kind, "challenge");
        let nonce = String::from_utf8(unb64(&sf))
            .unwrap()
            .split(',')
            .next()
            .unwrap()[2..]
            .to_string();
        let theirs = conn.sasl("response", "", make("biws", &nonce).as_bytes()).1;
        let mut ex = lilt.sasl_start(mech, &ctx).unwrap();
        let sf = String::from_utf8(challenge(ex.step(Some(first)))).unwrap();
        let nonce = sf.split(',').next().unwrap()[2..].to_string();
        assert_eq!(
            failure(ex.step(Some(make("biws", &nonce).as_bytes()))).0,
            theirs,
            "client-final: {what}"
        );
    }

    for message in [
        &b"\0lilt\0wrong"[..],
        b"\0nobody\0s3cret",
        b"\0lilt",
        b"lilt\0s3cret",
    ] {
        let theirs = prosody_plain(port, message).1;
        let mut ex = lilt.sasl_start("PLAIN", &ctx).unwrap();
        let ours = match ex.step(Some(message)) {
            SaslStep::Failure(f) => f.condition.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(ours, theirs, "PLAIN {:?}", String::from_utf8_lossy(message));
    }
}
