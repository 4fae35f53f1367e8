-- Smaller libraries modules require, for lilt: util.error, util.logger,
-- util.format, socket.url, util.interpolation-free helpers. Returns a
-- table of name -> library; `bridge` gives the server's log.
local bridge = ...;
local libs = {};

-- util.error
do
	local error_mt = { __name = "error" };
	error_mt.__index = error_mt;
	function error_mt:__tostring()
		return ("error<%s:%s:%s>"):format(self.type, self.condition, self.text or "");
	end
	local function new(e, context, registry)
		if type(e) == "string" and registry then e = registry[e] or { condition = e }; end
		if type(e) ~= "table" then e = { condition = tostring(e) }; end
		return setmetatable({
			type = e.type or "cancel",
			condition = e.condition or "undefined-condition",
			text = e.text,
			code = e.code,
			extra = e.extra,
			context = context or {},
		}, error_mt);
	end
	libs["util.error"] = {
		new = new,
		is_err = function(e) return getmetatable(e) == error_mt; end,
		coerce = function(ok, err, ...)
			if ok or getmetatable(err) == error_mt then return ok, err, ...; end
			return ok, new({ condition = "undefined-condition", text = tostring(err) }), ...;
		end,
		from_stanza = function(stanza, context)
			local t, condition, text, extra = stanza:get_error();
			return new({ type = t, condition = condition, text = text, extra = extra }, context);
		end,
		init = function(_, registry)
			return { new = function(e, context) return new(e, context, registry); end };
		end,
	};
end

-- util.format: string.format that tolerates nil and non-string arguments.
local function format(fmt, ...)
	local args = table.pack(...);
	for i = 1, args.n do
		local a = args[i];
		if type(a) ~= "number" and type(a) ~= "string" then args[i] = tostring(a); end
	end
	local ok, s = pcall(string.format, fmt, table.unpack(args, 1, args.n));
	if ok then return s; end
	local parts = { tostring(fmt) };
	for i = 1, args.n do parts[#parts + 1] = tostring(args[i]); end
	return table.concat(parts, " ");
end
libs["util.format"] = { format = format };

libs["util.logger"] = {
	init = function(name)
		return function(level, fmt, ...)
			bridge.log(level, name .. ": " .. format(tostring(fmt), ...));
		end;
	end,
};

-- socket.url: enough of LuaSocket's URL functions for modules.
do
	local function escape(s)
		return (s:gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()); end));
	end
	local function unescape(s)
		return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)); end));
	end
	local function build(p)
		local out = "";
		if p.scheme then out = p.scheme .. ":"; end
		local authority = p.authority;
		if p.host then
			authority = p.host;
			if p.port then authority = authority .. ":" .. p.port; end
			if p.userinfo or p.user then authority = (p.userinfo or p.user) .. "@" .. authority; end
		end
		if authority then out = out .. "//" .. authority; end
		out = out .. (p.path or "");
		if p.params then out = out .. ";" .. p.params; end
		if p.query then out = out .. "?" .. p.query; end
		if p.fragment then out = out .. "#" .. p.fragment; end
		return out;
	end
	local function parse(url, default)
		local p = {};
		for k, v in pairs(default or {}) do p[k] = v; end
		if not url or url == "" then return nil, "invalid url"; end
		url = url:gsub("#(.*)$", function(f) p.fragment = f; return ""; end);
		url = url:gsub("^([%w][%w%+%-%.]*)%:", function(s) p.scheme = s:lower(); return ""; end);
		url = url:gsub("^//([^/]*)", function(a) p.authority = a; return ""; end);
		url = url:gsub("%?(.*)", function(q) p.query = q; return ""; end);
		url = url:gsub("%;(.*)", function(q) p.params = q; return ""; end);
		if url ~= "" then p.path = url; end
		if p.authority then
			local auth = p.authority:gsub("^([^@]*)@", function(u) p.userinfo = u; return ""; end);
			auth = auth:gsub(":(%d*)$", function(port) if port ~= "" then p.port = port; end return ""; end);
			if auth ~= "" then p.host = auth; end
			if p.userinfo then
				p.user, p.password = p.userinfo:match("^([^:]*):?(.*)$");
				if p.password == "" then p.password = nil; end
			end
		end
		return p;
	end
	libs["socket.url"] = { escape = escape, unescape = unescape, build = build, parse = parse };
end

return libs;
