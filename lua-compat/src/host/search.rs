//! Where modules and their libraries are found, in Prosody's order: the
//! `plugin_paths` option's directories first, then the built-in module
//! directory (Debian's `/usr/lib/prosody/modules`). In each directory a
//! module `x` is `mod_x/mod_x.lua`, `x/mod_x.lua` or `mod_x.lua`; a library a module loads
//! with `module:require "y"` is `y.lib.lua` next to the module, or
//! `y.lib.lua`, `y/y.lib.lua`, `mod_y/y.lib.lua` in a search directory.

use std::path::{Path, PathBuf};

use xmpp_core::ServerConfig;
use xmpp_core::value::Value;

/// Debian's (and Prosody's default install's) module directory.
pub const BUILTIN_MODULE_DIR: &str = "/usr/lib/prosody/modules";

/// The directories modules are looked up in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSearch {
    /// `plugin_paths`, in the order given.
    pub plugin_paths: Vec<PathBuf>,
    /// Searched after `plugin_paths`.
    pub builtin: Vec<PathBuf>,
}

impl Default for ModuleSearch {
    fn default() -> ModuleSearch {
        ModuleSearch {
            plugin_paths: Vec::new(),
            builtin: vec![PathBuf::from(BUILTIN_MODULE_DIR)],
        }
    }
}

impl ModuleSearch {
    /// The search of a config: its `plugin_paths` (relative paths are
    /// taken from the config file's directory, as Prosody resolves them),
    /// then the built-in directory.
    pub fn from_config(cfg: &ServerConfig, config_dir: &Path) -> ModuleSearch {
        let mut search = ModuleSearch::default();
        let paths = match cfg.global.get("plugin_paths") {
            Some(Value::Table(t)) => t
                .seq
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        for p in paths {
            let p = PathBuf::from(p);
            search.plugin_paths.push(if p.is_absolute() {
                p
            } else {
                config_dir.join(p)
            });
        }
        search
    }

    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.plugin_paths.iter().chain(self.builtin.iter())
    }

    /// The file of module `name`, first found of `mod_name/mod_name.lua`,
    /// `name/mod_name.lua`, `mod_name.lua` in each directory in turn.
    pub fn find_module(&self, name: &str) -> Option<PathBuf> {
        if !valid_name(name) {
            return None;
        }
        let file = format!("mod_{name}.lua");
        self.dirs().find_map(|dir| {
            [
                dir.join(format!("mod_{name}")).join(&file),
                dir.join(name).join(&file),
                dir.join(&file),
            ]
            .into_iter()
            .find(|p| p.is_file())
        })
    }

    /// The file of library `lib` for the module at `module_path`.
    /// A library name may have one directory part (`"mod_mam/mamprefs"`).
    pub fn find_lib(&self, module_path: &Path, lib: &str) -> Option<PathBuf> {
        let valid = match lib.split_once('/') {
            Some((dir, leaf)) => valid_name(dir) && valid_name(leaf),
            None => valid_name(lib),
        };
        if !valid {
            return None;
        }
        let file = format!("{lib}.lib.lua");
        if let Some(dir) = module_path.parent() {
            let p = dir.join(&file);
            if p.is_file() {
                return Some(p);
            }
        }
        self.dirs().find_map(|dir| {
            [
                dir.join(&file),
                dir.join(lib).join(&file),
                dir.join(format!("mod_{lib}")).join(&file),
            ]
            .into_iter()
            .find(|p| p.is_file())
        })
    }
}

/// A module or library name may not leave its directory.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains("..")
        && !name.contains('\0')
}
