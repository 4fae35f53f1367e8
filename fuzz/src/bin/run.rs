//! `run TARGET|all [--seconds N] [--corpus DIR] [--artifacts DIR] [--seed N]
//!  [--max-len BYTES] [--timeout SECONDS] [--runs N]`: fuzzes a target (or
//! each, in turn, in a child process of its own) on its corpus
//! `DIR/<target>/`; `--runs N` stops after N mutated inputs (with a fixed
//! `--seed`, a repeatable workload for profiling, e.g. under callgrind).
//! `run --replay TARGET FILE...` runs files once (a saved crash).
//! `run --list` names the targets. Exits 1 if anything crashed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use lilt_fuzz::harness::{Run, fuzz, load_corpus, replay};
use lilt_fuzz::{TARGETS, target};

struct Args {
    name: String,
    seconds: u64,
    corpus: PathBuf,
    artifacts: PathBuf,
    seed: u64,
    max_len: usize,
    timeout: u64,
    runs: Option<u64>,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: run TARGET|all [--seconds N] [--corpus DIR] [--artifacts DIR] [--seed N] [--max-len BYTES] [--timeout SECONDS] [--runs N]\n       run --replay TARGET FILE...\n       run --list"
    );
    ExitCode::from(2)
}

fn parse(mut argv: std::vec::IntoIter<String>) -> Option<Args> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = Args {
        name: argv.next()?,
        seconds: 10,
        corpus: here.join("corpus"),
        artifacts: here.join("artifacts"),
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
        max_len: 4096,
        timeout: 10,
        runs: None,
    };
    while let Some(flag) = argv.next() {
        let value = argv.next()?;
        match flag.as_str() {
            "--seconds" => args.seconds = value.parse().ok()?,
            "--corpus" => args.corpus = value.into(),
            "--artifacts" => args.artifacts = value.into(),
            "--seed" => args.seed = value.parse().ok()?,
            "--max-len" => args.max_len = value.parse().ok()?,
            "--timeout" => args.timeout = value.parse().ok()?,
            "--runs" => args.runs = Some(value.parse().ok()?),
            _ => return None,
        }
    }
    Some(args)
}

fn run_all(args: &Args) -> ExitCode {
    let Ok(me) = std::env::current_exe() else {
        return ExitCode::FAILURE;
    };
    let mut failed = Vec::new();
    for (name, _) in TARGETS {
        let status = std::process::Command::new(&me)
            .arg(name)
            .args(["--seconds", &args.seconds.to_string()])
            .args(["--corpus", &args.corpus.to_string_lossy()])
            .args(["--artifacts", &args.artifacts.to_string_lossy()])
            .args(["--seed", &args.seed.to_string()])
            .args(["--max-len", &args.max_len.to_string()])
            .args(["--timeout", &args.timeout.to_string()])
            .args(
                args.runs
                    .map(|n| ["--runs".to_string(), n.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .status();
        if !status.is_ok_and(|s| s.success()) {
            failed.push(*name);
        }
    }
    if failed.is_empty() {
        println!("all {} targets: no crash", TARGETS.len());
        ExitCode::SUCCESS
    } else {
        println!("crashed or failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("--list") => {
            for (name, _) in TARGETS {
                println!("{name}");
            }
            return ExitCode::SUCCESS;
        }
        Some("--replay") => {
            let Some(t) = argv.get(1).and_then(|n| target(n)) else {
                return usage();
            };
            let files: Vec<PathBuf> = argv.iter().skip(2).map(PathBuf::from).collect();
            let failures = replay(t, &files);
            for (file, message) in &failures {
                println!("{}: {message}", file.display());
            }
            println!("{} files, {} crashed", files.len(), failures.len());
            return if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        None => return usage(),
        _ => {}
    }
    let Some(args) = parse(std::mem::take(&mut argv).into_iter()) else {
        return usage();
    };
    if args.name == "all" {
        return run_all(&args);
    }
    let Some(t) = target(&args.name) else {
        eprintln!("unknown target {:?}; --list names them", args.name);
        return ExitCode::from(2);
    };
    let corpus = load_corpus(&args.corpus.join(&args.name));
    let summary = fuzz(Run {
        name: &args.name,
        target: t,
        corpus,
        artifacts: args.artifacts.join(&args.name),
        duration: Duration::from_secs(args.seconds),
        seed: args.seed,
        max_len: args.max_len,
        timeout: Duration::from_secs(args.timeout),
        runs: args.runs,
    });
    let secs = summary.elapsed.as_secs_f64().max(0.001);
    println!(
        "{}: {} inputs in {:.0} s ({:.0}/s), {} seeds, {} crashes (seed {})",
        args.name,
        summary.executions,
        secs,
        summary.executions as f64 / secs,
        summary.corpus,
        summary.crashes,
        args.seed
    );
    if summary.crashes == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
