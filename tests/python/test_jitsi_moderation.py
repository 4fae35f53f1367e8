"""Jitsi's moderation components and the features-claim gating of recording, with real
clients over lilt's WebSocket (as lib-jitsi-meet connects: `?room=<name>` in the URL,
which is how the components know the room a session is in).

- The docker fixture (`prepare_docker_fixture()`, an emulated Jicofo making authenticated
  users owners): AV moderation (`avmoderation.meet.jitsi`), polls (`polls.meet.jitsi`),
  end_conference (`endconference.meet.jitsi`) change what other participants see in the
  json-message shapes lib-jitsi-meet reads; the components are announced in the main
  host's disco#info.
- A token layout (../shared/fixtures/jitsi-token.cfg.lua plus `filter_iq_jibri` on the
  VirtualHost): a `<jibri action='start'/>` IQ to the focus is refused without the
  `recording`/`livestreaming` feature claim (or, without a features claim, from a
  non-moderator), reaches the focus (a plain client answering it) when allowed, and is
  rate-limited per room.

Runs lilt only (the fixtures need Jitsi's plugins to run on Prosody).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import struct
import time
import xml.etree.ElementTree as ET
from typing import Callable

import pytest

from conftest import serving
from lilt_harness import paths
from lilt_harness.client import error_condition, q, run
from lilt_harness.jitsi import (
    DOCKER_FIXTURE_MARKS,
    AUTH_DOMAIN,
    DOMAIN,
    FOCUS_USER,
    GUEST_DOMAIN,
    MUC_DOMAIN,
    Conference,
    Jicofo,
    make_server,
)
from lilt_harness.servers import LiltServer, make_workdir

pytestmark = DOCKER_FIXTURE_MARKS

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_JITMEET = "http://jitsi.org/jitmeet"
NS_JIBRI = "http://jitsi.org/protocol/jibri"
NS_NICK = "http://jabber.org/protocol/nick"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"

FOCUS_PASSWORD = "focus-secret-2"
HOST_USER, HOST_PASSWORD = "alice", "alice-secret-2"
AV = f"avmoderation.{DOMAIN}"
POLLS = f"polls.{DOMAIN}"
END = f"endconference.{DOMAIN}"


# -- an asyncio WebSocket (RFC 7395) XMPP client ---------------------------------------


class WebClient:
    """One WebSocket session: PLAIN or ANONYMOUS login, bind, send, wait for stanzas."""

    def __init__(self, port: int, domain: str, query: str = "", http_host: str | None = None):
        self.port, self.domain, self.query = port, domain, query
        # The Host header picks the VirtualHost serving WebSocket; the stream's `to` may
        # name another one (as Jitsi's guest domain is reached).
        self.http_host = http_host or domain
        self.received: list[ET.Element] = []
        self.arrived = asyncio.Event()
        self.jid = ""
        self._ids = 0

    async def connect(self, user: str | None = None, password: str = "") -> "WebClient":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        key = base64.b64encode(os.urandom(16)).decode()
        path = "/xmpp-websocket" + (f"?{self.query}" if self.query else "")
        self.writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {self.http_host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
            ).encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        await self._open()
        if user is None:
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'/>")
        else:
            plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain}</auth>")
        answer = await self._frame()
        assert answer.tag == f"{{{NS_SASL}}}success", ET.tostring(answer)
        await self._open()
        self.send(
            f"<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='{NS_BIND}'>"
            "<resource>web</resource></bind></iq>"
        )
        bound = await self._frame()
        self.jid = bound.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid") or ""
        assert self.jid, ET.tostring(bound)
        self._task = asyncio.ensure_future(self._read_loop())
        return self

    async def _open(self) -> None:
        self.send(f"<open xmlns='{NS_FRAMING}' to='{self.domain}' version='1.0'/>")
        await self._frame()  # <open/>
        await self._frame()  # features

    async def _frame(self) -> ET.Element:
        while True:
            b0, b1 = await self.reader.readexactly(2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack(">H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(length)
            if b0 & 0x0F == 0x1:
                return ET.fromstring(payload)
            if b0 & 0x0F == 0x8:
                raise ConnectionError(f"closed by the server: {payload!r}")

    async def _read_loop(self) -> None:
        try:
            while True:
                self.received.append(await self._frame())
                self.arrived.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            return

    def send(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        if len(data) < 126:
            header = bytes([0x81, 0x80 | len(data)])
        else:
            header = bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(data))
        self.writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    async def expect(
        self, match: Callable[[ET.Element], bool], what: str, timeout: float = 10.0
    ) -> ET.Element:
        deadline = time.monotonic() + timeout
        while True:
            for i, el in enumerate(self.received):
                if match(el):
                    return self.received.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                seen = "\n".join(ET.tostring(e).decode() for e in self.received[-10:])
                raise AssertionError(f"{self.jid}: no {what} within {timeout}s; last:\n{seen}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def expect_none(
        self, match: Callable[[ET.Element], bool], what: str, wait: float = 1.0
    ) -> None:
        await asyncio.sleep(wait)
        found = [e for e in self.received if match(e)]
        assert not found, f"{self.jid}: unexpected {what}: {ET.tostring(found[0])!r}"

    async def close(self) -> None:
        try:
            self.send(f"<close xmlns='{NS_FRAMING}'/>")
            self.writer.close()
        except (ConnectionError, RuntimeError):
            pass
        task = getattr(self, "_task", None)
        if task:
            task.cancel()

    # -- MUC ----------------------------------------------------------------------------

    async def join(self, room: str, nick: str, display: str | None = None) -> ET.Element:
        extra = f"<nick xmlns='{NS_NICK}'>{display}</nick>" if display else ""
        self.send(
            f"<presence xmlns='jabber:client' to='{room}/{nick}'><x xmlns='{NS_MUC}'/>"
            f"{extra}</presence>"
        )
        return await self.expect(
            lambda e: e.tag == q("presence") and e.get("from") == f"{room}/{nick}",
            what=f"self-presence in {room}",
        )


def json_from(component: str, **fields) -> Callable[[ET.Element], bool]:
    """A message from `component` whose json-message has these fields."""

    def match(e: ET.Element) -> bool:
        if e.tag != q("message") or e.get("from") != component:
            return False
        text = e.findtext(f"{{{NS_JITMEET}}}json-message")
        if text is None:
            return False
        data = json.loads(text)
        return all(data.get(k) == v for k, v in fields.items())

    return match


def payload(message: ET.Element) -> dict:
    return json.loads(message.findtext(f"{{{NS_JITMEET}}}json-message") or "null")


def is_error_reply(ident: str) -> Callable[[ET.Element], bool]:
    return lambda e: e.get("id") == ident and e.get("type") == "error"


def role_of(presence: ET.Element) -> str | None:
    item = presence.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")
    return item.get("role") if item is not None else None


# -- the docker fixture ----------------------------------------------------------------


@pytest.fixture(scope="module")
def jitsi():
    server = make_server()
    server.register(FOCUS_USER, AUTH_DOMAIN, FOCUS_PASSWORD)
    server.register(HOST_USER, DOMAIN, HOST_PASSWORD)
    with serving(server):
        yield server


class Meeting:
    """A started conference: Jicofo in it, alice (moderator) and guests over WebSocket."""

    def __init__(self, server, name: str) -> None:
        self.server, self.name = server, name
        self.room = f"{name}@{MUC_DOMAIN}"
        self.clients: list[WebClient] = []

    async def __aenter__(self) -> "Meeting":
        self.jicofo = await Jicofo(self.server, FOCUS_PASSWORD).start()
        self.jicofo.conferences[self.room] = Conference(self.room, f"{HOST_USER}@{DOMAIN}")
        await self.jicofo.join(self.room)
        self.alice = await self.client(DOMAIN, HOST_USER, HOST_PASSWORD)
        await self.alice.join(self.room, "alice", "Alice")
        await self.alice.expect(
            lambda e: e.get("from") == f"{self.room}/alice" and role_of(e) == "moderator",
            what="moderator role granted by the focus",
        )
        return self

    async def client(self, domain: str, user: str | None = None, pw: str = "") -> WebClient:
        c = WebClient(self.server.http_port, domain, f"room={self.name}", http_host=DOMAIN)
        await c.connect(None if user is None else f"{user}", pw)
        self.clients.append(c)
        return c

    async def guest(self, nick: str, display: str) -> WebClient:
        g = await self.client(GUEST_DOMAIN)
        joined = await g.join(self.room, nick, display)
        assert role_of(joined) == "participant", ET.tostring(joined)
        return g

    async def __aexit__(self, *exc) -> None:
        for c in self.clients:
            await c.close()
        await self.jicofo.stop()


def test_components_are_announced_in_disco_info(jitsi):
    async def body():
        c = WebClient(jitsi.http_port, GUEST_DOMAIN, http_host=DOMAIN)
        await c.connect()
        try:
            c.send(f"<iq type='get' id='d1' to='{DOMAIN}'><query xmlns='{NS_DISCO_INFO}'/></iq>")
            info = await c.expect(lambda e: e.get("id") == "d1", what="disco#info")
            identities = {
                (i.get("type"), i.get("name"))
                for i in info.iter(f"{{{NS_DISCO_INFO}}}identity")
                if i.get("category") == "component"
            }
            for expected in [("av_moderation", AV), ("polls", POLLS), ("end_conference", END)]:
                assert expected in identities, identities
        finally:
            await c.close()

    run(body())


def test_av_moderation_enable_approve_and_disable(jitsi):
    async def body():
        async with Meeting(jitsi, "avroom") as m:
            room = m.room
            bob = await m.guest("bob", "Bob")
            # A participant may not enable moderation: not handled, nothing sent.
            bob.send(f"<message to='{AV}' id='b1'><av_moderation enable='true' mediaType='audio'/></message>")
            refused = await bob.expect(is_error_reply("b1"), what="refusal")
            assert error_condition(refused) == ("cancel", "service-unavailable")

            m.alice.send(f"<message to='{AV}'><av_moderation enable='true' mediaType='audio'/></message>")
            enabled = dict(type="av_moderation", enabled=True, mediaType="audio", room=room)
            for c in (m.alice, bob):
                got = payload(await c.expect(json_from(AV, **enabled), what="moderation on"))
                assert got["actor"] == f"{room}/alice", got
            # Moderators get the whitelist: the moderators (not the focus).
            lists = payload(await m.alice.expect(json_from(AV, whitelists={"audio": [f"{room}/alice"]}), what="whitelist"))
            assert lists["mediaType"] == "audio"
            await bob.expect_none(json_from(AV, type="av_moderation", whitelists=lists["whitelists"]), what="whitelist to a participant", wait=0.3)

            # Someone joining later learns audio is moderated.
            carol = await m.guest("carol", "Carol")
            await carol.expect(json_from(AV, **enabled), what="moderation state on join")

            # Approval: bob may unmute; moderators see the new whitelist.
            m.alice.send(f"<message to='{AV}'><av_moderation jidToWhitelist='{room}/bob' mediaType='audio'/></message>")
            approved = payload(await bob.expect(json_from(AV, approved=True, mediaType="audio"), what="approval"))
            assert "whitelists" not in approved and approved["room"] == room
            await m.alice.expect(
                json_from(AV, whitelists={"audio": [f"{room}/alice", f"{room}/bob"]}), what="whitelist with bob"
            )
            await carol.expect_none(json_from(AV, approved=True), what="approval for someone else", wait=0.3)

            # Taken back: moderators see it removed.
            m.alice.send(f"<message to='{AV}'><av_moderation jidToBlacklist='{room}/bob' mediaType='audio'/></message>")
            removed = payload(await m.alice.expect(json_from(AV, removed=True), what="removal"))
            assert removed["whitelists"] == {"audio": [f"{room}/alice"]}, removed

            m.alice.send(f"<message to='{AV}'><av_moderation enable='false' mediaType='audio'/></message>")
            for c in (m.alice, bob, carol):
                await c.expect(json_from(AV, enabled=False, mediaType="audio"), what="moderation off")

            # With nothing moderated, asking to unmute is a plain approval from the moderator.
            m.alice.send(f"<message to='{AV}'><av_moderation jidToWhitelist='{room}/carol' mediaType='video'/></message>")
            asked = payload(await carol.expect(json_from(AV, approved=True, mediaType="video"), what="ask to unmute"))
            assert asked["from"] == f"{room}/alice" and "whitelists" not in asked, asked

    run(body())


def test_polls_are_seen_by_everyone(jitsi):
    async def body():
        async with Meeting(jitsi, "pollroom") as m:
            bob = await m.guest("bob", "Bob")
            poll = {
                "type": "polls", "command": "new-poll", "pollId": "p1",
                "question": "Lunch?", "answers": [{"name": "pizza"}, {"name": "salad"}],
            }
            m.alice.send(f"<message to='{POLLS}' id='np'><json-message xmlns='{NS_JITMEET}'>{json.dumps(poll)}</json-message></message>")
            for c in (m.alice, bob):
                got = payload(await c.expect(json_from(POLLS, command="new-poll", pollId="p1"), what="new poll"))
                assert got["senderId"] == "alice" and got["question"] == "Lunch?", got
                assert got["answers"] == poll["answers"]

            answer = {"type": "polls", "command": "answer-poll", "pollId": "p1", "answers": [False, True]}
            bob.send(f"<message to='{POLLS}'><json-message xmlns='{NS_JITMEET}'>{json.dumps(answer)}</json-message></message>")
            for c in (m.alice, bob):
                got = payload(await c.expect(json_from(POLLS, command="answer-poll"), what="answer"))
                assert (got["senderId"], got["senderName"], got["answers"]) == ("bob", "Bob", [False, True])

            # A newcomer gets the polls so far, with the votes.
            carol = await m.guest("carol", "Carol")
            old = payload(await carol.expect(json_from(POLLS, command="old-polls"), what="old polls"))
            assert old["polls"] == [{
                "pollId": "p1", "senderId": "alice", "senderName": "Alice", "question": "Lunch?",
                "answers": [{"name": "pizza"}, {"name": "salad", "voters": [{"id": "bob", "name": "Bob"}]}],
            }], old

            # The same pollId again is refused; invalid polls are dropped.
            m.alice.send(f"<message to='{POLLS}' id='dup'><json-message xmlns='{NS_JITMEET}'>{json.dumps(poll)}</json-message></message>")
            dup = await m.alice.expect(is_error_reply("dup"), what="duplicate refused")
            assert error_condition(dup) == ("cancel", "not-allowed")
            bad = dict(poll, pollId="p2", answers=[])
            bob.send(f"<message to='{POLLS}'><json-message xmlns='{NS_JITMEET}'>{json.dumps(bad)}</json-message></message>")
            await carol.expect_none(json_from(POLLS, pollId="p2"), what="invalid poll broadcast")

    run(body())


def test_end_conference_by_a_moderator_only(jitsi):
    async def body():
        async with Meeting(jitsi, "endroom") as m:
            room = m.room
            bob = await m.guest("bob", "Bob")
            bob.send(f"<message to='{END}' id='e1'><end_conference/></message>")
            refused = await bob.expect(is_error_reply("e1"), what="refusal")
            assert error_condition(refused) == ("cancel", "service-unavailable")
            await bob.expect_none(lambda e: e.get("type") == "unavailable", what="room destroyed", wait=0.3)

            m.alice.send(f"<message to='{END}'><end_conference/></message>")
            for c, nick in ((bob, "bob"), (m.alice, "alice")):
                gone = await c.expect(
                    lambda e: e.get("from") == f"{room}/{nick}" and e.get("type") == "unavailable",
                    what="destroy presence",
                )
                destroy = gone.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}destroy")
                assert destroy is not None, ET.tostring(gone)
                assert destroy.findtext(f"{{{NS_MUC_USER}}}reason") == "The meeting has been terminated"

    run(body())


# -- the token layout: filter_iq_jibri -------------------------------------------------

jwt = None
try:
    import jwt  # type: ignore[no-redef]
except ImportError:  # pragma: no cover - the suite's requirements install it
    pass

TOKEN_HOST = "meet.example.com"
TOKEN_MUC = f"conference.{TOKEN_HOST}"
TOKEN_AUTH = f"auth.{TOKEN_HOST}"
APP_ID = "example_app_id"
SECRET = "example_app_secret_0123456789abcdef"


def token(room: str = "*", features: dict | None = None) -> str:
    now = int(time.time())
    context: dict = {"user": {"id": "u", "name": "User"}}
    if features is not None:
        context["features"] = features
    body = {"iss": APP_ID, "aud": APP_ID, "sub": TOKEN_HOST, "room": room,
            "iat": now, "nbf": now - 10, "exp": now + 3600, "context": context}
    assert jwt is not None
    return jwt.encode(body, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    if jwt is None:
        pytest.skip("skipping: PyJWT is not installed")
    from lilt_harness.certs import make_pki
    from lilt_harness.config import lua_string

    work = make_workdir("lilt-jibri-")
    shutil.copy(paths.FIXTURES / "jitsi-token.cfg.lua", work / "jitsi-token.cfg.lua")
    hosts = ["localhost", TOKEN_HOST, TOKEN_AUTH]
    pki = make_pki(tmp_path_factory.mktemp("pki"), tuple(hosts))
    pki.install(work / "certs", hosts)
    overrides = [
        f"data_path = {lua_string(str(work / 'data'))}",
        f"pidfile = {lua_string(str(work / 'prosody.pid'))}",
        f"certificates = {lua_string(str(work / 'certs'))}",
        'interfaces = { "127.0.0.1" }',
        "c2s_ports = { 0 }", "c2s_direct_tls_ports = { }", "s2s_ports = { }",
        "component_ports = { }", "http_ports = { 0 }", "https_ports = { }",
        f'admins = {{ "focus@{TOKEN_AUTH}" }}',
        # as Jitsi's installs have it (a proxy terminates TLS); the focus logs in with PLAIN
        "consider_websocket_secure = true",
        f'VirtualHost "{TOKEN_HOST}"',
        '    modules_enabled = { "bosh"; "websocket"; "ping"; "features_identity"; "filter_iq_jibri"; }',
        f'VirtualHost "{TOKEN_AUTH}"',
        '    authentication = "internal_hashed"',
        "    c2s_require_encryption = false",
        'VirtualHost "localhost"',
        '    authentication = "anonymous"',
    ]
    (work / "data").mkdir()
    (work / "overrides.cfg.lua").write_text("\n".join(overrides) + "\n")
    (work / "prosody.cfg.lua").write_text('Include "jitsi-token.cfg.lua"\nInclude "overrides.cfg.lua"\n')
    server = LiltServer(work, pki)
    server.expect_direct_tls = False
    server.register("focus", TOKEN_AUTH, FOCUS_PASSWORD)
    with serving(server):
        yield server


def http_port(server) -> int:
    deadline = time.monotonic() + 10
    while "http" not in server.listening and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.listening["http"][1]


async def token_client(port: int, tok: str, room: str) -> WebClient:
    c = WebClient(port, TOKEN_HOST, f"room={room}&token={tok}")
    return await c.connect()


def jibri_iq(room: str, ident: str, mode: str = "file", action: str = "start") -> str:
    return (
        f"<iq type='set' id='{ident}' to='{room}/focus'><jibri xmlns='{NS_JIBRI}'"
        f" action='{action}' recording_mode='{mode}'/></iq>"
    )


class Recording:
    """A room with the focus in it (answering jibri IQs as Jicofo would) and users."""

    def __init__(self, port: int, name: str) -> None:
        self.port, self.name = port, name
        self.room = f"{name}@{TOKEN_MUC}"
        self.clients: list[WebClient] = []

    async def __aenter__(self) -> "Recording":
        self.focus = WebClient(self.port, TOKEN_AUTH, http_host=TOKEN_HOST)
        await self.focus.connect("focus", FOCUS_PASSWORD)
        self.clients.append(self.focus)
        await self.focus.join(self.room, "focus")
        return self

    async def user(self, nick: str, features: dict | None, moderator: bool = False) -> WebClient:
        c = await token_client(self.port, token(features=features), self.name)
        self.clients.append(c)
        await c.join(self.room, nick)
        if moderator:
            bare = c.jid.split("/")[0]
            self.focus.send(
                f"<iq type='set' id='own-{nick}' to='{self.room}'><query xmlns='{NS_MUC_ADMIN}'>"
                f"<item affiliation='owner' jid='{bare}'/></query></iq>"
            )
            await c.expect(
                lambda e: e.get("from") == f"{self.room}/{nick}" and role_of(e) == "moderator",
                what="moderator",
            )
        return c

    async def request(self, c: WebClient, mode: str = "file") -> ET.Element:
        """Sends a jibri start; the focus answers what reaches it; returns c's answer."""
        ident = c.next_id("jibri")
        c.send(jibri_iq(self.room, ident, mode))
        reply = await c.expect(lambda e: e.get("id") == ident, what="jibri answer")
        return reply

    async def answer_focus(self) -> None:
        iq = await self.focus.expect(
            lambda e: e.tag == q("iq") and e.find(f"{{{NS_JIBRI}}}jibri") is not None,
            what="jibri IQ at the focus",
        )
        self.focus.send(f"<iq type='result' id='{iq.get('id')}' to='{iq.get('from')}'/>")

    async def __aexit__(self, *exc) -> None:
        for c in self.clients:
            await c.close()


async def allowed(rec: Recording, c: WebClient, mode: str = "file") -> ET.Element:
    ident = c.next_id("jibri")
    c.send(jibri_iq(rec.room, ident, mode))
    await rec.answer_focus()
    return await c.expect(lambda e: e.get("id") == ident, what="jibri result via the focus")


def test_jibri_start_needs_the_feature_claim(token_server):
    async def body():
        async with Recording(http_port(token_server), "rec1") as rec:
            no_rec = await rec.user("norec", {"recording": False, "livestreaming": True})
            refused = await rec.request(no_rec, "file")
            assert error_condition(refused) == ("auth", "forbidden"), ET.tostring(refused)
            await rec.focus.expect_none(lambda e: e.find(f"{{{NS_JIBRI}}}jibri") is not None, what="jibri IQ", wait=0.3)
            # Live streaming is its own feature.
            assert (await allowed(rec, no_rec, "stream")).get("type") == "result"

            rec_user = await rec.user("rec", {"recording": "true"})
            assert (await allowed(rec, rec_user, "file")).get("type") == "result"

            # Without a features claim, only a moderator may.
            plain = await rec.user("plain", None)
            refused = await rec.request(plain, "stream")
            assert error_condition(refused) == ("auth", "forbidden")

    run(body())


def test_jibri_without_features_claim_moderator_allowed_and_rate_limited(token_server):
    async def body():
        async with Recording(http_port(token_server), "rec2") as rec:
            mod = await rec.user("mod", None, moderator=True)
            for _ in range(3):
                assert (await allowed(rec, mod, "file")).get("type") == "result"
            limited = await rec.request(mod, "file")
            assert error_condition(limited) == ("wait", "policy-violation"), ET.tostring(limited)

    run(body())
