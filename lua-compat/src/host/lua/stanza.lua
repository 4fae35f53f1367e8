-- util.stanza for lilt, written from Prosody's documentation
-- (https://prosody.im/doc/developers/util/stanza): stanza objects are
-- tables { name = ..., attr = {...}, tags = {...}, [i] = child or text }
-- with a building cursor (last_add) for :tag/:text/:up.

local type, setmetatable, getmetatable, tostring, ipairs, pairs, error =
	type, setmetatable, getmetatable, tostring, ipairs, pairs, error;
local t_insert, t_remove, t_concat = table.insert, table.remove, table.concat;
local s_format, s_gsub, s_match = string.format, string.gsub, string.match;

local xmlns_stanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";

local stanza_mt = { __name = "stanza" };
stanza_mt.__index = stanza_mt;

local function new_stanza(name, attr, namespaces)
	if type(name) ~= "string" then
		error("invalid tag name: " .. tostring(name), 2);
	end
	if attr ~= nil and type(attr) ~= "table" then
		error("invalid attributes: " .. tostring(attr), 2);
	end
	return setmetatable({ name = name, attr = attr or {}, namespaces = namespaces, tags = {} }, stanza_mt);
end

local function is_stanza(s)
	return getmetatable(s) == stanza_mt;
end

-- The element the cursor is in.
local function current(self)
	local last = self.last_add;
	return last and last[#last] or self;
end

function stanza_mt:tag(name, attr, namespaces)
	local s = new_stanza(name, attr, namespaces);
	local parent = current(self);
	parent[#parent + 1] = s;
	parent.tags[#parent.tags + 1] = s;
	local last = self.last_add;
	if not last then last = {}; self.last_add = last; end
	last[#last + 1] = s;
	return self;
end

function stanza_mt:text(text)
	if text ~= nil and text ~= "" then
		if type(text) ~= "string" then
			error("invalid text value: " .. tostring(text), 2);
		end
		local parent = current(self);
		parent[#parent + 1] = text;
	end
	return self;
end

function stanza_mt:text_tag(name, text, attr, namespaces)
	return self:tag(name, attr, namespaces):text(text):up();
end

function stanza_mt:query(xmlns)
	return self:tag("query", { xmlns = xmlns });
end

function stanza_mt:body(text, attr)
	return self:text_tag("body", text, attr);
end

function stanza_mt:up()
	local last = self.last_add;
	if last then t_remove(last); end
	return self;
end

function stanza_mt:at_top()
	return self.last_add == nil or #self.last_add == 0;
end

function stanza_mt:reset()
	self.last_add = nil;
	return self;
end

function stanza_mt:add_direct_child(child)
	if is_stanza(child) then
		t_insert(self.tags, child);
	end
	t_insert(self, child);
end

function stanza_mt:add_child(child)
	current(self):add_direct_child(child);
	return self;
end

local function matches(self, child, name, xmlns)
	if name and child.name ~= name then return false; end
	if xmlns == nil then
		return child.attr.xmlns == self.attr.xmlns or child.attr.xmlns == nil;
	end
	return child.attr.xmlns == xmlns;
end

function stanza_mt:get_child(name, xmlns)
	for _, child in ipairs(self.tags) do
		if matches(self, child, name, xmlns) then
			return child;
		end
	end
end

function stanza_mt:get_child_text(name, xmlns)
	local tag = self:get_child(name, xmlns);
	if tag then return tag:get_text(); end
end

function stanza_mt:get_child_with_attr(name, xmlns, attr_name, attr_value, normalize)
	for tag in self:childtags(name, xmlns) do
		local v = tag.attr[attr_name];
		if v ~= nil and (v == attr_value or (normalize and normalize(v) == attr_value)) then
			return tag;
		end
	end
end

function stanza_mt:child_with_name(name)
	for _, child in ipairs(self.tags) do
		if child.name == name then return child; end
	end
end

function stanza_mt:child_with_ns(ns)
	for _, child in ipairs(self.tags) do
		if child.attr.xmlns == ns then return child; end
	end
end

function stanza_mt:get_text()
	local parts = {};
	for _, c in ipairs(self) do
		if type(c) == "string" then parts[#parts + 1] = c; end
	end
	if #parts > 0 then return t_concat(parts); end
	if #self == 0 then return ""; end
end

function stanza_mt:children()
	local i = 0;
	return function()
		i = i + 1;
		return self[i];
	end;
end
stanza_mt.each_child = stanza_mt.children;

function stanza_mt:childtags(name, xmlns)
	local tags, i = self.tags, 0;
	return function()
		while true do
			i = i + 1;
			local child = tags[i];
			if child == nil then return nil; end
			if matches(self, child, name, xmlns) then return child; end
		end
	end;
end

-- Calls callback on every child tag; nil removes the tag, another
-- stanza replaces it.
function stanza_mt:maptags(callback)
	local tags, n = {}, 0;
	local i = 1;
	while self[i] ~= nil do
		local child = self[i];
		if is_stanza(child) then
			local r = callback(child);
			if r == nil then
				t_remove(self, i);
			else
				self[i] = r;
				n = n + 1;
				tags[n] = r;
				i = i + 1;
			end
		else
			i = i + 1;
		end
	end
	self.tags = tags;
	return self;
end

function stanza_mt:remove_children(name, xmlns)
	xmlns = xmlns or self.attr.xmlns;
	return self:maptags(function(tag)
		if (not name or tag.name == name) and tag.attr.xmlns == xmlns then
			return nil;
		end
		return tag;
	end);
end

-- A path of "name", "{ns}name" steps separated by "/", ending optionally
-- in "@attr" (an attribute's value) or "#" (the text).
function stanza_mt:find(path)
	local pos = 1;
	local len = #path + 1;
	local node = self;
	repeat
		local xmlns, name, text;
		local char = path:sub(pos, pos);
		if char == "@" then
			return node.attr[path:sub(pos + 1)];
		elseif char == "{" then
			xmlns, pos = s_match(path, "^([^}]+)}()", pos + 1);
		end
		name, text, pos = s_match(path, "^([^@/#]*)([/#]?)()", pos);
		name = name ~= "" and name or nil;
		if pos == len then
			if text == "#" then
				return node:get_child_text(name, xmlns);
			end
			return node:get_child(name, xmlns);
		end
		node = node:get_child(name, xmlns);
	until not node;
end

local escape_table = { ["'"] = "&apos;", ["\""] = "&quot;", ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;" };
local function xml_escape(s)
	return (s_gsub(s, "['&<>\"]", escape_table));
end

local function attrs_string(attr)
	local keys = {};
	for k in pairs(attr) do keys[#keys + 1] = k; end
	table.sort(keys);
	local out = {};
	for _, k in ipairs(keys) do
		local v = attr[k];
		local ns, local_name = s_match(k, "^([^\1]*)\1(.*)$");
		if ns then
			out[#out + 1] = s_format(" xmlns:ns_='%s' ns_:%s='%s'", xml_escape(ns), local_name, xml_escape(tostring(v)));
		else
			out[#out + 1] = s_format(" %s='%s'", k, xml_escape(tostring(v)));
		end
	end
	return t_concat(out);
end

local function serialize(s, out)
	out[#out + 1] = "<" .. s.name .. attrs_string(s.attr);
	if #s == 0 then
		out[#out + 1] = "/>";
		return;
	end
	out[#out + 1] = ">";
	for _, child in ipairs(s) do
		if type(child) == "string" then
			out[#out + 1] = xml_escape(child);
		else
			serialize(child, out);
		end
	end
	out[#out + 1] = "</" .. s.name .. ">";
end

function stanza_mt.__tostring(s)
	local out = {};
	serialize(s, out);
	return t_concat(out);
end

function stanza_mt:top_tag()
	return "<" .. self.name .. attrs_string(self.attr) .. ">";
end

local function pretty(s, indent, out)
	local pad = ("  "):rep(indent);
	if #s == 0 then
		out[#out + 1] = pad .. "<" .. s.name .. attrs_string(s.attr) .. "/>";
		return;
	end
	if #s.tags == 0 then
		out[#out + 1] = pad .. s:top_tag() .. xml_escape(s:get_text() or "") .. "</" .. s.name .. ">";
		return;
	end
	out[#out + 1] = pad .. s:top_tag();
	for _, child in ipairs(s) do
		if type(child) == "string" then
			if child:match("%S") then out[#out + 1] = pad .. "  " .. xml_escape(child); end
		else
			pretty(child, indent + 1, out);
		end
	end
	out[#out + 1] = pad .. "</" .. s.name .. ">";
end

function stanza_mt:pretty_print()
	local out = {};
	pretty(self, 0, out);
	return t_concat(out, "\n");
end
stanza_mt.pretty_top_tag = stanza_mt.top_tag;
stanza_mt.indent = function(self) return self; end

-- type, condition, text, extra of an error stanza.
function stanza_mt:get_error()
	local err = self:get_child("error");
	if not err then return nil, nil, nil; end
	local condition, text, extra;
	for _, child in ipairs(err.tags) do
		if child.attr.xmlns == xmlns_stanzas then
			if child.name == "text" then
				text = child:get_text();
			elseif not condition then
				condition = child.name;
			end
		elseif not extra then
			extra = child;
		end
	end
	return err.attr.type, condition or "undefined-condition", text, extra;
end

local function clone(s)
	local attr = {};
	for k, v in pairs(s.attr) do attr[k] = v; end
	local new = new_stanza(s.name, attr, s.namespaces);
	for _, child in ipairs(s) do
		if type(child) == "string" then
			new[#new + 1] = child;
		else
			local c = clone(child);
			new[#new + 1] = c;
			new.tags[#new.tags + 1] = c;
		end
	end
	return new;
end

local function preserialize(s)
	local out = { name = s.name, attr = {} };
	for k, v in pairs(s.attr) do out.attr[k] = v; end
	for _, child in ipairs(s) do
		if type(child) == "string" then
			out[#out + 1] = child;
		else
			out[#out + 1] = preserialize(child);
		end
	end
	return out;
end

local function deserialize(t)
	if not t then return nil; end
	if is_stanza(t) then return t; end
	local attr = {};
	for k, v in pairs(t.attr or {}) do
		if type(k) == "string" then attr[k] = v; end
	end
	local s = new_stanza(t.name, attr);
	for _, child in ipairs(t) do
		if type(child) == "string" then
			s[#s + 1] = child;
		elseif type(child) == "table" then
			local c = deserialize(child);
			s[#s + 1] = c;
			s.tags[#s.tags + 1] = c;
		end
	end
	return s;
end

local _M = {};

function _M.stanza(name, attr, namespaces)
	return new_stanza(name, attr, namespaces);
end

function _M.message(attr, body)
	local s = new_stanza("message", attr);
	if body then s:text_tag("body", body); end
	return s;
end

function _M.iq(attr)
	if not attr or not attr.id then
		error("iq stanzas require an id attribute", 2);
	end
	return new_stanza("iq", attr);
end

function _M.presence(attr)
	return new_stanza("presence", attr);
end

function _M.reply(orig)
	if not is_stanza(orig) then error("bad argument to reply: expected stanza", 2); end
	return new_stanza(orig.name, {
		to = orig.attr.from,
		from = orig.attr.to,
		id = orig.attr.id,
		type = (orig.name == "iq" and "result") or orig.attr.type,
	});
end

function _M.error_reply(orig, error_type, condition, text, by)
	if not is_stanza(orig) then error("bad argument to error_reply: expected stanza", 2); end
	if orig.attr.type == "error" then error("bad argument to error_reply: got stanza of type error", 2); end
	local t = _M.reply(orig);
	t.attr.type = "error";
	if type(error_type) == "table" then -- a util.error object
		local e = error_type;
		error_type, condition, text = e.type, e.condition, e.text;
		by = by or (e.context and e.context.by);
	end
	if t.attr.from == by then by = nil; end
	t:tag("error", { type = error_type or "cancel", by = by })
		:tag(condition or "undefined-condition", { xmlns = xmlns_stanzas }):up();
	if text then
		t:tag("text", { xmlns = xmlns_stanzas }):text(text):up();
	end
	return t; -- cursor left inside <error> for an application condition
end

_M.is_stanza = is_stanza;
_M.clone = clone;
_M.preserialize = preserialize;
_M.deserialize = deserialize;
_M.xml_escape = xml_escape;
_M.stanza_mt = stanza_mt;

function _M.test(s) return is_stanza(s); end

return _M;
