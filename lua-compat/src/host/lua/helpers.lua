-- More of the small libraries modules require, for lilt, written from
-- Prosody's documentation: util.iterators, util.filters, util.multitable,
-- util.queue, util.serialization, util.http, util.throttle, util.xpcall.
-- Returns a table of name -> library.
local libs = {};

-- util.iterators
do
	local it = {};
	function it.keys(t) local k; return function() k = next(t, k); return k; end; end
	function it.values(t)
		local k, v;
		return function() k, v = next(t, k); return v; end;
	end
	function it.sorted_pairs(t, sort)
		local keys = {};
		for k in pairs(t) do keys[#keys + 1] = k; end
		table.sort(keys, sort);
		local i = 0;
		return function()
			i = i + 1;
			local k = keys[i];
			if k ~= nil then return k, t[k]; end
		end;
	end
	function it.count(f, s, var)
		local n = 0;
		while true do
			var = f(s, var);
			if var == nil then break; end
			n = n + 1;
		end
		return n;
	end
	function it.head(n, f, s, var)
		local c = 0;
		return function(_, v)
			if c >= n then return nil; end
			c = c + 1;
			return f(s, v);
		end, s, var;
	end
	function it.skip(n, f, s, var)
		for _ = 1, n do var = f(s, var); end
		return f, s, var;
	end
	function it.filter(filter, f, s, var)
		if type(filter) ~= "function" then
			local wanted = filter;
			filter = function(x) return x ~= wanted; end;
		end
		return function(_, v)
			local r = table.pack(f(s, v));
			while r[1] ~= nil and not filter(table.unpack(r, 1, r.n)) do
				r = table.pack(f(s, r[1]));
			end
			return table.unpack(r, 1, r.n);
		end, s, var;
	end
	function it.unique(f, s, var)
		local seen = {};
		return it.filter(function(x)
			if seen[x] then return false; end
			seen[x] = true;
			return true;
		end, f, s, var);
	end
	function it.to_array(f, s, var)
		local t = {};
		while true do
			var = f(s, var);
			if var == nil then break; end
			t[#t + 1] = var;
		end
		return t;
	end
	function it.to_table(f, s, var)
		local t, v = {}, nil;
		while true do
			var, v = f(s, var);
			if var == nil then break; end
			t[var] = v;
		end
		return t;
	end
	function it.reverse(f, s, var)
		local list = it.to_array(f, s, var);
		local i = #list + 1;
		return function() i = i - 1; return list[i]; end;
	end
	function it.join(f, s, var)
		local list = { { f, s, var } };
		local obj = {};
		function obj.append(_, f2, s2, var2) list[#list + 1] = { f2, s2, var2 }; return obj; end
		function obj.prepend(_, f2, s2, var2) table.insert(list, 1, { f2, s2, var2 }); return obj; end
		setmetatable(obj, { __call = function()
			while list[1] do
				local cur = list[1];
				local r = table.pack(cur[1](cur[2], cur[3]));
				if r[1] ~= nil then cur[3] = r[1]; return table.unpack(r, 1, r.n); end
				table.remove(list, 1);
			end
		end });
		return obj;
	end
	libs["util.iterators"] = it;
end

-- util.filters: per-session stanza and byte filters. The filters live in
-- the session table; a host that supports them runs session.filter.
do
	local new_filter_hooks = {};
	local function initialize(session)
		if not session.filters then
			local filters = {};
			session.filters = filters;
			function session.filter(filter_type, data)
				local list = filters[filter_type];
				if list then
					for _, f in ipairs(list) do
						data = f.callback(data, session);
						if data == nil then break; end
					end
				end
				return data;
			end
		end
		for _, hook in ipairs(new_filter_hooks) do hook(session); end
		return session.filter;
	end
	local function add_filter(session, filter_type, callback, priority)
		if not session.filters then initialize(session); end
		local list = session.filters[filter_type];
		if not list then list = {}; session.filters[filter_type] = list; end
		for _, f in ipairs(list) do if f.callback == callback then return; end end
		list[#list + 1] = { callback = callback, priority = priority or 0 };
		table.sort(list, function(a, b) return a.priority > b.priority; end);
	end
	local function remove_filter(session, filter_type, callback)
		local list = session.filters and session.filters[filter_type];
		if not list then return; end
		for i = #list, 1, -1 do if list[i].callback == callback then table.remove(list, i); end end
	end
	libs["util.filters"] = {
		initialize = initialize,
		add_filter = add_filter,
		remove_filter = remove_filter,
		add_filter_hook = function(hook) new_filter_hooks[#new_filter_hooks + 1] = hook; end,
		remove_filter_hook = function(hook)
			for i = #new_filter_hooks, 1, -1 do
				if new_filter_hooks[i] == hook then table.remove(new_filter_hooks, i); end
			end
		end,
	};
end

-- util.multitable: a tree of tables addressed by a path of keys.
do
	local mt = {};
	mt.__index = mt;
	function mt:set(...)
		local n = select("#", ...);
		local t = self.data;
		for i = 1, n - 2 do
			local k = select(i, ...);
			local sub = t[k];
			if sub == nil then sub = {}; t[k] = sub; end
			t = sub;
		end
		t[select(n - 1, ...)] = select(n, ...);
	end
	function mt:add(...) return self:set(...); end
	function mt:get(...)
		local t = self.data;
		for i = 1, select("#", ...) do
			if type(t) ~= "table" then return nil; end
			t = t[select(i, ...)];
		end
		return t;
	end
	function mt:remove(...)
		local n = select("#", ...);
		local t = self.data;
		for i = 1, n - 1 do
			t = t[select(i, ...)];
			if t == nil then return; end
		end
		t[select(n, ...)] = nil;
	end
	function mt:search(_, ...) -- only exact paths
		local v = self:get(...);
		return v and { v } or {};
	end
	function mt:iter(...)
		local v = self:get(...);
		if type(v) ~= "table" then return function() end; end
		return pairs(v);
	end
	libs["util.multitable"] = {
		new = function() return setmetatable({ data = {} }, mt); end,
	};
end

-- util.queue: a bounded FIFO.
do
	libs["util.queue"] = {
		new = function(size, allow_wrapping)
			local items, head, tail, count = {}, 1, 0, 0;
			local q = { size = size };
			function q.push(item)
				if count >= size then
					if not allow_wrapping then return nil, "queue full"; end
					items[head], head, count = nil, head + 1, count - 1;
				end
				tail = tail + 1;
				items[tail] = item;
				count = count + 1;
				return true;
			end
			function q.pop()
				if count == 0 then return nil; end
				local item = items[head];
				items[head], head, count = nil, head + 1, count - 1;
				return item;
			end
			function q.peek() return items[head]; end
			function q.count() return count; end
			function q.replace(item) if count > 0 then items[head] = item; return true; end end
			function q.items()
				local i = head - 1;
				return function() i = i + 1; if i <= tail then return items[i]; end end;
			end
			function q.consume()
				return function() return q.pop(); end;
			end
			return q;
		end,
	};
end

-- util.serialization: Lua values as Lua source text.
do
	local function serialize(v, indent, seen)
		local t = type(v);
		if t == "string" then return ("%q"):format(v); end
		if t == "number" or t == "boolean" or t == "nil" then return tostring(v); end
		if t ~= "table" then error("can't serialize a " .. t); end
		seen = seen or {};
		if seen[v] then error("can't serialize recursive tables"); end
		seen[v] = true;
		local keys = {};
		for k in pairs(v) do keys[#keys + 1] = k; end
		table.sort(keys, function(a, b)
			if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b; end
			return type(a) < type(b);
		end);
		local parts = {};
		for _, k in ipairs(keys) do
			local key;
			if type(k) == "string" and k:match("^[%a_][%w_]*$") then key = k;
			else key = "[" .. serialize(k, nil, seen) .. "]"; end
			parts[#parts + 1] = key .. " = " .. serialize(v[k], nil, seen);
		end
		seen[v] = nil;
		return "{ " .. table.concat(parts, "; ") .. " }";
	end
	local function deserialize(s)
		local f, err = load("return " .. s, "=serialized", "t", {});
		if not f then return nil, err; end
		local ok, v = pcall(f);
		if not ok then return nil, v; end
		return v;
	end
	libs["util.serialization"] = {
		serialize = function(v) return serialize(v); end,
		deserialize = deserialize,
		new = function() return { serialize = function(_, v) return serialize(v); end }; end,
	};
end

-- util.http: URL and form encoding helpers.
do
	local function urlencode(s)
		return (tostring(s):gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()); end));
	end
	local function urldecode(s)
		return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)); end));
	end
	local function formencode(form)
		local parts = {};
		if form[1] then
			for _, field in ipairs(form) do
				parts[#parts + 1] = urlencode(field.name) .. "=" .. urlencode(field.value);
			end
		else
			for k, v in pairs(form) do parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(v); end
			table.sort(parts);
		end
		return (table.concat(parts, "&"):gsub("%%20", "+"));
	end
	local function formdecode(s)
		if not s:find("=", 1, true) then return urldecode(s); end
		local out = {};
		for k, v in s:gmatch("([^=&]*)=([^&]*)") do
			k, v = urldecode((k:gsub("%+", "%%20"))), urldecode((v:gsub("%+", "%%20")));
			out[#out + 1] = { name = k, value = v };
			out[k] = v;
		end
		return out;
	end
	local function contains_token(field, token)
		field = "," .. field:gsub("[ \t]", ""):lower() .. ",";
		return field:find("," .. token:lower() .. ",", 1, true) ~= nil;
	end
	libs["util.http"] = {
		urlencode = urlencode, urldecode = urldecode,
		formencode = formencode, formdecode = formdecode,
		contains_token = contains_token,
		normalize_path = function(path, is_dir)
			if is_dir then
				if path:sub(-1) ~= "/" then path = path .. "/"; end
			elseif path:sub(-1) == "/" then
				path = path:sub(1, -2);
			end
			if path:sub(1, 1) ~= "/" then path = "/" .. path; end
			return path;
		end,
	};
end

-- util.throttle: a token bucket.
do
	local gettime = require "util.time".now;
	local mt = {};
	mt.__index = mt;
	function mt:update()
		local now = gettime();
		self.balance = math.min(self.max, self.balance + (now - self.t) * self.rate);
		self.t = now;
	end
	function mt:peek(cost) self:update(); return self.balance >= (cost or 1); end
	function mt:poll(cost, split)
		self:update();
		cost = cost or 1;
		if self.balance >= cost then
			self.balance = self.balance - cost;
			return true;
		end
		if split then
			local taken = self.balance;
			self.balance = 0;
			return false, taken, cost - taken;
		end
		return false;
	end
	libs["util.throttle"] = {
		create = function(max, period)
			return setmetatable({ max = max, rate = max / period, balance = max, t = gettime() }, mt);
		end,
	};
end

libs["util.xpcall"] = { xpcall = xpcall };

-- util.adhoc: ad-hoc command handlers built from a data form. The
-- handler shows the form first; the submitted form's data goes to
-- result_handler(fields, errors, data).
do
	local function new_initial_data_form(form, initial_data, result_handler)
		return function(_, data, state)
			if state then
				if data.action == "cancel" then
					return { status = "canceled" };
				end
				local fields, err = form:data(data.form);
				return result_handler(fields, err, data);
			end
			local values;
			if type(initial_data) == "function" then values = initial_data(data); else values = initial_data; end
			return { status = "executing", actions = { "next", "complete", default = "complete" },
				form = { layout = form, values = values } }, "executing";
		end;
	end
	local function new_simple_form(form, result_handler)
		return function(_, data, state)
			if state then
				if data.action == "cancel" then
					return { status = "canceled" };
				end
				local fields, err = form:data(data.form);
				return result_handler(fields, err, data);
			end
			return { status = "executing", actions = { "next", "complete", default = "complete" }, form = form },
				"executing";
		end;
	end
	libs["util.adhoc"] = {
		new_simple_form = new_simple_form,
		new_initial_data_form = new_initial_data_form,
	};
end

return libs;
