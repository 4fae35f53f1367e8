"""Log files as Prosody writes them (issue 18).

The same events — a login, a failed login, a stream error — against lilt and against
Debian's Prosody 0.12 (with prosody-modules' mod_log_auth, as fail2ban setups have it),
both logging with Debian's `log = { debug = …; info = "….log"; error = "….err" }`: the
same files exist, every line has Prosody's file format (`Mon DD HH:MM:SS name\tlevel\t
message`, no colour codes), each file gets exactly its levels (the info file every info,
warn and error line of the debug file; the error file its error lines), and each event
is logged at the same levels by both, after the same start-up lines (`startup` "Hello
and welcome to …", `portmanager` "Activated service 'c2s' on [127.0.0.1]:PORT").
The rule forms (`{ to = "file", filename, levels = { min = … } }`, a level list,
`timestamps`) and `*console` (Prosody's padded columns, no colour codes when stderr is
not a terminal; Prosody's colours on a pty) are checked on lilt alone.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import running_server
from lilt_harness import paths
from lilt_harness.client import Client, run
from lilt_harness.config import DOMAIN, base_config
from lilt_harness.rawstream import RawStream, StreamClosed
from lilt_harness.servers import make_workdir

pytestmark = pytest.mark.lilt_only

FILE_LINE = re.compile(
    r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d (\S+)\t(debug|info|warn|error)\t(.*)$"
)
BARE_LINE = re.compile(r"^(\S+)\t(debug|info|warn|error)\t(.*)$")
CONSOLE_LINE = re.compile(r"^(\S+) {2,}(debug|info|warn|error)\t(.*)$")
ABOVE_INFO = {"info", "warn", "error"}

# Each event's line, as each server words it.
EVENTS = {
    "login": re.compile(r"[Aa]uthenticated as alice"),
    # mod_log_auth's line, as fail2ban's filter for Prosody matches it.
    "failed login": re.compile(
        r"Failed authentication attempt \(not-authorized\) for user alice@localhost"
        r" from IP: 127\.0\.0\.1$"
    ),
    "stream error": re.compile(r"host-unknown"),
    # mod_c2s's lines.
    "connect": re.compile(r"^Client connected$"),
    "disconnect": re.compile(r"^Client disconnected: "),
}


def lines_of(path: Path, pattern: re.Pattern = FILE_LINE) -> list[tuple[str, str, str]]:
    text = path.read_text(errors="replace")
    assert "\x1b" not in text, f"{path.name} has terminal escape codes"
    out = []
    for line in text.splitlines():
        match = pattern.match(line)
        assert match, f"{path.name}: not Prosody's line format: {line!r}"
        out.append((match.group(1), match.group(2), match.group(3)))
    return out


def event_levels(lines) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {event: set() for event in EVENTS}
    for _, level, message in lines:
        for event, pattern in EVENTS.items():
            if pattern.search(message):
                found[event].add(level)
    return found


def do_events(server) -> None:
    async def body():
        ok = await Client(server, f"alice@{DOMAIN}", "alice-pw").connect()
        await ok.close()
        result = await Client(server, f"alice@{DOMAIN}", "wrong-pw").login()
        assert not result.ok

    run(body())
    # A stream error: a stream to a host the server does not serve.
    with RawStream(server.address, server.c2s_port, "nosuchhost.invalid") as raw:
        with pytest.raises(StreamClosed):
            raw.open()


def logged(kind: str, pki) -> dict[str, list]:
    directory = make_workdir(f"lilt-logs-{kind}-")
    files = {name: directory / f"server.{name}" for name in ("debug", "log", "err")}
    config = base_config(
        extra_globals={
            "log": {
                "debug": str(files["debug"]),
                "info": str(files["log"]),
                "error": str(files["err"]),
            }
        }
    )
    config.globals["modules_enabled"].append("log_auth")
    with running_server(
        kind, pki, config, users=[("alice", DOMAIN, "alice-pw")], directory=directory
    ) as server:
        do_events(server)
        time.sleep(0.5)
        missing = [p.name for p in files.values() if not p.is_file()]
        assert not missing, f"{kind} did not create {missing}"
        # Read while the files are there (the directory goes with the server).
        banned = check_fail2ban(kind, files["log"])
        return {"fail2ban": banned, **{name: lines_of(path) for name, path in files.items()}}


def check_levels_split(kind: str, files: dict[str, list]) -> None:
    """Each file has exactly its levels: the info file is the debug file's info-and-up
    lines, the error file its error lines (compared as multisets: lines from other
    threads may interleave differently)."""
    debug, info, err = files["debug"], files["log"], files["err"]
    assert {lvl for _, lvl, _ in info} <= ABOVE_INFO, f"{kind}: {info}"
    assert {lvl for _, lvl, _ in err} <= {"error"}, f"{kind}: {err}"
    assert Counter(line for line in debug if line[1] in ABOVE_INFO) == Counter(info), kind
    assert Counter(line for line in debug if line[1] == "error") == Counter(err), kind


# The filter mod_log_auth's documentation gives for fail2ban.
FAIL2BAN_FILTER = r"Failed authentication attempt \(not-authorized\) for user .* from IP: <HOST>"


def check_fail2ban(kind: str, log_file: Path) -> int | None:
    """How many lines fail2ban-regex (Debian's fail2ban) matches with that filter, or
    None without fail2ban."""
    if not shutil.which("fail2ban-regex"):
        return None
    done = subprocess.run(
        ["fail2ban-regex", str(log_file), FAIL2BAN_FILTER],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, f"{kind}: {done.stdout}{done.stderr}"
    found = re.search(r"^Lines: \d+ lines, \d+ ignored, (\d+) matched", done.stdout, re.M)
    assert found, f"{kind}: {done.stdout}"
    return int(found.group(1))


@pytest.mark.differential
def test_debian_log_files_match_prosody(pki):
    reason = paths.prosody_usable()
    if reason:
        pytest.skip(reason)
    if not Path("/usr/lib/prosody/modules/mod_log_auth/mod_log_auth.lua").is_file():
        pytest.skip("Debian's prosody-modules (mod_log_auth) is not installed")
    results = {kind: logged(kind, pki) for kind in ("lilt", "prosody")}
    for kind, files in results.items():
        check_levels_split(kind, files)
    # fail2ban's filter for mod_log_auth finds lilt's failed logins as it finds Prosody's.
    if results["prosody"]["fail2ban"] is not None:
        assert results["prosody"]["fail2ban"] >= 1
        assert results["lilt"]["fail2ban"] == results["prosody"]["fail2ban"], (
            results["lilt"]["fail2ban"], results["prosody"]["fail2ban"])
    lilt = event_levels(results["lilt"]["debug"])
    prosody = event_levels(results["prosody"]["debug"])
    assert prosody == {
        "login": {"info"},
        "failed login": {"info"},
        "stream error": {"debug"},
        "connect": {"info"},
        "disconnect": {"info"},
    }
    assert lilt == prosody, f"lilt logs the events at {lilt}, Prosody at {prosody}"
    # The same events reach the info file in both (the failed login, for fail2ban),
    # after the same start-up lines.
    for kind, files in results.items():
        assert any(
            n == "startup" and lvl == "info" and m.startswith("Hello and welcome to ")
            for n, lvl, m in files["log"]
        ), (kind, files["log"][:5])
        activated = [
            m for n, lvl, m in files["log"] if n == "portmanager" and lvl == "info"
        ]
        assert any(
            re.fullmatch(r"Activated service 'c2s' on \[127\.0\.0\.1\]:\d+", m) for m in activated
        ), (kind, activated)
        in_info = {e for e, levels in event_levels(files["log"]).items() if levels}
        assert in_info == {"login", "failed login", "connect", "disconnect"}, (kind, in_info)


def test_rule_forms_and_console(start_server, tmp_path):
    warn_file = tmp_path / "warn.log"
    debug_only = tmp_path / "debug-only.log"
    stamped = tmp_path / "stamped.log"
    config = base_config(
        extra_globals={
            "log": [
                {"to": "file", "filename": str(warn_file), "levels": {"min": "warn"}},
                {"to": "file", "filename": str(debug_only), "levels": ["debug"]},
                {
                    "to": "file",
                    "filename": str(stamped),
                    "levels": {"min": "debug", "max": "info"},
                    "timestamps": "%Y-%m-%d",
                },
                "*console",
            ]
        }
    )
    # A module nobody has: a warning at start-up, for the warn file.
    config.globals["modules_enabled"].append("no_such_module")
    server = start_server(config, users=[("alice", DOMAIN, "alice-pw")])
    do_events(server)
    time.sleep(0.5)
    # A rule without `timestamps` has none (Prosody's rule tables default to none).
    warns = lines_of(warn_file, BARE_LINE)
    assert warns and {lvl for _, lvl, _ in warns} <= {"warn", "error"}, warns
    debugs = lines_of(debug_only, BARE_LINE)
    assert debugs and {lvl for _, lvl, _ in debugs} == {"debug"}, debugs[:5]
    today = time.strftime("%Y-%m-%d")
    text = stamped.read_text()
    infos = [line for line in text.splitlines()]
    assert infos and all(line.startswith(today + " ") for line in infos), infos
    levels = {BARE_LINE.match(line[len(today) + 1 :]).group(2) for line in infos}
    assert levels == {"debug", "info"}, infos
    assert any(EVENTS["failed login"].search(line) for line in infos), infos
    # *console: stderr, padded columns, every level, no colour (not a terminal).
    stderr = server.stderr_log.read_text(errors="replace")
    assert "\x1b" not in stderr
    console = [CONSOLE_LINE.match(line) for line in stderr.splitlines()]
    console = [m for m in console if m]
    assert {m.group(2) for m in console} >= {"debug", "info", "warn"}, stderr[-2000:]


def test_console_colours_only_on_a_terminal(tmp_path):
    """The console sink colours the level as Prosody's does (bold info, bold yellow
    warn) when stderr is a terminal (a pty here)."""
    config = tmp_path / "prosody.cfg.lua"
    config.write_text(
        'interfaces = { "127.0.0.1" }\nc2s_ports = { 0 }\n'
        f'data_path = "{tmp_path / "data"}"\nlog = "*console"\nVirtualHost "localhost"\n'
    )
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(paths.lilt_binary()), "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 15
    try:
        while b"\x1b[1minfo\x1b[0m" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                seen += os.read(master, 65536)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        os.close(master)
    assert b"\x1b[1minfo\x1b[0m" in seen, seen[-2000:]
    assert b"\x1b[1;33mwarn\x1b[0m" in seen, seen[-2000:]
