"""Jitsi Meet deployments for whole-server tests: the docker fixture served by lilt, and
an emulated Jicofo (the conference focus) to talk to through `client_proxy`.

- `prepare_docker_fixture()` copies `../shared/fixtures/jitsi-docker` (prosody.cfg.lua +
  conf.d) unchanged into a fresh directory next to a `prosody.cfg.lua` that `Include`s it
  and then `overrides.cfg.lua`: loopback, ports 0 (c2s, http), paths and certificates in
  the directory, each `ssl` host's key and certificate, plus any options a test adds.
- `JitsiServer` is a `LiltServer` that waits for `meet.jitsi` instead of `localhost`.
- `Jicofo` logs in as `focus@auth.<domain>` and does what Jicofo does for a guest domain
  (`authentication.type = XMPP`): it answers `<conference/>` IQs arriving through
  `focus.<domain>` (`client_proxy`, which puts the requester's JID in the resource of
  `from`), lets an authenticated user (a JID of `<domain>`) start a room, refuses a
  guest (`not-authorized`, and `session-invalid` for an unknown `session-id`) until a
  room is started, joins started rooms as `focus` (an admin, so `restrict_room_creation`
  lets it create them) and makes the authenticated users who join them owners.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from . import paths
from .certs import TestPki, make_pki
from .client import q
from .config import lua_string, lua_value
from .muc import NS_MUC_ADMIN, NS_MUC_USER, MucClient
from .rawstream import RawStream, StreamClosed
from .servers import LiltServer, ServerError, make_workdir

NS_FOCUS = "http://jitsi.org/protocol/focus"

DOMAIN = "meet.jitsi"
GUEST_DOMAIN = f"guest.{DOMAIN}"
AUTH_DOMAIN = f"auth.{DOMAIN}"
MUC_DOMAIN = f"muc.{DOMAIN}"
FOCUS_COMPONENT = f"focus.{DOMAIN}"
FOCUS_USER = "focus"
FOCUS_JID = f"{FOCUS_USER}@{AUTH_DOMAIN}"

FIXTURE = "jitsi-docker"
# The VirtualHosts of the docker fixture (each gets a certificate) and those with `ssl`.
FIXTURE_HOSTS = (DOMAIN, GUEST_DOMAIN, AUTH_DOMAIN, f"hidden.{DOMAIN}")
SSL_HOSTS = (DOMAIN, AUTH_DOMAIN)


def fixture_available() -> bool:
    return (paths.FIXTURES / FIXTURE / "prosody.cfg.lua").is_file()


# The marks of a test module that runs lilt on the docker fixture: lilt only, and a clear
# skip when ../shared or the fixture is absent.
DOCKER_FIXTURE_MARKS = [
    pytest.mark.lilt_only,
    pytest.mark.skipif(not paths.shared_available(), reason=paths.SKIP_NO_SHARED),
    pytest.mark.skipif(
        paths.shared_available() and not fixture_available(),
        reason=f"skipping: ../shared/fixtures/{FIXTURE} not found",
    ),
]


def prepare_docker_fixture(
    directory: Path,
    *,
    extra_globals: dict[str, Any] | None = None,
    host_options: dict[str, dict[str, Any]] | None = None,
) -> TestPki:
    """Lay the docker fixture out in `directory` (see the module docs); returns the PKI
    whose CA the clients trust."""
    shutil.copytree(paths.FIXTURES / FIXTURE, directory / FIXTURE)
    for sub in ("data", "certs"):
        (directory / sub).mkdir(exist_ok=True)
    pki = make_pki(directory / "pki", FIXTURE_HOSTS)
    pki.install(directory / "certs", list(FIXTURE_HOSTS))
    settings: dict[str, Any] = {
        "data_path": str(directory / "data"),
        "pidfile": str(directory / "server.pid"),
        "certificates": str(directory / "certs"),
        "interfaces": ["127.0.0.1"],
        "c2s_ports": [0],
        "c2s_direct_tls_ports": [],
        "http_ports": [0],
        "https_ports": [],
        "component_ports": [],
        "s2s_ports": [],
    }
    settings.update(extra_globals or {})
    lines = ["-- test overrides: Included last, so each of these wins"]
    lines += [f"{key} = {lua_value(value)}" for key, value in settings.items()]
    per_host: dict[str, dict[str, Any]] = {host: {} for host in SSL_HOSTS}
    for host, options in (host_options or {}).items():
        per_host.setdefault(host, {}).update(options)
    for host, options in per_host.items():
        lines.append(f"VirtualHost {lua_string(host)}")
        if host in SSL_HOSTS:
            ssl = {
                "key": str(directory / "certs" / f"{host}.key"),
                "certificate": str(directory / "certs" / f"{host}.crt"),
            }
            lines.append(f"    ssl = {lua_value(ssl, '    ')}")
        lines += [f"    {key} = {lua_value(value, '    ')}" for key, value in options.items()]
    (directory / "overrides.cfg.lua").write_text("\n".join(lines) + "\n")
    (directory / "prosody.cfg.lua").write_text(
        f'Include {lua_string(f"{FIXTURE}/prosody.cfg.lua")}\nInclude "overrides.cfg.lua"\n'
    )
    return pki


class JitsiServer(LiltServer):
    """lilt serving a Jitsi config: ready once a stream to `meet.jitsi` gets features."""

    def __init__(self, directory: Path, pki: TestPki) -> None:
        super().__init__(directory, pki)
        self.expect_direct_tls = False

    def wait_ready(self, deadline: float) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with RawStream(self.address, self.c2s_port, DOMAIN, timeout=2.0) as stream:
                    stream.open()
                    return
            except (OSError, StreamClosed, TimeoutError) as err:
                last = err
                time.sleep(0.1)
        raise ServerError(f"lilt did not serve {DOMAIN} in time ({last})\n{self.logs()}")

    @property
    def http_port(self) -> int:
        # The c2s port answers before lilt has printed every listener: wait a little
        # for the HTTP line rather than race the stdout reader.
        deadline = time.monotonic() + 10
        while True:
            for kind, (_, port) in list(self.listening.items()):
                if kind.startswith("http"):
                    return port
            if time.monotonic() > deadline:
                raise ServerError(f"no HTTP listener reported (saw {self.listening})")
            time.sleep(0.02)

    def stderr(self) -> str:
        return self.stderr_log.read_text(errors="replace") if self.stderr_log.exists() else ""


def conference_iq(room: str, ident: str, session_id: str | None = None) -> str:
    """What lib-jitsi-meet sends to the focus component before joining a room."""
    session = f" session-id={quoteattr(session_id)}" if session_id else ""
    return (
        f"<iq type='set' id='{ident}' to='{FOCUS_COMPONENT}'>"
        f"<conference xmlns='{NS_FOCUS}' room={quoteattr(room)}"
        f" machine-uid='{uuid.uuid4().hex}'{session}/></iq>"
    )


def original_sender(proxied_from: str) -> str:
    """The requester's JID inside a client_proxy address (`focus.x/<jid>`), as Jicofo's
    parseJidFromClientProxyJid reads it; other addresses are returned unchanged."""
    domain, _, resource = proxied_from.partition("/")
    return resource if domain == FOCUS_COMPONENT and resource else proxied_from


@dataclass
class Conference:
    room: str
    started_by: str
    owners: set[str] = field(default_factory=set)


class Jicofo:
    """The conference focus, as far as a guest domain needs it (see the module docs)."""

    def __init__(self, server, password: str, *, domain: str = DOMAIN) -> None:
        self.domain = domain
        self.client = MucClient(server, FOCUS_JID, password)
        self.conferences: dict[str, Conference] = {}
        self.sessions: dict[str, str] = {}  # session-id -> authenticated bare JID
        self.requests: list[tuple[str, str]] = []  # (requester, room) as received
        self._tasks: set[asyncio.Task] = set()
        xmpp = self.client.xmpp
        xmpp.register_handler(
            Callback(
                "jitsi conference",
                MatchXPath(f"{{jabber:client}}iq/{{{NS_FOCUS}}}conference"),
                self._on_conference,
            )
        )
        xmpp.add_event_handler("presence_subscribe", self._on_subscribe)
        xmpp.add_event_handler("groupchat_presence", self._on_room_presence)

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> "Jicofo":
        await self.client.connect()
        self.client.send("<presence/>")
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.client.close()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- presence: client_proxy follows ours once we accept its subscription ----------

    def _on_subscribe(self, presence) -> None:
        if str(presence["from"].bare) == f"focus.{self.domain}":
            self.client.send(f"<presence type='subscribed' to='focus.{self.domain}'/>")

    # -- conference requests ----------------------------------------------------------

    def _reply(self, request: ET.Element, payload: str) -> None:
        self.client.send(
            f"<iq type='result' id={quoteattr(request.get('id', ''))}"
            f" to={quoteattr(request.get('from', ''))}>{payload}</iq>"
        )

    def _error(self, request: ET.Element, conditions: str, text: str) -> None:
        self.client.send(
            f"<iq type='error' id={quoteattr(request.get('id', ''))}"
            f" to={quoteattr(request.get('from', ''))}><error type='cancel'>{conditions}"
            f"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{text}</text></error></iq>"
        )

    def _on_conference(self, iq) -> None:
        request = iq.xml
        if request.get("type") != "set":
            return
        conference = request.find(f"{{{NS_FOCUS}}}conference")
        assert conference is not None
        room = conference.get("room", "")
        requester = original_sender(request.get("from", ""))
        self.requests.append((requester, room))
        bare = requester.split("/", 1)[0]
        authenticated = "@" in bare and bare.split("@", 1)[1] == self.domain
        session_id = conference.get("session-id")
        not_authorized = "<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        if session_id and self.sessions.get(session_id) != bare:
            self._error(
                request,
                not_authorized + f"<session-invalid xmlns='{NS_FOCUS}'/>",
                "invalid session",
            )
            return
        if room not in self.conferences:
            if not authenticated:
                self._error(request, not_authorized, "not authorized user domain")
                return
            self.conferences[room] = Conference(room, bare)
            self._spawn(self._start_room(request, room, bare))
            return
        self._answer_ready(request, room, bare if authenticated else None)

    def _answer_ready(self, request: ET.Element, room: str, authenticated: str | None) -> None:
        session = ""
        if authenticated:
            session_id = uuid.uuid4().hex
            self.sessions[session_id] = authenticated
            session = f" session-id='{session_id}' identity={quoteattr(authenticated)}"
        self._reply(
            request,
            f"<conference xmlns='{NS_FOCUS}' room={quoteattr(room)} ready='true'"
            f" focusjid='{FOCUS_JID}'{session}>"
            "<property name='authentication' value='true'/>"
            "<property name='externalAuth' value='false'/></conference>",
        )

    async def _start_room(self, request: ET.Element, room: str, starter: str) -> None:
        await self.join(room)
        self._answer_ready(request, room, starter)

    async def join(self, room: str) -> ET.Element:
        """Join `room` as `focus` (creating it), with the room's self-presence returned."""
        self.client.send(
            f"<presence to={quoteattr(room + '/focus')}>"
            "<x xmlns='http://jabber.org/protocol/muc'/></presence>"
        )
        return await self.client.expect(
            lambda e: e.tag == q("presence")
            and e.get("from") == f"{room}/focus"
            and e.get("type") is None,
            what=f"self-presence in {room}",
        )

    # -- owners: authenticated participants get owner, as Jicofo grants moderator -----

    def _on_room_presence(self, presence) -> None:
        room = str(presence["from"].bare)
        conference = self.conferences.get(room)
        if conference is None or presence["type"] == "unavailable":
            return
        item = presence.xml.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")
        if item is None or not item.get("jid"):
            return
        bare = item.get("jid", "").split("/", 1)[0]
        if bare.endswith(f"@{self.domain}") and bare not in conference.owners:
            conference.owners.add(bare)
            self._spawn(self.grant_owner(room, bare))

    async def grant_owner(self, room: str, jid: str) -> ET.Element:
        return await self.client.iq(
            f"<iq type='set' id='{{id}}' to={quoteattr(room)}>"
            f"<query xmlns='{NS_MUC_ADMIN}'><item affiliation='owner' jid={quoteattr(jid)}/>"
            "</query></iq>"
        )


def make_server(**fixture_options) -> JitsiServer:
    directory = make_workdir("lilt-jitsi-")
    pki = prepare_docker_fixture(directory, **fixture_options)
    return JitsiServer(directory, pki)
