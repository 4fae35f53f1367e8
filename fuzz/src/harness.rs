//! The fuzzing loop: picks a corpus input, mutates it, runs the target,
//! and keeps what crashed. Not coverage-guided (see `README.md`): a fast
//! random mutator over seeds that already reach deep into each parser.
//!
//! A panic is caught and its input written to `artifacts/<target>/`; an
//! abort (stack overflow, allocation failure) is caught by a signal
//! handler that writes the input being run before the process dies; an
//! input running longer than the time limit is written as a timeout by a
//! watchdog thread, which then ends the process.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::Target;

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub executions: u64,
    pub crashes: u64,
    pub elapsed: Duration,
    pub corpus: usize,
}

/// A small xorshift generator (reproducible from its seed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// In `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Tokens worth inserting: the syntax of every format under fuzz.
const DICTIONARY: &[&[u8]] = &[
    b"<",
    b">",
    b"/>",
    b"</",
    b"=\"",
    b"'",
    b"\"",
    b"&amp;",
    b"&#x0;",
    b"&#65;",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<?xml version='1.0'?>",
    b"xmlns=",
    b"xmlns:stream=",
    b"xml:lang=",
    b"<stream:stream>",
    b"</stream:stream>",
    b"\xef\xbb\xbf",
    b"\x00",
    b"\xff",
    b"\xc3\x28",
    b"\n#next\n",
    b"#reset",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"18446744073709551616",
    b"\\u0000",
    b"\\ud800",
    b"n,,",
    b"p=",
    b"c=",
    b"r=",
    b"n=",
    b"=2C",
    b"=3D",
    b"a=",
    b"@",
    b"/",
    b"\xe2\x80\x8b",
    b".",
    b"..",
    b"=",
    b"--",
    b"[[",
    b"]]",
    b"\\",
    b"0x",
    b"\x80\x00",
    b"\x21\x12\xa4\x42",
    b"\x16\xfe\xfd",
    b"\x80\x60",
    b"\x81\xc8",
    b"\x81\xcd",
    b"\x8f\xce",
    b"\x89\x80",
    b"\x81\xfe\xff\xff",
    b"\x7f",
];

const INTERESTING: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x10000,
    0x7fff_ffff,
    0xffff_ffff,
];

/// Mutates `input` in place with one to eight stacked mutations.
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>], max_len: usize) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(11) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = rng.next_u64() as u8;
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                for _ in 0..n {
                    input.insert(at, rng.next_u64() as u8);
                }
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(32));
                input.drain(at..at + n);
            }
            4 if len > 0 => {
                // Duplicate a range (repetition finds nesting and size bugs).
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                let chunk: Vec<u8> = input[at..at + n].to_vec();
                let most = if rng.below(16) == 0 { 200 } else { 4 };
                let copies = 1 + rng.below(most);
                let to = rng.below(len + 1);
                for _ in 0..copies {
                    input.splice(to..to, chunk.iter().copied());
                }
            }
            5 | 6 => {
                let token = DICTIONARY[rng.below(DICTIONARY.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, token.iter().copied());
            }
            7 if !corpus.is_empty() => {
                // Splice: our head, another input's tail.
                let other = &corpus[rng.below(corpus.len())];
                let at = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            8 if len > 0 => {
                // An ASCII digit run replaced by an interesting number.
                let at = rng.below(len);
                let value = INTERESTING[rng.below(INTERESTING.len())];
                let value = if rng.below(2) == 0 {
                    value
                } else {
                    value.wrapping_neg()
                };
                let text = value.to_string();
                let end = input[at..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(len, |p| at + p);
                input.splice(at..end, text.bytes());
            }
            9 if len > 1 => {
                let a = rng.below(len);
                let b = rng.below(len);
                input.swap(a, b);
            }
            10 if len > 3 => {
                // A binary length field overwritten.
                let at = rng.below(len - 1);
                let value = INTERESTING[rng.below(INTERESTING.len())] as u16;
                input[at..at + 2].copy_from_slice(&value.to_be_bytes());
            }
            _ => {}
        }
    }
    input.truncate(max_len);
}

/// The input being run, for the abort handler and the watchdog.
static CURRENT_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CURRENT_LEN: AtomicUsize = AtomicUsize::new(0);
static CRASH_PATH: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
static PROGRESS: AtomicU64 = AtomicU64::new(0);

fn write_current(path: *const libc::c_char) {
    let ptr = CURRENT_PTR.load(Ordering::SeqCst);
    let len = CURRENT_LEN.load(Ordering::SeqCst);
    if path.is_null() || ptr.is_null() {
        return;
    }
    // SAFETY: only async-signal-safe calls; `ptr`/`len` describe the input
    // buffer, which lives until the run in progress returns.
    unsafe {
        let fd = libc::open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644);
        if fd >= 0 {
            libc::write(fd, ptr as *const libc::c_void, len);
            libc::close(fd);
        }
    }
}

extern "C" fn on_abort(signal: libc::c_int) {
    write_current(CRASH_PATH.load(Ordering::SeqCst));
    // SAFETY: restore the default action and re-raise, so the process
    // ends as it would have.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

fn install_abort_handler(path: &Path) {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    CRASH_PATH.store(c.into_raw(), Ordering::SeqCst);
    // SAFETY: installing a handler that only makes async-signal-safe calls.
    unsafe {
        for signal in [libc::SIGABRT, libc::SIGSEGV, libc::SIGBUS, libc::SIGILL] {
            libc::signal(signal, on_abort as *const () as libc::sighandler_t);
        }
    }
}

fn start_watchdog(path: PathBuf, limit: Duration) {
    std::thread::spawn(move || {
        let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
            return;
        };
        let mut last = PROGRESS.load(Ordering::SeqCst);
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let now = PROGRESS.load(Ordering::SeqCst);
            if now != last || CURRENT_PTR.load(Ordering::SeqCst).is_null() {
                last = now;
                since = Instant::now();
            } else if since.elapsed() > limit {
                write_current(c.as_ptr());
                eprintln!(
                    "TIMEOUT: an input ran over {limit:?}; saved as {}",
                    path.display()
                );
                std::process::exit(3);
            }
        }
    });
}

/// Reads every file of `dir` (none if it does not exist).
pub fn load_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Settings of one run.
pub struct Run<'a> {
    pub name: &'a str,
    pub target: Target,
    pub corpus: Vec<Vec<u8>>,
    pub artifacts: PathBuf,
    pub duration: Duration,
    pub seed: u64,
    pub max_len: usize,
    pub timeout: Duration,
    /// Stop after this many mutated inputs (besides the seeds), even
    /// before `duration`.
    pub runs: Option<u64>,
}

/// Runs one input with the bookkeeping the crash handlers read.
fn execute(target: Target, input: &[u8]) -> Result<(), String> {
    CURRENT_PTR.store(input.as_ptr() as *mut u8, Ordering::SeqCst);
    CURRENT_LEN.store(input.len(), Ordering::SeqCst);
    let result = std::panic::catch_unwind(|| target(input));
    PROGRESS.fetch_add(1, Ordering::SeqCst);
    CURRENT_PTR.store(std::ptr::null_mut(), Ordering::SeqCst);
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

/// Fuzzes one target for `run.duration`; crashes are written to
/// `run.artifacts` and counted, and fuzzing goes on.
pub fn fuzz(run: Run<'_>) -> Summary {
    let _ = std::fs::create_dir_all(&run.artifacts);
    install_abort_handler(&run.artifacts.join("crash-abort"));
    start_watchdog(run.artifacts.join("timeout"), run.timeout);
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng::new(run.seed);
    let mut corpus = run.corpus;
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut summary = Summary {
        corpus: corpus.len(),
        ..Summary::default()
    };
    let start = Instant::now();
    // Every seed once, unmutated.
    for input in &corpus {
        record(
            &run.artifacts,
            run.name,
            input,
            execute(run.target, input),
            &mut summary,
        );
    }
    let mut input = Vec::new();
    let mut left = run.runs.unwrap_or(u64::MAX);
    while left > 0 && start.elapsed() < run.duration {
        for _ in 0..left.min(64) {
            left -= 1;
            input.clear();
            input.extend_from_slice(&corpus[rng.below(corpus.len())]);
            mutate(&mut rng, &mut input, &corpus, run.max_len);
            let result = execute(run.target, &input);
            record(&run.artifacts, run.name, &input, result, &mut summary);
        }
    }
    summary.elapsed = start.elapsed();
    let _ = std::panic::take_hook();
    summary
}

fn record(dir: &Path, name: &str, input: &[u8], result: Result<(), String>, s: &mut Summary) {
    s.executions += 1;
    if let Err(message) = result {
        s.crashes += 1;
        let path = dir.join(format!("crash-{:016x}", fnv(input)));
        let _ = std::fs::write(&path, input);
        eprintln!(
            "CRASH in {name}: {message}\n  input saved as {}",
            path.display()
        );
    }
}

/// Runs each file once (reproducing a crash); returns the failures.
pub fn replay(target: Target, files: &[PathBuf]) -> Vec<(PathBuf, String)> {
    let mut failures = Vec::new();
    for file in files {
        let Ok(data) = std::fs::read(file) else {
            failures.push((file.clone(), "unreadable".into()));
            continue;
        };
        if let Err(message) = execute(target, &data) {
            failures.push((file.clone(), message));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_changes_inputs_and_respects_the_length() {
        let mut rng = Rng::new(7);
        let corpus = vec![b"<message to='a@b'/>".to_vec()];
        let mut changed = 0;
        for _ in 0..1000 {
            let mut input = corpus[0].clone();
            mutate(&mut rng, &mut input, &corpus, 64);
            assert!(input.len() <= 64);
            changed += usize::from(input != corpus[0]);
        }
        assert!(changed > 900, "{changed}");
    }

    #[test]
    fn a_panicking_target_is_reported() {
        fn boom(data: &[u8]) {
            assert!(!data.starts_with(b"x"), "boom");
        }
        let dir = std::env::temp_dir().join(format!("lilt-fuzz-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x");
        std::fs::write(&file, b"xyz").unwrap();
        let failures = replay(boom, &[file]);
        assert_eq!(failures.len(), 1);
        assert!(failures[0].1.contains("boom"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
