//! Scenario 6, one-to-one through a Lua message filter: scenario 2's pairs
//! of users, on a second virtual host ([`DOMAIN`]) that loads a tiny
//! Prosody module ([`SOURCE`], `mod_bench_filter.lua` on `plugin_paths`)
//! hooking `message/bare`: it reads every message's body, drops one that
//! contains a blocked word and passes the others on. Prosody and lilt load
//! the same file; lilt runs it in its Lua module host, so the figures show
//! what a stanza through a Lua hook costs each server (issue 16's "Speed").

use std::path::Path;

use super::one_to_one::{self, OneToOneParams};
use super::{Figures, ScenarioError};
use crate::client::Target;

/// The virtual host whose messages go through the filter.
pub const DOMAIN: &str = "lua.localhost";

/// The filter's module name (`modules_enabled` on [`DOMAIN`]).
pub const MODULE: &str = "bench_filter";

/// The filter, as a Prosody module.
pub const SOURCE: &str = r#"-- mod_bench_filter: lilt's benchmark message filter (bench/src/scenarios/lua_filter.rs).
-- Every message to a bare JID passes through it: its body is read and
-- searched; one with the blocked word is dropped, the others go on.
local blocked = module:get_option_string("bench_filter_word", "buy cheap watches");
local seen, dropped = 0, 0;

module:hook("message/bare", function (event)
	local body = event.stanza:get_child_text("body");
	if not body then return; end
	seen = seen + 1;
	if body:find(blocked, 1, true) then
		dropped = dropped + 1;
		return true;
	end
end, 10);
"#;

/// Writes the filter into `dir/plugins`; returns that directory (for
/// `plugin_paths`).
pub fn write_plugin(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::write(plugins.join(format!("mod_{MODULE}.lua")), SOURCE)?;
    Ok(plugins)
}

/// One run: scenario 2 on [`DOMAIN`], its figures under `lua.*`.
pub async fn run(
    target: &Target,
    server_pid: u32,
    p: OneToOneParams,
) -> Result<Figures, ScenarioError> {
    let mut target = target.clone();
    target.domain = DOMAIN.to_string();
    let chat = one_to_one::run(&target, server_pid, p).await?;
    let mut out = Figures::default();
    for (key, value) in chat.0 {
        let key = match key {
            "chat.rate" => "lua.rate",
            "chat.p50" => "lua.p50",
            "chat.p99" => "lua.p99",
            "chat.server_cpu" => "lua.server_cpu",
            "chat.others_cpu" => "lua.others_cpu",
            "chat.gen_cpu" => "lua.gen_cpu",
            _ => continue,
        };
        out.push(key, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_is_written_where_plugin_paths_finds_it() {
        let dir = std::env::temp_dir().join(format!("lilt-bench-lua-{}", std::process::id()));
        let plugins = write_plugin(&dir).unwrap();
        let text = std::fs::read_to_string(plugins.join("mod_bench_filter.lua")).unwrap();
        assert!(text.contains("module:hook(\"message/bare\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
