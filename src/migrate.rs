//! `lilt --config SRC.cfg.lua migrate --to DST.cfg.lua`: what
//! prosody-migrator does, between two Prosody configurations. Every store
//! of every host in SRC is read from the driver SRC's `storage` option
//! gives it and written through the driver DST's gives it (each config
//! with its own `storage`, `sql` and `data_path`), e.g. a Prosody data
//! directory into PostgreSQL, or `prosody.sqlite` into a data directory.
//!
//! - What exists is found per driver: `internal` lists the host's data
//!   directory (`store/user.dat` keyval and map data, `store/user.list`
//!   archives, `store.dat` host data); `sql` lists the stores and users of
//!   its tables. `memory` and `none` hold nothing to copy.
//! - Keyval data (maps are the same data) is copied whole per user;
//!   archives item by item, keeping item ids and times (into `sql`;
//!   the `internal` driver gives appended items new ids).
//! - Progress is shown on stderr; each finished (host, store, user) is
//!   recorded in `DST data_path/lilt-migrate.progress`, so a run that was
//!   interrupted continues where it stopped. The file is removed when the
//!   migration completes. At the end, users and items per store.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use modules::storage::paths;
use xmpp_core::storage::ArchiveQuery;
use xmpp_core::{Clock, Host, Server, ServerConfig};

use crate::ctl::CtlError;

fn err(message: impl Into<String>) -> CtlError {
    CtlError {
        message: message.into(),
        code: 1,
    }
}

/// What one unit of work copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Keyval,
    Archive,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Keyval => "keyval",
            Kind::Archive => "archive",
        }
    }
}

/// One user's data in one store of one host (`user` empty: the host's own).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Unit {
    kind: Kind,
    host: String,
    store: String,
    user: String,
}

impl Unit {
    fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}",
            self.kind.as_str(),
            self.host,
            self.store,
            self.user
        )
    }
    fn user(&self) -> Option<&str> {
        (!self.user.is_empty()).then_some(self.user.as_str())
    }
}

/// The command: `migrate --to DST.cfg.lua`.
pub fn cmd_migrate(src: &ServerConfig, args: &[&str]) -> Result<Option<String>, CtlError> {
    let dst_path = match args {
        ["--to", path] => PathBuf::from(path),
        [one] if one.starts_with("--to=") => PathBuf::from(&one["--to=".len()..]),
        _ => {
            return Err(err(
                "usage: lilt --config SRC.cfg.lua migrate --to DST.cfg.lua",
            ));
        }
    };
    let dst = lua_compat::config::load(&dst_path)
        .map_err(|e| err(format!("cannot load {}: {e}", dst_path.display())))?;
    migrate(src, &dst).map(Some)
}

/// Copies everything; returns the report.
fn migrate(src_config: &ServerConfig, dst_config: &ServerConfig) -> Result<String, CtlError> {
    let src = crate::startup::build_storage_only(src_config.clone(), Clock::System);
    let dst = crate::startup::build_storage_only(dst_config.clone(), Clock::System);
    let src_data = crate::startup::data_path(src_config);
    let dst_data = crate::startup::data_path(dst_config);
    let src_sql = storage_sql::SqlDriver::with_config(src_config, &src_data);
    let dst_sql = storage_sql::SqlDriver::with_config(dst_config, &dst_data);

    let mut units: BTreeSet<Unit> = BTreeSet::new();
    for host in src.hosts() {
        units.extend(find_units(&host, &src_data, &src_sql)?);
    }
    std::fs::create_dir_all(&dst_data)
        .map_err(|e| err(format!("cannot create {}: {e}", dst_data.display())))?;
    let progress_path = dst_data.join("lilt-migrate.progress");
    let done: BTreeSet<String> = std::fs::read_to_string(&progress_path)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let mut progress = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&progress_path)
        .map_err(|e| err(format!("cannot write {}: {e}", progress_path.display())))?;

    let total = units.len();
    let resumed = units.iter().filter(|u| done.contains(&u.line())).count();
    if resumed > 0 {
        eprintln!("resuming: {resumed} of {total} already copied");
    }
    // (host, store, kind) -> (users, items)
    let mut counts: BTreeMap<(String, String, Kind), (usize, usize)> = BTreeMap::new();
    for (n, unit) in units.iter().enumerate() {
        show_progress(n, total, unit);
        if done.contains(&unit.line()) {
            continue;
        }
        let Some(dst_host) = dst.host(&unit.host) else {
            eprintln!(
                "\nskipping {}: host {} is not in the destination config",
                unit.store, unit.host
            );
            continue;
        };
        let src_host = src
            .host(&unit.host)
            .ok_or_else(|| err(format!("host {} vanished", unit.host)))?;
        let items = copy(unit, &src_host, &dst_host, &dst_sql).map_err(|e| {
            err(format!(
                "\nfailed to copy {} {} of {}@{}: {e} (run again to resume)",
                unit.kind.as_str(),
                unit.store,
                unit.user,
                unit.host
            ))
        })?;
        let c = counts
            .entry((unit.host.clone(), unit.store.clone(), unit.kind))
            .or_default();
        c.0 += 1;
        c.1 += items;
        writeln!(progress, "{}", unit.line())
            .and_then(|()| progress.sync_data())
            .map_err(|e| err(format!("cannot write {}: {e}", progress_path.display())))?;
    }
    show_progress(
        total,
        total,
        &Unit {
            kind: Kind::Keyval,
            host: String::new(),
            store: String::new(),
            user: String::new(),
        },
    );
    eprintln!();
    let _ = std::fs::remove_file(&progress_path);
    let mut report = String::from("host\tstore\tkind\tusers\titems\n");
    for ((host, store, kind), (users, items)) in &counts {
        report.push_str(&format!(
            "{host}\t{store}\t{}\t{users}\t{items}\n",
            kind.as_str()
        ));
    }
    report.push_str(&format!(
        "migrated {} of {total} user stores ({resumed} in an earlier run)",
        counts.values().map(|c| c.0).sum::<usize>()
    ));
    drop(src);
    drop(dst);
    Ok(report)
}

fn show_progress(n: usize, total: usize, unit: &Unit) {
    const WIDTH: usize = 30;
    let filled = (n * WIDTH).checked_div(total).unwrap_or(WIDTH);
    eprint!(
        "\r[{}{}] {n}/{total} {:<40.40}",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled),
        format!("{} {}", unit.host, unit.store)
    );
    let _ = std::io::stderr().flush();
}

/// Copies one unit; the number of items (archive) or 1 (keyval).
fn copy(
    unit: &Unit,
    src: &Arc<Host>,
    dst: &Arc<Host>,
    dst_sql: &storage_sql::SqlDriver,
) -> Result<usize, xmpp_core::storage::StorageError> {
    match unit.kind {
        Kind::Keyval => {
            let value = src.open_keyval(&unit.store)?.get(unit.user())?;
            let n = usize::from(value.is_some());
            if value.is_some() {
                dst.open_keyval(&unit.store)?.set(unit.user(), value)?;
            }
            Ok(n)
        }
        Kind::Archive => {
            let items = src
                .open_archive(&unit.store)?
                .find(unit.user(), &ArchiveQuery::default())?;
            if dst.storage_driver_name(&unit.store) == "sql" {
                let archive = dst_sql.archive(&dst.name, &unit.store)?;
                for item in &items {
                    archive.append_keyed(
                        unit.user(),
                        Some(&item.key),
                        &item.stanza,
                        item.when,
                        &item.with,
                    )?;
                }
            } else {
                let archive = dst.open_archive(&unit.store)?;
                for item in &items {
                    archive.append(unit.user(), &item.stanza, item.when, &item.with)?;
                }
            }
            Ok(items.len())
        }
    }
}

/// The drivers a host's stores may live in, by its `storage` option.
fn drivers_of(host: &Host) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    match host.option("storage") {
        Some(xmpp_core::Value::String(s)) => {
            names.insert(s.clone());
        }
        Some(xmpp_core::Value::Table(t)) => {
            names.extend(
                t.map
                    .values()
                    .filter_map(|v| v.as_str())
                    .map(str::to_string),
            );
            names.insert(host.storage_driver_name("\u{0}none"));
        }
        _ => {
            names.insert(host.storage_driver_name("\u{0}none"));
        }
    }
    names
}

/// Everything a host has, in the drivers its config points at.
fn find_units(
    host: &Host,
    data: &Path,
    sql: &storage_sql::SqlDriver,
) -> Result<Vec<Unit>, CtlError> {
    let mut found: Vec<(Kind, String, String)> = Vec::new();
    for driver in drivers_of(host) {
        let mut here: Vec<(Kind, String, String)> = Vec::new();
        match driver.as_str() {
            "internal" => {
                let host_dir = data.join(paths::encode(&host.name));
                let e = |e: xmpp_core::storage::StorageError| err(e.to_string());
                for store in paths::list_names(&host_dir, "dat").map_err(e)? {
                    here.push((Kind::Keyval, store, String::new()));
                }
                for store in paths::list_names(&host_dir, "list").map_err(e)? {
                    here.push((Kind::Archive, store, String::new()));
                }
                for dir in paths::subdirs(&host_dir).map_err(e)? {
                    let Some(store) = dir
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(paths::decode)
                    else {
                        continue;
                    };
                    for user in paths::list_names(&dir, "dat").map_err(e)? {
                        here.push((Kind::Keyval, store.clone(), user));
                    }
                    for user in paths::list_names(&dir, "list").map_err(e)? {
                        here.push((Kind::Archive, store.clone(), user));
                    }
                }
            }
            "sql" => {
                let e = |e: xmpp_core::storage::StorageError| err(e.to_string());
                let (keyval, archives) = sql.stores(&host.name).map_err(e)?;
                for store in keyval {
                    let kv =
                        xmpp_core::storage::StorageDriver::open_keyval(sql, &host.name, &store)
                            .map_err(e)?;
                    if kv.get(None).map_err(e)?.is_some() {
                        here.push((Kind::Keyval, store.clone(), String::new()));
                    }
                    for user in kv.users().map_err(e)? {
                        here.push((Kind::Keyval, store.clone(), user));
                    }
                }
                for store in archives {
                    for user in sql
                        .archive(&host.name, &store)
                        .map_err(e)?
                        .users()
                        .map_err(e)?
                    {
                        here.push((Kind::Archive, store.clone(), user));
                    }
                }
            }
            _ => {}
        }
        // Only what this driver serves for the host.
        found.extend(
            here.into_iter()
                .filter(|(_, store, _)| host.storage_driver_name(store) == driver),
        );
    }
    Ok(found
        .into_iter()
        .map(|(kind, store, user)| Unit {
            kind,
            host: host.name.clone(),
            store,
            user,
        })
        .collect())
}

/// Used by tests: the units a server's hosts have.
#[doc(hidden)]
pub fn count_units(server: &Arc<Server>, config: &ServerConfig) -> Result<usize, CtlError> {
    let data = crate::startup::data_path(config);
    let sql = storage_sql::SqlDriver::with_config(config, &data);
    let mut n = 0;
    for host in server.hosts() {
        n += find_units(&host, &data, &sql)?.len();
    }
    Ok(n)
}
