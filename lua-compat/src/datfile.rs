//! Prosody's data files: the Lua-table `.dat` files of keyval stores and the
//! `.list` files of archive stores, as Prosody 0.12's `util.datamanager` and
//! `util.serialization` read and write them.
//!
//! A `.dat` file is a Lua chunk `return <table>;\n`; a `.list` file is a
//! sequence of `item(<table>);\n` calls, one per archived item. Both are
//! written by `util.serialization`'s default preset: one entry per line,
//! tab-indented, every key in brackets (`["name"] = ...;`), sequence items
//! without a key, strings in double quotes with every byte outside printable
//! ASCII escaped as `\ddd`, integers with `%d`, floats with `%.18g`.
//!
//! Reading: the chunk is evaluated by Lua 5.4 (mlua) in an empty environment
//! (no globals, no libraries, text chunks only) under a size cap, a memory
//! limit and an instruction budget, so a hostile file can neither reach
//! anything nor run forever; the result is the authority on what the file
//! holds. Lua tables have no order, so the file is also read by a small
//! literal parser ([`literal`]) that remembers the order keys were written
//! in; when both readings agree, that order is kept, so parsing a file and
//! serialising it again gives back the same bytes. Otherwise (a hand-written
//! file using other Lua syntax) the keys are put in a canonical order.
//!
//! [`DatValue`] is exact (key types, key order, byte strings);
//! [`DatValue::to_value`] and [`DatValue::from_value`] convert to and from
//! lilt's [`xmpp_core::Value`]. Stanzas are kept as Prosody's
//! `st.preserialize` tables ([`stanza`]), archive items as in
//! `mod_storage_internal` ([`archive`]).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::Path;

pub mod archive;
mod convert;
mod eval;
mod lex;
pub mod literal;
mod serialize;
pub mod stanza;

pub use convert::ConvertError;
pub use serialize::{format_number, quote_string, serialize};

/// Files larger than this are refused unless [`Limits`] says otherwise.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Deepest table nesting `util.serialization` writes (its `maxdepth`).
pub const MAX_DEPTH: usize = 127;

/// Bounds on what reading a file may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_file_size: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

/// Why a data file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DatError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes, more than the {max} bytes allowed")]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("{path} is not valid Lua data: {message}")]
    Lua { path: String, message: String },
    #[error("{path} holds something that is not data: {reason}")]
    NotData { path: String, reason: String },
    #[error("cannot serialise for {path}: {reason}")]
    Serialize { path: String, reason: String },
}

impl DatError {
    /// What is wrong, without the file name.
    pub fn reason(&self) -> String {
        match self {
            DatError::Io { source, .. } => source.to_string(),
            DatError::TooLarge { size, max, .. } => {
                format!("{size} bytes, more than the {max} bytes allowed")
            }
            DatError::Lua { message, .. } => format!("not valid Lua data: {message}"),
            DatError::NotData { reason, .. } => format!("not data: {reason}"),
            DatError::Serialize { reason, .. } => reason.clone(),
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &str {
        match self {
            DatError::Io { path, .. }
            | DatError::TooLarge { path, .. }
            | DatError::Lua { path, .. }
            | DatError::NotData { path, .. }
            | DatError::Serialize { path, .. } => path,
        }
    }
}

/// 2^63: floats in `-2^63..2^63` with no fraction are integers as keys.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// A table key as Lua keeps it. Floats with an integral value are integer
/// keys in Lua, so [`DatKey::Number`] only holds non-integral, non-NaN floats.
#[derive(Debug, Clone)]
pub enum DatKey {
    Bool(bool),
    Integer(i64),
    Number(f64),
    String(Vec<u8>),
}

impl DatKey {
    /// A string key.
    pub fn str(s: &str) -> DatKey {
        DatKey::String(s.as_bytes().to_vec())
    }

    /// The key for a Lua number, normalised as Lua does (`1.0` is `1`);
    /// `None` for NaN, which cannot be a key.
    pub fn from_f64(f: f64) -> Option<DatKey> {
        if f.is_nan() {
            None
        } else if f.fract() == 0.0 && (-I64_LIMIT..I64_LIMIT).contains(&f) {
            Some(DatKey::Integer(f as i64))
        } else {
            Some(DatKey::Number(f))
        }
    }

    /// The key's string form, as `tostring` gives it (used where lilt's
    /// [`xmpp_core::Value`] tables need string keys).
    pub fn to_display_string(&self) -> String {
        match self {
            DatKey::Bool(b) => b.to_string(),
            DatKey::Integer(i) => i.to_string(),
            DatKey::Number(f) => serialize::format_g(*f, 14),
            DatKey::String(s) => String::from_utf8_lossy(s).into_owned(),
        }
    }

    /// Canonical ordering rank: booleans, then numbers, then strings.
    fn rank(&self) -> u8 {
        match self {
            DatKey::Bool(_) => 0,
            DatKey::Integer(_) | DatKey::Number(_) => 1,
            DatKey::String(_) => 2,
        }
    }

    /// Lilt's canonical key order for tables whose written order is unknown.
    pub fn canonical_cmp(&self, other: &DatKey) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self, other) {
            (DatKey::Bool(a), DatKey::Bool(b)) => a.cmp(b),
            (DatKey::Integer(a), DatKey::Integer(b)) => a.cmp(b),
            (DatKey::String(a), DatKey::String(b)) => a.cmp(b),
            (DatKey::Integer(a), DatKey::Number(b)) => {
                (*a as f64).partial_cmp(b).unwrap_or(Ordering::Less)
            }
            (DatKey::Number(a), DatKey::Integer(b)) => {
                a.partial_cmp(&(*b as f64)).unwrap_or(Ordering::Greater)
            }
            (DatKey::Number(a), DatKey::Number(b)) => a.total_cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialEq for DatKey {
    fn eq(&self, other: &DatKey) -> bool {
        match (self, other) {
            (DatKey::Bool(a), DatKey::Bool(b)) => a == b,
            (DatKey::Integer(a), DatKey::Integer(b)) => a == b,
            (DatKey::Number(a), DatKey::Number(b)) => a.to_bits() == b.to_bits(),
            (DatKey::String(a), DatKey::String(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for DatKey {}

impl Hash for DatKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            DatKey::Bool(b) => (0u8, b).hash(state),
            DatKey::Integer(i) => (1u8, i).hash(state),
            DatKey::Number(f) => (2u8, f.to_bits()).hash(state),
            DatKey::String(s) => (3u8, s).hash(state),
        }
    }
}

/// A Lua value as a data file holds it (nil is absence).
#[derive(Debug, Clone)]
pub enum DatValue {
    Bool(bool),
    Integer(i64),
    Number(f64),
    String(Vec<u8>),
    Table(DatTable),
}

impl DatValue {
    /// A string value.
    pub fn str(s: &str) -> DatValue {
        DatValue::String(s.as_bytes().to_vec())
    }
    pub fn as_table(&self) -> Option<&DatTable> {
        match self {
            DatValue::Table(t) => Some(t),
            _ => None,
        }
    }
    /// The string, when it is one and is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            DatValue::String(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }
    /// A number as `f64` (integers included).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            DatValue::Integer(i) => Some(*i as f64),
            DatValue::Number(f) => Some(*f),
            _ => None,
        }
    }
    /// Lua's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            DatValue::Bool(_) => "boolean",
            DatValue::Integer(_) | DatValue::Number(_) => "number",
            DatValue::String(_) => "string",
            DatValue::Table(_) => "table",
        }
    }

    /// Same contents, whatever the order of table entries (NaN equals NaN).
    pub fn same_contents(&self, other: &DatValue) -> bool {
        match (self, other) {
            (DatValue::Bool(a), DatValue::Bool(b)) => a == b,
            (DatValue::Integer(a), DatValue::Integer(b)) => a == b,
            (DatValue::Number(a), DatValue::Number(b)) => a == b || (a.is_nan() && b.is_nan()),
            (DatValue::String(a), DatValue::String(b)) => a == b,
            (DatValue::Table(a), DatValue::Table(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.get(k).is_some_and(|w| v.same_contents(w)))
            }
            _ => false,
        }
    }
}

/// Order-sensitive equality: what serialises to the same bytes is equal.
impl PartialEq for DatValue {
    fn eq(&self, other: &DatValue) -> bool {
        match (self, other) {
            (DatValue::Bool(a), DatValue::Bool(b)) => a == b,
            (DatValue::Integer(a), DatValue::Integer(b)) => a == b,
            (DatValue::Number(a), DatValue::Number(b)) => a.to_bits() == b.to_bits(),
            (DatValue::String(a), DatValue::String(b)) => a == b,
            (DatValue::Table(a), DatValue::Table(b)) => a == b,
            _ => false,
        }
    }
}

impl From<DatTable> for DatValue {
    fn from(t: DatTable) -> DatValue {
        DatValue::Table(t)
    }
}

/// Tables with more entries than this get a hash index; smaller ones (most
/// of them: stanza elements, attributes) are searched in order.
const INDEX_FROM: usize = 12;

/// A Lua table with the order its entries are (or will be) written in.
#[derive(Debug, Clone, Default)]
pub struct DatTable {
    entries: Vec<(DatKey, DatValue)>,
    index: Option<HashMap<DatKey, usize>>,
}

impl PartialEq for DatTable {
    fn eq(&self, other: &DatTable) -> bool {
        self.entries == other.entries
    }
}

impl DatTable {
    pub fn new() -> DatTable {
        DatTable::default()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Entries in written order.
    pub fn iter(&self) -> impl Iterator<Item = (&DatKey, &DatValue)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
    fn position(&self, key: &DatKey) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| k == key),
        }
    }
    pub fn get(&self, key: &DatKey) -> Option<&DatValue> {
        self.position(key).map(|i| &self.entries[i].1)
    }
    /// The value under a string key.
    pub fn get_str(&self, key: &str) -> Option<&DatValue> {
        match &self.index {
            Some(_) => self.get(&DatKey::str(key)),
            None => self
                .entries
                .iter()
                .find(|(k, _)| matches!(k, DatKey::String(s) if s.as_slice() == key.as_bytes()))
                .map(|(_, v)| v),
        }
    }
    /// Sets a key: an existing entry keeps its place, a new one goes last.
    pub fn insert(&mut self, key: DatKey, value: DatValue) {
        match self.position(&key) {
            Some(i) => self.entries[i].1 = value,
            None => {
                if let Some(index) = &mut self.index {
                    index.insert(key.clone(), self.entries.len());
                }
                self.entries.push((key, value));
                if self.index.is_none() && self.entries.len() > INDEX_FROM {
                    self.reindex();
                }
            }
        }
    }
    /// Sets a string key.
    pub fn insert_str(&mut self, key: &str, value: DatValue) {
        self.insert(DatKey::str(key), value);
    }
    /// Removes a key, keeping the order of the others.
    pub fn remove(&mut self, key: &DatKey) -> Option<DatValue> {
        let i = self.position(key)?;
        let (_, v) = self.entries.remove(i);
        if self.index.is_some() {
            self.reindex();
        }
        Some(v)
    }
    /// Appends at the next sequence index (Lua's `t[#t+1] = v`).
    pub fn push(&mut self, value: DatValue) {
        let n = self.sequence_len();
        self.insert(DatKey::Integer(n as i64 + 1), value);
    }
    /// Length of the sequence `1..n` (the border `ipairs` stops at).
    pub fn sequence_len(&self) -> usize {
        let mut n = 0usize;
        while self.position(&DatKey::Integer(n as i64 + 1)).is_some() {
            n += 1;
        }
        n
    }
    /// The values of `1..n`, in index order (`ipairs`).
    pub fn sequence(&self) -> impl Iterator<Item = &DatValue> {
        (1..=self.sequence_len() as i64).filter_map(|i| self.get(&DatKey::Integer(i)))
    }
    /// Puts entries in lilt's canonical order: the sequence `1..n` first,
    /// then booleans, numbers and strings, each in ascending order.
    pub fn sort_canonical(&mut self) {
        let n = self.sequence_len() as i64;
        let in_seq = |k: &DatKey| matches!(k, DatKey::Integer(i) if *i >= 1 && *i <= n);
        self.entries
            .sort_by(|(a, _), (b, _)| match (in_seq(a), in_seq(b)) {
                (true, false) => std::cmp::Ordering::Less,
                (false, true) => std::cmp::Ordering::Greater,
                _ => a.canonical_cmp(b),
            });
        if self.index.is_some() {
            self.reindex();
        }
    }
    /// [`DatTable::sort_canonical`] here and in every table below.
    pub fn sort_canonical_deep(&mut self) {
        self.sort_canonical();
        for (_, v) in &mut self.entries {
            if let DatValue::Table(t) = v {
                t.sort_canonical_deep();
            }
        }
    }
    fn reindex(&mut self) {
        let index = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i));
        self.index = Some(index.collect());
    }
}

impl FromIterator<(DatKey, DatValue)> for DatTable {
    fn from_iter<I: IntoIterator<Item = (DatKey, DatValue)>>(iter: I) -> DatTable {
        let mut t = DatTable::new();
        for (k, v) in iter {
            t.insert(k, v);
        }
        t
    }
}

// -- reading ----------------------------------------------------------------------

/// Reads a whole file, refusing it when larger than the limit.
/// `Ok(None)` when the file does not exist.
pub fn read_file_capped(path: &Path, limits: &Limits) -> Result<Option<Vec<u8>>, DatError> {
    let shown = path.display().to_string();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DatError::Io {
                path: shown,
                source,
            });
        }
    };
    let mut bytes = Vec::new();
    file.take(limits.max_file_size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| DatError::Io {
            path: shown.clone(),
            source,
        })?;
    if bytes.len() as u64 > limits.max_file_size {
        let size = std::fs::metadata(path)
            .map(|m| m.len())
            .unwrap_or(bytes.len() as u64);
        return Err(DatError::TooLarge {
            path: shown,
            size,
            max: limits.max_file_size,
        });
    }
    Ok(Some(bytes))
}

/// Reads a `.dat` file (`Ok(None)`: no such file, or it returns nil).
pub fn read_dat_file(path: &Path, limits: &Limits) -> Result<Option<DatValue>, DatError> {
    match read_file_capped(path, limits)? {
        None => Ok(None),
        Some(bytes) => parse_dat(&bytes, &path.display().to_string(), limits),
    }
}

/// Reads a `.list` file (`Ok(None)`: no such file).
pub fn read_list_file(path: &Path, limits: &Limits) -> Result<Option<Vec<DatValue>>, DatError> {
    match read_file_capped(path, limits)? {
        None => Ok(None),
        Some(bytes) => parse_list(&bytes, &path.display().to_string(), limits).map(Some),
    }
}

fn check_size(src: &[u8], name: &str, limits: &Limits) -> Result<(), DatError> {
    if src.len() as u64 > limits.max_file_size {
        return Err(DatError::TooLarge {
            path: name.to_string(),
            size: src.len() as u64,
            max: limits.max_file_size,
        });
    }
    Ok(())
}

/// Parses the contents of a `.dat` file; `name` names it in errors.
///
/// A file exactly as `util.serialization` (Prosody's or lilt's
/// [`dat_bytes`]) writes it is read by the literal parser alone: its
/// bytes are those of the serialisation of what the parser read, which
/// Lua reads as that same value, so evaluating it would say nothing new
/// (the fuzz target `datfile` and the tests check this against
/// [`parse_dat_evaluated`]). Any other file is evaluated by Lua.
pub fn parse_dat(src: &[u8], name: &str, limits: &Limits) -> Result<Option<DatValue>, DatError> {
    check_size(src, name, limits)?;
    let ordered = literal::parse_dat(src).ok().flatten();
    if let Some(value) = &ordered
        && dat_bytes(value, "").is_ok_and(|bytes| bytes == src)
    {
        return Ok(ordered);
    }
    evaluate_dat(src, name, ordered)
}

/// [`parse_dat`] with Lua's evaluation always run (the authority on what
/// any file holds; for differential checks of the fast path).
pub fn parse_dat_evaluated(
    src: &[u8],
    name: &str,
    limits: &Limits,
) -> Result<Option<DatValue>, DatError> {
    check_size(src, name, limits)?;
    evaluate_dat(src, name, literal::parse_dat(src).ok().flatten())
}

/// Lua's reading of a `.dat` file, in the order of `ordered` (what the
/// literal parser read) when both hold the same, else sorted.
fn evaluate_dat(
    src: &[u8],
    name: &str,
    ordered: Option<DatValue>,
) -> Result<Option<DatValue>, DatError> {
    match (ordered, eval::eval_dat(src, name)?) {
        (Some(ordered), Some(authority)) if ordered.same_contents(&authority) => Ok(Some(ordered)),
        (_, Some(mut authority)) => {
            sort_deep(&mut authority);
            Ok(Some(authority))
        }
        (_, None) => Ok(None),
    }
}

/// Parses the contents of a `.list` file into its items, in file order.
/// As [`parse_dat`], a file exactly as written by `util.serialization`
/// is read by the literal parser alone.
pub fn parse_list(src: &[u8], name: &str, limits: &Limits) -> Result<Vec<DatValue>, DatError> {
    check_size(src, name, limits)?;
    let ordered = literal::parse_list(src).ok();
    if let Some(items) = &ordered
        && list_bytes(items, "").is_ok_and(|bytes| bytes == src)
    {
        return Ok(ordered.unwrap_or_default());
    }
    evaluate_list(src, name, ordered)
}

/// [`parse_list`] with Lua's evaluation always run.
pub fn parse_list_evaluated(
    src: &[u8],
    name: &str,
    limits: &Limits,
) -> Result<Vec<DatValue>, DatError> {
    check_size(src, name, limits)?;
    evaluate_list(src, name, literal::parse_list(src).ok())
}

/// Lua's reading of a `.list` file, as [`evaluate_dat`].
fn evaluate_list(
    src: &[u8],
    name: &str,
    ordered: Option<Vec<DatValue>>,
) -> Result<Vec<DatValue>, DatError> {
    let mut evaluated = eval::eval_list(src, name)?;
    match ordered {
        Some(ordered)
            if ordered.len() == evaluated.len()
                && ordered
                    .iter()
                    .zip(&evaluated)
                    .all(|(a, b)| a.same_contents(b)) =>
        {
            Ok(ordered)
        }
        _ => {
            evaluated.iter_mut().for_each(sort_deep);
            Ok(evaluated)
        }
    }
}

/// The order for data whose written order is unknown.
fn sort_deep(v: &mut DatValue) {
    if let DatValue::Table(t) = v {
        t.sort_canonical_deep();
    }
}

// -- writing ------------------------------------------------------------------------

/// The bytes of a `.dat` file holding `value` (`return ...;\n`).
pub fn dat_bytes(value: &DatValue, name: &str) -> Result<Vec<u8>, DatError> {
    let body = serialize(value).map_err(|reason| DatError::Serialize {
        path: name.to_string(),
        reason,
    })?;
    Ok(format!("return {body};\n").into_bytes())
}

/// The bytes of one archive item in a `.list` file (`item(...);\n`).
pub fn list_item_bytes(item: &DatValue, name: &str) -> Result<Vec<u8>, DatError> {
    let body = serialize(item).map_err(|reason| DatError::Serialize {
        path: name.to_string(),
        reason,
    })?;
    Ok(format!("item({body});\n").into_bytes())
}

/// The bytes of a whole `.list` file.
pub fn list_bytes(items: &[DatValue], name: &str) -> Result<Vec<u8>, DatError> {
    let mut out = Vec::new();
    for item in items {
        out.extend(list_item_bytes(item, name)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
