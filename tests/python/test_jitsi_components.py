"""Jitsi's MUC components on the docker fixture: speakerstats_component (stats collected
from dominant-speaker messages, sent to a joining participant), room_metadata_component
(a moderator's metadata seen by all, others refused), muc_size (HTTP /room-size, /room,
/sessions) and muc_rate_limit's queued leaves.

The focus is the emulated Jicofo (it creates the room, as `restrict_room_creation`
wants, and grants owner); participants are real XMPP clients over TCP, and over
WebSocket with `?room=` where Jitsi's modules want the page's room
(`jitsi_web_query_room`). Runs lilt only (the fixture needs Jitsi's plugins on Prosody).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from conftest import serving
from lilt_harness.client import Client, q, run
from lilt_harness.httpxmpp import NS_FRAMING, NS_SASL, _bind_iq, _bound_jid, _WebSocket
from lilt_harness.jitsi import (
    DOCKER_FIXTURE_MARKS,
    AUTH_DOMAIN,
    DOMAIN,
    FOCUS_USER,
    GUEST_DOMAIN,
    MUC_DOMAIN,
    Jicofo,
    JitsiServer,
    prepare_docker_fixture,
)
from lilt_harness.muc import MucClient, disco_info, identities
from lilt_harness.servers import make_workdir

pytestmark = DOCKER_FIXTURE_MARKS

NS_JITMEET = "http://jitsi.org/jitmeet"
NS_NICK = "http://jabber.org/protocol/nick"
FOCUS_PASSWORD = "focus-secret-1"
USERS = [("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")]
SPEAKERSTATS = f"speakerstats.{DOMAIN}"
METADATA = f"metadata.{DOMAIN}"

# The fixture's module lists, plus the modules under test.
MAIN_MODULES = ["bosh", "features_identity", "websocket", "smacks", "conference_duration",
                "muc_lobby_rooms", "muc_breakout_rooms", "muc_size"]
MUC_MODULES = ["muc_hide_all", "muc_meeting_id", "muc_domain_mapper", "muc_password_whitelist",
               "muc_resource_validate", "muc_rate_limit"]


@pytest.fixture(scope="module")
def jitsi():
    directory = make_workdir("lilt-jitsi-components-")
    pki = prepare_docker_fixture(directory, host_options={DOMAIN: {"modules_enabled": MAIN_MODULES}})
    with open(directory / "overrides.cfg.lua", "a") as f:
        mods = "; ".join(f'"{m}"' for m in MUC_MODULES)
        f.write(f'Component "{MUC_DOMAIN}" "muc"\n    modules_enabled = {{ {mods} }}\n'
                "    muc_rate_joins = 50\n    muc_rate_leaves = 2\n")
    server = JitsiServer(directory, pki)
    server.register(FOCUS_USER, AUTH_DOMAIN, FOCUS_PASSWORD)
    for user, password in USERS:
        server.register(user, DOMAIN, password)
    with serving(server):
        yield server


def user(server: JitsiServer, name: str) -> MucClient:
    return MucClient(server, f"{name}@{DOMAIN}/web", dict(USERS)[name])


def join_xml(room: str, nick: str, display: str | None = None) -> str:
    name = f"<nick xmlns='{NS_NICK}'>{display}</nick>" if display else ""
    return (f"<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/>"
            f"{name}</presence>")


def self_presence(room: str, nick: str, type_: str | None = None):
    return lambda e: (e.tag == q("presence") and e.get("from") == f"{room}/{nick}"
                      and e.get("type") == type_)


def json_from(component: str):
    def match(e: ET.Element) -> bool:
        return (e.tag == q("message") and e.get("from") == component
                and e.find(f"{{{NS_JITMEET}}}json-message") is not None)
    return match


def payload(message: ET.Element) -> dict:
    return json.loads(message.find(f"{{{NS_JITMEET}}}json-message").text or "{}")


async def joined(client: Client, room: str, nick: str, display: str | None = None) -> None:
    client.send(join_xml(room, nick, display))
    await client.expect(self_presence(room, nick), what=f"self-presence in {room}")


async def focus_room(server: JitsiServer, room: str) -> Jicofo:
    jicofo = await Jicofo(server, FOCUS_PASSWORD).start()
    await jicofo.join(room)
    return jicofo


def test_speaker_stats_reach_a_joining_participant(jitsi):
    room = f"stats@{MUC_DOMAIN}"

    async def body():
        jicofo = await focus_room(jitsi, room)
        a, b, c = user(jitsi, "alice"), user(jitsi, "bob"), user(jitsi, "carol")
        try:
            for client in (a, b, c):
                await client.connect()
            await joined(a, room, "aaaa1111", "Alice")
            await joined(b, room, "bbbb2222", "Bob")
            speaking = f"<speakerstats xmlns='{NS_JITMEET}' room='{room}'/>"
            a.send(f"<message to='{SPEAKERSTATS}'>{speaking}</message>")
            await asyncio.sleep(1.2)
            b.send(f"<message to='{SPEAKERSTATS}'>{speaking}</message>")
            await asyncio.sleep(0.3)
            a.send(f"<presence to='{room}/aaaa1111' type='unavailable'/>")
            await a.expect(self_presence(room, "aaaa1111", "unavailable"), what="left")
            await joined(c, room, "cccc3333")
            stats = payload(await c.expect(json_from(SPEAKERSTATS), what="speaker stats"))
            assert stats["type"] == "speakerstats", stats
            users = stats["users"]
            assert set(users) == {"aaaa1111", "bbbb2222"}, users
            assert 1000 <= users["aaaa1111"]["totalDominantSpeakerTime"] < 3000, users
            assert users["aaaa1111"]["displayName"] == "Alice", users
            assert users["bbbb2222"]["totalDominantSpeakerTime"] >= 200, users
            # The component is announced on the main VirtualHost.
            info = await disco_info(c, DOMAIN)
            assert {"category": "component", "type": "speakerstats", "name": SPEAKERSTATS} in [
                {k: i.get(k) for k in ("category", "type", "name")} for i in identities(info)
            ] or any(i.get("type") == "speakerstats" for i in identities(info)), identities(info)
        finally:
            for client in (a, b, c):
                await client.close()
            await jicofo.stop()

    run(body())


# -- WebSocket participants whose page names the room ---------------------------------


class WsParticipant:
    """A WebSocket session opened for `?room=NAME` (blocking socket, used from a thread)."""

    def __init__(self, port: int, room_name: str, user: tuple[str, str] | None) -> None:
        domain = DOMAIN if user else GUEST_DOMAIN
        self.ws = _WebSocket(port, DOMAIN, f"/xmpp-websocket?room={room_name}")
        self.ws.sock.settimeout(0.5)
        self.pending: list[ET.Element] = []
        self._open(domain)
        if user:
            creds = base64.b64encode(f"\0{user[0]}\0{user[1]}".encode()).decode()
            self.ws.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{creds}</auth>")
        else:
            self.ws.send(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'>eA==</auth>")
        assert self._recv(5).tag == f"{{{NS_SASL}}}success"
        self._open(domain)
        self.ws.send(_bind_iq())
        self.jid = _bound_jid(self._recv(5))
        assert self.jid

    def _recv(self, timeout: float) -> ET.Element:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.ws.recv()
            except (socket.timeout, TimeoutError):
                if time.monotonic() > deadline:
                    raise

    def _open(self, domain: str) -> None:
        self.ws.send(f"<open xmlns='{NS_FRAMING}' to='{domain}' version='1.0'/>")
        self._recv(5)
        self._recv(5)

    def send(self, xml: str) -> None:
        self.ws.send(xml)

    def expect(self, predicate, timeout: float = 10.0) -> ET.Element:
        for e in self.pending:
            if predicate(e):
                self.pending.remove(e)
                return e
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                e = self.ws.recv()
            except (socket.timeout, TimeoutError):
                continue
            if predicate(e):
                return e
            self.pending.append(e)
        raise AssertionError(f"{self.jid}: timed out; got {[ET.tostring(p)[:200] for p in self.pending]}")

    def expect_none(self, predicate, within: float = 1.5) -> None:
        try:
            got = self.expect(predicate, within)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {ET.tostring(got)!r}")

    def close(self) -> None:
        self.ws.close()


def metadata_message(room: str, key: str, data) -> str:
    body = json.dumps({"key": key, "data": data})
    return (f"<message to='{METADATA}'><room_metadata xmlns='{NS_JITMEET}' room='{room}'>"
            f"{body}</room_metadata></message>")


def test_room_metadata_set_by_a_moderator_is_seen_by_all_and_refused_for_others(jitsi):
    name = "meta"
    room = f"{name}@{MUC_DOMAIN}"

    async def body():
        jicofo = await focus_room(jitsi, room)
        t = asyncio.to_thread
        try:
            mod = await t(WsParticipant, jitsi.http_port, name, USERS[0])
            guest = await t(WsParticipant, jitsi.http_port, name, None)
            for p, nick in ((mod, "mod00001"), (guest, "guest0001")):
                p.send(join_xml(room, nick))
                # The metadata so far (none) comes before the self-presence.
                initial = payload(await t(p.expect, json_from(METADATA)))
                assert initial == {"type": "room_metadata", "metadata": {}}, initial
                await t(p.expect, self_presence(room, nick))
            grant = await jicofo.grant_owner(room, mod.jid.split("/")[0])
            assert grant.get("type") == "result", ET.tostring(grant)
            await asyncio.sleep(0.3)

            mod.send(metadata_message(room, "whiteboard", {"open": True}))
            for p in (mod, guest):
                got = payload(await t(p.expect, json_from(METADATA)))
                assert got["type"] == "room_metadata"
                assert got["metadata"]["whiteboard"] == {"open": True}, got
            # A participant may not; nor may a moderator set a blocked key.
            guest.send(metadata_message(room, "whiteboard", {"open": False}))
            mod.send(metadata_message(room, "participants", ["x"]))
            await t(guest.expect_none, json_from(METADATA))
            # A newcomer gets the metadata when joining.
            late = await t(WsParticipant, jitsi.http_port, name, None)
            late.send(join_xml(room, "late0001"))
            got = payload(await t(late.expect, json_from(METADATA)))
            assert got["metadata"] == {"whiteboard": {"open": True}}, got
            for p in (mod, guest, late):
                p.close()
        finally:
            await jicofo.stop()

    run(body())


# -- muc_size ---------------------------------------------------------------------------


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_muc_size_answers_for_existing_and_missing_rooms(jitsi):
    room = f"sized@{MUC_DOMAIN}"

    async def body():
        jicofo = await focus_room(jitsi, room)
        a, b = user(jitsi, "alice"), user(jitsi, "bob")
        try:
            await a.connect()
            await b.connect()
            await joined(a, room, "aaaa", "Alice A")
            await joined(b, room, "bbbb")
            port = jitsi.http_port
            status, text = await asyncio.to_thread(
                http_get, port, f"/room-size?room=sized&domain={DOMAIN}")
            # Three occupants, the focus not counted.
            assert (status, json.loads(text)) == (200, {"participants": 2}), text
            status, text = await asyncio.to_thread(http_get, port, f"/room?room=sized&domain={DOMAIN}")
            assert status == 200
            listed = sorted(json.loads(text), key=lambda o: o["jid"])
            assert listed == [
                {"jid": f"{room}/aaaa", "email": "", "display_name": "Alice A"},
                {"jid": f"{room}/bbbb", "email": "", "display_name": ""},
            ], listed
            assert (await asyncio.to_thread(
                http_get, port, f"/room-size?room=nosuch&domain={DOMAIN}"))[0] == 404
            assert (await asyncio.to_thread(http_get, port, "/room-size"))[0] == 400
            status, text = await asyncio.to_thread(http_get, port, "/sessions")
            assert status == 200 and int(text) >= 3, text
        finally:
            await a.close()
            await b.close()
            await jicofo.stop()

    run(body())


def test_rate_limited_leaves_are_all_processed_in_order(jitsi):
    room = f"crowd@{MUC_DOMAIN}"

    async def body():
        jicofo = await focus_room(jitsi, room)
        observer = user(jitsi, "alice")
        guests = [MucClient(jitsi, GUEST_DOMAIN, mechanism="ANONYMOUS") for _ in range(6)]
        try:
            await observer.connect()
            await joined(observer, room, "observer")
            for g in guests:
                await g.connect()
            nicks = [f"guest{i}" for i in range(len(guests))]
            for g, nick in zip(guests, nicks):
                await joined(g, room, nick)
            for nick in nicks:
                await observer.expect(self_presence(room, nick), what=f"{nick} joined")
            start = time.monotonic()
            for g, nick in zip(guests, nicks):
                g.send(f"<presence to='{room}/{nick}' type='unavailable'/>")
                await asyncio.sleep(0.02)
            seen = []
            for _ in nicks:
                e = await observer.expect(
                    lambda e: e.tag == q("presence") and e.get("type") == "unavailable"
                    and e.get("from", "").startswith(f"{room}/guest"),
                    timeout=15, what="a leave")
                seen.append(e.get("from").split("/", 1)[1])
            elapsed = time.monotonic() - start
            assert seen == nicks, seen
            # 2 leaves a second: the last ones waited in the queue.
            assert elapsed >= 1.5, elapsed
            # Every leaver got its own unavailable presence.
            for g, nick in zip(guests, nicks):
                await g.expect(self_presence(room, nick, "unavailable"), what="own leave")
        finally:
            for c in [observer, *guests]:
                await c.close()
            await jicofo.stop()

    run(body())


# -- http_health ------------------------------------------------------------------------


def test_http_health_answers_ok_on_loopback(jitsi):
    # docker-jitsi-meet loads http_health globally and probes /health from the container.
    assert http_get(jitsi.http_port, "/health") == (200, "OK\n")


# -- muc_size with enable_roomsize_token_verification -----------------------------------

SIZE_APP_ID = "size_app"
SIZE_SECRET = "size_secret_0123456789abcdef0123"


@pytest.fixture(scope="module")
def jitsi_sized():
    """The docker fixture with a token configuration on the main host and
    enable_roomsize_token_verification (the main host still logs in with passwords)."""
    directory = make_workdir("lilt-jitsi-roomsize-")
    options = {"modules_enabled": MAIN_MODULES, "app_id": SIZE_APP_ID,
               "app_secret": SIZE_SECRET, "enable_roomsize_token_verification": True,
               # Jitsi's default is false (only the room claim is checked);
               # the `sub` cases below need it.
               "enable_domain_verification": True}
    pki = prepare_docker_fixture(directory, host_options={DOMAIN: options})
    server = JitsiServer(directory, pki)
    server.register(FOCUS_USER, AUTH_DOMAIN, FOCUS_PASSWORD)
    server.register("alice", DOMAIN, "alice-pw")
    with serving(server):
        yield server


def test_muc_size_verifies_the_token_parameter(jitsi_sized):
    jwt = pytest.importorskip("jwt")
    room = f"tokened@{MUC_DOMAIN}"
    now = int(time.time())

    def token(secret: str = SIZE_SECRET, **over) -> str:
        body = {"iss": SIZE_APP_ID, "aud": SIZE_APP_ID, "sub": DOMAIN, "room": "tokened",
                "iat": now, "nbf": now - 10, "exp": now + 3600}
        body.update(over)
        return jwt.encode(body, secret, algorithm="HS256")

    async def body():
        jicofo = await focus_room(jitsi_sized, room)
        a = user(jitsi_sized, "alice")
        try:
            await a.connect()
            await joined(a, room, "aaaa", "Alice A")
            port = jitsi_sized.http_port
            base = f"/room-size?room=tokened&domain={DOMAIN}"

            async def get(path: str) -> tuple[int, str]:
                return await asyncio.to_thread(http_get, port, path)

            # No token, a bad signature, an expired token, another room, another domain: 403.
            assert (await get(base))[0] == 403
            assert (await get(f"{base}&token={token(secret='wrong-secret-0123456789abcdef0123')}"))[0] == 403
            assert (await get(f"{base}&token={token(exp=now - 60)}"))[0] == 403
            assert (await get(f"{base}&token={token(room='other')}"))[0] == 403
            assert (await get(f"{base}&token={token(sub='elsewhere.example')}"))[0] == 403
            assert (await get(f"/room?room=tokened&domain={DOMAIN}&token=garbage"))[0] == 403
            # A good token for the room (or any room) is answered.
            status, text = await get(f"{base}&token={token()}")
            assert (status, json.loads(text)) == (200, {"participants": 1}), text
            status, text = await get(f"{base}&token={token(room='*')}")
            assert status == 200, text
            status, text = await get(f"/room?room=tokened&domain={DOMAIN}&token={token()}")
            assert status == 200 and [o["jid"] for o in json.loads(text)] == [f"{room}/aaaa"], text
            # Verified before the lookup (as Jitsi's): a token for a missing room is 404.
            missing = f"/room-size?room=nosuch&domain={DOMAIN}&token={token(room='nosuch')}"
            assert (await get(missing))[0] == 404
        finally:
            await a.close()
            await jicofo.stop()

    run(body())
