-- The module object (Prosody's `module` global), for lilt: the API a
-- module uses to hook events, add items, read options, send stanzas.
-- Everything that reaches the server goes through `bridge` (Rust, on the
-- host's LuaHost). Written from Prosody's module API documentation
-- (https://prosody.im/doc/developers/moduleapi).
local bridge, st, set, array, promise, format = ...;

local api = {};
local module_mt = { __index = api };

-- Options --------------------------------------------------------------

local function raw_option(self, name)
	if self.host == "*" then return bridge.global_option(name); end
	return bridge.option(name);
end

function api:get_option(name, default)
	local v = raw_option(self, name);
	if v == nil then return default; end
	return v;
end

function api:get_option_scalar(name, default)
	local v = self:get_option(name, default);
	if type(v) == "table" then
		if #v > 1 then
			self:log("error", "Config option '%s' does not take a list, using the first item", name);
		end
		v = v[1];
	end
	return v;
end

function api:get_option_string(name, default)
	local v = self:get_option_scalar(name, default);
	if v == nil then return nil; end
	return tostring(v);
end

function api:get_option_number(name, ...)
	local v = self:get_option_scalar(name, ...);
	local n = tonumber(v);
	if v ~= nil and n == nil then
		self:log("error", "Config option '%s' not understood, expecting a number", name);
	end
	return n;
end
function api:get_option_integer(name, ...)
	local n = self:get_option_number(name, ...);
	if n then return math.floor(n); end
end

local truthy = { [true] = true, ["true"] = true, ["yes"] = true, ["on"] = true, ["1"] = true, [1] = true };
local falsy = { [false] = true, ["false"] = true, ["no"] = true, ["off"] = true, ["0"] = true, [0] = true };
function api:get_option_boolean(name, ...)
	local v = self:get_option_scalar(name, ...);
	if v == nil then return nil; end
	if truthy[v] then return true; end
	if falsy[v] then return false; end
	self:log("error", "Config option '%s' not understood, expecting true/false", name);
	return nil;
end

function api:get_option_array(name, ...)
	local v = self:get_option(name, ...);
	if v == nil then return nil; end
	if type(v) ~= "table" then return array({ v }); end
	local out = array();
	for _, x in ipairs(v) do out[#out + 1] = x; end
	return out;
end

function api:get_option_set(name, ...)
	local v = self:get_option(name, ...);
	if v == nil then return nil; end
	if set.is_set(v) then return v; end
	if type(v) ~= "table" then return set.new({ v }); end
	return set.new(v);
end

function api:get_option_inherited_set(name, ...)
	local value = self:get_option_set(name, ...);
	local global_value = self:context("*"):get_option_set(name, ...);
	if not value then return global_value; end
	if not global_value then return value; end
	value:include(global_value);
	return value;
end

function api:get_option_path(name, default, parent)
	local v = self:get_option_string(name, default);
	if v == nil then return nil; end
	if v:sub(1, 1) == "/" then return v; end
	parent = parent or (prosody.paths and prosody.paths.config) or ".";
	return parent .. "/" .. v;
end

local period_units = {
	s = 1, second = 1, seconds = 1, sec = 1,
	m = 60, min = 60, minute = 60, minutes = 60,
	h = 3600, hour = 3600, hours = 3600,
	d = 86400, day = 86400, days = 86400,
	w = 604800, week = 604800, weeks = 604800,
	month = 2629746, months = 2629746,
	y = 31556952, year = 31556952, years = 31556952,
};
function api:get_option_period(name, default)
	local v = self:get_option_scalar(name, default);
	if type(v) == "number" then return v; end
	if v == nil then return nil; end
	if v == "never" then return math.huge; end
	local n, unit = tostring(v):match("^%s*(%d*%.?%d*)%s*(%a+)%s*$");
	if unit and period_units[unit:lower()] then
		return (tonumber(n) or 1) * period_units[unit:lower()];
	end
	self:log("error", "Config option '%s' not understood, expecting a period", name);
	return nil;
end

function api:get_option_enum(name, default, ...)
	local v = self:get_option_scalar(name, default);
	if v == nil then return nil; end
	for _, allowed in ipairs({ default, ... }) do
		if v == allowed then return v; end
	end
	self:log("error", "Config option '%s' not understood, expecting one of: %s", name,
		table.concat({ tostring(default), ... }, ", "));
	return default;
end

-- Identity and context -------------------------------------------------

function api:get_host() return self.host; end
function api:get_name() return self.name; end
function api:get_host_type()
	if self.host == "*" then return nil; end
	return bridge.host_type();
end
function api:get_directory() return self.path and self.path:match("^(.*)/[^/]*$") or "."; end
function api:set_global() self.host = "*"; self.global = true; end
function api:context(host)
	return setmetatable({ host = host, name = self.name, path = self.path, _parent = self }, module_mt);
end
function api:get_status() return self.status_type or "core", self.status_message; end
function api:set_status(status_type, message)
	self.status_type, self.status_message = status_type, message;
	bridge.log(status_type == "error" and "error" or "info", "status: " .. tostring(message));
end
function api:log_status(level, msg, ...)
	self:log(level, msg, ...);
	self:set_status(level, format(msg, ...));
end

function api:log(level, fmt, ...)
	bridge.log(level or "info", format(tostring(fmt), ...));
end

-- Events ---------------------------------------------------------------

function api:hook(event, handler, priority)
	-- A global module's (set_global) events are the server's, as in Prosody.
	return bridge.hook(self.host == "*" and "global" or "host", event, priority or 0, handler);
end
function api:hook_global(event, handler, priority)
	return bridge.hook("global", event, priority or 0, handler);
end
function api:unhook(event, handler)
	bridge.unhook_function(event, handler);
end
function api:hook_object_event(object, event, handler, priority)
	object.add_handler(event, handler, priority);
	local list = self._object_hooks;
	list[#list + 1] = { object = object, event = event, handler = handler };
end
function api:unhook_object_event(object, event, handler)
	object.remove_handler(event, handler);
end
function api:hook_tag(xmlns, name, handler, priority)
	return self:hook("stanza/" .. xmlns .. ":" .. name, function(data)
		return handler(data.origin, data.stanza, data);
	end, priority);
end
api.hook_stanza = api.hook_tag;
function api:fire_event(event, data)
	return bridge.fire(self.host == "*" and "global" or "host", event, data or {});
end
function api:fire_global_event(event, data)
	return bridge.fire("global", event, data or {});
end

-- Items ----------------------------------------------------------------

function api:add_item(key, value)
	self.items[key] = self.items[key] or {};
	table.insert(self.items[key], value);
	bridge.add_item(key, value);
end
function api:remove_item(key, value)
	local list = self.items[key];
	if list then
		for i = #list, 1, -1 do if list[i] == value then table.remove(list, i); end end
	end
	bridge.remove_item(key, value);
end
function api:get_host_items(key) return self.items[key] or {}; end
function api:handle_items(item_type, added, removed)
	self:hook("item-added/" .. item_type, added);
	self:hook("item-removed/" .. item_type, removed);
end
function api:add_feature(xmlns) self:add_item("feature", xmlns); end
function api:add_identity(category, identity_type, name)
	self:add_item("identity", { category = category, type = identity_type, name = name });
end
function api:add_extension(data) self:add_item("extension", data); end

function api:provides(name, item)
	item = item or self.environment;
	if not item.name then
		item.name = (self.name:gsub("^" .. name:gsub("%-", "%%-") .. "_", ""));
	end
	if name == "http" then
		for route, handler in pairs(item.route or {}) do
			local method, path = route:match("^(%u+)%s+(.*)$");
			if not method then method, path = "", route; end
			bridge.http_route(method, path, handler);
		end
	end
	if name == "adhoc" and type(item.handler) == "function" and item.node then
		self._adhoc[item.node] = item;
		local ok, err = bridge.adhoc_add(tostring(item.name), item.node, item.permission or "admin");
		if not ok then self:log("warn", "ad-hoc command %s not served: %s", item.node, tostring(err)); end
	end
	self:add_item(name .. "-provider", item);
end

-- One step of an ad-hoc command this module provides (called by the host,
-- as Prosody's adhoc.lib.lua handle_cmd does): the handler's state is kept
-- here between steps, the host only carries its key.
local adhoc_states, adhoc_next = {}, 0;
function api:_adhoc_run(node, data, key)
	local command = self._adhoc[node];
	if not command then return nil; end
	local state;
	if key then state = adhoc_states[key]; adhoc_states[key] = nil; end
	local out, new_state = command:handler(data, state);
	out = out or {};
	local r = { status = out.status or "executing", info = out.info, warn = out.warn };
	if r.status == "error" then
		local e = out.error or {};
		r.error = { type = e.type, condition = e.condition, text = e.text or e.message };
		return r;
	end
	if type(out.error) == "table" then r.error_note = out.error.message; end
	if out.actions then
		local actions = { default = out.actions.default };
		for i, a in ipairs(out.actions) do actions[i] = a; end
		r.actions = actions;
	elseif r.status ~= "completed" and r.status ~= "canceled" then
		r.actions = { "complete" };
	end
	if out.form then
		r.form = (out.form.layout or out.form):form(out.form.values);
	elseif out.result then
		r.form = (out.result.layout or out.result):form(out.result.values, "result");
	end
	if out.other then r.other = { out.other }; end
	if r.status ~= "completed" and r.status ~= "canceled" and new_state ~= nil then
		adhoc_next = adhoc_next + 1;
		local k = tostring(adhoc_next);
		adhoc_states[k] = new_state;
		-- Abandoned sessions: only the last 1000 are kept.
		adhoc_states[tostring(adhoc_next - 1000)] = nil;
		r.state = k;
	end
	return r;
end

function api:http_url(app_name, default_path)
	local path = self:get_option_string(self.name .. "_http_path", default_path or ("/" .. (app_name or self.name)));
	if path:sub(1, 1) ~= "/" then path = "/" .. path; end
	return bridge.http_url(path);
end

function api:depends(name)
	local ok, err = bridge.depends(name);
	if not ok then error("Dependency " .. name .. " failed to load: " .. tostring(err), 2); end
	return { name = name };
end

-- Shared tables live in the server (bridge.shared_*), as data: each is a
-- proxy here; values with no data form (functions) stay in this module.
local shared_tables = {};
local function shared_proxy(path)
	local own = {};
	return setmetatable({}, {
		__index = function(_, k)
			local v = own[k];
			if v ~= nil then return v; end
			return bridge.shared_get(path, k);
		end,
		__newindex = function(_, k, v)
			own[k] = nil;
			if not bridge.shared_set(path, k, v) then own[k] = v; end
		end,
		__pairs = function(t)
			local keys, seen = bridge.shared_keys(path), {};
			for k in pairs(own) do keys[#keys + 1] = k; end
			local i = 0;
			return function()
				while true do
					i = i + 1;
					local k = keys[i];
					if k == nil then return nil; end
					if not seen[k] then
						seen[k] = true;
						local v = t[k];
						if v ~= nil then return k, v; end
					end
				end
			end, t, nil;
		end,
		__len = function(t)
			local n = 0;
			while t[n + 1] ~= nil do n = n + 1; end
			return n;
		end,
	});
end
function api:shared(...)
	local out = {};
	for i, path in ipairs({ ... }) do
		if path:sub(1, 1) ~= "/" then
			-- "name": this host and module; "module/name": this host.
			local _, slashes = path:gsub("/", "");
			if slashes == 0 then
				path = "/" .. self.host .. "/" .. self.name .. "/" .. path;
			else
				path = "/" .. self.host .. "/" .. path;
			end
		end
		local t = shared_tables[path];
		if not t then t = shared_proxy(path); shared_tables[path] = t; end
		out[i] = t;
	end
	return table.unpack(out);
end

function api:require(lib)
	local path, code = bridge.find_lib(self.path, lib);
	if not path then error("Failed to load " .. lib .. ".lib.lua: " .. tostring(code), 2); end
	local chunk, err = load(code, "@" .. path, "t", self.environment);
	if not chunk then error(err, 2); end
	return chunk();
end

function api:load_resource(path, mode)
	return io.open(self:get_directory() .. "/" .. path, mode);
end

-- Stanzas --------------------------------------------------------------

function api:send(stanza, origin)
	if origin and origin.send then return origin.send(stanza); end
	bridge.send(stanza);
	return true;
end

function api:send_iq(stanza, origin, timeout)
	return promise.new(function(resolve, reject)
		bridge.send_iq(stanza, timeout or 120, function(reply)
			resolve({ stanza = reply });
		end, function(reply, condition)
			reject({ stanza = reply, type = "cancel", condition = condition or "undefined-condition" });
		end);
	end);
end

function api:broadcast(jids, stanza, iter)
	for jid in (iter or ipairs)(jids) do
		if type(jid) ~= "string" then jid = select(2, jid, jid); end
		local copy = st.clone(stanza);
		copy.attr.to = jid;
		self:send(copy);
	end
end

-- Timers ---------------------------------------------------------------

local timer_mt = { __index = {} };
function timer_mt.__index:stop() bridge.stop_timer(self.id); end
function timer_mt.__index:reschedule(delay)
	bridge.stop_timer(self.id);
	self.id = bridge.timer(delay, self.callback);
end

function api:add_timer(delay, callback, ...)
	local args = table.pack(...);
	local handle = setmetatable({}, timer_mt);
	handle.callback = function(now)
		local again = callback(now, table.unpack(args, 1, args.n));
		if type(again) == "number" then
			handle.id = bridge.timer(again, handle.callback);
		end
	end;
	handle.id = bridge.timer(delay, handle.callback);
	return handle;
end

local periods = { hourly = 3600, daily = 86400, weekly = 604800 };
function api:cron(task)
	local period = periods[task.when] or tonumber(task.when) or 86400;
	self:add_item("task", task);
	return self:add_timer(period, function(now)
		task.run(task, now);
		return period;
	end);
end
for when in pairs(periods) do
	api[when] = function(self, name, fun)
		if type(name) == "function" then fun, name = name, nil; end
		return self:cron({ id = name, name = name, when = when, run = function(_, now) return fun(now); end });
	end;
end

-- Storage and statistics -----------------------------------------------

function api:open_store(name, store_type)
	return bridge.open_store(name or self.name, store_type or "keyval");
end

function api:measure(name, stat_type)
	local full = self.name .. "." .. name;
	if stat_type == "times" then
		return function()
			local t0 = os.clock();
			return function() bridge.measure(full, stat_type, os.clock() - t0); end;
		end;
	end
	return function(value) bridge.measure(full, stat_type or "amount", tonumber(value) or 1); end;
end

function api:metric(metric_type, name, unit, description, labels)
	local full = self.name .. "." .. name;
	local function family_member()
		return {
			set = function(_, v) bridge.measure(full, metric_type, v); end,
			add = function(_, v) bridge.measure(full, metric_type, v or 1); end,
			sample = function(_, v) bridge.measure(full, metric_type, v); end,
		};
	end
	local _ = unit, description, labels;
	return { with_labels = function() return family_member(); end,
		with_partial_label = function(fam) return fam; end };
end

-- Permissions ----------------------------------------------------------

function api:default_permission(role, action)
	if action:sub(1, 1) == ":" then action = self.name .. action; end
	bridge.default_permission(role, action);
end
function api:default_permissions(role, actions)
	for _, action in ipairs(actions) do self:default_permission(role, action); end
end
function api:may(action, context)
	if action:sub(1, 1) == ":" then action = self.name .. action; end
	local jid;
	if type(context) == "string" then
		jid = context;
	elseif type(context) == "table" then
		local origin = context.origin or context;
		jid = origin.full_jid or (origin.username and origin.host and (origin.username .. "@" .. origin.host))
			or (context.stanza and context.stanza.attr.from);
	end
	if not jid then return false; end
	return bridge.may(action, jid);
end

return function(name, host, path, env)
	local m = setmetatable({ name = name, host = host, path = path, environment = env,
		items = {}, _object_hooks = {}, _adhoc = {} }, module_mt);
	return m;
end, api;
