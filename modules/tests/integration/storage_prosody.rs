//! The `internal` driver against Debian's Prosody 0.12 on the same data
//! directory: what Prosody writes, lilt reads and rewrites byte for byte;
//! what lilt writes (accounts, roster, private XML, offline messages),
//! Prosody serves to a real client session. Skipped, with a message, when
//! `../shared` is absent.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lua_compat::datfile;
use modules::storage::InternalDriver;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::{ArchiveQuery, StorageDriver};
use xmpp_core::value::{Table, Value};

const HOST: &str = "example.com";

fn shared_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let shared = root.parent()?.join("shared");
    shared
        .join("tools/reference-prosody")
        .is_file()
        .then_some(shared)
}

/// One Prosody at a time (the first use installs it with apt).
static PROSODY: Mutex<()> = Mutex::new(());

struct Setup {
    shared: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Setup {
    fn new(shared: PathBuf) -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("lilt-storage-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let cfg = format!(
            "interfaces = {{ \"127.0.0.1\" }}\ndata_path = \"{d}/data\"\npidfile = \"{d}/prosody.pid\"\n\
             log = {{ info = \"{d}/prosody-info.log\" }}\n\
             modules_enabled = {{ \"roster\"; \"saslauth\"; \"disco\"; \"private\" }}\n\
             authentication = \"internal_hashed\"\nc2s_require_encryption = false\n\
             allow_unencrypted_plain_auth = true\nc2s_ports = {{ {port} }}\ns2s_ports = {{ }}\n\
             component_ports = {{ }}\nhttp_ports = {{ }}\nhttps_ports = {{ }}\n\
             VirtualHost \"{HOST}\"\n"
        );
        std::fs::write(dir.path().join("prosody.cfg.lua"), cfg).unwrap();
        Setup { shared, dir, port }
    }

    fn tool(&self) -> PathBuf {
        self.shared.join("tools/reference-prosody")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn register(&self, user: &str, password: &str) {
        let out = Command::new(self.tool())
            .arg("ctl")
            .arg(self.dir.path())
            .args(["register", user, HOST, password])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "register {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) -> Running<'_> {
        let out = Command::new(self.tool())
            .arg("start")
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let running = Running {
            setup: self,
            pid: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let log =
                std::fs::read_to_string(self.dir.path().join("prosody.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "Prosody did not start listening:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        running
    }
}

/// A running Prosody, stopped when dropped.
struct Running<'a> {
    setup: &'a Setup,
    pid: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.setup.tool())
            .args(["stop", &self.pid])
            .status();
    }
}

/// A bare-bones c2s client: PLAIN over plain TCP, bind, then raw stanzas.
struct Client {
    stream: TcpStream,
    buf: String,
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Client {
            stream,
            buf: String::new(),
        }
    }

    fn send(&mut self, s: &str) {
        self.stream.write_all(s.as_bytes()).unwrap();
    }

    /// Reads until `needle` has arrived; returns (and forgets) all read so far.
    fn read_until(&mut self, needle: &str) -> String {
        self.read_until_any(&[needle])
    }

    fn read_until_any(&mut self, needles: &[&str]) -> String {
        let needle = needles.join(" or ");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut chunk = [0u8; 65536];
        while !needles.iter().any(|n| self.buf.contains(n)) {
            assert!(
                Instant::now() < deadline,
                "waited for {needle:?}, got:\n{}",
                self.buf
            );
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!(
                    "connection closed waiting for {needle:?}, got:\n{}",
                    self.buf
                ),
                Ok(n) => self.buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{e}"),
            }
        }
        std::mem::take(&mut self.buf)
    }

    fn open_stream(&mut self) -> String {
        self.send(&format!(
            "<?xml version='1.0'?><stream:stream to='{HOST}' xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
        ));
        self.read_until("</stream:features>")
    }

    /// Logs in; `Err` with the server's answer when authentication fails.
    fn login(port: u16, user: &str, password: &str) -> Result<Client, String> {
        let mut c = Client::connect(port);
        c.open_stream();
        let creds = base64(format!("\0{user}\0{password}").as_bytes());
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ));
        let answer = c.read_until_any(&["<success", "</failure>"]);
        if !answer.contains("<success") {
            return Err(answer);
        }
        c.open_stream();
        c.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>t</resource></bind></iq>");
        c.read_until("</iq>");
        Ok(c)
    }
}

fn account_file(data: &Path, user: &str) -> PathBuf {
    data.join("example%2ecom/accounts")
        .join(format!("{}.dat", modules::storage::paths::encode(user)))
}

#[test]
fn lilt_reads_prosodys_data_and_rewrites_it_byte_for_byte() {
    let Some(shared) = shared_dir() else {
        eprintln!("skipping: ../shared not found");
        return;
    };
    let _one = PROSODY.lock().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new(shared);
    for user in ["alice", "bob", "e.ve", "ünïcode"] {
        setup.register(user, "secret");
    }
    // Prosody's own writes: alice gets a roster entry, offline bob a message.
    {
        let _prosody = setup.start();
        let mut alice = Client::login(setup.port, "alice", "secret").unwrap();
        alice.send(
            "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@example.com' \
             name='Bob &amp; &quot;B&quot;'><group>Friends</group><group>Ünïcode</group></item></query></iq>",
        );
        alice.read_until("id='r1'");
        alice.send(
            "<message to='bob@example.com' type='chat' id='m1'><body>Hi Bob! é ✓ \"q\" 'a' \\ \n\t&lt;&amp;&gt;</body>\
             <x xmlns='urn:x:test' a='1'><y>nested</y></x></message>",
        );
        // Wait until the message is stored.
        let list = setup.data().join("example%2ecom/offline/bob.list");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !list.exists() {
            assert!(
                Instant::now() < deadline,
                "Prosody stored no offline message"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        alice.send("</stream:stream>");
        std::thread::sleep(Duration::from_millis(300));
    }
    let data = setup.data();
    let driver = InternalDriver::new(data.clone());
    let accounts = driver.open_keyval(HOST, "accounts").unwrap();
    let mut users = accounts.users().unwrap();
    users.sort();
    assert_eq!(users, ["alice", "bob", "e.ve", "ünïcode"]);
    for user in &users {
        let path = account_file(&data, user);
        let before = std::fs::read(&path).unwrap();
        let account = accounts.get(Some(user)).unwrap().unwrap();
        assert_eq!(account.get("iteration_count"), Some(&Value::Integer(10000)));
        accounts.set(Some(user), Some(account)).unwrap();
        assert_eq!(
            String::from_utf8(std::fs::read(&path).unwrap()).unwrap(),
            String::from_utf8(before).unwrap()
        );
    }
    // The roster, with Prosody's [false] metadata.
    let rosters = driver.open_keyval(HOST, "roster").unwrap();
    let roster_path = data.join("example%2ecom/roster/alice.dat");
    let roster_bytes = std::fs::read(&roster_path).unwrap();
    let roster = rosters.get(Some("alice")).unwrap().unwrap();
    let bob = roster.get("bob@example.com").unwrap();
    assert_eq!(bob.get("name"), Some(&Value::str("Bob & \"B\"")));
    assert_eq!(
        bob.get("groups").and_then(|g| g.get("Ünïcode")),
        Some(&Value::Bool(true))
    );
    assert!(roster.get("false").and_then(|m| m.get("version")).is_some());
    rosters.set(Some("alice"), Some(roster)).unwrap();
    assert_eq!(std::fs::read(&roster_path).unwrap(), roster_bytes);
    // The offline message.
    let list_path = data.join("example%2ecom/offline/bob.list");
    let list_bytes = std::fs::read(&list_path).unwrap();
    let items = datfile::parse_list(&list_bytes, "bob.list", &Default::default()).unwrap();
    assert_eq!(datfile::list_bytes(&items, "bob.list").unwrap(), list_bytes);
    let offline = driver.open_archive(HOST, "offline").unwrap();
    let found = offline.find(Some("bob"), &ArchiveQuery::default()).unwrap();
    assert_eq!(found.len(), 1);
    let m = &found[0].stanza;
    assert_eq!(
        m.get_child_text("body", NS_CLIENT).as_deref(),
        Some("Hi Bob! é ✓ \"q\" 'a' \\ \n\t<&>")
    );
    assert_eq!(
        m.get_child("x", "urn:x:test")
            .and_then(|x| x.get_child_text("y", "urn:x:test"))
            .as_deref(),
        Some("nested")
    );
    assert_eq!(m.get_attr("from"), Some("alice@example.com/t"));
    assert_eq!(m.get_attr("stamp"), None);
    assert_eq!(found[0].key.len(), 24);
    assert!(found[0].when > 1.6e9);
    // A deletion that matches nothing leaves the file alone.
    let none = ArchiveQuery {
        with: Some("nobody@example.com".into()),
        ..Default::default()
    };
    assert_eq!(offline.delete(Some("bob"), &none).unwrap(), 0);
    assert_eq!(std::fs::read(&list_path).unwrap(), list_bytes);
    // lilt appends to Prosody's list; Prosody then delivers both messages.
    let ours = Element::new("message", NS_CLIENT)
        .attr("from", "alice@example.com/lilt")
        .attr("to", "bob@example.com")
        .attr("type", "chat")
        .child(Element::new("body", NS_CLIENT).text("appended by lilt"));
    offline
        .append(Some("bob"), &ours, 1_795_241_300.0, "")
        .unwrap();
    let _prosody = setup.start();
    let mut bob = Client::login(setup.port, "bob", "secret").unwrap();
    bob.send("<presence/>");
    let got = bob.read_until("appended by lilt");
    assert!(got.contains("Hi Bob!"), "{got}");
}

#[test]
fn prosody_serves_what_lilt_writes() {
    let Some(shared) = shared_dir() else {
        eprintln!("skipping: ../shared not found");
        return;
    };
    let _one = PROSODY.lock().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new(shared);
    setup.register("alice", "secret");
    let data = setup.data();
    let driver = InternalDriver::new(data.clone());
    let accounts = driver.open_keyval(HOST, "accounts").unwrap();
    // zed: alice's SCRAM credentials in a file lilt writes (its own key order).
    let creds = accounts.get(Some("alice")).unwrap().unwrap();
    accounts.set(Some("zed"), Some(creds)).unwrap();
    // yan: a plaintext password, which Prosody upgrades on first login.
    let mut plain = Table::new();
    plain.insert("password", Value::str("plain-pw ✓"));
    accounts
        .set(Some("yan"), Some(Value::Table(plain)))
        .unwrap();
    // zed's roster, as Prosody's rostermanager keeps it.
    let mut meta = Table::new();
    meta.insert("version", Value::Integer(7));
    meta.insert("pending", Value::Table(Table::new()));
    let mut groups = Table::new();
    groups.insert("Friends ✓", Value::Bool(true));
    let mut item = Table::new();
    item.insert("subscription", Value::str("both"));
    item.insert("name", Value::str("Alice <A>"));
    item.insert("groups", Value::Table(groups));
    let mut roster = Table::new();
    roster.insert("false", Value::Table(meta));
    roster.insert("alice@example.com", Value::Table(item));
    driver
        .open_keyval(HOST, "roster")
        .unwrap()
        .set(Some("zed"), Some(Value::Table(roster)))
        .unwrap();
    let roster_text = std::fs::read_to_string(data.join("example%2ecom/roster/zed.dat")).unwrap();
    assert!(roster_text.contains("\n\t[false] = {\n"), "{roster_text}");
    // zed's private XML storage (a map store of preserialized elements).
    let prefs = Element::new("prefs", "urn:lilt:test")
        .attr("mode", "x")
        .child(Element::new("item", "urn:lilt:test").text("1 & 2"));
    let private = driver.open_map(HOST, "private").unwrap();
    private
        .set(
            Some("zed"),
            "prefs:urn:lilt:test",
            Some(datfile::stanza::element_to_value(&prefs)),
        )
        .unwrap();
    // An offline message for zed.
    let msg = Element::new("message", NS_CLIENT)
        .attr("from", "alice@example.com/home")
        .attr("to", "zed@example.com")
        .attr("type", "chat")
        .attr("id", "o1")
        .child(Element::new("body", NS_CLIENT).text("stored by lilt ✓ <&>"));
    driver
        .open_archive(HOST, "offline")
        .unwrap()
        .append(Some("zed"), &msg, 1_795_241_225.0, "")
        .unwrap();

    {
        let _prosody = setup.start();
        let mut zed = Client::login(setup.port, "zed", "secret").unwrap();
        zed.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
        let r = zed.read_until("</query>");
        assert!(
            r.contains("jid='alice@example.com'") && r.contains("subscription='both'"),
            "{r}"
        );
        assert!(
            r.contains("name='Alice &lt;A&gt;'") && r.contains("<group>Friends ✓</group>"),
            "{r}"
        );
        assert!(r.contains("ver='7'"), "{r}");
        zed.send("<iq type='get' id='p1'><query xmlns='jabber:iq:private'><prefs xmlns='urn:lilt:test'/></query></iq>");
        let p = zed.read_until("</query>");
        // (Prosody writes attributes in hash order.)
        assert!(
            p.contains("<item>1 &amp; 2</item></prefs>") && p.contains("mode='x'"),
            "{p}"
        );
        zed.send("<presence/>");
        let m = zed.read_until("</message>");
        assert!(
            m.contains("<body>stored by lilt ✓ &lt;&amp;&gt;</body>"),
            "{m}"
        );
        assert!(m.contains("stamp='2026-11-21T06:07:05Z'"), "{m}");
        assert!(Client::login(setup.port, "yan", "plain-pw ✓").is_ok());
        assert!(Client::login(setup.port, "yan", "wrong").is_err());
        assert!(Client::login(setup.port, "zed", "wrong").is_err());
        std::thread::sleep(Duration::from_millis(300));
    }
    // Prosody delivered (and removed) the offline message, and hashed yan's password.
    assert!(
        driver
            .open_archive(HOST, "offline")
            .unwrap()
            .find(Some("zed"), &ArchiveQuery::default())
            .unwrap()
            .is_empty()
    );
    let yan = accounts.get(Some("yan")).unwrap().unwrap();
    assert!(
        yan.get("password").is_none() && yan.get("stored_key").is_some(),
        "{yan:?}"
    );
}
