"""SIGHUP and `lilt reload` (issue 18): the server reloads instead of dying.

With a user and ten anonymous guests connected (XEP-0198 enabled) and all in one MUC
room, the config is edited (a new log sink at another level, a module and a VirtualHost
added, a MUC option changed) and `lilt reload` (prosodyctl reload: SIGHUP to the process
in `pidfile`) is run: the server lives on, a groupchat reaches every occupant and a
message from each guest reaches the user, the new sink gets debug lines, the new module
is loaded on every VirtualHost and the new host added, and the log says what was applied
(a line per change) and what waits for a restart (the MUC's options). A config with a
syntax error is refused with its file and line and the running configuration stays in
force. A rotated log file is opened again, and
certificates replaced on disk are served to new connections. At exit the pidfile is
gone. Prosody itself only reopens logs on SIGHUP (lilt only: these test lilt's own
reload). Debian's stock config with 50 clients: test_reload_stock.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lilt_harness import paths
from lilt_harness.certs import make_pki
from lilt_harness.client import Client, run
from lilt_harness.config import ALL_DOMAINS, DOMAIN, TEST_MODULES, base_config
from lilt_harness.muc import MUC_HOST, anonymous, groupchat, join, muc_config
from lilt_harness.rawstream import RawStream

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
        # mod_muc reads its options when it loads: said so, not claimed applied.
        restart = f"Reload: option max_history_messages of {MUC_HOST} changed, in force after a restart"
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
