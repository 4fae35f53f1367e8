-- lilt with the example module "hello" (examples/hello-module): it is
-- enabled by name, like any of Prosody's modules.
--
--   cargo run -p hello-module -- examples/hello-module/prosody.cfg.lua
--
-- then ask the server for a greeting (an IQ get of <hello
-- xmlns='urn:example:hello'/> to localhost) or open http://localhost:5280/hello.

interfaces = { "127.0.0.1" }
http_interfaces = { "127.0.0.1" }
c2s_ports = { 5222 }
http_ports = { 5280 }
c2s_require_encryption = false
authentication = "internal_hashed"
storage = "memory"

modules_enabled = { "roster"; "disco"; "ping"; "hello" }

VirtualHost "localhost"
    hello_greeting = "Hello from lilt"
