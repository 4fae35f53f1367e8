-- util.dataforms for lilt (XEP-0004), written from Prosody's documentation:
-- new(layout) gives a form; form:form(data, type) renders <x/>,
-- form:data(x) reads the submitted values back by field name.
local st = require "util.stanza";
local ipairs, type, tostring, setmetatable = ipairs, type, tostring, setmetatable;

local xmlns_forms = "jabber:x:data";

local form_t = {};
local form_mt = { __index = form_t, __name = "dataform" };

local _M = {};

function _M.new(layout)
	return setmetatable(layout, form_mt);
end

local function add_values(x, field, value)
	local ftype = field.type or "text-single";
	if ftype == "text-multi" then
		if type(value) == "table" then
			for _, line in ipairs(value) do x:text_tag("value", tostring(line)); end
		else
			for line in tostring(value):gmatch("([^\n]*)\n?") do
				x:text_tag("value", line);
			end
		end
	elseif ftype == "list-multi" or ftype == "jid-multi" then
		if type(value) == "table" then
			for _, v in ipairs(value) do
				if type(v) == "table" then
					if v.default then x:text_tag("value", v.value); end
				else
					x:text_tag("value", tostring(v));
				end
			end
		else
			x:text_tag("value", tostring(value));
		end
	elseif ftype == "boolean" then
		x:text_tag("value", (value and value ~= "0" and value ~= "false") and "1" or "0");
	elseif ftype == "list-single" and type(value) == "table" then
		for _, v in ipairs(value) do
			if type(v) == "table" and v.default then x:text_tag("value", v.value); end
		end
	else
		x:text_tag("value", tostring(value));
	end
end

local function add_options(x, field, value)
	local options = field.options;
	if not options and (field.type == "list-single" or field.type == "list-multi") and type(value) == "table" then
		options = value;
	end
	if not options then return; end
	for _, opt in ipairs(options) do
		if type(opt) == "table" then
			x:tag("option", { label = opt.label }):text_tag("value", opt.value):up();
		else
			x:tag("option", { label = opt }):text_tag("value", opt):up();
		end
	end
end

function form_t:form(data, formtype)
	formtype = formtype or "form";
	local x = st.stanza("x", { xmlns = xmlns_forms, type = formtype });
	if formtype == "form" then
		if self.title then x:text_tag("title", self.title); end
		if self.instructions then x:text_tag("instructions", self.instructions); end
	end
	for _, field in ipairs(self) do
		local var = field.var or field.name;
		local attr = { var = var };
		if formtype == "form" or field.type == "hidden" then
			attr.type = field.type;
		end
		if formtype == "form" then attr.label = field.label; end
		x:tag("field", attr);
		if formtype == "form" then
			if field.desc then x:text_tag("desc", field.desc); end
			if field.required then x:tag("required"):up(); end
			add_options(x, field, data and data[field.name]);
		end
		local value = field.value;
		if data and data[field.name] ~= nil then value = data[field.name]; end
		if value ~= nil and not (formtype ~= "form" and field.type == "fixed") then
			if not (formtype == "form" and field.options == nil and type(value) == "table"
				and (field.type == "list-single")) then
				add_values(x, field, value);
			end
		end
		x:up();
	end
	return x;
end

local function read_field(ftype, tag)
	local values = {};
	for v in tag:childtags("value") do values[#values + 1] = v:get_text() or ""; end
	if ftype == "text-multi" then
		if #values == 0 then return nil; end
		return table.concat(values, "\n");
	elseif ftype == "list-multi" or ftype == "jid-multi" then
		return values;
	elseif ftype == "boolean" then
		local v = values[1];
		if v == "1" or v == "true" then return true; end
		if v == "0" or v == "false" then return false; end
		return nil, v and "Invalid boolean representation" or nil;
	else
		return values[1];
	end
end

function form_t:data(x)
	local data, errors = {}, {};
	local present = {};
	if x then
		for tag in x:childtags("field") do present[tag.attr.var or ""] = tag; end
	end
	for _, field in ipairs(self) do
		local var = field.var or field.name;
		local tag = present[var];
		local name = field.name or var;
		if tag then
			local value, err = read_field(field.type or "text-single", tag);
			if err then
				errors[name] = err;
			elseif value ~= nil and value ~= "" then
				data[name] = value;
			elseif field.required then
				errors[name] = "Required value missing";
			end
		elseif field.required then
			errors[name] = "Required value missing";
		end
	end
	if next(errors) then return data, errors; end
	return data;
end

function form_t:get_type()
	for _, field in ipairs(self) do
		if (field.var or field.name) == "FORM_TYPE" then return field.value; end
	end
end

function _M.get_type(x)
	for field in x:childtags("field") do
		if field.attr.var == "FORM_TYPE" then return field:get_child_text("value"); end
	end
end

return _M;
