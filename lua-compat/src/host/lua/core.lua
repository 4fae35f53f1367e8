-- The server-side tables for lilt: the `prosody` global (hosts, paths,
-- events) and the core.* managers modules require, all answered by the
-- host through `bridge`. Returns (prosody, libs).
local bridge, st, new_events = ...;

local libs = {};

-- A session table as modules see it; send goes to the host.
local function session_table(host, username, resource, id)
	return {
		type = "c2s", host = host, username = username, resource = resource,
		full_jid = username .. "@" .. host .. "/" .. resource,
		send = function(stanza) return bridge.session_send(id, stanza); end,
	};
end

-- hosts[h].sessions: { [username] = { sessions = { [resource] = session } } }
local function host_sessions(host)
	local list = bridge.sessions(host);
	if not list then return nil; end
	local out = {};
	for _, user in ipairs(list) do
		local resources = {};
		for _, r in ipairs(user.resources) do
			resources[r[1]] = session_table(host, user.username, r[1], r[2]);
		end
		out[user.username] = { username = user.username, host = host, sessions = resources };
	end
	return out;
end

local function module_set(host)
	local out = {};
	for _, name in ipairs(bridge.loaded_modules(host)) do out[name] = { name = name, host = host }; end
	return out;
end

local host_mt = {
	__index = function(h, key)
		if key == "sessions" then return host_sessions(h.host); end
		if key == "modules" then return module_set(h.host); end
	end,
};
local function host_object(name)
	return setmetatable({ host = name, type = "local", events = new_events() }, host_mt);
end

local hosts = setmetatable({}, {
	__index = function(_, name)
		for _, h in ipairs(bridge.hosts()) do
			if h == name then return host_object(name); end
		end
	end,
	__pairs = function()
		local names = bridge.hosts();
		local i = 0;
		return function()
			i = i + 1;
			local name = names[i];
			if name then return name, host_object(name); end
		end;
	end,
});

local prosody = {
	hosts = hosts,
	full_sessions = {},
	bare_sessions = {},
	paths = {
		config = bridge.global_option("__config_dir") or "/etc/prosody",
		data = bridge.global_option("data_path") or "/var/lib/prosody",
		plugins = "/usr/lib/prosody/modules",
	},
	version = "lilt",
	platform = "posix",
	process_type = "prosody",
	start_time = os.time(),
	events = {
		fire_event = function(event, data) return bridge.fire("global", event, data or {}); end,
		add_handler = function(event, handler, priority) return bridge.hook("global", event, priority or 0, handler); end,
		remove_handler = function(event, handler) bridge.unhook_function(event, handler); end,
	},
	lock_globals = function() end,
	unlock_globals = function() end,
};

libs["core.usermanager"] = {
	user_exists = function(username, host) return bridge.user_exists(username, host); end,
	is_admin = function(jid, host) return bridge.is_admin(jid or "", host or "*"); end,
	get_provider = function() return nil; end,
	create_user = function(username, password, host) return bridge.account("create", username, password, host); end,
	delete_user = function(username, host) return bridge.account("delete", username, nil, host); end,
	set_password = function(username, password, host) return bridge.account("password", username, password, host); end,
	get_roles = function() return {}; end,
};

libs["core.rostermanager"] = {
	is_contact_subscribed = function(username, host, jid)
		return bridge.is_contact_subscribed(username, host, jid or "");
	end,
	is_user_subscribed = function(username, host, jid)
		return bridge.is_contact_subscribed(username, host, jid or "");
	end,
	load_roster = function() return {}; end,
};

libs["core.storagemanager"] = {
	open = function(_, store, store_type) return bridge.open_store(store, store_type or "keyval"); end,
};

libs["core.sessionmanager"] = {
	send_to_available_resources = function(username, host, stanza)
		local sessions = host_sessions(host);
		local user = sessions and sessions[username];
		if not user then return 0; end
		local n = 0;
		for _, session in pairs(user.sessions) do
			local copy = st.clone(stanza);
			copy.attr.to = session.full_jid;
			session.send(copy);
			n = n + 1;
		end
		return n;
	end,
};
libs["core.sessionmanager"].send_to_interested_resources =
	libs["core.sessionmanager"].send_to_available_resources;

libs["core.configmanager"] = {
	get = function(host, key)
		if host == "*" then return bridge.global_option(key); end
		return bridge.option(key);
	end,
};

local function is_loaded(host, name)
	for _, m in ipairs(bridge.loaded_modules(host)) do
		if m == name then return true; end
	end
	return false;
end
libs["core.modulemanager"] = {
	is_loaded = is_loaded,
	get_module = function(host, name)
		if is_loaded(host, name) then return { name = name, host = host }; end
	end,
	get_modules = function(host) return module_set(host); end,
	get_modules_for_host = function(host)
		return require "util.set".new(bridge.loaded_modules(host)), nil;
	end,
	load = function(host, name) return bridge.manage_module("load", host, name); end,
	unload = function(host, name) return bridge.manage_module("unload", host, name); end,
	reload = function(host, name) return bridge.manage_module("reload", host, name); end,
};

-- Hosts are configured, not created by modules, in lilt.
libs["core.hostmanager"] = {
	activate = function(host) return nil, "activating " .. tostring(host) .. " at run time is not supported"; end,
	deactivate = function(host) return nil, "deactivating " .. tostring(host) .. " at run time is not supported"; end,
	get_children = function() return {}; end,
};

libs["util.timer"] = {
	add_task = function(delay, callback)
		local id;
		local function run(now)
			local again = callback(now);
			if type(again) == "number" then id = bridge.timer(again, run); end
		end
		id = bridge.timer(delay, run);
		return { stop = function() bridge.stop_timer(id); end };
	end,
	stop = function(handle) if handle and handle.stop then handle.stop(); end end,
};

return prosody, libs;
