"""Jitsi Meet's lobby and breakout rooms on the docker fixture (muc_lobby_rooms and
muc_breakout_rooms on meet.jitsi, lobby.meet.jitsi and breakout.meet.jitsi), and the
tenant address on replies the MUC sends straight to a session (muc_domain_mapper's
outbound filter).

A host (alice@meet.jitsi) starts the conference through the emulated Jicofo and becomes
owner; guests are jitsi-anonymous on guest.meet.jitsi; the recorder is on the
whitelisted hidden.meet.jitsi. Runs lilt only (the fixture needs Jitsi's plugins).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import serving
from lilt_harness.client import error_condition, q, run
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
    conference_iq,
    make_server,
)
from lilt_harness.muc import NS_MUC_USER, MucClient

pytestmark = DOCKER_FIXTURE_MARKS

FOCUS_PASSWORD = "focus-secret-1"
HOST_USER, HOST_PASSWORD = "alice", "alice-secret-1"
RECORDER, RECORDER_PASSWORD = "recorder", "recorder-secret-1"
LOBBY_DOMAIN = f"lobby.{DOMAIN}"
BREAKOUT_DOMAIN = f"breakout.{DOMAIN}"
NS_JITMEET = "http://jitsi.org/jitmeet"
NS_MUC = "http://jabber.org/protocol/muc"
NS_NICK = "http://jabber.org/protocol/nick"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


@pytest.fixture(scope="module")
def jitsi():
    server = make_server()
    for user, host, password in [
        (FOCUS_USER, AUTH_DOMAIN, FOCUS_PASSWORD),
        (HOST_USER, DOMAIN, HOST_PASSWORD),
        (RECORDER, f"hidden.{DOMAIN}", RECORDER_PASSWORD),
    ]:
        server.register(user, host, password)
    with serving(server):
        yield server


def join(room: str, nick: str, display: str | None = None, extra: str = "") -> str:
    name = f"<nick xmlns='{NS_NICK}'>{display}</nick>" if display else ""
    return f"<presence to='{room}/{nick}'><x xmlns='{NS_MUC}'>{extra}</x>{name}</presence>"


def presence_from(jid: str, type_: str | None = None):
    return lambda e: e.tag == q("presence") and e.get("from") == jid and e.get("type") == type_


def json_of(e: ET.Element) -> dict | None:
    body = e.find(f"{{{NS_JITMEET}}}json-message")
    return json.loads(body.text or "") if e.tag == q("message") and body is not None else None


def json_event(event: str, from_: str | None = None):
    def match(e: ET.Element) -> bool:
        data = json_of(e)
        return (
            data is not None
            and data.get("event") == event
            and (from_ is None or e.get("from") == from_)
        )

    return match


async def start_conference(jitsi: JitsiServer, room: str) -> tuple[Jicofo, MucClient]:
    """Jicofo up, the host logged in, the room started, the host in it as owner."""
    jicofo = await Jicofo(jitsi, FOCUS_PASSWORD).start()
    host = MucClient(jitsi, f"{HOST_USER}@{DOMAIN}", HOST_PASSWORD)
    assert (await host.login()).ok
    deadline = time.monotonic() + 10
    while True:
        reply = await host.iq(conference_iq(room, "{id}"))
        if reply.get("type") == "result" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert reply.get("type") == "result", ET.tostring(reply)
    host.send(join(room, "alice", "Alice"))
    await host.expect(
        lambda e: presence_from(f"{room}/alice")(e)
        and e.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item").get("affiliation") == "owner",
        what="host is owner",
    )
    return jicofo, host


async def guest(jitsi: JitsiServer) -> MucClient:
    g = MucClient(jitsi, GUEST_DOMAIN, mechanism="ANONYMOUS")
    assert (await g.login()).ok
    return g


def members_only_form(room: str, on: bool) -> str:
    return (
        f"<iq type='set' id='{{id}}' to='{room}'>"
        "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
        f"<field var='muc#roomconfig_membersonly'><value>{int(on)}</value></field>"
        "</x></query></iq>"
    )


def test_lobby_knock_approve_whitelist_and_display_name(jitsi):
    room = f"lobbytest@{MUC_DOMAIN}"
    lobby = f"lobbytest@{LOBBY_DOMAIN}"

    async def body():
        jicofo, host = await start_conference(jitsi, room)
        g = await guest(jitsi)
        rec = MucClient(jitsi, f"{RECORDER}@hidden.{DOMAIN}", RECORDER_PASSWORD)
        assert (await rec.login()).ok
        try:
            # The main host announces the lobby component.
            info = await host.iq(
                f"<iq type='get' id='{{id}}' to='{DOMAIN}'><query xmlns='{NS_DISCO_INFO}'/></iq>"
            )
            identities = {
                (i.get("type"), i.get("name"))
                for i in info.iter(f"{{{NS_DISCO_INFO}}}identity")
            }
            assert ("lobbyrooms", LOBBY_DOMAIN) in identities, ET.tostring(info)
            assert ("breakout_rooms", BREAKOUT_DOMAIN) in identities
            # The lobby component answers lib-jitsi-meet's feature query on its node.
            info = await g.iq(
                f"<iq type='get' id='{{id}}' to='{LOBBY_DOMAIN}'>"
                f"<query xmlns='{NS_DISCO_INFO}' node='lobbyrooms'/></iq>"
            )
            assert info.get("type") == "result", ET.tostring(info)
            # And the breakout component on its node (current lib-jitsi-meet asks it).
            info = await g.iq(
                f"<iq type='get' id='{{id}}' to='{BREAKOUT_DOMAIN}'>"
                f"<query xmlns='{NS_DISCO_INFO}' node='breakout_rooms'/></iq>"
            )
            assert info.get("type") == "result", ET.tostring(info)

            # The moderator turns the lobby on.
            reply = await host.iq(members_only_form(room, True))
            assert reply.get("type") == "result", ET.tostring(reply)
            enabled = await host.expect(json_event("LOBBY-ENABLED"), what="LOBBY-ENABLED")
            assert json_of(enabled) == {"type": "lobby-notify", "event": "LOBBY-ENABLED", "value": True}
            assert enabled.get("from") == f"{room}/alice"
            info = await host.iq(
                f"<iq type='get' id='{{id}}' to='{room}'><query xmlns='{NS_DISCO_INFO}'/></iq>"
            )
            fields = {
                f.get("var"): f.findtext("{jabber:x:data}value")
                for f in info.iter("{jabber:x:data}field")
            }
            assert fields.get("muc#roominfo_lobbyroom") == lobby, ET.tostring(info)

            # A newcomer without a display name is asked for one.
            g.send(join(room, "guest"))
            refused = await g.expect(presence_from(f"{room}/guest", "error"), what="406")
            assert error_condition(refused) == ("modify", "not-acceptable")
            err = refused.find(q("error"))
            assert err.get("code") == "406"
            required = err.find(f"{{{NS_JITMEET}}}displayname-required")
            assert required is not None and required.get("lobby") == "true"

            # With one, it is sent to the lobby.
            g.send(join(room, "guest", "Guest"))
            refused = await g.expect(presence_from(f"{room}/guest", "error"), what="407")
            assert error_condition(refused) == ("auth", "registration-required")
            err = refused.find(q("error"))
            assert err.get("code") == "407"
            assert err.findtext(f"{{{NS_JITMEET}}}lobbyroom") == lobby
            assert refused.findtext(q("lobbyroom")) == lobby

            # The moderator waits in the lobby; the newcomer knocks.
            host.send(join(lobby, "alice", "Alice"))
            await host.expect(presence_from(f"{lobby}/alice"), what="moderator in the lobby")
            g.send(join(lobby, "guest", "Guest"))
            await g.expect(presence_from(f"{lobby}/guest"), what="knocker's self-presence")
            knock = await host.expect(presence_from(f"{lobby}/guest"), what="the knock")
            item = knock.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")
            assert item.get("jid") == g.jid
            # Knockers do not see the moderators in the lobby.
            await g.expect_none(presence_from(f"{lobby}/alice"), within=1.0, what="moderator")

            # Approval: member affiliation, then an invitation.
            reply = await host.iq(
                f"<iq type='set' id='{{id}}' to='{room}'>"
                "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                f"<item affiliation='member' jid='{g.bare}'/></query></iq>"
            )
            assert reply.get("type") == "result", ET.tostring(reply)
            host.send(
                f"<message to='{room}'><x xmlns='{NS_MUC_USER}'><invite to='{g.jid}'/></x></message>"
            )
            granted = await host.expect(json_event("LOBBY-ACCESS-GRANTED"), what="granted")
            assert json_of(granted)["value"] == f"{lobby}/guest"
            assert json_of(granted)["name"] == "Guest"
            await g.expect(
                lambda e: e.tag == q("message") and e.get("from") == room
                and e.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}invite") is not None,
                what="the invitation",
            )
            g.send(join(room, "guest", "Guest"))
            await g.expect(presence_from(f"{room}/guest"), what="guest admitted")

            # The whitelisted recorder domain skips the lobby, display name or not.
            rec.send(join(room, "recorder"))
            joined = await rec.expect(
                lambda e: e.tag == q("presence") and e.get("from") == f"{room}/recorder",
                what="recorder's join",
            )
            assert joined.get("type") is None, "\n".join(
                ET.tostring(e, encoding="unicode") for e in rec.received
            )

            # Turning it off closes the lobby, pointing to the main room.
            reply = await host.iq(members_only_form(room, False))
            assert reply.get("type") == "result", ET.tostring(reply)
            closed = await host.expect(presence_from(f"{lobby}/alice", "unavailable"), what="closed")
            destroy = closed.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}destroy")
            assert destroy is not None and destroy.get("jid") == room
            off = await host.expect(json_event("LOBBY-ENABLED"), what="LOBBY-ENABLED false")
            assert json_of(off)["value"] is False
        finally:
            for c in (rec, g, host):
                await c.close()
            await jicofo.stop()

    run(body())


def test_tenant_error_replies_carry_the_tenant_address(jitsi):
    """muc_domain_mapper's outbound filter: an error the MUC sends straight back."""

    async def body():
        g = await guest(jitsi)
        try:
            virtual = f"nosuchroom@muc.acme.{DOMAIN}"
            g.send(join(virtual, "guest", "Guest"))
            refused = await g.expect(
                lambda e: e.tag == q("presence") and e.get("type") == "error", what="refusal"
            )
            assert refused.get("from") == f"{virtual}/guest", ET.tostring(refused)
            assert error_condition(refused)[1] == "not-allowed"
        finally:
            await g.close()

    run(body())


def ws_login(port: int, user: str, password: str, room: str) -> tuple[_WebSocket, str]:
    """A WebSocket session of a host opened for `?room=` (as lib-jitsi-meet's)."""
    ws = _WebSocket(port, DOMAIN, f"/xmpp-websocket?room={room}")
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>")
    ws.recv()
    ws.recv()
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    ws.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain}</auth>")
    answer = ws.recv()
    assert answer.tag == f"{{{NS_SASL}}}success", ET.tostring(answer)
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>")
    ws.recv()
    ws.recv()
    ws.send(_bind_iq())
    jid = _bound_jid(ws.recv())
    assert jid
    return ws, jid


async def ws_expect(ws: _WebSocket, predicate, what: str, timeout: float = 10.0) -> ET.Element:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        e = await asyncio.to_thread(ws.recv)
        if predicate(e):
            return e
    raise AssertionError(f"timed out waiting for {what}")


def test_breakout_rooms_add_move_list_and_remove(jitsi):
    name = "breakouttest"
    room = f"{name}@{MUC_DOMAIN}"

    def update_with(pred):
        return lambda e: json_event("features/breakout-rooms/update", BREAKOUT_DOMAIN)(e) and pred(
            json_of(e)
        )

    async def body():
        jicofo, host = await start_conference(jitsi, room)
        g = await guest(jitsi)
        ws, ws_jid = await asyncio.to_thread(
            ws_login, jitsi.http_port, HOST_USER, HOST_PASSWORD, name
        )
        try:
            g.send(join(room, "guest", "Guest"))
            await g.expect(presence_from(f"{room}/guest"), what="guest joined")
            # The host's web session (moderator: alice is owner) joins too.
            ws.send(join(room, "alice2", "Alice"))
            await ws_expect(ws, presence_from(f"{room}/alice2"), "web session joined")

            ws.send(
                f"<message to='{BREAKOUT_DOMAIN}'><breakout_rooms xmlns='jabber:client'"
                " type='features/breakout-rooms/add' subject='Room A'/></message>"
            )
            listed = await g.expect(
                update_with(lambda d: len(d["rooms"]) == 2), what="list with the new room"
            )
            rooms = json_of(listed)["rooms"]
            main = rooms[name]
            assert main["isMainRoom"] and main["jid"] == room
            assert f"{room}/guest" in main["participants"]
            assert main["participants"][f"{room}/guest"]["displayName"] == "Guest"
            (breakout_id,) = [k for k in rooms if k != name]
            breakout = rooms[breakout_id]["jid"]
            assert breakout.endswith(f"@{BREAKOUT_DOMAIN}") and rooms[breakout_id]["name"] == "Room A"
            assert json_of(listed)["roomCounter"] == 1

            # Moving a participant: it is told where to go, and goes.
            ws.send(
                f"<message to='{BREAKOUT_DOMAIN}'><breakout_rooms xmlns='jabber:client'"
                f" type='features/breakout-rooms/move-to-room' participantJid='{g.jid}'"
                f" roomJid='{breakout}'/></message>"
            )
            move = await g.expect(json_event("features/breakout-rooms/move-to-room"), what="move")
            assert json_of(move)["roomJid"] == breakout
            # The client asks the focus for the breakout conference; Jicofo (an admin:
            # restrict_room_creation) creates the room by joining it.
            await jicofo.join(breakout)
            g.send(f"<presence to='{room}/guest' type='unavailable'><status>switch_room</status></presence>")
            g.send(join(breakout, "guest", "Guest"))
            await g.expect(presence_from(f"{breakout}/guest"), what="in the breakout room")
            moved = await host.expect(
                update_with(
                    lambda d: f"{breakout}/guest" in d["rooms"][breakout_id]["participants"]
                    and f"{room}/guest" not in d["rooms"][name]["participants"]
                ),
                what="host sees the move",
            )
            assert moved is not None

            # A breakout room that was never added cannot be created.
            g.send(join(f"notlisted@{BREAKOUT_DOMAIN}", "guest", "Guest"))
            refused = await g.expect(
                presence_from(f"notlisted@{BREAKOUT_DOMAIN}/guest", "error"), what="refused"
            )
            assert refused is not None

            # Removing it sends its occupants back to the main room.
            ws.send(
                f"<message to='{BREAKOUT_DOMAIN}'><breakout_rooms xmlns='jabber:client'"
                f" type='features/breakout-rooms/remove' breakoutRoomJid='{breakout}'/></message>"
            )
            gone = await g.expect(presence_from(f"{breakout}/guest", "unavailable"), what="closed")
            destroy = gone.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}destroy")
            assert destroy is not None and destroy.get("jid") == room
            await host.expect(update_with(lambda d: len(d["rooms"]) == 1), what="list back to one")

            # Only moderators may ask: the guest's request changes nothing.
            g.send(
                f"<message to='{BREAKOUT_DOMAIN}'><breakout_rooms xmlns='jabber:client'"
                " type='features/breakout-rooms/add' subject='Mine'/></message>"
            )
            await host.expect_none(
                update_with(lambda d: d["roomCounter"] == 2), within=1.0, what="a second room"
            )
        finally:
            ws.close()
            await g.close()
            await host.close()
            await jicofo.stop()

    run(body())


def status_codes(e: ET.Element) -> set[str]:
    return {s.get("code") for s in e.iter(f"{{{NS_MUC_USER}}}status")}


def test_breakout_switching_room_and_closing_when_all_left(jitsi):
    """Jitsi's switching-room state (a move is a leave with <status>switch_room</status>,
    not a kick; the resource stays reserved for the mover), the main room kept while a
    breakout room is occupied, and the conference closed 5 s after everyone left."""
    name = "switchtest"
    room = f"{name}@{MUC_DOMAIN}"

    def update_with(pred):
        return lambda e: json_event("features/breakout-rooms/update", BREAKOUT_DOMAIN)(e) and pred(
            json_of(e)
        )

    async def body():
        jicofo, host = await start_conference(jitsi, room)
        g, other = await guest(jitsi), await guest(jitsi)
        ws, _ = await asyncio.to_thread(ws_login, jitsi.http_port, HOST_USER, HOST_PASSWORD, name)
        try:
            g.send(join(room, "mover", "Mover"))
            await g.expect(presence_from(f"{room}/mover"), what="guest joined")
            ws.send(join(room, "alice2", "Alice"))
            await ws_expect(ws, presence_from(f"{room}/alice2"), "web session joined")
            ws.send(
                f"<message to='{BREAKOUT_DOMAIN}'><breakout_rooms xmlns='jabber:client'"
                " type='features/breakout-rooms/add' subject='Room B'/></message>"
            )
            listed = await host.expect(update_with(lambda d: len(d["rooms"]) == 2), what="listed")
            (breakout_id,) = [k for k in json_of(listed)["rooms"] if k != name]
            breakout = json_of(listed)["rooms"][breakout_id]["jid"]
            await jicofo.join(breakout)

            # The move: a leave with switch_room, seen by the others as a plain leave.
            g.send(f"<presence to='{room}/mover' type='unavailable'><status>switch_room</status></presence>")
            left = await host.expect(presence_from(f"{room}/mover", "unavailable"), what="leave")
            assert not status_codes(left) & {"307", "301", "321", "322"}, ET.tostring(left)
            # While it switches, its resource is reserved: someone else gets conflict.
            other.send(join(breakout, "mover", "Impostor"))
            refused = await other.expect(presence_from(f"{breakout}/mover", "error"), what="conflict")
            assert error_condition(refused) == ("cancel", "conflict"), ET.tostring(refused)
            # The mover arrives in the breakout room, and the list shows it there.
            g.send(join(breakout, "mover", "Mover"))
            await g.expect(presence_from(f"{breakout}/mover"), what="in the breakout room")
            await host.expect(
                update_with(lambda d: f"{breakout}/mover" in d["rooms"][breakout_id]["participants"]
                            and f"{room}/mover" not in d["rooms"][name]["participants"]),
                what="the list after the move",
            )
            # Its resource is taken in the conference: not in the main room either.
            other.send(join(room, "mover", "Impostor"))
            refused = await other.expect(presence_from(f"{room}/mover", "error"), what="conflict")
            assert error_condition(refused) == ("cancel", "conflict"), ET.tostring(refused)

            # Everyone leaves the main room: it stays (a breakout room is occupied).
            ws.send(f"<presence to='{room}/alice2' type='unavailable'/>")
            await ws_expect(ws, presence_from(f"{room}/alice2", "unavailable"), "web session left")
            host.send(f"<presence to='{room}/alice' type='unavailable'/>")
            await host.expect(presence_from(f"{room}/alice", "unavailable"), what="host left")
            await asyncio.sleep(6)
            info = await host.iq(
                f"<iq type='get' id='{{id}}' to='{room}'><query xmlns='{NS_DISCO_INFO}'/></iq>")
            # (muc_hide_all: a non-occupant's disco#info is forbidden, not item-not-found)
            assert info.get("type") == "result" or error_condition(info)[1] == "forbidden", (
                ET.tostring(info))

            # The last one leaves the breakout room: ~5 s later the conference is closed,
            # the main room and its breakout rooms destroyed.
            g.send(f"<presence to='{breakout}/mover' type='unavailable'/>")
            await g.expect(presence_from(f"{breakout}/mover", "unavailable"), what="mover left")
            deadline = time.monotonic() + 20
            while True:
                info = await host.iq(
                    f"<iq type='get' id='{{id}}' to='{room}'><query xmlns='{NS_DISCO_INFO}'/></iq>")
                gone = info.get("type") == "error" and error_condition(info)[1] == "item-not-found"
                if gone or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert gone, ET.tostring(info)
            info = await host.iq(
                f"<iq type='get' id='{{id}}' to='{breakout}'><query xmlns='{NS_DISCO_INFO}'/></iq>")
            assert info.get("type") == "error", ET.tostring(info)
        finally:
            ws.close()
            for c in (other, g, host):
                await c.close()
            await jicofo.stop()

    run(body())


def metadata_event(pred):
    def match(e: ET.Element) -> bool:
        data = json_of(e)
        return (data is not None and e.get("from") == f"metadata.{DOMAIN}"
                and data.get("type") == "room_metadata" and pred(data["metadata"]))
    return match


def test_lobby_approves_two_knockers_at_once_and_sets_lobby_enabled(jitsi):
    """Jitsi's overrides on the main MUC: one admin IQ with two items, one message with two
    invites; and jitsiMetadata.lobbyEnabled in the room metadata."""
    room = f"lobbypair@{MUC_DOMAIN}"
    lobby = f"lobbypair@{LOBBY_DOMAIN}"

    async def body():
        jicofo, host = await start_conference(jitsi, room)
        g1, g2 = await guest(jitsi), await guest(jitsi)
        try:
            reply = await host.iq(members_only_form(room, True))
            assert reply.get("type") == "result", ET.tostring(reply)
            await host.expect(metadata_event(lambda m: m.get("lobbyEnabled") is True),
                              what="lobbyEnabled true in the metadata")
            host.send(join(lobby, "alice", "Alice"))
            await host.expect(presence_from(f"{lobby}/alice"), what="moderator in the lobby")
            for g, nick in ((g1, "one"), (g2, "two")):
                g.send(join(lobby, nick, nick.title()))
                await g.expect(presence_from(f"{lobby}/{nick}"), what=f"{nick} knocks")
                await host.expect(presence_from(f"{lobby}/{nick}"), what=f"{nick}'s knock")

            # Both made members with one IQ (each item answered), invited with one message.
            host.send(
                "<iq type='set' id='pair' to='" + room + "'>"
                "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                f"<item affiliation='member' jid='{g1.bare}'/>"
                f"<item affiliation='member' jid='{g2.bare}'/></query></iq>"
            )
            for _ in range(2):
                answer = await host.expect(
                    lambda e: e.tag == q("iq") and e.get("id") == "pair", what="admin answer")
                assert answer.get("type") == "result", ET.tostring(answer)
            host.send(
                f"<message to='{room}'><x xmlns='{NS_MUC_USER}'>"
                f"<invite to='{g1.jid}'/><invite to='{g2.jid}'/></x></message>"
            )
            granted = set()
            for _ in range(2):
                e = await host.expect(json_event("LOBBY-ACCESS-GRANTED"), what="granted")
                granted.add(json_of(e)["value"])
            assert granted == {f"{lobby}/one", f"{lobby}/two"}, granted
            for g, nick in ((g1, "one"), (g2, "two")):
                await g.expect(
                    lambda e: e.tag == q("message") and e.get("from") == room
                    and e.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}invite") is not None,
                    what=f"{nick}'s invitation",
                )
                g.send(join(room, nick, nick.title()))
                await g.expect(presence_from(f"{room}/{nick}"), what=f"{nick} admitted")

            # Turning the lobby off sets lobbyEnabled false.
            reply = await host.iq(members_only_form(room, False))
            assert reply.get("type") == "result", ET.tostring(reply)
            await host.expect(metadata_event(lambda m: m.get("lobbyEnabled") is False),
                              what="lobbyEnabled false in the metadata")
        finally:
            for c in (g2, g1, host):
                await c.close()
            await jicofo.stop()

    run(body())
