"""SIGHUP and `lilt reload` (issue 18): the server reloads instead of dying.

With a user and ten anonymous guests connected (XEP-0198 enabled) and all in one MUC
room, the config is edited (a new log sink at another level, a module and a VirtualHost
added, a MUC option changed) and `lilt reload` (prosodyctl reload: SIGHUP to the process
in `pidfile`) is run: the server lives on, a groupchat reaches every occupant and a
message from each guest reaches the user, the new sink gets debug lines, the new module
is loaded on every VirtualHost and the new host added, and the log says what was applied
(a line per change) and what waits for a restart (`statistics_interval`). A config with a
syntax error is refused with its file and line and the running configuration stays in
force. A rotated log file is opened again, and
certificates replaced on disk are served to new connections. At exit the pidfile is
gone. Listeners follow a reload as Prosody's portmanager has them do (a c2s
port added takes logins, a removed one refuses new connections while the
sessions made on it go on; s2s likewise; BOSH moves to new `http_ports`), and a
new WebSocket or BOSH session gets the HTTP options in force (the lowered
`c2s_stanza_size_limit`, `bosh_max_wait`). Prosody itself only reopens logs on
SIGHUP (lilt only: these test lilt's own reload). Debian's stock config with 50 clients: test_reload_stock.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lilt_harness import paths
from lilt_harness.certs import make_pki
from lilt_harness.client import Client, run
from lilt_harness.config import ALL_DOMAINS, DOMAIN, TEST_MODULES, base_config
from lilt_harness.httpxmpp import (
    NS_SASL,
    _bind_iq,
    _Bosh,
    _bound_jid,
    _plain,
    _WebSocket,
    _ws_open,
    bosh_login,
)
from lilt_harness.muc import MUC_HOST, anonymous, groupchat, join, muc_config
from lilt_harness.rawstream import RawStream
from lilt_harness.servers import free_port

pytestmark = pytest.mark.lilt_only

PING = "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"


def wait_for(path: Path, pattern: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            text = path.read_text(errors="replace")
            match = re.search(pattern, text)
            if match:
                return match.group(0)
        time.sleep(0.05)
    text = path.read_text(errors="replace") if path.is_file() else "(missing)"
    raise AssertionError(f"{path.name} never matched {pattern!r}:\n{text[-3000:]}")


def sighup_and_wait(server, log: Path, pattern: str) -> str:
    """SIGHUP; the log line matching `pattern` written after it."""
    before = log.stat().st_size if log.is_file() else 0
    os.kill(server.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(log, "rb") as f:
            f.seek(before)
            written = f.read().decode(errors="replace")
            # Whole lines only (a line may be caught half written).
            match = re.search(pattern, written[: written.rfind("\n") + 1])
        if match:
            return match.group(0)
        server.check_alive()
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} after SIGHUP:\n{log.read_text()[-3000:]}")


def tls_with(server, ca_file: Path) -> bool:
    """Whether a STARTTLS handshake verifies against `ca_file`."""
    try:
        with RawStream(server.address, server.c2s_port, DOMAIN, ca_file=ca_file) as raw:
            raw.open()
            raw.starttls()
            return True
    except OSError:
        return False


CROWD = 10
ROOM = f"room@{MUC_HOST}"


def test_sighup_reloads_without_dropping_anyone(start_server, tmp_path):
    info = tmp_path / "lilt.log"
    debug = tmp_path / "lilt.debug"
    config = muc_config(
        {"muc_room_locking": False},
        extra_globals={
            "log": {"info": str(info)},
            "modules_enabled": TEST_MODULES + ["smacks"],
        }
    )
    server = start_server(config, users=[("alice", DOMAIN, "alice-pw")])
    pidfile = server.directory / "server.pid"
    assert pidfile.read_text().strip() == str(server.proc.pid)

    def lilt(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(paths.lilt_binary()), "--config", str(server.config_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    async def body():
        alice = Client(server, f"alice@{DOMAIN}", "alice-pw")
        crowd = [anonymous(server) for _ in range(CROWD)]
        for c in [alice, *crowd]:
            c.xmpp.register_plugin("xep_0198")
        await alice.connect()
        await asyncio.gather(*(c.connect() for c in crowd))
        alice.send_presence()
        await join(alice, ROOM, "alice")
        for i, c in enumerate(crowd):
            await join(c, ROOM, f"guest{i}")
        loop = asyncio.get_running_loop()

        async def everyone_still_served(tag: str):
            """A groupchat from alice reaches every occupant; a message from each
            guest reaches alice."""
            body = f"after {tag}"
            alice.send(f"<message to='{ROOM}' type='groupchat'><body>{body}</body></message>")
            await asyncio.gather(
                *(c.expect(groupchat(ROOM, body, f"{ROOM}/alice"), what=body) for c in crowd)
            )
            for i, c in enumerate(crowd):
                c.send(f"<message to='alice@{DOMAIN}' type='chat'><body>{tag} {i}</body></message>")
            for i in range(CROWD):
                await alice.expect(
                    lambda e, i=i: e.tag.endswith("message") and e.findtext("{jabber:client}body") == f"{tag} {i}",
                    what=f"message {i} after {tag}",
                )

        async def ping_ok():
            reply = await alice.iq(PING)
            assert reply.get("type") == "result"

        await ping_ok()

        # 1. A good edit, through `lilt reload`.
        config.globals["log"] = {"debug": str(debug), "info": str(info)}
        config.globals["modules_enabled"].append("carbons")
        config.hosts[MUC_HOST]["max_history_messages"] = 5
        config.hosts["new.localhost"] = {}
        config.globals["statistics_interval"] = 30
        server.write_config(config)
        done = await loop.run_in_executor(None, lilt, "reload")
        assert done.returncode == 0, done.stdout + done.stderr
        line = await loop.run_in_executor(None, wait_for, info, r"config reloaded.*")
        assert f"now to {debug}" in line, line
        # Modules follow the config at run time (issue 16); hosts and options too.
        log = info.read_text()
        for change in (
            f"modules loaded on {DOMAIN}: carbons",
            'VirtualHost "new.localhost" added',
        ):
            assert f"Reload applied: {change}" in log, (change, log[-3000:])
            assert change in line, line
        assert "modules_enabled" not in line, line
        # The MUC reads its options again on config-reloaded.
        assert f"Reload applied: option max_history_messages of {MUC_HOST} changed" in log
        # What is read once at start is said to wait for a restart.
        restart = "Reload: option statistics_interval changed, in force after a restart"
        assert restart in log, log[-3000:]
        server.check_alive()
        await ping_ok()
        await everyone_still_served("the reload")
        # A new connection is logged at debug level.
        await loop.run_in_executor(None, tls_with, server, server.pki.ca_file)
        await loop.run_in_executor(None, wait_for, debug, r"\tdebug\t")

        # 2. A broken config is refused with file:line; the old one stays.
        good = server.config_path.read_text()
        lines = good.count("\n")
        server.config_path.write_text(good + "modules_enabled = {\n")
        os.kill(server.proc.pid, signal.SIGHUP)
        refused = await loop.run_in_executor(None, wait_for, info, r".*not reloading.*")
        assert "\terror\t" in refused, refused
        assert re.search(rf"prosody\.cfg\.lua:{lines + 1}\b|prosody\.cfg\.lua:{lines + 2}\b", refused), refused
        server.check_alive()
        await ping_ok()
        size = debug.stat().st_size
        await loop.run_in_executor(None, tls_with, server, server.pki.ca_file)
        await asyncio.sleep(0.3)
        assert debug.stat().st_size > size, "the debug sink was dropped by a refused reload"

        # ... and so is one that start-up would refuse.
        server.config_path.write_text("daemonize = true\n" + good)
        os.kill(server.proc.pid, signal.SIGHUP)
        refused = await loop.run_in_executor(
            None, wait_for, info, r".*not reloading.*daemonize.*"
        )
        assert "prosody.cfg.lua:1:" in refused, refused
        server.check_alive()

        # 3. logrotate: the file is moved away, SIGHUP opens a new one.
        server.config_path.write_text(good)
        info.rename(tmp_path / "lilt.log.1")
        os.kill(server.proc.pid, signal.SIGHUP)
        await loop.run_in_executor(None, wait_for, info, r"config reloaded")

        # 4. Certificates replaced on disk are served after SIGHUP.
        new_pki = make_pki(tmp_path / "new-pki", ALL_DOMAINS)
        assert await loop.run_in_executor(None, tls_with, server, server.pki.ca_file)
        new_pki.install(server.certs_path, list(ALL_DOMAINS))
        assert not await loop.run_in_executor(None, tls_with, server, new_pki.ca_file)
        await loop.run_in_executor(None, sighup_and_wait, server, info, r"config reloaded.*")
        assert await loop.run_in_executor(None, tls_with, server, new_pki.ca_file)

        # The sessions and occupants from before every reload still work.
        await ping_ok()
        await everyone_still_served("four reloads")
        await asyncio.gather(*(c.close() for c in [alice, *crowd]))

    run(body())
    assert server.stop() == 0
    assert not pidfile.exists(), "the pidfile outlived the server"


def test_reload_without_a_running_server(start_server, tmp_path):
    server = start_server(base_config())
    server.stop()
    done = subprocess.run(
        [str(paths.lilt_binary()), "--config", str(server.config_path), "reload"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "not running" in done.stderr, done.stderr
    # A stale pidfile naming a live process (this one) that holds no lock: that
    # process is not signalled.
    (server.directory / "server.pid").write_text(str(os.getpid()))
    done = subprocess.run(
        [str(paths.lilt_binary()), "--config", str(server.config_path), "reload"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "stale" in done.stderr, done.stderr


# -- Listeners and HTTP options follow a reload (Prosody's portmanager) ----------------


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def until_refused(port: int, timeout: float = 20.0) -> None:
    """A removed port stops accepting (the listener closes as the reload logs it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if refused(port):
            return
        time.sleep(0.05)
    raise AssertionError(f"port {port} still accepts connections")


def answers_as_a_server(port: int) -> None:
    """An s2s listener answers a stream header with its own."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' "
            b"from='remote.example' version='1.0'>"
        )
        seen = b""
        while b"<stream:stream" not in seen:
            chunk = sock.recv(4096)
            assert chunk, f"closed after {seen!r}"
            seen += chunk


def test_a_reload_opens_and_closes_c2s_and_s2s_ports(start_server, tmp_path):
    info = tmp_path / "lilt.log"
    first, second, federation = free_port(), free_port(), free_port()
    config = base_config(extra_globals={"log": {"info": str(info)}, "c2s_ports": [first]})
    server = start_server(
        config, users=[("alice", DOMAIN, "alice-pw"), ("bob", DOMAIN, "bob-pw")]
    )
    assert server.c2s_port == first

    async def body():
        loop = asyncio.get_running_loop()
        alice = await Client(server, f"alice@{DOMAIN}", "alice-pw").connect()

        async def chat(a: Client, b: Client, text: str) -> None:
            a.send(f"<message to='{b.jid}' type='chat'><body>{text}</body></message>")
            await b.expect(
                lambda e: e.tag.endswith("message") and e.findtext("{jabber:client}body") == text,
                what=text,
            )

        # A port added: a client logs in on it, the old session goes on. An s2s
        # port (none at start) is opened too.
        config.globals["c2s_ports"] = [first, second]
        config.globals["s2s_ports"] = [federation]
        server.write_config(config)
        await loop.run_in_executor(
            None, sighup_and_wait, server, info, rf"Reload applied: listening for c2s on 127\.0\.0\.1:{second}"
        )
        assert f"Reload applied: listening for s2s on 127.0.0.1:{federation}" in info.read_text()
        await loop.run_in_executor(None, answers_as_a_server, federation)
        server.c2s_port = second
        bob = await Client(server, f"bob@{DOMAIN}", "bob-pw").connect()
        await chat(alice, bob, "alice on the first port")
        await chat(bob, alice, "bob on the second port")

        # The first port removed: new connections refused there, alice (who came
        # through it) still served.
        config.globals["c2s_ports"] = [second]
        config.globals["s2s_ports"] = []
        server.write_config(config)
        await loop.run_in_executor(
            None, sighup_and_wait, server, info, rf"Reload applied: stopped listening for c2s on 127\.0\.0\.1:{first}"
        )
        await loop.run_in_executor(None, until_refused, first)
        await loop.run_in_executor(None, until_refused, federation)
        reply = await alice.iq(PING)
        assert reply.get("type") == "result"
        await chat(alice, bob, "alice after her port closed")
        await chat(bob, alice, "bob after the first port closed")
        await asyncio.gather(alice.close(), bob.close())

    run(body())
    log = info.read_text()
    assert "c2s_ports changed, in force after a restart" not in log, log[-3000:]


def ws_session(port: int, user: str, password: str, resource: str) -> _WebSocket:
    """A WebSocket session logged in (PLAIN) and bound to `resource`."""
    ws = _WebSocket(port, DOMAIN)
    _ws_open(ws, DOMAIN)
    ws.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{_plain(user, password)}</auth>")
    answer = ws.recv()
    assert answer.tag == f"{{{NS_SASL}}}success", ET.tostring(answer)
    _ws_open(ws, DOMAIN)
    ws.send(_bind_iq().replace("<resource>http</resource>", f"<resource>{resource}</resource>"))
    assert _bound_jid(ws.recv()) == f"{user}@{DOMAIN}/{resource}"
    return ws


def big_message(ws: _WebSocket, to: str, size: int) -> str:
    """Sends a message of about `size` bytes to `to`; returns its body."""
    text = "x" * size
    ws.send(f"<message xmlns='jabber:client' to='{to}' type='chat'><body>{text}</body></message>")
    return text


def test_http_ports_and_options_follow_a_reload(start_server, tmp_path):
    info = tmp_path / "lilt.log"
    first, second = free_port(), free_port()
    config = base_config(
        extra_globals={
            "log": {"info": str(info)},
            "modules_enabled": [*TEST_MODULES, "bosh", "websocket"],
            "http_ports": [first],
            "https_ports": [],
            "consider_bosh_secure": True,
            "consider_websocket_secure": True,
            "c2s_stanza_size_limit": 20000,
        }
    )
    server = start_server(config, users=[("alice", DOMAIN, "alice-pw")])
    assert bosh_login(first, DOMAIN, "alice", "alice-pw").ok
    before = ws_session(first, "alice", "alice-pw", "before")
    try:
        config.globals["http_ports"] = [second]
        config.globals["c2s_stanza_size_limit"] = 2000
        config.globals["bosh_max_wait"] = 2
        server.write_config(config)
        applied = sighup_and_wait(server, info, r"config reloaded.*")
        assert f"listening for http on 127.0.0.1:{second}" in applied, applied
        assert f"stopped listening for http on 127.0.0.1:{first}" in applied, applied
        for name in ("http_ports", "c2s_stanza_size_limit", "bosh_max_wait"):
            assert f"Reload applied: option {name} changed" in info.read_text(), name
        assert "needs a restart" not in applied, applied

        # BOSH answers on the new port, with the new bosh_max_wait.
        assert bosh_login(second, DOMAIN, "alice", "alice-pw").ok
        opened = _Bosh(second, DOMAIN).post(
            to=DOMAIN, wait="60", hold="1", ver="1.6", **{"xmpp:version": "1.0"}
        )
        assert opened.get("wait") == "2", ET.tostring(opened)
        until_refused(first)

        # A new WebSocket session has the lowered stanza size limit...
        after = ws_session(second, "alice", "alice-pw", "after")
        try:
            big_message(after, f"alice@{DOMAIN}/after", 5000)
            ended = None
            while ended is None:
                element = after.recv()
                assert not element.tag.endswith("message"), "the old limit let it through"
                if element.tag.endswith("error"):
                    ended = ET.tostring(element).decode()
            assert "policy-violation" in ended, ended
        finally:
            after.close()
        # ... the one made before the reload (through the port now closed) keeps
        # the limit it was made with, and goes on.
        text = big_message(before, f"alice@{DOMAIN}/before", 5000)
        while True:
            element = before.recv()
            if element.tag.endswith("message"):
                assert element.findtext("{jabber:client}body") == text
                break
    finally:
        before.close()
    server.check_alive()


def test_a_reload_that_loads_bosh_starts_the_http_server(start_server, tmp_path):
    info = tmp_path / "lilt.log"
    port = free_port()
    config = base_config(
        extra_globals={
            "log": {"info": str(info)},
            "http_ports": [port],
            "https_ports": [],
            "consider_bosh_secure": True,
        }
    )
    server = start_server(config, users=[("alice", DOMAIN, "alice-pw")])
    assert "http" not in server.listening
    assert refused(port)
    config.globals["modules_enabled"] = [*TEST_MODULES, "bosh"]
    server.write_config(config)
    applied = sighup_and_wait(server, info, r"config reloaded.*")
    assert f"listening for http on 127.0.0.1:{port}" in applied, applied
    assert bosh_login(port, DOMAIN, "alice", "alice-pw").ok
