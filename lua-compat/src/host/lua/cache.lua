-- util.cache for lilt: a bounded least-recently-used map; on_evict(key,
-- value) is told about (and may veto, by returning false) evictions.
local setmetatable = setmetatable;

local cache_methods = {};
local cache_mt = { __index = cache_methods, __name = "cache" };

local _M = {};

function _M.new(size, on_evict)
	size = assert(tonumber(size), "cache size must be a number");
	return setmetatable({ size = size, _count = 0, _data = {}, on_evict = on_evict }, cache_mt);
end

-- Nodes: { key, value, prev, next }; head is the most recent.
local function unlink(self, node)
	if node.prev then node.prev.next = node.next; else self._head = node.next; end
	if node.next then node.next.prev = node.prev; else self._tail = node.prev; end
	node.prev, node.next = nil, nil;
end
local function push_front(self, node)
	node.next = self._head;
	if self._head then self._head.prev = node; end
	self._head = node;
	if not self._tail then self._tail = node; end
end

function cache_methods:get(key)
	local node = self._data[key];
	if not node then return nil; end
	unlink(self, node);
	push_front(self, node);
	return node.value;
end

function cache_methods:set(key, value)
	local node = self._data[key];
	if node then
		if value == nil then
			unlink(self, node);
			self._data[key] = nil;
			self._count = self._count - 1;
		else
			node.value = value;
			unlink(self, node);
			push_front(self, node);
		end
		return true;
	end
	if value == nil then return true; end
	if self._count >= self.size then
		local tail = self._tail;
		if tail and self.on_evict then
			if self.on_evict(tail.key, tail.value) == false then
				return false;
			end
		end
		if tail then
			unlink(self, tail);
			self._data[tail.key] = nil;
			self._count = self._count - 1;
		end
	end
	node = { key = key, value = value };
	push_front(self, node);
	self._data[key] = node;
	self._count = self._count + 1;
	return true;
end

function cache_methods:count() return self._count; end
function cache_methods:head() local n = self._head; if n then return n.key, n.value; end end
function cache_methods:tail() local n = self._tail; if n then return n.key, n.value; end end
function cache_methods:clear() self._data, self._head, self._tail, self._count = {}, nil, nil, 0; end
function cache_methods:items()
	local node = self._head;
	return function()
		if not node then return nil; end
		local k, v = node.key, node.value;
		node = node.next;
		return k, v;
	end;
end
function cache_methods:values()
	local it = self:items();
	return function() local _, v = it(); return v; end;
end
function cache_methods:resize(size)
	self.size = size;
	while self._count > size do
		local tail = self._tail;
		if self.on_evict then self.on_evict(tail.key, tail.value); end
		unlink(self, tail);
		self._data[tail.key] = nil;
		self._count = self._count - 1;
	end
	return true;
end
function cache_methods:table()
	local t = {};
	for k, v in self:items() do t[k] = v; end
	return t;
end

return _M;
