-- util.jid for lilt: splitting, joining and preparing JIDs (RFC 7622).
-- Stringprep comes from the Rust side (`prep` below).
local prep_parts = ...; -- function(node, host, resource) -> prepped parts or nil
local match, sub, gsub = string.match, string.sub, string.gsub;

local _M = {};

local function split(jid)
	if jid == nil then return nil; end
	local node, nodepos = match(jid, "^([^@/]+)@()");
	local host, hostpos = match(jid, "^([^@/]+)()", nodepos);
	if node ~= nil and host == nil then return nil, nil, nil; end
	local resource = match(jid, "^/(.+)$", hostpos);
	if host == nil or ((resource == nil) and #jid >= hostpos) then return nil, nil, nil; end
	return node, host, resource;
end
_M.split = split;

function _M.bare(jid)
	local node, host = split(jid);
	if node ~= nil and host ~= nil then return node .. "@" .. host; end
	return host;
end

function _M.join(node, host, resource)
	if not host then return nil; end
	if node and resource then return node .. "@" .. host .. "/" .. resource; end
	if node then return node .. "@" .. host; end
	if resource then return host .. "/" .. resource; end
	return host;
end

local function prepped_split(jid, strict)
	local node, host, resource = split(jid);
	if host == nil then return nil; end
	if sub(host, -1) == "." then host = sub(host, 1, -2); end
	return prep_parts(node, host, resource, strict);
end
_M.prepped_split = prepped_split;

function _M.prep(jid, strict)
	local node, host, resource = prepped_split(jid, strict);
	if host == nil then return nil; end
	return _M.join(node, host, resource);
end

function _M.node(jid) return (split(jid)); end
function _M.host(jid) local _, host = split(jid); return host; end
function _M.resource(jid) local _, _, resource = split(jid); return resource; end

-- Does `jid` match `acl` (a bare JID, a host or a full JID)?
function _M.compare(jid, acl)
	local jid_node, jid_host, jid_resource = split(jid);
	local acl_node, acl_host, acl_resource = split(acl);
	if ((acl_node ~= nil and acl_node == jid_node) or acl_node == nil) and
		((acl_host ~= nil and acl_host == jid_host) or acl_host == nil) and
		((acl_resource ~= nil and acl_resource == jid_resource) or acl_resource == nil) then
		return true;
	end
	return false;
end

local escapes = {
	[" "] = "\\20", ['"'] = "\\22", ["&"] = "\\26", ["'"] = "\\27", ["/"] = "\\2f",
	[":"] = "\\3a", ["<"] = "\\3c", [">"] = "\\3e", ["@"] = "\\40", ["\\"] = "\\5c",
};
local unescapes = {};
for k, v in pairs(escapes) do unescapes[v] = k; end
function _M.escape(s) return (gsub(s, ".", escapes)); end
function _M.unescape(s) return (gsub(s, "\\%x%x", unescapes)); end

return _M;
