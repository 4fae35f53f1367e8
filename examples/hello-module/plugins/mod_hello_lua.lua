-- mod_hello_lua: the Lua twin of the example's Rust module, written as a
-- Prosody module (it runs unchanged on Prosody). With
--
--   plugin_paths = { "examples/hello-module/plugins" }
--   modules_enabled = { ...; "hello_lua" }
--
-- lilt finds it there because no Rust module is called hello_lua. It
-- announces urn:example:hello-lua and answers an IQ get of
-- <hello xmlns='urn:example:hello-lua'/> with the greeting.

local st = require "util.stanza";
local jid = require "util.jid";

local xmlns_hello = "urn:example:hello-lua";
local greeting = module:get_option_string("hello_greeting", "Hello");

module:add_feature(xmlns_hello);

module:hook("iq-get/host/"..xmlns_hello..":hello", function (event)
	local origin, stanza = event.origin, event.stanza;
	local who = jid.node(stanza.attr.from) or "stranger";
	origin.send(st.reply(stanza)
		:tag("hello", { xmlns = xmlns_hello }):text(greeting..", "..who));
	return true;
end);

module:log("info", "ready to greet with %q", greeting);
