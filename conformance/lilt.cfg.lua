-- lilt's configuration for Prosody's 13.0 scansion scripts: the equivalent of
-- ../shared/conformance/prosody-scansion/13.0/prosody.cfg.lua, in plain Prosody syntax.
--
-- tests/scansion/run-lilt.sh copies it into a temporary directory and replaces
-- @C2S_PORT@, @HTTP_PORT@ and @DIR@ before starting lilt with `--fixed-time 1219439344`
-- (the scripts' instant, 2008-08-22T21:09:04Z, which Prosody's own test setup mocks).
--
-- Differences from the original, none of which changes what the scripts see:
--   admins = FileLines("admins.txt")      -> the file's one line, inline
--   network_backend / network_settings    -> dropped (Prosody's event loop choice)
--   log = {"*console", debug = ENV_...}   -> console at info, debug to @DIR@/debug.log
--   pidfile = "prosody.pid"               -> @DIR@/lilt.pid, with data_path inside @DIR@
--   plus loopback-only interfaces and the ports filled in at run time.

admins = { "admin@localhost" }

modules_enabled = {
	-- Generally required
		"roster"; -- Allow users to have a roster. Recommended ;)
		"saslauth"; -- Authentication for clients and servers. Recommended if you want to log in.
		"disco"; -- Service discovery

	-- Not essential, but recommended
		"carbons"; -- Keep multiple clients in sync
		"pep"; -- Enables users to publish their avatar, mood, activity, playing music and more
		"private"; -- Private XML storage (for room bookmarks, etc.)
		"blocklist"; -- Allow users to block communications with other users
		"vcard4"; -- User profiles (stored in PEP)
		"vcard_legacy"; -- Conversion between legacy vCard and PEP Avatar, vcard

	-- Nice to have
		"version"; -- Replies to server version requests
		"uptime"; -- Report how long server has been running
		"time"; -- Let others know the time here on this server
		"ping"; -- Replies to XMPP pings with pongs
		"register"; -- Allow users to register on this server using a client and change passwords
		"mam"; -- Store messages in an archive and allow users to access it

	-- Other specific functionality
		"server_contact_info"; -- Publish contact information for this service
		"lastactivity";
		"external_services";

		"tombstones";
		"user_account_management";

	-- Required for integration testing
		"debug_reset";
}

contact_info = {
	abuse = { "mailto:abuse@localhost", "xmpp:abuse@localhost" };
	admin = { "mailto:admin@localhost", "xmpp:admin@localhost" };
	feedback = { "http://localhost/feedback.html", "mailto:feedback@localhost", "xmpp:feedback@localhost" };
	sales = { "xmpp:sales@localhost" };
	security = { "xmpp:security@localhost" };
	status = { "gopher://status.localhost" };
	support = { "https://localhost/support.html", "xmpp:support@localhost" };
}

external_service_host = "default.example"
external_service_port = 9876
external_service_secret = "<secret>"
external_services = {
	{type = "stun"; transport = "udp"};
	{type = "turn"; transport = "udp"; secret = true};
	{type = "turn"; transport = "udp"; secret = "foo"};
	{type = "ftp"; transport = "tcp"; port = 2121; username = "john"; password = "password"};
	{type = "ftp"; transport = "tcp"; host = "ftp.example.com"; port = 21; username = "john"; password = "password"};
}

modules_disabled = {
	"s2s";
}

-- TLS is not used during the test
certificates = "@DIR@"

allow_registration = false

c2s_require_encryption = false
allow_unencrypted_plain_auth = true

authentication = "insecure"
insecure_open_authentication = "Yes please, I know what I'm doing!"

storage = "memory"

mam_smart_enable = true

bounce_blocked_messages = true

log = {
	{ levels = { min = "debug" }, to = "file", filename = "@DIR@/debug.log" };
	{ levels = { min = "info" }, to = "console" };
}

-- Run-time placement (filled in by tests/scansion/run-lilt.sh)
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { @C2S_PORT@ }
c2s_interfaces = { "127.0.0.1" }
c2s_direct_tls_ports = { }
http_ports = { @HTTP_PORT@ }
http_interfaces = { "127.0.0.1" }
https_ports = { }
https_interfaces = { "127.0.0.1" }
data_path = "@DIR@/data"
pidfile = "@DIR@/lilt.pid"

VirtualHost "localhost"

hide_os_type = true -- absence tested for in version.scs

Component "conference.localhost" "muc"
	storage = "memory"
	admins = { "Admin@localhost" }
	modules_enabled = {
		"muc_mam";
	}


Component "pubsub.localhost" "pubsub"
	storage = "memory"
	expose_publisher = true

Component "upload.localhost" "http_file_share"
http_file_share_size_limit = 10000000
http_file_share_allowed_file_types = { "text/plain", "image/*" }
