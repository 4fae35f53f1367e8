//! Differential tests of `datfile` against Debian's Prosody 0.12: its own
//! `util.datamanager` (run with lua5.4) and `prosodyctl register`.
//! Skipped, with a message, when `../shared` is absent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use lua_compat::datfile::{self, DatKey, DatTable, DatValue, Limits};

fn shared_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let shared = root.parent()?.join("shared");
    shared
        .join("tools/reference-prosody")
        .is_file()
        .then_some(shared)
}

static PROSODY: Mutex<()> = Mutex::new(());

/// A directory Prosody's user can work in, with a minimal config.
fn prosody_dir(hosts: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("lilt-datfile-")
        .tempdir()
        .unwrap();
    let d = dir.path().display();
    let mut cfg = format!(
        "interfaces = {{ \"127.0.0.1\" }}\ndata_path = \"{d}/data\"\npidfile = \"{d}/prosody.pid\"\n\
         log = {{ error = \"{d}/error.log\" }}\nauthentication = \"internal_hashed\"\n"
    );
    for h in hosts {
        cfg.push_str(&format!("VirtualHost \"{h}\"\n"));
    }
    std::fs::write(dir.path().join("prosody.cfg.lua"), cfg).unwrap();
    dir
}

/// `reference-prosody ctl DIR args...` (installs Prosody on first use).
fn ctl(shared: &Path, dir: &Path, args: &[&str]) {
    let out = Command::new(shared.join("tools/reference-prosody"))
        .arg("ctl")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "prosodyctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a Lua script with Prosody's libraries on the path.
fn run_lua(script: &str, args: &[&Path]) -> String {
    let mut full = String::from(
        "package.path = '/usr/lib/prosody/?.lua;' .. package.path\n\
         package.cpath = '/usr/lib/prosody/?.so;' .. package.cpath\n",
    );
    full.push_str(script);
    let file = tempfile::Builder::new().suffix(".lua").tempfile().unwrap();
    std::fs::write(file.path(), full).unwrap();
    let out = Command::new("lua5.4")
        .arg(file.path())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lua5.4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ensure_prosody(shared: &Path) {
    if !Path::new("/usr/lib/prosody/util/datamanager.lua").is_file() {
        let dir = prosody_dir(&["install.invalid"]);
        ctl(shared, dir.path(), &["about"]);
    }
}

/// xorshift64*, for reproducible test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self) -> Vec<u8> {
        let n = self.below(12) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn float(&mut self) -> f64 {
        match self.below(4) {
            0 => f64::from_bits(self.next()),
            1 => (self.next() as i64 as f64) / 1e6,
            2 => self.below(1_000_000) as f64 + 0.5,
            _ => [
                0.1,
                2.5,
                1e300,
                5e-324,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                1795241225.123456,
            ][self.below(8) as usize],
        }
    }
    fn scalar(&mut self) -> DatValue {
        match self.below(4) {
            0 => DatValue::Bool(self.below(2) == 0),
            1 => DatValue::Integer(match self.below(3) {
                0 => self.next() as i64,
                // Not i64::MIN: Lua reads "-9223372036854775808" as a float.
                1 => [i64::MIN + 1, i64::MAX, 0, -1][self.below(4) as usize],
                _ => self.below(100_000) as i64,
            }),
            2 => DatValue::Number(self.float()),
            _ => DatValue::String(self.bytes()),
        }
    }
    fn key(&mut self) -> DatKey {
        match self.below(4) {
            0 => DatKey::Bool(self.below(2) == 0),
            1 => DatKey::Integer(1000 + self.below(1000) as i64),
            2 => DatKey::Number(self.below(1000) as f64 + 0.25),
            _ => DatKey::String(self.bytes()),
        }
    }
    /// A table whose order Lua's `next` gives deterministically: a
    /// sequence and at most one other key.
    fn table(&mut self, depth: usize) -> DatTable {
        let mut t = DatTable::new();
        for _ in 0..self.below(4) {
            let v = if depth < 4 && self.below(3) == 0 {
                DatValue::Table(self.table(depth + 1))
            } else {
                self.scalar()
            };
            t.push(v);
        }
        if self.below(3) > 0 {
            let v = if depth < 4 && self.below(3) == 0 {
                DatValue::Table(self.table(depth + 1))
            } else {
                self.scalar()
            };
            t.insert(self.key(), v);
        }
        t
    }
}

/// Every byte value in strings and keys, and the deepest nesting Prosody writes.
fn special_values() -> Vec<DatValue> {
    let mut out = Vec::new();
    for b in 0..=255u8 {
        let mut t = DatTable::new();
        t.push(DatValue::String(vec![b, b'x', b]));
        t.insert(DatKey::String(vec![b]), DatValue::Integer(i64::from(b)));
        out.push(DatValue::Table(t));
    }
    let mut deep = DatValue::str("bottom");
    for _ in 0..datfile::MAX_DEPTH {
        let mut t = DatTable::new();
        t.push(deep);
        deep = DatValue::Table(t);
    }
    out.push(deep);
    out
}

#[test]
fn prosody_rewrites_our_files_to_the_same_bytes() {
    let Some(shared) = shared_dir() else {
        eprintln!("skipping: ../shared not found");
        return;
    };
    let _lock = PROSODY.lock().unwrap_or_else(|e| e.into_inner());
    ensure_prosody(&shared);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = data.join("example%2ecom/in");
    std::fs::create_dir_all(&store).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut values = special_values();
    values.extend((0..600).map(|_| DatValue::Table(rng.table(0))));
    for (i, v) in values.iter().enumerate() {
        std::fs::write(
            store.join(format!("u{i}.dat")),
            datfile::dat_bytes(v, "test").unwrap(),
        )
        .unwrap();
    }
    // Prosody's datamanager loads each file and stores it again.
    let script = format!(
        "local dm = require 'util.datamanager'\n dm.set_data_path(arg[1])\n\
         for i = 0, {} do\n local t = assert(dm.load('u'..i, 'example.com', 'in'))\n\
         assert(dm.store('u'..i, 'example.com', 'out', t))\n end\n print('ok')",
        values.len() - 1
    );
    assert_eq!(run_lua(&script, &[&data]).trim(), "ok");
    for (i, value) in values.iter().enumerate() {
        let ours = std::fs::read(store.join(format!("u{i}.dat"))).unwrap();
        let out = data.join(format!("example%2ecom/out/u{i}.dat"));
        if value.as_table().is_some_and(DatTable::is_empty) {
            assert!(!out.exists(), "Prosody keeps no file for an empty table");
            continue;
        }
        let theirs = std::fs::read(&out).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&theirs),
            String::from_utf8_lossy(&ours),
            "value {i}"
        );
    }
}

#[test]
fn we_rewrite_prosodys_files_to_the_same_bytes() {
    let Some(shared) = shared_dir() else {
        eprintln!("skipping: ../shared not found");
        return;
    };
    let _lock = PROSODY.lock().unwrap_or_else(|e| e.into_inner());
    ensure_prosody(&shared);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Random tables with many keys (Prosody writes them in hash order),
    // as .dat files and as archive .list files.
    let script = r#"
local dm = require 'util.datamanager'
dm.set_data_path(arg[1])
math.randomseed(42)
local function str()
  local b = {}
  for i = 1, math.random(0, 10) do b[i] = string.char(math.random(0, 255)) end
  return table.concat(b)
end
local function scalar()
  local r = math.random(1, 6)
  if r == 1 then return math.random(0, 1) == 1
  elseif r == 2 then return math.random(math.mininteger, math.maxinteger)
  elseif r == 3 then return math.random() * 10 ^ math.random(-20, 20)
  elseif r == 4 then return math.random(0, 1e9) + 0.0
  else return str() end
end
local function tbl(depth)
  local t = {}
  for i = 1, math.random(0, 5) do t[i] = depth < 3 and math.random(1, 4) == 1 and tbl(depth + 1) or scalar() end
  for _ = 1, math.random(0, 8) do
    local k = math.random(1, 3) == 1 and math.random(-100, 100) or str()
    t[k] = depth < 3 and math.random(1, 4) == 1 and tbl(depth + 1) or scalar()
  end
  t[false] = math.random(1, 2) == 1 and { version = math.random(1, 100), pending = {} } or nil
  return t
end
for i = 1, 300 do assert(dm.store('u'..i, 'example.com', 'kv', tbl(0))) end
for i = 1, 20 do
  for _ = 1, math.random(1, 10) do assert(dm.list_append('u'..i, 'example.com', 'ar', tbl(0))) end
end
print('ok')
"#;
    assert_eq!(run_lua(script, &[&data]).trim(), "ok");
    let limits = Limits::default();
    let mut multi_key_tables = 0;
    for i in 1..=300 {
        let path = data.join(format!("example%2ecom/kv/u{i}.dat"));
        let Ok(theirs) = std::fs::read(&path) else {
            continue;
        }; // an empty table is not kept
        let v = datfile::parse_dat(&theirs, "p", &limits).unwrap().unwrap();
        multi_key_tables += usize::from(v.as_table().is_some_and(|t| t.len() > 2));
        assert_eq!(
            String::from_utf8_lossy(&datfile::dat_bytes(&v, "p").unwrap()),
            String::from_utf8_lossy(&theirs)
        );
    }
    assert!(multi_key_tables > 100, "{multi_key_tables}");
    for i in 1..=20 {
        let theirs = std::fs::read(data.join(format!("example%2ecom/ar/u{i}.list"))).unwrap();
        let items = datfile::parse_list(&theirs, "p", &limits).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&datfile::list_bytes(&items, "p").unwrap()),
            String::from_utf8_lossy(&theirs)
        );
    }
}

#[test]
fn prosodyctl_account_files_round_trip() {
    let Some(shared) = shared_dir() else {
        eprintln!("skipping: ../shared not found");
        return;
    };
    let _lock = PROSODY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = prosody_dir(&["example.com", "xn--caf-dma.example"]);
    let users = [
        ("alice", "example.com"),
        ("e.ve", "example.com"),
        ("bob", "xn--caf-dma.example"),
    ];
    for (user, host) in users {
        ctl(
            &shared,
            dir.path(),
            &["register", user, host, "p@ss'\"w\\rd é"],
        );
    }
    let limits = Limits::default();
    for (user, host) in users {
        let enc = |s: &str| s.replace('.', "%2e").replace('-', "%2d");
        let path = dir
            .path()
            .join("data")
            .join(enc(host))
            .join("accounts")
            .join(format!("{}.dat", enc(user)));
        let theirs = std::fs::read(&path).unwrap();
        let v = datfile::read_dat_file(&path, &limits).unwrap().unwrap();
        assert_eq!(
            datfile::dat_bytes(&v, "p").unwrap(),
            theirs,
            "{}",
            path.display()
        );
        // Through lilt's Value and back, with the file as template.
        let value = v.to_value().unwrap();
        assert_eq!(
            value.get("iteration_count"),
            Some(&xmpp_core::Value::Integer(10000))
        );
        let back = DatValue::from_value(&value, Some(&v));
        assert_eq!(datfile::dat_bytes(&back, "p").unwrap(), theirs);
    }
}
