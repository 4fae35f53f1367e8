-- util.array for lilt: a list with methods, written from Prosody's
-- documentation. `array / f` maps, `array.collect(iterator)` collects.
local setmetatable, getmetatable, ipairs, t_insert, t_remove, t_sort, t_concat, random =
	setmetatable, getmetatable, ipairs, table.insert, table.remove, table.sort, table.concat, math.random;

local array_mt = { __name = "array" };
local array = {};
array_mt.__index = array;

local function new(t)
	return setmetatable(t or {}, array_mt);
end

local _M = setmetatable({}, { __call = function(_, t) return new(t); end, __index = array });

function _M.new(t) return new(t); end
function _M.collect(f, s, var)
	local t = {};
	while true do
		var = f(s, var);
		if var == nil then break; end
		t[#t + 1] = var;
	end
	return new(t);
end

function array:map(f)
	local out = new();
	for _, v in ipairs(self) do
		local r = f(v);
		if r ~= nil then out[#out + 1] = r; end
	end
	return out;
end
function array:filter(f)
	local out = new();
	for _, v in ipairs(self) do if f(v) then out[#out + 1] = v; end end
	return out;
end
function array:sort(f) t_sort(self, f); return self; end
function array:pluck(field)
	local out = new();
	for _, v in ipairs(self) do out[#out + 1] = v[field]; end
	return out;
end
function array:reverse()
	local n = #self;
	for i = 1, n // 2 do self[i], self[n - i + 1] = self[n - i + 1], self[i]; end
	return self;
end
function array:shuffle()
	for i = #self, 2, -1 do
		local j = random(i);
		self[i], self[j] = self[j], self[i];
	end
	return self;
end
function array:append(other)
	for _, v in ipairs(other) do self[#self + 1] = v; end
	return self;
end
function array:push(...)
	for _, v in ipairs({ ... }) do self[#self + 1] = v; end
	return self;
end
function array:pop(i) return t_remove(self, i); end
function array:concat(sep) return t_concat(self, sep); end
function array:length() return #self; end
function array:random() return self[random(#self)]; end
function array:unique()
	local seen, out = {}, new();
	for _, v in ipairs(self) do
		if not seen[v] then seen[v] = true; out[#out + 1] = v; end
	end
	return out;
end
function array:slice(i, j)
	local out = new();
	for k = i or 1, j or #self do out[#out + 1] = self[k]; end
	return out;
end
function array:insert(v, pos)
	if pos then t_insert(self, pos, v) else t_insert(self, v) end
	return self;
end

array_mt.__div = array.map;
function array_mt.__add(a, b) return new():append(a):append(b); end
function array_mt.__eq(a, b)
	if #a ~= #b then return false; end
	for i = 1, #a do if a[i] ~= b[i] then return false; end end
	return true;
end
function array_mt.__tostring(a)
	local parts = {};
	for i, v in ipairs(a) do parts[i] = tostring(v); end
	return "{" .. t_concat(parts, ", ") .. "}";
end

_M.is_array = function(t) return getmetatable(t) == array_mt; end
return _M;
