"""Reload on Debian's stock config (issue 18's check): lilt runs Debian's own
/etc/prosody/prosody.cfg.lua (its log files, conf.d, admin_shell; only paths and ports
moved into the test's directory) with 50 clients using stream management, 20 of them in
a MUC room. The admin edits the config (a VirtualHost, `mam` in `modules_enabled`, a MUC
option, the log file's level) and sends SIGHUP: every session and occupant is still
served (a groupchat and a message each arrive on the same streams), the new host serves
(in-band registration, a login), the new module answers, the log file gets debug lines,
and the log says what changed, one line each. A broken config on a second SIGHUP is
refused with file:line in the log and the error file, and the old config stays in force.
Also: a removed VirtualHost's sessions end with `host-gone`, an added external Component
is served (its listener opened by the reload), `c2s_stanza_size_limit` applies to new
connections, and (a known gap) a MUC option to new rooms.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lilt_harness.certs import make_pki
from lilt_harness.client import Client, is_message, run
from lilt_harness.muc import groupchat, join
from lilt_harness.rawstream import RawStream, StreamClosed
from lilt_harness.servers import LiltServer, make_workdir
from test_reload import PING, sighup_and_wait, wait_for
from test_shell import Console, wait_for_socket

pytestmark = pytest.mark.lilt_only

STOCK = Path("/etc/prosody/prosody.cfg.lua")
STOCK_HOSTS = ("localhost", "conference.localhost", "new.localhost")
STOCK_ROOM = "lounge@conference.localhost"
CLIENTS = 50
OCCUPANTS = 20
NS_MAM = "urn:xmpp:mam:2"
NS_REGISTER = "jabber:iq:register"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
COMPONENT = "gateway.localhost"
COMPONENT_SECRET = "gateway-secret"
MAM_QUERY = f"<iq type='set' id='{{id}}'><query xmlns='{NS_MAM}'/></iq>"


def stock_config(
    directory: Path,
    *,
    level: str = "info",
    module: str | None = None,
    new_host: bool = False,
    room_default_public: bool | None = None,
    component: bool = False,
    extra: str = "",
) -> str:
    """Debian's /etc/prosody/prosody.cfg.lua as an admin edits it: its own paths (pid
    and log files in `directory`), loopback and free ports (a test's sandbox), a MUC
    component, and the edits a reload is asked to apply (the log file's level, a module
    in `modules_enabled`, a VirtualHost, a MUC option)."""
    text = STOCK.read_text()

    def replace(old: str, new: str) -> None:
        nonlocal text
        assert old in text, f"Debian's prosody.cfg.lua has no {old!r} any more"
        text = text.replace(old, new, 1)

    replace('"/run/prosody/prosody.pid"', f'"{directory}/server.pid"')
    replace('info = "/var/log/prosody/prosody.log"', f'{level} = "{directory}/prosody.log"')
    replace('"/var/log/prosody/prosody.err"', f'"{directory}/prosody.err"')
    if module:
        replace("modules_enabled = {", f'modules_enabled = {{\n\t\t"{module}";')
    replace(
        '\nVirtualHost "localhost"',
        "\n-- The test's sandbox: loopback, free ports, its own data directory.\n"
        'interfaces = { "127.0.0.1" }\nc2s_ports = { 0 }\ns2s_ports = { }\n'
        "http_ports = { 0 }\nhttps_ports = { }\ncomponent_ports = { 0 }\n"
        f'data_path = "{directory}/data"\n{extra}\nVirtualHost "localhost"',
    )
    text += '\nComponent "conference.localhost" "muc"\n\tmuc_room_locking = false\n'
    if room_default_public is not None:
        text += f"\tmuc_room_default_public = {str(room_default_public).lower()}\n"
    if new_host:
        # The stock config loads invites_register, which (as in Prosody 0.12)
        # allows in-band registration only with an invitation unless
        # registration_invite_only is turned off.
        text += (
            '\nVirtualHost "new.localhost"\n\tallow_registration = true\n'
            "\tregistration_invite_only = false\n"
        )
    if component:
        text += f'\nComponent "{COMPONENT}"\n\tcomponent_secret = "{COMPONENT_SECRET}"\n'
    return text


@pytest.fixture
def stock_server(tmp_path):
    """lilt on Debian's stock config (with conf.d), started; stopped afterwards."""
    if not STOCK.is_file():
        pytest.skip("Debian's prosody package (its /etc/prosody/prosody.cfg.lua) is needed")
    pki = make_pki(tmp_path / "pki", STOCK_HOSTS)
    server = LiltServer(make_workdir("reload-stock"), pki)
    shutil.copytree(STOCK.parent / "conf.d", server.directory / "conf.d")
    pki.install(server.directory / "certs", list(STOCK_HOSTS))
    server.data_path.mkdir(parents=True, exist_ok=True)
    server.config_path.write_text(stock_config(server.directory))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.cleanup()


def create_accounts(server, accounts: list[tuple[str, str]]) -> None:
    """Through the admin console, as an admin of the stock config would."""
    sock = server.data_path / "prosody.sock"
    wait_for_socket(sock)
    console = Console(sock)
    try:
        for jid, password in accounts:
            _, result, _ = console.line(f'user:create("{jid}", "{password}")')
            assert result == "OK: User created", (jid, result)
    finally:
        console.close()


def register_in_band(server, domain: str, user: str, password: str) -> ET.Element:
    with RawStream(server.address, server.c2s_port, domain, ca_file=server.pki.ca_file) as s:
        s.open()
        s.starttls()
        s.send(
            f"<iq type='set' id='reg1'><query xmlns='{NS_REGISTER}'><username>{user}</username>"
            f"<password>{password}</password></query></iq>"
        )
        while True:
            e = s.recv()
            if e.get("id") == "reg1":
                return e


async def logs_in(server, jid: str, password: str) -> bool:
    """Whether `jid` can log in (the connection is closed again)."""
    client = Client(server, jid, password)
    ok = (await client.login(timeout=60)).ok
    if ok:
        await client.close()
    return ok


def host_refused(server, domain: str) -> bool:
    """Whether a stream to `domain` is refused with host-unknown."""
    with RawStream(server.address, server.c2s_port, domain) as s:
        try:
            s.open()
        except StreamClosed as e:
            return "host-unknown" in str(e)
        return False


def test_reload_on_debians_stock_config_keeps_everyone(stock_server):
    server = stock_server
    log, err = server.directory / "prosody.log", server.directory / "prosody.err"
    accounts = [(f"u{i}@localhost", f"pw-{i}") for i in range(CLIENTS)]
    create_accounts(server, accounts)

    async def body():
        loop = asyncio.get_running_loop()
        clients = [Client(server, f"{jid}/r", pw) for jid, pw in accounts]
        for c in clients:
            c.xmpp.register_plugin("xep_0198")
        for start in range(0, CLIENTS, 10):
            await asyncio.gather(*(c.connect(timeout=60) for c in clients[start : start + 10]))
        for c in clients:
            c.send_presence()
        occupants = clients[:OCCUPANTS]
        for i, c in enumerate(occupants):
            await join(c, STOCK_ROOM, f"u{i}", timeout=30)

        async def everyone_served(tag: str) -> None:
            """A groupchat reaches every occupant; every client gets a message from
            the next one."""
            text = f"groupchat {tag}"
            occupants[0].send(
                f"<message to='{STOCK_ROOM}' type='groupchat'><body>{text}</body></message>"
            )
            await asyncio.gather(
                *(c.expect(groupchat(STOCK_ROOM, text, f"{STOCK_ROOM}/u0"), 60, what=text)
                  for c in occupants)
            )
            for i, c in enumerate(clients):
                to = clients[(i + 1) % CLIENTS]
                c.send(f"<message to='{to.jid}' type='chat'><body>{tag} from {i}</body></message>")
            await asyncio.gather(
                *(c.expect(is_message(f"{tag} from {(i - 1) % CLIENTS}"), 60, what=f"{tag} to {i}")
                  for i, c in enumerate(clients))
            )

        await everyone_served("before")
        # What the reload is to change is not there yet.
        reply = await clients[0].iq(MAM_QUERY, 30)
        assert reply.get("type") == "error", ET.tostring(reply)
        assert await loop.run_in_executor(None, host_refused, server, "new.localhost")
        assert "\tdebug\t" not in log.read_text()

        # The admin edits the config and reloads.
        server.config_path.write_text(
            stock_config(server.directory, level="debug", module="mam", new_host=True,
                         room_default_public=True)
        )
        summary = await loop.run_in_executor(
            None, sighup_and_wait, server, log, r"config reloaded.*"
        )
        text = log.read_text()
        for change in (
            'VirtualHost "new.localhost" added',
            "modules loaded on localhost: mam",
            f"now to {log}",
            "option muc_room_default_public of conference.localhost changed",
        ):
            assert re.search(r"\tReload applied: .*" + re.escape(change), text), (change, summary)
        assert "needs a restart" not in summary, summary

        # Nobody was dropped: the same streams carry a groupchat and messages.
        await everyone_served("after")
        assert not any(c.closed.is_set() or c.stream_errors for c in clients)
        # The new module answers, the new host serves, the log file has debug lines.
        reply = await clients[0].iq(MAM_QUERY, 30)
        assert reply.get("type") == "result", ET.tostring(reply)
        reply = await loop.run_in_executor(
            None, register_in_band, server, "new.localhost", "newbie", "newbie-pw"
        )
        assert reply.get("type") == "result", ET.tostring(reply)
        assert await logs_in(server, "newbie@new.localhost", "newbie-pw")
        await loop.run_in_executor(None, wait_for, log, r"\tdebug\t")

        # A broken config is refused with file:line; the old one stays in force.
        good = server.config_path.read_text()
        server.config_path.write_text(good + "modules_enabled = {\n")
        refused = await loop.run_in_executor(
            None, sighup_and_wait, server, log, r".*not reloading.*"
        )
        assert "\terror\t" in refused and "prosody.cfg.lua:" in refused, refused
        assert "not reloading" in err.read_text(), "the error file lacks the refusal"
        server.check_alive()
        reply = await clients[0].iq(MAM_QUERY, 30)
        assert reply.get("type") == "result", ET.tostring(reply)
        size = log.stat().st_size
        assert await logs_in(server, "newbie@new.localhost", "newbie-pw")
        await everyone_served("refused")
        assert not any(c.closed.is_set() or c.stream_errors for c in clients)
        debug_after = await loop.run_in_executor(None, wait_for, log, r"\tdebug\t")
        assert debug_after and log.stat().st_size > size
        assert "\tdebug\t" in log.read_text(errors="replace")[size:], (
            "the debug level did not survive the refused reload"
        )
        await asyncio.gather(*(c.close() for c in clients))

    run(body(), timeout=300)


def test_a_removed_host_closes_its_sessions_with_host_gone(stock_server):
    """A VirtualHost taken out of the config stops serving: its sessions are closed
    with `host-gone` (as Prosody's hostmanager does) while the others go on."""
    server = stock_server
    log = server.directory / "prosody.log"
    server.config_path.write_text(stock_config(server.directory, new_host=True))
    sighup_and_wait(server, log, r"config reloaded.*")
    create_accounts(server, [("a@localhost", "a-pw"), ("b@new.localhost", "b-pw")])

    async def body():
        a = await Client(server, "a@localhost/r", "a-pw").connect()
        b = await Client(server, "b@new.localhost/r", "b-pw").connect()
        server.config_path.write_text(stock_config(server.directory))
        line = await asyncio.get_running_loop().run_in_executor(
            None, sighup_and_wait, server, log, r"config reloaded.*"
        )
        assert 'VirtualHost "new.localhost" removed' in line, line
        await asyncio.wait_for(b.closed.wait(), 20)
        assert b.stream_errors == ["host-gone"], b.stream_errors
        reply = await a.iq(PING)
        assert reply.get("type") == "result" and not a.closed.is_set()
        assert not await logs_in(server, "b@new.localhost", "b-pw")
        await a.close()

    run(body())


def test_a_changed_muc_option_applies_to_new_rooms(stock_server):
    """`muc_room_default_public` (default false) set by a reload: a room made after it
    is public, one made before keeps what it had."""
    server = stock_server
    log = server.directory / "prosody.log"
    create_accounts(server, [("owner@localhost", "owner-pw")])

    async def public(c, room: str) -> bool:
        reply = await c.iq(
            f"<iq type='get' id='{{id}}' to='{room}'><query xmlns='{NS_DISCO_INFO}'/></iq>"
        )
        features = {f.get("var") for f in reply.iter(f"{{{NS_DISCO_INFO}}}feature")}
        assert ("muc_public" in features) != ("muc_hidden" in features), features
        return "muc_public" in features

    async def body():
        owner = await Client(server, "owner@localhost/r", "owner-pw").connect()
        owner.send_presence()
        await join(owner, "before@conference.localhost", "owner")
        assert not await public(owner, "before@conference.localhost")
        server.config_path.write_text(
            stock_config(server.directory, room_default_public=True)
        )
        await asyncio.get_running_loop().run_in_executor(
            None, sighup_and_wait, server, log, r"config reloaded.*"
        )
        await join(owner, "after@conference.localhost", "owner")
        assert await public(owner, "after@conference.localhost")
        assert not await public(owner, "before@conference.localhost")
        await owner.close()

    run(body())


def component_handshake(port: int) -> socket.socket:
    """An external component (XEP-0114) logged in as COMPONENT; raises if refused."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        "<stream:stream xmlns='jabber:component:accept' "
        f"xmlns:stream='http://etherx.jabber.org/streams' to='{COMPONENT}'>".encode()
    )
    got = b""
    while not re.search(rb"<stream:stream[^>]*\bid=['\"]([^'\"]+)", got):
        chunk = sock.recv(4096)
        assert chunk, f"closed before the stream header: {got!r}"
        got += chunk
    stream_id = re.search(rb"<stream:stream[^>]*\bid=['\"]([^'\"]+)", got).group(1).decode()
    digest = hashlib.sha1((stream_id + COMPONENT_SECRET).encode()).hexdigest()
    sock.sendall(f"<handshake>{digest}</handshake>".encode())
    got = b""
    while b"<handshake" not in got:
        chunk = sock.recv(4096)
        assert chunk and b"stream:error" not in got, f"handshake refused: {got!r}"
        got += chunk
    return sock


def test_a_component_added_by_reload_serves(stock_server):
    """An external Component added to the config is served after SIGHUP: the component
    listener opens (none was needed before), the component logs in and gets a client's
    message."""
    server = stock_server
    log = server.directory / "prosody.log"
    assert "listening for components" not in log.read_text()
    create_accounts(server, [("a@localhost", "a-pw")])
    server.config_path.write_text(stock_config(server.directory, component=True))
    line = sighup_and_wait(server, log, r"config reloaded.*")
    assert f'Component "{COMPONENT}" added' in line, line
    port = int(re.search(r"listening for components on 127\.0\.0\.1:(\d+)", line).group(1))
    sock = component_handshake(port)

    async def body():
        async with Client(server, "a@localhost/r", "a-pw") as a:
            a.send(f"<message to='someone@{COMPONENT}'><body>to the gateway</body></message>")
            loop = asyncio.get_running_loop()
            got = b""
            deadline = loop.time() + 20
            while b"to the gateway" not in got:
                assert loop.time() < deadline, f"the component never got the message: {got!r}"
                sock.settimeout(max(0.1, deadline - loop.time()))
                chunk = await loop.run_in_executor(None, sock.recv, 65536)
                assert chunk, f"the component's stream closed: {got!r}"
                got += chunk

    try:
        run(body())
    finally:
        sock.close()


def test_a_changed_c2s_option_applies_to_new_connections(stock_server):
    """`c2s_stanza_size_limit` lowered by a reload: a connection made after it is held
    to the new limit (policy-violation), one made before keeps the limit it started
    with, as its stream was negotiated."""
    server = stock_server
    log = server.directory / "prosody.log"
    create_accounts(server, [("old@localhost", "old-pw"), ("new@localhost", "new-pw")])
    limit = 4096

    def big(to: str) -> str:
        return f"<message to='{to}' type='chat'><body>{'y' * (3 * limit)}</body></message>"

    async def body():
        before = await Client(server, "old@localhost/r", "old-pw").connect()
        server.config_path.write_text(
            stock_config(server.directory, extra=f"c2s_stanza_size_limit = {limit}\n")
        )
        line = await asyncio.get_running_loop().run_in_executor(
            None, sighup_and_wait, server, log, r"config reloaded.*"
        )
        assert "option c2s_stanza_size_limit changed" in line, line
        after = await Client(server, "new@localhost/r", "new-pw").connect()
        after.send(big(after.jid))
        await asyncio.wait_for(after.closed.wait(), 60)
        assert after.stream_errors == ["policy-violation"], after.stream_errors
        before.send(big(before.jid))
        await before.expect(is_message("y" * (3 * limit)), 60, what="the big message")
        assert not before.closed.is_set()
        await before.close()

    run(body())
