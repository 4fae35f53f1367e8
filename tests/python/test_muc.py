"""Multi-user chat (XEP-0045) through the whole server: occupants, messages, routing.

One server per module with `Component "conference.localhost" "muc"` at Prosody's defaults
(`muc_room_locking` on, so a new room answers 201 and stays locked until configured);
each test uses its own rooms. Roles, affiliations and room configuration are in
test_muc_admin.py, persistence in test_muc_persistence.py, hostile input in
test_muc_hostile.py.
"""

from __future__ import annotations

import asyncio
import datetime
import xml.etree.ElementTree as ET

import pytest
from conftest import running_server
from slixmpp import JID

from lilt_harness.client import error_condition, q, run
from lilt_harness.muc import (
    CREATED,
    MUC_HOST,
    MUC_USERS,
    NICK_CHANGED,
    NS_DELAY,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_MUC_USER,
    NS_PING,
    NS_VERSION,
    ROOMINFO,
    SELF,
    VERSION_NAME,
    anonymous,
    create_room,
    disco_info,
    disco_items,
    features,
    form_values,
    groupchat,
    identities,
    instant,
    is_subject,
    item,
    join,
    join_refused,
    leave,
    muc_config,
    occupant_presence,
    online,
    send_iq,
    settle,
    status_codes,
    user,
)

NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"


@pytest.fixture(scope="module")
def server(server_kind, pki):
    with running_server(server_kind, pki, muc_config(), users=MUC_USERS) as srv:
        yield srv


def occupant_id(stanza) -> str | None:
    found = stanza.find(q("occupant-id", NS_OCCUPANT_ID))
    return found.get("id") if found is not None else None


def bodies(messages) -> list[str]:
    return [m.findtext(q("body")) or "" for m in messages]


def test_join_order_and_room_creation(server):
    """The creator gets 201 and a locked room; later joiners get everyone's presence
    first, then their own with 110; real JIDs only go to moderators."""
    room = f"lobby@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob", "carol") as (alice, bob, carol):
            created = await join(alice, room, "Alice")
            assert {CREATED, SELF} <= created.codes
            assert item(created.self_presence)["affiliation"] == "owner"
            assert item(created.self_presence)["role"] == "moderator"
            assert created.occupants == []

            # Locked until the owner configures it (muc_room_locking).
            refused = await join_refused(bob, room, "Bob")
            assert (refused.error_type, refused.condition) == ("cancel", "item-not-found")
            await instant(alice, room)

            # Bob joins through slixmpp's XEP-0045 plugin.
            own, subject, occupants, _history = await bob.muc.join_muc_wait(
                JID(room), "Bob", maxstanzas=0, timeout=10
            )
            assert SELF in own["muc"]["status_codes"]
            assert CREATED not in own["muc"]["status_codes"]
            others = [str(p["from"]) for p in occupants if p["from"] != own["from"]]
            assert others == [f"{room}/Alice"]
            assert subject.xml.find(q("subject")) is not None
            at = {id(e): i for i, e in enumerate(bob.received)}
            alice_seen = next(e for e in bob.received if e.get("from") == f"{room}/Alice")
            own_seen = next(e for e in bob.received if SELF in status_codes(e))
            assert at[id(alice_seen)] < at[id(own_seen)], "occupants come before own presence"
            await alice.expect(occupant_presence(f"{room}/Bob"), what="Bob's arrival")

            joined = await join(carol, room, "Carol")
            assert SELF in joined.codes and CREATED not in joined.codes
            assert {e.get("from") for e in joined.occupants} == {f"{room}/Alice", f"{room}/Bob"}
            presences = [e for e in joined.order if e.tag == q("presence")]
            assert presences[-1] is joined.self_presence, "own presence is the last one"
            assert joined.order[-1] is joined.subject, "the subject ends the join"
            # Semi-anonymous room: a participant does not see real JIDs, except its own.
            assert all("jid" not in item(e) for e in joined.occupants)
            assert item(joined.self_presence)["jid"] == carol.jid
            assert item(joined.self_presence)["role"] == "participant"
            assert item(joined.self_presence)["affiliation"] == "none"
            # The moderator sees Carol's real JID; Bob does not.
            seen_by_alice = await alice.expect(occupant_presence(f"{room}/Carol"))
            assert item(seen_by_alice)["jid"] == carol.jid
            assert SELF not in status_codes(seen_by_alice)
            seen_by_bob = await bob.expect(occupant_presence(f"{room}/Carol"))
            assert "jid" not in item(seen_by_bob)

            # XEP-0421: one stable occupant id per occupant, whoever looks.
            alice_id = occupant_id(created.self_presence)
            assert alice_id
            assert occupant_id(alice_seen) == alice_id
            from_alice = [e for e in joined.occupants if e.get("from") == f"{room}/Alice"]
            assert occupant_id(from_alice[0]) == alice_id
            assert occupant_id(seen_by_alice) == occupant_id(joined.self_presence)

    run(body())


def test_groupchat_and_subject(server):
    room = f"talk@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob", "carol", "dave") as (alice, bob, carol, dave):
            await create_room(alice, room, "Alice")
            await join(bob, room, "Bob")

            alice.muc.set_subject(room, "Today: tests")
            for c in (alice, bob):
                got = await c.expect(is_subject(room), what="subject change")
                assert got.get("from") == f"{room}/Alice"
                assert got.findtext(q("subject")) == "Today: tests"

            bob.send(
                f"<message to='{room}' type='groupchat' id='g1'><body>hello room</body></message>"
            )
            for c in (alice, bob):
                got = await c.expect(groupchat(room, "hello room"), what="groupchat")
                assert got.get("from") == f"{room}/Bob"
                assert got.get("id") == "g1"

            # A participant may not change the subject by default.
            bob.send(
                f"<message to='{room}' type='groupchat' id='s2'><subject>mine</subject></message>"
            )
            refused = await bob.expect(lambda e: e.get("id") == "s2" and e.get("type") == "error")
            assert error_condition(refused) == ("auth", "forbidden")

            # Someone outside the room cannot talk in it.
            carol.send(
                f"<message to='{room}' type='groupchat' id='o1'><body>let me in</body></message>"
            )
            refused = await carol.expect(lambda e: e.get("id") == "o1" and e.get("type") == "error")
            assert error_condition(refused) == ("cancel", "not-acceptable")
            await alice.expect_none(groupchat(room, "let me in"), within=0.5)

            # A newcomer gets the current subject, from whoever set it, last.
            joined = await join(dave, room, "Dave", history={"maxstanzas": 0})
            assert joined.subject is not None
            assert joined.subject.findtext(q("subject")) == "Today: tests"
            assert joined.subject.get("from") == f"{room}/Alice"

    run(body())


def test_history_on_join(server):
    """maxstanzas, maxchars, seconds, since and the default, oldest first, each with a
    delay stamped by the room."""
    room = f"history@{MUC_HOST}"
    filler = " " + "x" * 500  # one stanza ~600 characters, two over 1000

    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            await create_room(alice, room, "Alice")

            async def say(text: str) -> None:
                alice.send(f"<message to='{room}' type='groupchat'><body>{text}</body></message>")
                await alice.expect(groupchat(room, text), what=f"echo of {text[:3]}")

            for n in (1, 2, 3):
                await say(f"m{n}{filler}")
            await asyncio.sleep(1.5)
            middle = datetime.datetime.now(datetime.timezone.utc)
            await asyncio.sleep(1.5)
            for n in (4, 5):
                await say(f"m{n}{filler}")

            async def history(**spec) -> list[str]:
                joined = await join(bob, room, "Bob", history=spec or None)
                await leave(bob, room, "Bob")
                for m in joined.history:
                    delay = m.find(q("delay", NS_DELAY))
                    assert delay is not None and delay.get("from") == room
                    assert m.get("from") == f"{room}/Alice"
                return [b.split(" ", 1)[0] for b in bodies(joined.history)]

            assert await history(seconds=2) == ["m4", "m5"]
            assert await history(maxstanzas=2) == ["m4", "m5"]
            assert await history(maxchars=0) == []
            assert await history(maxchars=1000) == ["m5"]
            assert await history(since=middle.strftime("%Y-%m-%dT%H:%M:%SZ")) == ["m4", "m5"]
            assert await history() == ["m1", "m2", "m3", "m4", "m5"]

    run(body())


def test_private_messages_between_occupants(server):
    room = f"whisper@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob", "carol") as (alice, bob, carol):
            await create_room(alice, room, "Alice")
            await join(bob, room, "Bob")
            await join(carol, room, "Carol")

            bob.send(f"<message to='{room}/Carol' type='chat' id='pm1'><body>psst</body></message>")
            got = await carol.expect(
                lambda e: e.tag == q("message") and e.findtext(q("body")) == "psst"
            )
            assert got.get("from") == f"{room}/Bob"
            assert got.get("type") == "chat"

            carol.send(f"<message to='{room}/Bob' type='chat'><body>what?</body></message>")
            got = await bob.expect(
                lambda e: e.tag == q("message") and e.findtext(q("body")) == "what?"
            )
            assert got.get("from") == f"{room}/Carol"
            await alice.expect_none(
                lambda e: e.tag == q("message") and e.findtext(q("body")) in ("psst", "what?"),
                within=0.5,
            )

            bob.send(
                f"<message to='{room}/Nobody' type='chat' id='pm2'><body>hello?</body></message>"
            )
            refused = await bob.expect(lambda e: e.get("id") == "pm2" and e.get("type") == "error")
            assert error_condition(refused) == ("cancel", "item-not-found")

    run(body())


def test_mediated_invite_and_decline(server):
    room = f"party@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "dave") as (alice, dave):
            await create_room(alice, room, "Alice")
            alice.muc.invite(room, dave.bare, "join us")
            invite = await dave.expect(
                lambda e: e.tag == q("message")
                and e.find(f"{q('x', NS_MUC_USER)}/{q('invite', NS_MUC_USER)}") is not None,
                what="invitation",
            )
            assert invite.get("from") == room
            inv = invite.find(f"{q('x', NS_MUC_USER)}/{q('invite', NS_MUC_USER)}")
            # A semi-anonymous room names the inviter by occupant JID when in the room.
            assert inv.get("from") == f"{room}/Alice"
            assert alice.bare not in ET.tostring(invite, encoding="unicode")
            legacy = invite.find(q("x", "jabber:x:conference"))
            assert legacy is not None and legacy.get("jid") == room
            assert inv.findtext(q("reason", NS_MUC_USER)) == "join us"

            dave.muc.decline(room, alice.jid, "busy")
            decline = await alice.expect(
                lambda e: e.tag == q("message")
                and e.find(f"{q('x', NS_MUC_USER)}/{q('decline', NS_MUC_USER)}") is not None,
                what="decline",
            )
            assert decline.get("from") == room
            dec = decline.find(f"{q('x', NS_MUC_USER)}/{q('decline', NS_MUC_USER)}")
            assert dec.get("from") == dave.jid
            assert dec.findtext(q("reason", NS_MUC_USER)) == "busy"

    run(body())


def test_nick_conflict_and_change(server):
    room = f"names@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            await create_room(alice, room, "Alice")
            refused = await join_refused(bob, room, "Alice")
            assert (refused.error_type, refused.condition) == ("cancel", "conflict")
            joined = await join(bob, room, "Bob")
            bob_id = occupant_id(joined.self_presence)
            await alice.expect(occupant_presence(f"{room}/Bob"))

            bob.send(f"<presence to='{room}/Robert'/>")
            for c, own in ((alice, False), (bob, True)):
                gone = await c.expect(
                    occupant_presence(f"{room}/Bob", type_="unavailable", codes={NICK_CHANGED}),
                    what="303 from the old nick",
                )
                assert item(gone)["nick"] == "Robert"
                assert (SELF in status_codes(gone)) == own
                back = await c.expect(occupant_presence(f"{room}/Robert"), what="new nick")
                assert (SELF in status_codes(back)) == own
                assert occupant_id(back) == bob_id
            bob.send(f"<message to='{room}' type='groupchat'><body>renamed</body></message>")
            got = await alice.expect(groupchat(room, "renamed"))
            assert got.get("from") == f"{room}/Robert"

            # The old nick is free again; the new one is taken.
            bob.send(f"<presence to='{room}/Alice'/>")
            taken = await bob.expect(lambda e: e.get("type") == "error" and e.tag == q("presence"))
            assert error_condition(taken) == ("cancel", "conflict")

    run(body())


def test_iq_routed_to_occupant_and_back(server):
    """Any IQ to room/nick reaches that occupant from the sender's occupant JID, and the
    reply comes back from the occupant JID with the original id (Jitsi depends on it)."""
    room = f"iq@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob", "carol") as (alice, bob, carol):
            await create_room(alice, room, "Alice")
            await join(bob, room, "Bob")
            await join(carol, room, "Carol")

            reply = await send_iq(bob, "get", f"{room}/Carol", f"<ping xmlns='{NS_PING}'/>")
            assert reply.get("type") == "result"
            assert reply.get("from") == f"{room}/Carol"
            seen = [
                e
                for e in carol.received
                if e.tag == q("iq") and e.find(q("ping", NS_PING)) is not None
            ]
            assert seen and seen[-1].get("from") == f"{room}/Bob", "carol sees the occupant JID"
            assert bob.jid not in {e.get("from") for e in carol.received}

            reply = await send_iq(bob, "get", f"{room}/Carol", f"<query xmlns='{NS_VERSION}'/>")
            assert reply.get("type") == "result"
            assert reply.get("from") == f"{room}/Carol"
            assert (
                reply.findtext(f"{q('query', NS_VERSION)}/{q('name', NS_VERSION)}") == VERSION_NAME
            )

            # An error from the occupant comes back the same way.
            reply = await send_iq(
                carol, "get", f"{room}/Bob", "<query xmlns='urn:example:unknown'/>"
            )
            assert reply.get("type") == "error"
            assert reply.get("from") == f"{room}/Bob"
            assert error_condition(reply)[1] in ("service-unavailable", "feature-not-implemented")

            reply = await send_iq(bob, "get", f"{room}/Nobody", f"<ping xmlns='{NS_PING}'/>")
            assert error_condition(reply) == ("cancel", "item-not-found")

    run(body())


def test_unavailable_when_connection_drops(server):
    room = f"drop@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            await create_room(alice, room, "Alice")
            await join(bob, room, "Bob")
            await alice.expect(occupant_presence(f"{room}/Bob"))
            bob.abort()
            gone = await alice.expect(
                occupant_presence(f"{room}/Bob", type_="unavailable"), what="Bob's unavailable"
            )
            assert item(gone)["role"] == "none"
            info = await disco_info(alice, room)
            assert form_values(info)["muc#roominfo_occupants"] == ["1"]

    run(body())


def test_disco_of_service_and_rooms(server):
    listed = f"listed@{MUC_HOST}"
    hidden = f"hidden@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            info = await disco_info(bob, MUC_HOST)
            assert info.get("type") == "result"
            assert {"category": "conference", "type": "text"}.items() <= identities(info)[0].items()
            assert {"http://jabber.org/protocol/muc", NS_DISCO_INFO, NS_DISCO_ITEMS} <= features(
                info
            )

            await create_room(
                alice,
                listed,
                "Alice",
                {
                    "muc#roomconfig_roomname": "Listed room",
                    "muc#roomconfig_roomdesc": "Where tests meet",
                    "muc#roomconfig_publicroom": True,
                },
            )
            await create_room(alice, hidden, "Alice")  # Prosody's default: not public
            await join(bob, listed, "Bob")

            info = await disco_info(bob, listed)
            assert info.get("type") == "result"
            ident = identities(info)
            assert (
                ident
                and ident[0].get("category") == "conference"
                and ident[0].get("type") == "text"
            )
            assert ident[0].get("name") == "Listed room"
            feats = features(info)
            assert {
                "http://jabber.org/protocol/muc",
                "muc_public",
                "muc_temporary",
                "muc_open",
                "muc_unmoderated",
                "muc_semianonymous",
                "muc_unsecured",
            } <= feats
            values = form_values(info)
            assert values["FORM_TYPE"] == [ROOMINFO]
            assert values["muc#roominfo_occupants"] == ["2"]
            assert values["muc#roominfo_description"] == ["Where tests meet"]

            info = await disco_info(bob, hidden)
            assert {"muc_hidden", "muc_temporary"} <= features(info)
            assert "muc_public" not in features(info)

            items = await disco_items(bob, MUC_HOST)
            assert items.get("type") == "result"
            listing = {i.get("jid"): i.get("name") for i in items.iter(q("item", NS_DISCO_ITEMS))}
            assert listing.get(listed) == "Listed room"
            assert hidden not in listing

            missing = await disco_info(bob, f"nosuchroom@{MUC_HOST}")
            assert error_condition(missing) == ("cancel", "item-not-found")

    run(body())


def test_leave_empties_temporary_room(server):
    """A temporary room goes away with its last occupant: joining again creates it anew."""
    room = f"fleeting@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            await create_room(alice, room, "Alice")
            await join(bob, room, "Bob")
            await leave(bob, room, "Bob", status="bye")
            gone = await alice.expect(occupant_presence(f"{room}/Bob", type_="unavailable"))
            assert gone.findtext(q("status")) == "bye"
            await leave(alice, room, "Alice")
            await settle()
            again = await join(bob, room, "Bob")
            assert CREATED in again.codes
            assert item(again.self_presence)["affiliation"] == "owner"

    run(body())


def test_many_occupants_see_each_other(server):
    """Twenty guests join one after the other: each gets exactly the occupants before it,
    every occupant sees every later arrival, and one groupchat message reaches all once."""
    room = f"crowd@{MUC_HOST}"
    guests = 20

    async def body():
        async with online(server, "alice") as (alice,):
            await create_room(alice, room, "Alice")
            crowd = [anonymous(server) for _ in range(guests)]
            try:
                await asyncio.gather(*(c.connect() for c in crowd))
                for n, c in enumerate(crowd):
                    joined = await join(c, room, f"guest{n}", history={"maxstanzas": 0})
                    expected = {f"{room}/Alice"} | {f"{room}/guest{m}" for m in range(n)}
                    assert {e.get("from") for e in joined.occupants} == expected
                    assert len(joined.occupants) == len(expected), "each occupant once"
                for n, c in enumerate(crowd):
                    for m in range(n + 1, guests):
                        await c.expect(occupant_presence(f"{room}/guest{m}"), what=f"guest{m}")
                assert await occupant_count(alice, room) == guests + 1

                crowd[-1].send(
                    f"<message to='{room}' type='groupchat'><body>hello all</body></message>"
                )
                for c in [alice, *crowd]:
                    await c.expect(groupchat(room, "hello all"), what="the broadcast")
                await settle()
                for c in [alice, *crowd]:
                    copies = [e for e in c.received if groupchat(room, "hello all")(e)]
                    assert len(copies) == 1, f"{c.jid} got {len(copies)} copies"
            finally:
                await asyncio.gather(*(c.close() for c in crowd), return_exceptions=True)

    run(body())


async def occupant_count(client, room: str) -> int:
    info = await disco_info(client, room)
    assert info.get("type") == "result", f"room info: {error_condition(info)}"
    return int(form_values(info)["muc#roominfo_occupants"][0])


def test_two_sessions_of_one_user_share_a_nick(server):
    """Two resources of Bob join under one nick: one occupant for the others, messages
    reach both sessions, and the occupant leaves only with the last session."""
    room = f"sessions@{MUC_HOST}"

    async def body():
        second = user(server, "bob", resource="second")
        async with online(server, "alice", "bob", "carol") as (alice, bob, carol):
            await second.connect()
            try:
                await create_room(alice, room, "Alice")
                await join(bob, room, "Bob")
                await join(carol, room, "Carol")
                await alice.expect(occupant_presence(f"{room}/Bob"))
                joined = await join(second, room, "Bob")
                assert item(joined.self_presence)["role"] == "participant"
                assert {e.get("from") for e in joined.occupants} >= {
                    f"{room}/Alice",
                    f"{room}/Carol",
                }

                carol.send(f"<message to='{room}' type='groupchat'><body>to both</body></message>")
                for c in (bob, second):
                    await c.expect(groupchat(room, "to both"), what="message on each session")
                carol.send(f"<message to='{room}/Bob' type='chat'><body>private</body></message>")
                for c in (bob, second):
                    await c.expect(
                        lambda e: e.tag == q("message") and e.findtext(q("body")) == "private",
                        what="private message on each session",
                    )

                # The first session leaves: Bob is still there for the others.
                await leave(bob, room, "Bob")
                await alice.expect_none(
                    occupant_presence(f"{room}/Bob", type_="unavailable"), within=0.5
                )
                carol.send(f"<message to='{room}' type='groupchat'><body>still?</body></message>")
                await second.expect(groupchat(room, "still?"))
                await bob.expect_none(groupchat(room, "still?"), within=0.3)
                # The last one leaves: now Bob is gone.
                await leave(second, room, "Bob")
                await alice.expect(occupant_presence(f"{room}/Bob", type_="unavailable"))
                assert await occupant_count(alice, room) == 2
            finally:
                await second.close()

    run(body())
