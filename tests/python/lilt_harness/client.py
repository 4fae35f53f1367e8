"""slixmpp as the real client: log in one way or another, record every stanza, wait for some.

Tests are plain functions that call `run(coro)`; inside, `Client` objects are created on
the running loop, logged in with `await client.login()`, and closed with `await
client.close()` (or by using `async with`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable

import slixmpp

from .servers import Server

NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"

TIMEOUT = 10.0

logging.getLogger("slixmpp").setLevel(logging.WARNING)


def run(coro, timeout: float = 90.0):
    """Run one test's asyncio body on a fresh event loop, with an overall limit."""

    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def q(tag: str, ns: str = NS_CLIENT) -> str:
    return f"{{{ns}}}{tag}"


@dataclass
class LoginResult:
    ok: bool
    mechanism: str | None = None
    conditions: list[str] = field(default_factory=list)
    reason: str = ""
    tls_version: str | None = None
    jid: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"logged in as {self.jid} with {self.mechanism} ({self.tls_version or 'no TLS'})"
        return f"login failed: {self.reason} {self.conditions}"


class Client:
    """One slixmpp connection to the server under test.

    transport: "starttls" (plain TCP upgraded with STARTTLS), "direct_tls"
    (c2s_direct_tls port) or "plain" (no TLS at all).
    """

    def __init__(
        self,
        server: Server,
        jid: str,
        password: str = "",
        *,
        transport: str = "starttls",
        mechanism: str | None = None,
    ) -> None:
        self.server = server
        self.transport = transport
        plugin_config = {
            "feature_mechanisms": {
                # Let the client try what the server offers; the server decides.
                "unencrypted_plain": transport == "plain",
                "unencrypted_scram": True,
            }
        }
        self.xmpp = slixmpp.ClientXMPP(
            jid, password, plugin_config=plugin_config, sasl_mech=mechanism
        )
        ctx = ssl.create_default_context(cafile=str(server.pki.ca_file))
        self.xmpp.ssl_context = ctx
        self.xmpp.enable_direct_tls = transport == "direct_tls"
        self.xmpp.enable_starttls = transport == "starttls"
        self.xmpp.enable_plaintext = transport == "plain"
        # Subscriptions are answered by the tests themselves, never automatically.
        self.xmpp.auto_authorize = None
        self.xmpp.auto_subscribe = False
        self.received: list[ET.Element] = []
        self._consumed: set[int] = set()
        self._arrived = asyncio.Event()
        self.xmpp.add_filter("in", self._record)
        self._counter = 0
        self.stream_errors: list[str] = []
        self.closed = asyncio.Event()
        self.xmpp.add_event_handler(
            "stream_error", lambda err: self.stream_errors.append(err["condition"])
        )
        self.xmpp.add_event_handler("disconnected", lambda _e: self.closed.set())

    # -- recording ------------------------------------------------------------------

    def _record(self, stanza):
        self.received.append(stanza.xml)
        self._arrived.set()
        return stanza

    @property
    def jid(self) -> str:
        return str(self.xmpp.boundjid.full)

    @property
    def bare(self) -> str:
        return str(self.xmpp.boundjid.bare)

    def next_id(self, prefix: str = "t") -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    # -- connection ------------------------------------------------------------------

    def _port(self) -> int:
        if self.transport == "direct_tls":
            if self.server.direct_tls_port is None:
                raise AssertionError("server has no c2s_direct_tls listener")
            return self.server.direct_tls_port
        return self.server.c2s_port

    async def login(self, timeout: float = 20.0) -> LoginResult:
        """Connect and authenticate; never raises for an authentication failure."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future = loop.create_future()
        conditions: list[str] = []

        def finish(result: LoginResult) -> None:
            if not outcome.done():
                outcome.set_result(result)

        def on_session_start(_event):
            ssl_object = None
            if self.xmpp.transport is not None:
                ssl_object = self.xmpp.transport.get_extra_info("ssl_object")
            mech = self.xmpp.plugin["feature_mechanisms"].mech
            finish(
                LoginResult(
                    ok=True,
                    mechanism=mech.name if mech else None,
                    tls_version=ssl_object.version() if ssl_object else None,
                    jid=str(self.xmpp.boundjid.full),
                )
            )

        def on_failed_auth(stanza):
            conditions.append(stanza["condition"])

        handlers = {
            "session_start": on_session_start,
            "failed_auth": on_failed_auth,
            "failed_all_auth": lambda _e: finish(
                LoginResult(ok=False, conditions=conditions, reason="authentication failed")
            ),
            "no_auth": lambda _e: finish(
                LoginResult(ok=False, conditions=conditions, reason="no usable mechanism")
            ),
            "connection_failed": lambda err: finish(
                LoginResult(ok=False, conditions=conditions, reason=f"connection failed: {err}")
            ),
            "stream_error": lambda err: conditions.append(f"stream:{err['condition']}"),
            "disconnected": lambda _e: finish(
                LoginResult(ok=False, conditions=conditions, reason="disconnected")
            ),
        }
        for name, handler in handlers.items():
            self.xmpp.add_event_handler(name, handler)
        self.xmpp.connect(self.server.address, self._port())
        try:
            result = await asyncio.wait_for(outcome, timeout)
        except asyncio.TimeoutError:
            result = LoginResult(ok=False, conditions=conditions, reason="timed out")
        finally:
            for name, handler in handlers.items():
                self.xmpp.del_event_handler(name, handler)
        if not result.ok:
            await self.close()
        return result

    async def connect(self, **kwargs) -> "Client":
        """Log in, failing the test when that does not work."""
        result = await self.login(**kwargs)
        assert result.ok, f"{self.xmpp.requested_jid}: {result}"
        return self

    async def close(self, timeout: float = 5.0) -> None:
        """Close the stream (no unavailable presence is sent first)."""
        self.xmpp.cancel_connection_attempt()
        if self.xmpp.transport is None:
            return
        try:
            await asyncio.wait_for(self.xmpp.disconnect(wait=1.0), timeout)
        except Exception:  # noqa: BLE001 - best-effort teardown: drop the connection
            self.xmpp.abort()

    def abort(self) -> None:
        """Drop the TCP connection without closing the stream."""
        self.xmpp.abort()

    async def __aenter__(self) -> "Client":
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sending -------------------------------------------------------------------

    def send(self, xml: str) -> None:
        self.xmpp.send_raw(xml)

    def send_presence(self, **attrs: str) -> None:
        self.xmpp.send_presence(**attrs)

    # -- waiting -------------------------------------------------------------------

    async def expect(
        self, predicate: Callable[[ET.Element], bool], timeout: float = TIMEOUT, what: str = ""
    ) -> ET.Element:
        """The first not yet consumed stanza that matches, waiting for it if needed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index, element in enumerate(self.received):
                if index not in self._consumed and predicate(element):
                    self._consumed.add(index)
                    return element
            left = deadline - loop.time()
            if left <= 0:
                seen = "\n".join(
                    ET.tostring(e, encoding="unicode")[:400] for e in self.received[-15:]
                )
                raise AssertionError(
                    f"{self.jid}: timed out waiting for {what or predicate}; last stanzas:\n{seen}"
                )
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def expect_none(
        self, predicate: Callable[[ET.Element], bool], within: float = 1.5, what: str = ""
    ) -> None:
        """Fail if a matching stanza arrives within `within` seconds."""
        try:
            got = await self.expect(predicate, timeout=within)
        except AssertionError:
            return
        raise AssertionError(
            f"{self.jid}: unexpected {what}: {ET.tostring(got, encoding='unicode')}"
        )

    async def iq(self, xml_template: str, timeout: float = TIMEOUT) -> ET.Element:
        """Send an IQ whose template has `{id}`, return the result or error for it."""
        ident = self.next_id("iq")
        self.send(xml_template.format(id=ident))
        return await self.expect(
            lambda e: e.tag == q("iq")
            and e.get("id") == ident
            and e.get("type") in ("result", "error"),
            timeout,
            what=f"reply to iq {ident}",
        )


# -- matching helpers ----------------------------------------------------------------


def is_message(body: str | None = None, from_: str | None = None, type_: str | None = None):
    def match(e: ET.Element) -> bool:
        if e.tag != q("message"):
            return False
        if from_ is not None and e.get("from") != from_:
            return False
        if type_ is not None and e.get("type", "normal") != type_:
            return False
        if body is not None and (e.findtext(q("body")) or "") != body:
            return False
        return True

    return match


def is_presence(from_: str | None = None, type_: str | None = None, bare: bool = False):
    """type_=None matches available presence only; "any" matches every presence."""

    def match(e: ET.Element) -> bool:
        if e.tag != q("presence"):
            return False
        sender = e.get("from", "")
        if from_ is not None:
            if bare and sender.split("/", 1)[0] != from_:
                return False
            if not bare and sender != from_:
                return False
        kind = e.get("type")
        if type_ == "any":
            return True
        return kind == type_

    return match


def roster_push(contact: str, subscription: str | None = None, ask: str | None = "any"):
    """A roster push about `contact`; subscription/ask are checked when given
    (ask=None means the item must carry no ask attribute)."""

    def match(e: ET.Element) -> bool:
        if e.tag != q("iq") or e.get("type") != "set":
            return False
        item = roster_item(e, contact)
        if item is None:
            return False
        if subscription is not None and item.get("subscription", "none") != subscription:
            return False
        if ask != "any" and item.get("ask") != ask:
            return False
        return True

    return match


def roster_item(stanza: ET.Element, contact: str) -> ET.Element | None:
    query = stanza.find(q("query", NS_ROSTER))
    if query is None:
        return None
    for item in query.findall(q("item", NS_ROSTER)):
        if item.get("jid") == contact:
            return item
    return None


def error_condition(stanza: ET.Element) -> tuple[str | None, str | None]:
    """(type, condition) of a stanza error, or (None, None)."""
    error = stanza.find(q("error"))
    if error is None:
        return (None, None)
    for child in error:
        if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
            return (error.get("type"), child.tag.split("}", 1)[1])
    return (error.get("type"), None)
