"""Writing prosody.cfg.lua files: Python values rendered as Lua, hosts as VirtualHost sections."""

from __future__ import annotations

import os

from dataclasses import dataclass, field
from typing import Any

# The test domains. Every one of them gets a certificate (see certs.py).
DOMAIN = "localhost"
ANON_DOMAIN = "anon.localhost"
ALL_DOMAINS = (DOMAIN, ANON_DOMAIN)

# What the tests load: the contract's module list, plus saslauth and tls, which
# Prosody needs named and which a Prosody config always names.
TEST_MODULES = ["roster", "saslauth", "tls", "disco", "ping", "version", "time", "uptime"]


def lua_string(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def lua_value(value: Any, indent: str = "") -> str:
    """Render a Python value as a Lua expression (dicts become tables with keys)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, (list, tuple)):
        return "{ " + ", ".join(lua_value(v, indent) for v in value) + " }"
    if isinstance(value, dict):
        inner = indent + "    "
        parts = []
        for key, item in value.items():
            if not key.isidentifier():
                raise ValueError(f"table key {key!r} is not a Lua identifier")
            parts.append(f"{inner}{key} = {lua_value(item, inner)};")
        return "{\n" + "\n".join(parts) + "\n" + indent + "}"
    raise TypeError(f"cannot render {type(value).__name__} as Lua")


class Component(dict):
    """The options of a `Component "name" "module"` section; put it in `ServerConfig.hosts`
    (as the value for the component's name) to get that section instead of a VirtualHost."""

    def __init__(self, module: str | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(options or {})
        self.module = module


@dataclass
class ServerConfig:
    """Global options plus VirtualHost (and Component) sections, rendered in insertion order."""

    globals: dict[str, Any] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def render(self) -> str:
        lines = ["-- written by the lilt test suite (tests/python)", ""]
        for key, value in self.globals.items():
            lines.append(f"{key} = {lua_value(value)}")
        for host, options in self.hosts.items():
            lines.append("")
            if isinstance(options, Component):
                module = f" {lua_string(options.module)}" if options.module else ""
                lines.append(f"Component {lua_string(host)}{module}")
            else:
                lines.append(f"VirtualHost {lua_string(host)}")
            for key, value in options.items():
                lines.append(f"    {key} = {lua_value(value, '    ')}")
        lines.append("")
        return "\n".join(lines)


def base_config(
    *,
    authentication: str = "internal_hashed",
    require_encryption: bool = True,
    anonymous_host: bool = False,
    extra_globals: dict[str, Any] | None = None,
    extra_host: dict[str, Any] | None = None,
) -> ServerConfig:
    """The configuration most tests use: one account host, optionally an anonymous one.

    Paths, ports and interfaces are filled in by the server runner.
    """
    globals_: dict[str, Any] = {
        "admins": [],
        "modules_enabled": list(TEST_MODULES),
        "authentication": authentication,
        "c2s_require_encryption": require_encryption,
        "storage": "internal",
    }
    # LILT_TEST_STORAGE=sql runs the suite on the sql driver (SQLite, prosody.sqlite in
    # each server's data_path) instead of the internal one.
    if os.environ.get("LILT_TEST_STORAGE") == "sql":
        globals_["storage"] = "sql"
        globals_["sql"] = {"driver": "SQLite3", "database": "prosody.sqlite"}
    globals_.update(extra_globals or {})
    hosts: dict[str, dict[str, Any]] = {DOMAIN: dict(extra_host or {})}
    if anonymous_host:
        hosts[ANON_DOMAIN] = {"authentication": "anonymous"}
    return ServerConfig(globals=globals_, hosts=hosts)
