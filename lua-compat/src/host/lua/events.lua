-- util.events for lilt: named events with prioritised handlers; firing
-- stops at the first handler that returns a non-nil value.
local pairs, ipairs, t_sort, setmetatable = pairs, ipairs, table.sort, setmetatable;

local _M = {};

function _M.new()
	local handlers = {}; -- event -> { {handler, priority, seq} }
	local wrappers = {}; -- event -> { wrapper }
	local global_wrappers = {};
	local seq = 0;
	local o = {};

	local function add_handler(event, handler, priority)
		local list = handlers[event];
		if not list then list = {}; handlers[event] = list; end
		seq = seq + 1;
		list[#list + 1] = { handler = handler, priority = priority or 0, seq = seq };
		t_sort(list, function(a, b)
			if a.priority ~= b.priority then return a.priority > b.priority; end
			return a.seq < b.seq;
		end);
	end
	local function remove_handler(event, handler)
		local list = handlers[event];
		if not list then return; end
		for i = #list, 1, -1 do
			if list[i].handler == handler then table.remove(list, i); end
		end
	end
	local function run(event, ...)
		local list = handlers[event];
		if not list then return nil; end
		local snapshot = { table.unpack(list) };
		for _, h in ipairs(snapshot) do
			local ret = h.handler(...);
			if ret ~= nil then return ret; end
		end
	end
	local function fire_event(event, ...)
		local w = wrappers[event];
		if (not w or #w == 0) and #global_wrappers == 0 then
			return run(event, ...);
		end
		local all = {};
		for _, x in ipairs(global_wrappers) do all[#all + 1] = x; end
		for _, x in ipairs(w or {}) do all[#all + 1] = x; end
		local function call(i, ...)
			local wrapper = all[i];
			if not wrapper then return run(event, ...); end
			return wrapper(function(...) return call(i + 1, ...); end, event, ...);
		end
		return call(1, ...);
	end

	o.add_handler = add_handler;
	o.remove_handler = remove_handler;
	o.fire_event = fire_event;
	function o.add_handlers(t, priority)
		for event, handler in pairs(t) do add_handler(event, handler, priority); end
	end
	function o.remove_handlers(t)
		for event, handler in pairs(t) do remove_handler(event, handler); end
	end
	function o.get_handlers(event)
		local out = {};
		for _, h in ipairs(handlers[event] or {}) do out[#out + 1] = h.handler; end
		return out;
	end
	function o.add_wrapper(event, wrapper)
		if event == false then
			global_wrappers[#global_wrappers + 1] = wrapper;
		else
			wrappers[event] = wrappers[event] or {};
			table.insert(wrappers[event], wrapper);
		end
	end
	function o.remove_wrapper(event, wrapper)
		local list = event == false and global_wrappers or wrappers[event] or {};
		for i = #list, 1, -1 do if list[i] == wrapper then table.remove(list, i); end end
	end
	o.handlers = setmetatable({}, { __index = function(_, event) return o.get_handlers(event); end });
	return o;
end

return _M;
