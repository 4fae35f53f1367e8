-- util.set for lilt: an unordered set of values, written from Prosody's
-- documentation. `for item in set do` iterates it; `set / f` maps it.
local next, pairs, ipairs, setmetatable, getmetatable, tostring, t_concat, t_sort =
	next, pairs, ipairs, setmetatable, getmetatable, tostring, table.concat, table.sort;

local set_mt = { __name = "set" };
local methods = {};
set_mt.__index = methods;

local _M = {};

local function new(list)
	local items = {};
	local s = setmetatable({ _items = items }, set_mt);
	if list then
		for _, v in ipairs(list) do items[v] = true; end
	end
	return s;
end
_M.new = new;

function _M.is_set(o) return getmetatable(o) == set_mt; end

function set_mt.__call(s, _, k) return (next(s._items, k)); end

function methods:items() return next, self._items, nil; end
function methods:contains(item) return self._items[item] == true; end
function methods:contains_set(other)
	for item in other do
		if not self:contains(item) then return false; end
	end
	return true;
end
function methods:add(item) self._items[item] = true; end
function methods:remove(item) self._items[item] = nil; end
function methods:add_list(list)
	if list then for _, v in ipairs(list) do self._items[v] = true; end end
end
function methods:include(other) for item in other do self._items[item] = true; end end
function methods:exclude(other) for item in other do self._items[item] = nil; end end
function methods:empty() return next(self._items) == nil; end
function methods:length()
	local n = 0;
	for _ in pairs(self._items) do n = n + 1; end
	return n;
end

function _M.union(a, b)
	local s = new();
	s:include(a); s:include(b);
	return s;
end
function _M.difference(a, b)
	local s = new();
	for item in a do if not b:contains(item) then s:add(item); end end
	return s;
end
function _M.intersection(a, b)
	local s = new();
	for item in a do if b:contains(item) then s:add(item); end end
	return s;
end
function _M.xor(a, b)
	return _M.union(_M.difference(a, b), _M.difference(b, a));
end

set_mt.__add = _M.union;
set_mt.__sub = _M.difference;
set_mt.__len = methods.length;
function set_mt.__div(s, f)
	local out = new();
	for item in s do
		local v = f(item);
		if v ~= nil then out:add(v); end
	end
	return out;
end
function set_mt.__eq(a, b)
	return a:contains_set(b) and b:contains_set(a);
end
function set_mt.__tostring(s)
	local parts = {};
	for item in s do parts[#parts + 1] = tostring(item); end
	t_sort(parts);
	return t_concat(parts, ", ");
end

return _M;
