-- util.async for lilt: runners execute functions in coroutines that may
-- wait (waiter(), wait_for(promise)) without blocking the server.
local coroutine, setmetatable, error = coroutine, setmetatable, error;

local _M = {};

-- The runner that owns each running coroutine.
local runners = setmetatable({}, { __mode = "k" });

function _M.ready()
	local co = coroutine.running();
	return co ~= nil and runners[co] ~= nil;
end

function _M.waiter(num)
	local co = coroutine.running();
	if not co or not runners[co] then
		error("Not running in an async context", 2);
	end
	num = num or 1;
	local waiting = false;
	local function wait()
		if num > 0 then
			waiting = true;
			coroutine.yield(true);
		end
	end
	local function done()
		num = num - 1;
		if num == 0 and waiting then
			waiting = false;
			local ok, err = coroutine.resume(co);
			if not ok then error(err, 0); end
		end
	end
	return wait, done;
end

function _M.wait_for(promise)
	local wait, done = _M.waiter();
	local ok, value;
	promise:next(function(v) ok, value = true, v; done(); end,
		function(e) ok, value = false, e; done(); end);
	wait();
	if ok then return value; end
	return nil, value;
end
_M.wait = _M.wait_for;

local runner_methods = {};
local runner_mt = { __index = runner_methods };

function _M.runner(func, watchers, data)
	return setmetatable({ func = func, watchers = watchers or {}, data = data, queue = {} }, runner_mt);
end

function runner_methods:run(input)
	local co = coroutine.create(function(x) return self.func(x); end);
	runners[co] = self;
	local ok, err = coroutine.resume(co, input);
	if not ok and self.watchers.error then
		self.watchers.error(self, err);
	elseif not ok then
		error(err, 0);
	end
	return true;
end
function runner_methods:enqueue(input) return self:run(input); end

-- Runs f(...) in a fresh runner.
function _M.once(f, ...)
	local args = table.pack(...);
	return _M.runner(function() return f(table.unpack(args, 1, args.n)); end):run();
end

return _M;
