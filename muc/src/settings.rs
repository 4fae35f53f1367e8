//! The component's options, with Prosody's names and defaults, read once
//! when the module loads (a value of the wrong type is an error naming the
//! option and where it was set).

use std::collections::HashSet;

use xmpp_core::config::OptionError;
use xmpp_core::{Host, Jid, Value};

/// `restrict_room_creation`, as Prosody 13 reads it (the `:create-room`
/// permission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomCreation {
    /// `false`: anyone may create rooms.
    Anyone,
    /// `true` / `"admin"`: only admins of the service.
    Admins,
    /// Unset or `"local"`: admins and registered users of the parent host
    /// (Prosody 13 gives `:create-room` to `prosody:registered`; anonymous
    /// and remote users are guests).
    Local,
}

/// Defaults applied to new rooms (`muc_room_default_*`).
#[derive(Debug, Clone, Default)]
pub struct RoomDefaults {
    pub public: bool,
    pub persistent: Option<bool>,
    pub members_only: Option<bool>,
    pub allow_member_invites: Option<bool>,
    pub moderated: Option<bool>,
    pub public_jids: Option<bool>,
    pub change_subject: Option<bool>,
    pub history_length: Option<i64>,
    pub language: Option<String>,
    pub presence_broadcast: Option<Vec<String>>,
}

/// Everything the MUC reads from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `name`: the service's disco identity.
    pub name: String,
    pub room_creation: RoomCreation,
    /// The parent host of `room_creation = "local"` (host minus its first label).
    pub host_suffix: String,
    /// `muc_room_locking` and `muc_room_lock_timeout`.
    pub room_locking: bool,
    pub lock_timeout: i64,
    /// `muc_room_cache_size` and `muc_max_rooms`.
    pub cache_size: usize,
    pub max_rooms: Option<usize>,
    /// `muc_tombstones` and `muc_tombstone_expiry`.
    pub tombstones: bool,
    pub tombstone_expiry: i64,
    /// `component_admins_as_room_owners`.
    pub admins_as_owners: bool,
    /// `max_history_messages` (None: no limit).
    pub max_history: Option<i64>,
    /// `muc_room_allow_public` and `muc_room_allow_persistent`.
    pub allow_public: bool,
    pub allow_persistent: bool,
    /// `allow_unaffiliated_register`, `enforce_registered_nickname`,
    /// `muc_registration_include_form`.
    pub allow_unaffiliated_register: bool,
    pub enforce_registered_nickname: bool,
    pub registration_include_form: bool,
    /// `muc_occupant_id`.
    pub occupant_id: bool,
    pub defaults: RoomDefaults,
    /// `admins`, global and of the component, as normalised bare JIDs.
    pub admins: HashSet<String>,
}

fn opt_bool(host: &Host, name: &str) -> Result<Option<bool>, OptionError> {
    match host.option(name) {
        None => Ok(None),
        Some(_) => host.option_bool(name, false).map(Some),
    }
}

fn opt_i64(host: &Host, name: &str) -> Result<Option<i64>, OptionError> {
    match host.option(name) {
        None => Ok(None),
        Some(_) => host.option_i64(name, 0).map(Some),
    }
}

fn opt_string(host: &Host, name: &str) -> Result<Option<String>, OptionError> {
    match host.option(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => {
            Err(host.option_error(name, format!("must be a string, not a {}", v.type_name())))
        }
    }
}

fn non_negative(host: &Host, name: &str, default: i64) -> Result<usize, OptionError> {
    let n = host.option_i64(name, default)?;
    usize::try_from(n)
        .map_err(|_| host.option_error(name, format!("must not be negative, not {n}")))
}

impl Settings {
    pub fn read(host: &Host) -> Result<Settings, OptionError> {
        let room_creation = match host.option("restrict_room_creation") {
            Some(Value::Bool(false)) => RoomCreation::Anyone,
            None => RoomCreation::Local,
            Some(Value::Bool(true)) => RoomCreation::Admins,
            Some(Value::String(s)) if s == "admin" => RoomCreation::Admins,
            Some(Value::String(s)) if s == "local" => RoomCreation::Local,
            Some(v) => {
                return Err(host.option_error(
                    "restrict_room_creation",
                    format!("must be true, false, \"admin\" or \"local\", not {v:?}"),
                ));
            }
        };
        let presence_broadcast = match host.option("muc_room_default_presence_broadcast") {
            None => None,
            Some(Value::Table(t)) => {
                let mut roles: Vec<String> = t
                    .seq
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                roles.extend(
                    t.map
                        .iter()
                        .filter(|(_, v)| **v == Value::Bool(true))
                        .map(|(k, _)| k.clone()),
                );
                Some(roles)
            }
            Some(v) => {
                return Err(host.option_error(
                    "muc_room_default_presence_broadcast",
                    format!("must be a table of roles, not a {}", v.type_name()),
                ));
            }
        };
        let mut admins = HashSet::new();
        let cfg = host.config();
        let own = cfg.host(&host.name).and_then(|h| h.section.get("admins"));
        for list in [cfg.get_global("admins"), own]
            .into_iter()
            .flatten()
            .filter_map(Value::as_string_list)
        {
            for a in list {
                match Jid::parse(&a) {
                    Ok(j) => {
                        admins.insert(j.to_bare().to_string());
                    }
                    Err(e) => tracing::warn!(host = %host.name, "ignoring admin {a:?}: {e}"),
                }
            }
        }
        Ok(Settings {
            name: opt_string(host, "name")?.unwrap_or_else(|| "Prosody Chatrooms".into()),
            room_creation,
            host_suffix: host
                .name
                .split_once('.')
                .map_or_else(String::new, |(_, s)| s.to_string()),
            room_locking: host.option_bool("muc_room_locking", true)?,
            lock_timeout: host.option_i64("muc_room_lock_timeout", 300)?,
            cache_size: non_negative(host, "muc_room_cache_size", 100)?,
            max_rooms: match opt_i64(host, "muc_max_rooms")? {
                None => None,
                Some(_) => Some(non_negative(host, "muc_max_rooms", 0)?),
            },
            tombstones: host.option_bool("muc_tombstones", true)?,
            tombstone_expiry: host.option_i64("muc_tombstone_expiry", 86400 * 31)?,
            admins_as_owners: host.option_bool("component_admins_as_room_owners", true)?,
            max_history: opt_i64(host, "max_history_messages")?,
            allow_public: host.option_bool("muc_room_allow_public", true)?,
            allow_persistent: host.option_bool("muc_room_allow_persistent", true)?,
            allow_unaffiliated_register: host.option_bool("allow_unaffiliated_register", false)?,
            enforce_registered_nickname: host.option_bool("enforce_registered_nickname", false)?,
            registration_include_form: host.option_bool("muc_registration_include_form", false)?,
            occupant_id: host.option_bool("muc_occupant_id", true)?,
            defaults: RoomDefaults {
                public: host.option_bool("muc_room_default_public", false)?,
                persistent: opt_bool(host, "muc_room_default_persistent")?,
                members_only: opt_bool(host, "muc_room_default_members_only")?,
                allow_member_invites: opt_bool(host, "muc_room_default_allow_member_invites")?,
                moderated: opt_bool(host, "muc_room_default_moderated")?,
                public_jids: opt_bool(host, "muc_room_default_public_jids")?,
                change_subject: opt_bool(host, "muc_room_default_change_subject")?,
                history_length: opt_i64(host, "muc_room_default_history_length")?,
                language: opt_string(host, "muc_room_default_language")?,
                presence_broadcast,
            },
            admins,
        })
    }
}
