-- util.promise for lilt: a value that arrives later; :next(on_ok, on_err)
-- chains, callbacks run as soon as the promise settles.
local setmetatable, type, pcall, ipairs = setmetatable, type, pcall, ipairs;

local promise_methods = {};
local promise_mt = { __index = promise_methods, __name = "promise" };

local _M = {};

local function is_promise(o) return type(o) == "table" and getmetatable(o) == promise_mt; end
_M.is_promise = is_promise;

local function settle(p, state, value)
	if p._state ~= "pending" then return; end
	p._state, p._value = state, value;
	local waiting = p._waiting;
	p._waiting = nil;
	for _, cb in ipairs(waiting) do cb(); end
end

local function resolve_with(p, value)
	if is_promise(value) then
		value:next(function(v) settle(p, "fulfilled", v); end, function(e) settle(p, "rejected", e); end);
	else
		settle(p, "fulfilled", value);
	end
end

function _M.new(f)
	local p = setmetatable({ _state = "pending", _waiting = {} }, promise_mt);
	if f then
		local ok, err = pcall(f, function(v) resolve_with(p, v); end, function(e) settle(p, "rejected", e); end);
		if not ok then settle(p, "rejected", err); end
	end
	return p;
end

function _M.resolve(v) local p = _M.new(); resolve_with(p, v); return p; end
function _M.reject(e) local p = _M.new(); settle(p, "rejected", e); return p; end

function promise_methods:next(on_ok, on_err)
	local out = _M.new();
	local function run()
		local handler = self._state == "fulfilled" and on_ok or on_err;
		if not handler then
			settle(out, self._state, self._value);
			return;
		end
		local ok, r = pcall(handler, self._value);
		if ok then resolve_with(out, r); else settle(out, "rejected", r); end
	end
	if self._state == "pending" then
		self._waiting[#self._waiting + 1] = run;
	else
		run();
	end
	return out;
end
function promise_methods:catch(on_err) return self:next(nil, on_err); end
function promise_methods:finally(f)
	return self:next(function(v) f(); return v; end, function(e) f(); error(e, 0); end);
end

function _M.all(list)
	return _M.new(function(resolve, reject)
		local n, results = #list, {};
		if n == 0 then resolve(results); return; end
		for i, p in ipairs(list) do
			_M.resolve(p):next(function(v)
				results[i] = v;
				n = n - 1;
				if n == 0 then resolve(results); end
			end, reject);
		end
	end);
end

function _M.race(list)
	return _M.new(function(resolve, reject)
		for _, p in ipairs(list) do _M.resolve(p):next(resolve, reject); end
	end);
end

return _M;
