"""The admin console (issue 18): Prosody 0.12's `mod_admin_shell` on the admin socket.

The same console lines go to lilt and to Debian's Prosody 0.12, each with `admin_shell`
enabled, over the socket's own protocol (`<stream:stream xmlns='xmpp:prosody.im/admin'>`,
`<repl-input>` in, `<repl-output>`/`<repl-result>` out): the replies are the same, and the
accounts the console made or changed are the ones clients then log in with. Prosody's own
`prosodyctl shell` is used against lilt's socket, and `lilt shell` against Prosody's.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import running_server
from lilt_harness import paths
from lilt_harness.client import Client, run
from lilt_harness.config import DOMAIN, Component, base_config

ADMIN_NS = "xmpp:prosody.im/admin"
OPEN = (
    "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'"
    f" xml:lang='en' xmlns='{ADMIN_NS}' id=''>"
)

# Each line and whether its printed lines are compared as a set (account listings come
# in storage order).
LINES = [
    ('user:create("bob@localhost", "bob-pw")', False),
    ('user:create("bob@localhost", "other")', False),
    ('user:list("localhost")', True),
    ('user:list("localhost", "bo")', True),
    ('user:password("bob@localhost", "new-pw")', False),
    ('user:delete("nobody@localhost")', False),
    ('user:create("carol@localhost", "carol-pw")', False),
    ('user:delete("carol@localhost")', False),
    ('user:create("x@nosuch.example", "pw")', False),
    ('user:list("nosuch.example")', False),
    ("c2s:count()", False),
    ("host:list()", False),
    ('muc:list("conference.localhost")', False),
    ('muc:list("localhost")', False),
    ('muc:room("nosuch@conference.localhost")', False),
    ('muc:room("room@nosuch.example")', False),
    ("config:reload()", False),
    ('module:unload("ping", "localhost")', False),
    ('module:unload("ping", "localhost")', False),
    ('module:load("ping", "localhost")', False),
    ('module:load("ping", "localhost")', False),
    ('module:reload("ping", "localhost")', False),
    ('module:reload("ping")', False),
    ('module:reload("time", "conference.localhost")', False),
    ('module:load("ping", "nosuch.example")', False),
    ('c2s:close("nobody@localhost")', False),
    ('c2s:close("alice@localhost")', False),
]


class Console:
    """A raw client of the admin socket."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.sock.sendall(OPEN.encode())
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.ready: list[ET.Element] = []

    def _elements(self) -> None:
        for event, el in self.parser.read_events():
            if event == "start":
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.ready.append(el)

    def line(self, text: str) -> tuple[list[str], str, str | None]:
        """Sends a line; returns (printed lines, result text, result type)."""
        el = ET.Element("repl-input")
        el.text = text
        self.sock.sendall(ET.tostring(el))
        output = []
        while True:
            while self.ready:
                got = self.ready.pop(0)
                name = got.tag.split("}")[-1]
                if name == "repl-output":
                    output.append(got.text or "")
                elif name == "repl-result":
                    return output, got.text or "", got.get("type")
            data = self.sock.recv(65536)
            assert data, f"the console closed the connection after {text!r}"
            self.parser.feed(data)
            self._elements()

    def close(self) -> None:
        self.sock.close()


def wait_for_socket(path: Path) -> None:
    deadline = time.monotonic() + 15
    while not path.exists():
        assert time.monotonic() < deadline, f"no console socket at {path}"
        time.sleep(0.1)


def console_config():
    config = base_config()
    config.globals["modules_enabled"].append("admin_shell")
    config.hosts["conference.localhost"] = Component("muc")
    return config


def replies(kind: str, pki) -> tuple[list, list]:
    """Runs LINES against `kind`; returns the replies and which logins worked after."""
    with running_server(kind, pki, console_config(), users=[("alice", DOMAIN, "alice-pw")]) as server:
        sock = server.data_path / "prosody.sock"
        wait_for_socket(sock)

        async def connected_alice():
            client = await Client(server, f"alice@{DOMAIN}", "alice-pw").connect()
            console = Console(sock)
            try:
                out = []
                for line, as_set in LINES:
                    printed, result, kind_ = console.line(line)
                    out.append((line, sorted(printed) if as_set else printed, result, kind_))
                return out
            finally:
                console.close()
                # c2s:close ended alice's session already.
                try:
                    await client.close()
                except Exception:  # noqa: BLE001
                    pass

        out = run(connected_alice())

        async def logins():
            results = []
            for user, password in (("bob", "new-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")):
                result = await Client(server, f"{user}@{DOMAIN}", password).login()
                results.append((user, password, result.ok))
            return results

        return out, run(logins())


@pytest.mark.differential
def test_console_replies_match_prosody(pki):
    reason = paths.prosody_usable()
    if reason:
        pytest.skip(reason)
    lilt, lilt_logins = replies("lilt", pki)
    prosody, prosody_logins = replies("prosody", pki)
    for mine, theirs in zip(lilt, prosody):
        assert mine == theirs, f"lilt {mine} / Prosody {theirs}"
    assert lilt_logins == prosody_logins == [
        ("bob", "new-pw", True),
        ("bob", "bob-pw", False),
        ("carol", "carol-pw", False),
    ]


@pytest.mark.differential
def test_each_console_client_against_the_other_server(pki):
    """`prosodyctl shell` (Prosody's client) on lilt's socket; `lilt shell` on Prosody's."""
    reason = paths.prosody_usable()
    if reason:
        pytest.skip(reason)
    if not shutil.which("prosodyctl") or not shutil.which("runuser"):
        pytest.skip("Debian's prosodyctl (and runuser) are needed")
    users = [("alice", DOMAIN, "alice-pw")]
    with running_server("lilt", pki, console_config(), users=users) as server:
        sock = server.data_path / "prosody.sock"
        wait_for_socket(sock)
        # prosodyctl runs as the prosody user, as Debian has it.
        subprocess.run(["chown", "-R", "prosody", str(server.directory)], check=True)
        os.chmod(sock, 0o666)
        done = subprocess.run(
            ["runuser", "-u", "prosody", "--", "prosodyctl", "--config", str(server.config_path),
             "shell", "user", "list", DOMAIN],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines() == ["alice@localhost", "OK: Showing all 1 users"], done.stdout
        done = subprocess.run(
            ["runuser", "-u", "prosody", "--", "prosodyctl", "--config", str(server.config_path),
             "shell", "user", "delete", "nobody@localhost"],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 1 and "Error: No such user" in done.stderr, done
    with running_server("prosody", pki, console_config(), users=users) as server:
        wait_for_socket(server.data_path / "prosody.sock")
        done = subprocess.run(
            [str(paths.lilt_binary()), "--config", str(server.config_path), "shell", "user", "list", DOMAIN],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines() == ["alice@localhost", "OK: Showing all 1 users"], done.stdout
        done = subprocess.run(
            [str(paths.lilt_binary()), "--config", str(server.config_path), "shell",
             "user:create('bob@localhost', 'x')"],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0 and done.stdout.strip() == "OK: User created", done


@pytest.mark.lilt_only
def test_interactive_console_and_shutdown(start_server):
    server = start_server(console_config(), users=[("alice", DOMAIN, "alice-pw")])
    sock = server.data_path / "prosody.sock"
    wait_for_socket(sock)
    done = subprocess.run(
        [str(paths.lilt_binary()), "--config", str(server.config_path), "shell"],
        input="user:list('localhost')\nnonsense(\nhelp\nquit\n",
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "| alice@localhost" in done.stdout, done.stdout
    assert "| OK: Showing all 1 users" in done.stdout, done.stdout
    assert "! Sorry, I couldn't understand that..." in done.stdout, done.stdout
    assert "| user:create(jid, password)" in done.stdout, done.stdout
    console = Console(sock)
    printed, result, kind = console.line('stats:show("process")')
    assert kind is None and result.endswith("metrics shown") and printed, (printed, result)
    assert all("process" in line.split(" ")[0] for line in printed), printed
    console.close()
    console = Console(sock)
    assert console.line("server:shutdown()")[1:] == ("OK: Shutdown initiated", None)
    console.close()
    deadline = time.monotonic() + 20
    while sock.exists():
        assert time.monotonic() < deadline, "the server did not stop (its socket is still there)"
        time.sleep(0.1)
