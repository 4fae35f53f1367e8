"""Jitsi Meet's guest domain on the docker fixture: hosts log in on meet.jitsi, guests
(jitsi-anonymous on guest.meet.jitsi) join once a host has started the conference
through the focus (client_proxy on focus.meet.jitsi, with an emulated Jicofo behind it);
previd reuse; client_proxy's errors; failed-login throttling and its log lines.

Runs lilt only (the fixture needs Jitsi's plugins to run on Prosody).
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import serving
from lilt_harness.client import Client, LoginResult, error_condition, q, run
from lilt_harness.httpxmpp import NS_FRAMING, NS_SASL, _bind_iq, _bound_jid, _WebSocket
from lilt_harness.jitsi import (
    DOCKER_FIXTURE_MARKS,
    AUTH_DOMAIN,
    DOMAIN,
    FOCUS_COMPONENT,
    FOCUS_JID,
    FOCUS_USER,
    GUEST_DOMAIN,
    MUC_DOMAIN,
    NS_FOCUS,
    Jicofo,
    JitsiServer,
    conference_iq,
    make_server,
)
from lilt_harness.muc import NS_MUC_USER, MucClient

pytestmark = DOCKER_FIXTURE_MARKS

FOCUS_PASSWORD = "focus-secret-1"
HOST_USER, HOST_PASSWORD = "alice", "alice-secret-1"
ROOM = f"standup@{MUC_DOMAIN}"


def registered(server: JitsiServer, users: list[tuple[str, str, str]]) -> JitsiServer:
    for user, host, password in users:
        server.register(user, host, password)
    return server


@pytest.fixture(scope="module")
def jitsi():
    server = make_server()
    registered(server, [(FOCUS_USER, AUTH_DOMAIN, FOCUS_PASSWORD), (HOST_USER, DOMAIN, HOST_PASSWORD)])
    with serving(server):
        yield server


def guest(server: JitsiServer) -> MucClient:
    return MucClient(server, GUEST_DOMAIN, mechanism="ANONYMOUS")


async def conference(client: Client, room: str = ROOM) -> ET.Element:
    ident = client.next_id("conf")
    client.send(conference_iq(room, ident))
    return await client.expect(
        lambda e: e.tag == q("iq") and e.get("id") == ident, what=f"reply to {ident}"
    )


async def until_focus_reachable(client: Client, timeout: float = 10.0) -> ET.Element:
    """Conference requests until client_proxy knows a resource of the focus user."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await conference(client)
        if error_condition(reply)[1] != "service-unavailable" or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.2)


def join_presence(room: str, nick: str) -> str:
    return f"<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"


def is_from(jid: str, type_: str | None = None):
    return lambda e: e.tag == q("presence") and e.get("from") == jid and e.get("type") == type_


def affiliation(presence: ET.Element) -> str | None:
    item = presence.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")
    return item.get("affiliation") if item is not None else None


def test_guests_join_once_an_authenticated_host_has_started_the_conference(jitsi):
    async def body():
        g = guest(jitsi)
        login = await g.login()
        assert login.ok and login.mechanism == "ANONYMOUS", login
        assert g.bare.endswith(f"@{GUEST_DOMAIN}")

        # The focus user is offline: client_proxy has no resource to send to.
        reply = await conference(g)
        assert error_condition(reply) == ("cancel", "service-unavailable")
        assert reply.get("from") == FOCUS_COMPONENT

        jicofo = await Jicofo(jitsi, FOCUS_PASSWORD).start()
        try:
            # Through client_proxy to Jicofo, who refuses a guest while no room exists.
            reply = await until_focus_reachable(g)
            assert error_condition(reply) == ("cancel", "not-authorized"), ET.tostring(reply)
            assert reply.get("from") == FOCUS_COMPONENT and reply.get("to") == g.jid
            assert jicofo.requests[-1] == (g.jid, ROOM), "Jicofo saw the guest's own JID"
            # Nor can a guest create the room itself (restrict_room_creation).
            g.send(join_presence(ROOM, "guest"))
            refused = await g.expect(is_from(f"{ROOM}/guest", "error"), what="join refused")
            assert error_condition(refused)[1] == "not-allowed"

            host = MucClient(jitsi, f"{HOST_USER}@{DOMAIN}", HOST_PASSWORD)
            login = await host.login()
            assert login.ok and login.mechanism.startswith("SCRAM-"), login
            try:
                reply = await conference(host)
                assert reply.get("type") == "result", ET.tostring(reply)
                answer = reply.find(f"{{{NS_FOCUS}}}conference")
                assert answer is not None and answer.get("ready") == "true"
                assert answer.get("focusjid") == FOCUS_JID and answer.get("session-id")
                host.send(join_presence(ROOM, "alice"))
                await host.expect(is_from(f"{ROOM}/alice"), what="host joined")
                owner = await host.expect(
                    lambda e: is_from(f"{ROOM}/alice")(e) and affiliation(e) == "owner",
                    what="owner granted by the focus",
                )
                assert owner is not None

                # Now the guest's request is ready, and it joins the room.
                reply = await conference(g)
                assert reply.get("type") == "result", ET.tostring(reply)
                assert reply.find(f"{{{NS_FOCUS}}}conference").get("ready") == "true"
                g.send(join_presence(ROOM, "guest"))
                joined = await g.expect(is_from(f"{ROOM}/guest"), what="guest joined")
                assert affiliation(joined) in ("none", "member")
                await host.expect(is_from(f"{ROOM}/guest"), what="host sees the guest")

                # A session-id the focus never gave out is refused as Jicofo does.
                ident = g.next_id("conf")
                g.send(conference_iq(ROOM, ident, session_id="not-a-session"))
                reply = await g.expect(lambda e: e.get("id") == ident, what="invalid session")
                err = reply.find(q("error"))
                assert err is not None and err.find(f"{{{NS_FOCUS}}}session-invalid") is not None
            finally:
                await host.close()
        finally:
            await jicofo.stop()
            await g.close()

    run(body())


def test_client_proxy_errors(jitsi):
    async def body():
        g = guest(jitsi)
        await g.connect()
        try:
            # Messages are not proxied, either way.
            g.send(f"<message to='{FOCUS_COMPONENT}' id='m1'><body>hi</body></message>")
            reply = await g.expect(lambda e: e.get("id") == "m1", what="message error")
            assert error_condition(reply) == ("cancel", "feature-not-implemented")
            # Presence to the component from anyone but the target.
            g.send(f"<presence to='{FOCUS_COMPONENT}'/>")
            reply = await g.expect(is_from(FOCUS_COMPONENT, "error"), what="presence error")
            assert error_condition(reply) == ("cancel", "bad-request")
            # The target offline (Jicofo not connected): service-unavailable.
            reply = await conference(g)
            assert error_condition(reply) == ("cancel", "service-unavailable")
        finally:
            await g.close()

    run(body())


# -- previd: a reconnecting guest keeps its username ------------------------------------


def ws_anonymous(port: int, previd: str | None = None) -> tuple[_WebSocket, str, str]:
    """A WebSocket session on the guest domain: (socket, stream id, bound JID)."""
    path = "/xmpp-websocket" + (f"?room=standup&previd={previd}" if previd else "")
    ws = _WebSocket(port, DOMAIN, path)
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{GUEST_DOMAIN}' version='1.0'/>")
    opened = ws.recv()
    stream_id = opened.get("id", "")
    ws.recv()  # features
    ws.send(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'>{base64.b64encode(b'x').decode()}</auth>")
    answer = ws.recv()
    assert answer.tag == f"{{{NS_SASL}}}success", ET.tostring(answer)
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{GUEST_DOMAIN}' version='1.0'/>")
    ws.recv()
    ws.recv()
    ws.send(_bind_iq())
    jid = _bound_jid(ws.recv())
    assert jid, "bound"
    return ws, stream_id, jid


def test_previd_reuses_the_username_of_a_live_session(jitsi):
    port = jitsi.http_port
    first, first_id, first_jid = ws_anonymous(port)
    node = first_jid.split("@", 1)[0]
    assert first_jid.startswith(f"{node}@{GUEST_DOMAIN}/") and len(node) == 36, first_jid
    try:
        second, _, second_jid = ws_anonymous(port, previd=first_id)
        second.close()
        assert second_jid.split("@", 1)[0] == node, (first_jid, second_jid)
        other, _, other_jid = ws_anonymous(port, previd="no-such-session")
        other.close()
        assert other_jid.split("@", 1)[0] != node
    finally:
        first.close()
    # Once the session is gone, its id no longer names anybody.
    deadline = time.monotonic() + 5
    while True:
        late, _, late_jid = ws_anonymous(port, previd=first_id)
        late.close()
        if late_jid.split("@", 1)[0] != node or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert late_jid.split("@", 1)[0] != node


def test_previd_of_a_stream_management_resumption_id(jitsi):
    """What lib-jitsi-meet sends as previd: the id of `<enabled resume='true'/>`."""
    port = jitsi.http_port
    first, _, first_jid = ws_anonymous(port)
    try:
        first.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        enabled = first.recv()
        assert enabled.tag == "{urn:xmpp:sm:3}enabled", ET.tostring(enabled)
        sm_id = enabled.get("id")
        assert sm_id
        second, _, second_jid = ws_anonymous(port, previd=sm_id)
        second.close()
        assert second_jid.split("@", 1)[0] == first_jid.split("@", 1)[0]
    finally:
        first.close()


# -- throttling of failed logins --------------------------------------------------------

PERIOD = 4
WRONG = "Wr0ng-pa55word-XYZ"


@pytest.fixture(scope="module")
def throttled():
    server = make_server(
        host_options={
            # Per IP on meet.jitsi, per account on auth.meet.jitsi.
            DOMAIN: {"limit_auth_period": PERIOD, "limit_auth_max": 3},
            AUTH_DOMAIN: {
                "limit_auth_period": PERIOD,
                "limit_auth_max": 100,
                "limit_auth_account_max": 3,
            },
        }
    )
    registered(
        server,
        [
            (HOST_USER, DOMAIN, HOST_PASSWORD),
            ("jibri", AUTH_DOMAIN, "jibri-secret-1"),
            ("jvb", AUTH_DOMAIN, "jvb-secret-1"),
        ],
    )
    with serving(server):
        yield server


async def attempt(server, jid: str, password: str) -> tuple[LoginResult, float]:
    client = Client(server, jid, password, mechanism="PLAIN")
    begun = time.monotonic()
    result = await client.login()
    elapsed = time.monotonic() - begun
    if result.ok:
        await client.close()
    return result, elapsed


def test_failed_logins_from_one_ip_are_throttled(throttled):
    async def body():
        alice = f"{HOST_USER}@{DOMAIN}"
        for jid in (alice, alice, f"nobody@{DOMAIN}"):
            result, _ = await attempt(throttled, jid, WRONG)
            assert result.conditions == ["not-authorized"], result
        # Over the limit: refused even with the right password, and for anyone.
        result, _ = await attempt(throttled, alice, HOST_PASSWORD)
        assert result.conditions == ["temporary-auth-failure"], result
        result, _ = await attempt(throttled, f"nobody@{DOMAIN}", WRONG)
        assert result.conditions == ["temporary-auth-failure"], result
        await asyncio.sleep(PERIOD + 0.5)
        result, _ = await attempt(throttled, alice, HOST_PASSWORD)
        assert result.ok, result

    run(body())
    log = throttled.stderr()
    assert re.search(
        rf"Failed authentication attempt \(not-authorized\) for user alice@{re.escape(DOMAIN)}"
        r" from IP: 127\.0\.0\.1",
        log,
    ), log[-3000:]
    assert f"for user nobody@{DOMAIN} from IP" in log
    assert "Too many authentication attempts for ip 127.0.0.1" in log
    assert WRONG not in log and HOST_PASSWORD not in log


def test_failed_logins_for_one_account_are_throttled_whether_it_exists_or_not(throttled):
    async def body():
        refusals = {}
        for user, password in (("jibri", "jibri-secret-1"), ("ghost", "ghost-secret-1")):
            jid = f"{user}@{AUTH_DOMAIN}"
            for _ in range(3):
                result, _ = await attempt(throttled, jid, WRONG)
                assert result.conditions == ["not-authorized"], result
            result, elapsed = await attempt(throttled, jid, password)
            assert result.conditions == ["temporary-auth-failure"], (user, result)
            refusals[user] = elapsed
        # Another account from the same IP is not affected.
        result, _ = await attempt(throttled, f"jvb@{AUTH_DOMAIN}", "jvb-secret-1")
        assert result.ok, result
        # The same answer for the existing and the missing account, and no slower.
        assert abs(refusals["jibri"] - refusals["ghost"]) < 1.0, refusals
        await asyncio.sleep(PERIOD + 0.5)
        result, _ = await attempt(throttled, f"jibri@{AUTH_DOMAIN}", "jibri-secret-1")
        assert result.ok, result

    run(body())
    log = throttled.stderr()
    assert f"Too many authentication attempts for user jibri@{AUTH_DOMAIN}" in log
    assert f"Too many authentication attempts for user ghost@{AUTH_DOMAIN}" in log
    assert WRONG not in log and "jibri-secret-1" not in log
