-- Loads a config file with Debian's Prosody configmanager and prints every
-- option of every section, one per line, in the canonical form the Rust side
-- of tests/fixtures.rs writes too:  section <TAB> option <TAB> value,
-- then the loader's warnings as  !warning <TAB> text
-- Usage: lua5.4 prosody_config_dump.lua PROSODY_LIB_DIR CONFIG_FILE
local lib_dir, config_file = arg[1], arg[2]
-- "core.x" for 0.12; "prosody.core.x" for 13, whose library dir is named prosody.
package.path = lib_dir .. "/?.lua;" .. lib_dir .. "/../?.lua;" .. package.path
package.cpath = lib_dir .. "/?.so;" .. lib_dir .. "/../?.so;" .. package.cpath

-- Prosody 13 namespaces its libraries as prosody.*; 0.12 does not.
local ok, configmanager = pcall(require, "core.configmanager")
if not ok then
	configmanager = require "prosody.core.configmanager"
end

local loaded, kind, err = configmanager.load(config_file)
if not loaded then
	io.stderr:write(("config failed (%s): %s\n"):format(tostring(kind), tostring(err)))
	os.exit(2)
end

local function dump(value)
	local t = type(value)
	if t == "string" then
		return ("s%q"):format(value)
	elseif t == "boolean" then
		return "b" .. tostring(value)
	elseif t == "number" then
		if math.type(value) == "integer" then return "i" .. tostring(value) end
		return "n" .. tostring(value)
	elseif t == "table" then
		local parts, n = {}, 0
		while rawget(value, n + 1) ~= nil do
			n = n + 1
			parts[#parts + 1] = dump(rawget(value, n))
		end
		local keyed = {}
		for k, v in pairs(value) do
			if not (math.type(k) == "integer" and k >= 1 and k <= n) then
				keyed[#keyed + 1] = { tostring(k), dump(v) }
			end
		end
		table.sort(keyed, function (a, b) return a[1] < b[1] end)
		for i, kv in ipairs(keyed) do keyed[i] = kv[1] .. "=" .. kv[2] end
		return "{" .. table.concat(parts, ",") .. ";" .. table.concat(keyed, ",") .. "}"
	end
	return "?" .. t
end

local lines = {}
for section, options in pairs(configmanager.getconfig()) do
	for option, value in pairs(options) do
		lines[#lines + 1] = section .. "\t" .. option .. "\t" .. dump(value)
	end
end
for _, warning in ipairs(type(err) == "table" and err or {}) do
	lines[#lines + 1] = "!warning\t" .. warning
end
table.sort(lines)
print(table.concat(lines, "\n"))
