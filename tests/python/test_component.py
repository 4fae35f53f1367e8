"""External components (XEP-0114) with slixmpp's ComponentXMPP: the handshake and its
refusals, stanzas both ways between a client and a component, the error for a component
that is not connected, a second connection for the same component, and `from` checks.

Run against Prosody (`--server=prosody`) the same tests are the differential check of
these behaviours (Prosody 0.12's mod_component is the specification).
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from typing import Callable

import pytest
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from lilt_harness.client import Client, error_condition, is_message, q, run
from lilt_harness.config import DOMAIN, Component, base_config
from lilt_harness.servers import free_port

NS_COMPONENT = "jabber:component:accept"
NS_COMPONENT_STATUS = "xmpp:prosody.im/protocol/component"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
SECRET = "component-secret"
USERS = [("alice", DOMAIN, "alice-pw")]

COMP = "comp.localhost"
CONFLICT = "conflict.localhost"
FROM = "from.localhost"
IDLE = "idle.localhost"
NOSECRET = "nosecret.localhost"
MUC = "conference.localhost"


@pytest.fixture(scope="module")
def server(server_kind, pki):
    from conftest import running_server

    port = 0 if server_kind == "lilt" else free_port()
    config = base_config(
        extra_globals={"component_ports": [port], "component_interfaces": ["127.0.0.1"]}
    )
    for host in (COMP, CONFLICT, FROM):
        config.hosts[host] = Component(options={"component_secret": SECRET})
    config.hosts[IDLE] = Component(options={"component_secret": SECRET, "name": "Idle service"})
    config.hosts[NOSECRET] = Component()
    config.hosts[MUC] = Component("muc")
    with running_server(server_kind, pki, config, users=USERS) as running:
        running.component_port = port or lilt_component_port(running)
        yield running


def lilt_component_port(server) -> int:
    deadline = time.monotonic() + 10
    while "component" not in server.listening:
        assert time.monotonic() < deadline, f"no component listener in {server.listening}"
        time.sleep(0.05)
    return server.listening["component"][1]


def local(e: ET.Element) -> str:
    return e.tag.rsplit("}", 1)[-1]


class Comp:
    """One slixmpp ComponentXMPP connection; records every stanza it receives and
    answers nothing by itself (the tests do)."""

    def __init__(self, server, domain: str, secret: str = SECRET) -> None:
        self.server = server
        self.xmpp = slixmpp.ComponentXMPP(domain, secret, "127.0.0.1", server.component_port)
        self.received: list[ET.Element] = []
        self._arrived = asyncio.Event()
        self.stream_errors: list[tuple[str, str]] = []
        self.started = asyncio.Event()
        self.closed = asyncio.Event()
        self.xmpp.add_filter("in", self._record)
        # Every IQ is "handled", so slixmpp does not answer them itself.
        self.xmpp.register_handler(
            Callback("any iq", MatchXPath(f"{{{NS_COMPONENT}}}iq"), lambda _s: None)
        )
        self.xmpp.add_event_handler(
            "stream_error", lambda err: self.stream_errors.append((err["condition"], err["text"]))
        )
        self.xmpp.add_event_handler("session_start", lambda _e: self.started.set())
        self.xmpp.add_event_handler("disconnected", lambda _e: self.closed.set())

    def _record(self, stanza):
        self.received.append(stanza.xml)
        self._arrived.set()
        return stanza

    async def start(self, timeout: float = 10.0) -> bool:
        """Connect and handshake: True once accepted, False once the server closed it."""
        self.xmpp.connect()
        started = asyncio.ensure_future(self.started.wait())
        closed = asyncio.ensure_future(self.closed.wait())
        await asyncio.wait({started, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for f in (started, closed):
            f.cancel()
        if not self.started.is_set():
            self.xmpp.abort()
        return self.started.is_set()

    async def close(self) -> None:
        self.xmpp.cancel_connection_attempt()
        if self.xmpp.transport is None:
            return
        try:
            await asyncio.wait_for(self.xmpp.disconnect(wait=1.0), 5)
        except Exception:  # noqa: BLE001 - best-effort teardown
            self.xmpp.abort()

    def send(self, xml: str) -> None:
        self.xmpp.send_raw(xml)

    async def expect(
        self, predicate: Callable[[ET.Element], bool], timeout: float = 10.0, what: str = ""
    ) -> ET.Element:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = 0
        while True:
            for element in self.received[seen:]:
                seen += 1
                if predicate(element):
                    return element
            left = deadline - loop.time()
            if left <= 0:
                got = "\n".join(ET.tostring(e, encoding="unicode")[:300] for e in self.received)
                raise AssertionError(f"component: timed out waiting for {what}; got:\n{got}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                pass


def named(name: str, **attrs: str) -> Callable[[ET.Element], bool]:
    return lambda e: local(e) == name and all(e.get(k) == v for k, v in attrs.items())


def alice(server) -> Client:
    return Client(server, f"alice@{DOMAIN}", "alice-pw")


async def refused(server, domain: str, secret: str = SECRET) -> list[tuple[str, str]]:
    comp = Comp(server, domain, secret)
    accepted = await comp.start()
    await comp.close()
    assert not accepted, f"{domain} was accepted"
    return comp.stream_errors


def test_handshake_accepted(server):
    async def body():
        comp = Comp(server, COMP)
        assert await comp.start(), f"handshake refused: {comp.stream_errors}"
        await comp.close()

    run(body())


def test_wrong_secret_is_not_authorized(server):
    errors = run(refused(server, COMP, "not-the-secret"))
    assert [c for c, _ in errors] == ["not-authorized"]


def test_host_without_secret_is_not_authorized(server):
    assert [c for c, _ in run(refused(server, NOSECRET))] == ["not-authorized"]


@pytest.mark.parametrize("domain", ["nowhere.localhost", DOMAIN, MUC])
def test_hosts_that_are_not_external_components_are_unknown(server, domain):
    errors = run(refused(server, domain))
    assert [c for c, _ in errors] == ["host-unknown"]
    assert "does not match any configured external components" in errors[0][1]


def test_stanzas_both_ways(server):
    async def body():
        comp = Comp(server, COMP)
        assert await comp.start()
        async with alice(server) as a:
            # Client to component: the domain, a bare JID and a full JID on it.
            for to in (COMP, f"bot@{COMP}", f"bot@{COMP}/res"):
                a.send(f"<message to='{to}' type='chat'><body>to {to}</body></message>")
                m = await comp.expect(named("message", to=to), what=f"message to {to}")
                assert m.get("from") == a.jid
                assert m.findtext(q("body", NS_COMPONENT)) == f"to {to}"

            # Component to client, from the domain and from a JID on it.
            comp.send(f"<message from='bot@{COMP}/x' to='{a.jid}'><body>hello</body></message>")
            await a.expect(is_message("hello", from_=f"bot@{COMP}/x"), what="component message")
            comp.send(f"<message to='{a.jid}'><body>no from</body></message>")
            await a.expect(is_message("no from", from_=COMP), what="from stamped with domain")

            # An IQ from the client, answered by the component.
            a.send(f"<iq type='get' id='v1' to='{COMP}'><query xmlns='jabber:iq:version'/></iq>")
            iq = await comp.expect(named("iq", id="v1"), what="iq get")
            comp.send(
                f"<iq type='result' id='v1' from='{COMP}' to='{iq.get('from')}'>"
                "<query xmlns='jabber:iq:version'><name>comp</name></query></iq>"
            )
            reply = await a.expect(
                lambda e: e.tag == q("iq") and e.get("id") == "v1", what="iq result"
            )
            assert reply.get("type") == "result" and reply.get("from") == COMP

            # An IQ from the component, answered by the server.
            comp.send(f"<iq type='get' id='p1' from='{COMP}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
            pong = await comp.expect(named("iq", id="p1"), what="ping result")
            assert pong.get("type") == "result"

            # Presence both ways.
            comp.send(f"<presence from='bot@{COMP}/x' to='{a.jid}'><status>here</status></presence>")
            await a.expect(
                lambda e: e.tag == q("presence") and e.get("from") == f"bot@{COMP}/x",
                what="component presence",
            )
            a.send(f"<presence to='bot@{COMP}'/>")
            p = await comp.expect(named("presence", to=f"bot@{COMP}"), what="directed presence")
            assert p.get("from") == a.jid
        await comp.close()

    run(body())


def test_disconnected_component_bounces(server):
    async def body():
        async with alice(server) as a:
            for to, by in ((IDLE, None), (f"someone@{IDLE}", IDLE)):
                a.send(f"<message to='{to}' id='b1'><body>anyone?</body></message>")
                e = await a.expect(
                    lambda e: e.tag == q("message") and e.get("type") == "error",
                    what="bounce",
                )
                assert e.get("from") == to
                assert error_condition(e) == ("wait", "remote-server-timeout")
                err = e.find(q("error"))
                assert err.get("by") == by
                assert err.find(f"{{{NS_COMPONENT_STATUS}}}not-connected") is not None
            # disco#info to the host: answered by the server with the section's name.
            reply = await a.iq(f"<iq type='get' to='{IDLE}' id='{{id}}'><query xmlns='{NS_DISCO_INFO}'/></iq>")
            assert reply.get("type") == "result"
            identity = reply.find(f"{q('query', NS_DISCO_INFO)}/{q('identity', NS_DISCO_INFO)}")
            assert identity is not None and identity.get("name") == "Idle service"
            reply = await a.iq(f"<iq type='get' to='{IDLE}' id='{{id}}'><ping xmlns='urn:xmpp:ping'/></iq>")
            assert error_condition(reply) == ("wait", "remote-server-timeout")

    run(body())


def test_second_connection_is_refused(server):
    async def body():
        first = Comp(server, CONFLICT)
        assert await first.start()
        second = Comp(server, CONFLICT)
        assert not await second.start()
        assert [c for c, _ in second.stream_errors] == ["conflict"]
        await second.close()
        async with alice(server) as a:
            a.send(f"<message to='{CONFLICT}'><body>still there?</body></message>")
            await first.expect(named("message", to=CONFLICT), what="message to first")
            # Once the first is gone, stanzas bounce.
            await first.close()
            await asyncio.sleep(0.5)
            a.send(f"<message to='{CONFLICT}' id='gone'><body>gone?</body></message>")
            e = await a.expect(lambda e: e.get("id") == "gone", what="bounce")
            assert error_condition(e) == ("wait", "remote-server-timeout")
        # And a new connection is accepted.
        third = Comp(server, CONFLICT)
        assert await third.start(), third.stream_errors
        await third.close()

    run(body())


def test_from_outside_the_domain_is_invalid_from(server):
    async def body():
        comp = Comp(server, FROM)
        assert await comp.start()
        comp.send(f"<message from='someone@{DOMAIN}' to='alice@{DOMAIN}'><body>spoof</body></message>")
        await asyncio.wait_for(comp.closed.wait(), 10)
        assert [c for c, _ in comp.stream_errors] == ["invalid-from"]
        await comp.close()

    run(body())


def test_stanza_without_to_is_bad_request(server):
    async def body():
        comp = Comp(server, COMP)
        assert await comp.start()
        comp.send("<message id='nt'><body>where?</body></message>")
        e = await comp.expect(named("message", id="nt"), what="error")
        assert e.get("type") == "error"
        cond = [local(c) for c in e.find(f"{{{NS_COMPONENT}}}error")]
        assert "bad-request" in cond
        await comp.close()

    run(body())


def test_subdomains_are_not_routed_to_the_component(server):
    async def body():
        comp = Comp(server, COMP)
        assert await comp.start()
        async with alice(server) as a:
            a.send(f"<message to='x@sub.{COMP}'><body>sub</body></message>")
            with pytest.raises(AssertionError):
                await comp.expect(named("message"), timeout=1.5, what="subdomain message")
        await comp.close()

    run(body())
