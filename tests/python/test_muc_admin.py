"""Multi-user chat (XEP-0045): roles, affiliations and room configuration.

Grants and revocations seen by every occupant, kick and ban with reasons, voice in a
moderated room (and a voice request), password and members-only rooms, the owner
configuration form of a reserved room, destroy with an alternate venue.
"""

from __future__ import annotations

import pytest
from conftest import running_server

from lilt_harness.client import error_condition, q, run
from lilt_harness.muc import (
    BANNED,
    CREATED,
    KICKED,
    MUC_HOST,
    MUC_USERS,
    NON_ANONYMOUS,
    NS_DATA,
    NS_MUC_ADMIN,
    NS_MUC_OWNER,
    NS_MUC_USER,
    ROOMCONFIG,
    SELF,
    admin_list,
    admin_set,
    create_room,
    disco_info,
    features,
    form_field_types,
    form_values,
    form_xml,
    get_config,
    groupchat,
    is_subject,
    item,
    item_reason,
    join,
    join_refused,
    leave,
    muc_config,
    occupant_presence,
    online,
    owner_set,
    send_iq,
    status_codes,
    submit_config,
)

CONFIG_CHANGED = 104
NOW_NON_ANONYMOUS = 172
AFFILIATION_CHANGED = 321
NS_REQUEST = "http://jabber.org/protocol/muc#request"


@pytest.fixture(scope="module")
def server(server_kind, pki):
    with running_server(server_kind, pki, muc_config(), users=MUC_USERS) as srv:
        yield srv


async def seen_by_all(clients, occupant: str, **attrs: str):
    """Every client gets the occupant's new presence with these item attributes."""
    got = []
    for c in clients:
        got.append(
            await c.expect(occupant_presence(occupant, **attrs), what=f"{occupant} as {attrs}")
        )
    return got


def test_affiliations_and_roles_seen_by_all(server):
    room = f"ranks@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob", "carol") as everyone:
            alice, bob, carol = everyone
            await create_room(alice, room, "Alice")
            await join(bob, room, "Bob")
            await join(carol, room, "Carol")

            # member, through slixmpp's plugin
            await alice.muc.set_affiliation(room, "member", jid=bob.bare)
            await seen_by_all(everyone, f"{room}/Bob", affiliation="member", role="participant")
            # admin: becomes a moderator
            await alice.muc.set_affiliation(room, "admin", jid=bob.bare)
            seen = await seen_by_all(everyone, f"{room}/Bob", affiliation="admin", role="moderator")
            assert SELF in status_codes(seen[1]) and SELF not in status_codes(seen[0])
            assert [i["jid"] for i in await admin_list(alice, room, affiliation="admin")] == [
                bob.bare
            ]
            # revoked back to member
            await alice.muc.set_affiliation(room, "member", jid=bob.bare)
            await seen_by_all(everyone, f"{room}/Bob", affiliation="member", role="participant")
            assert [i["jid"] for i in await admin_list(alice, room, affiliation="member")] == [
                bob.bare
            ]
            assert await admin_list(alice, room, affiliation="admin") == []

            # owner, then back to none
            reply = await admin_set(alice, room, jid=carol.bare, affiliation="owner")
            assert reply.get("type") == "result"
            await seen_by_all(everyone, f"{room}/Carol", affiliation="owner", role="moderator")
            owners = {i["jid"] for i in await admin_list(carol, room, affiliation="owner")}
            assert owners == {alice.bare, carol.bare}
            reply = await admin_set(alice, room, jid=carol.bare, affiliation="none")
            assert reply.get("type") == "result"
            await seen_by_all(everyone, f"{room}/Carol", affiliation="none", role="participant")

            # moderator role without an affiliation, then revoked
            await alice.muc.set_role(room, "Carol", "moderator")
            await seen_by_all(everyone, f"{room}/Carol", affiliation="none", role="moderator")
            assert "Carol" in await alice.muc.get_roles_list(room, "moderator")
            await alice.muc.set_role(room, "Carol", "participant")
            await seen_by_all(everyone, f"{room}/Carol", affiliation="none", role="participant")

            # A member may not hand out admin, nor may a participant change roles.
            reply = await admin_set(bob, room, jid=carol.bare, affiliation="admin")
            assert reply.get("type") == "error"
            assert error_condition(reply)[1] in ("not-allowed", "forbidden")
            reply = await admin_set(bob, room, nick="Carol", role="visitor")
            assert reply.get("type") == "error"
            assert error_condition(reply)[1] in ("not-allowed", "forbidden")
            await carol.expect_none(occupant_presence(f"{room}/Carol", role="visitor"), within=0.5)
            # Lists are for admins and owners.
            reply = await send_iq(
                carol,
                "get",
                room,
                f"<query xmlns='{NS_MUC_ADMIN}'><item affiliation='member'/></query>",
            )
            assert error_condition(reply) == ("auth", "forbidden")

    run(body())


def test_kick_and_ban_with_reasons(server):
    room = f"court@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob", "carol", "dave") as (alice, bob, carol, dave):
            await create_room(alice, room, "Alice")
            for c, nick in ((bob, "Bob"), (carol, "Carol"), (dave, "Dave")):
                await join(c, room, nick)

            reply = await admin_set(alice, room, nick="Bob", role="none", reason="spam")
            assert reply.get("type") == "result"
            kicked = await bob.expect(
                occupant_presence(f"{room}/Bob", type_="unavailable", codes={KICKED, SELF}),
                what="307 to the kicked user",
            )
            assert item(kicked)["role"] == "none"
            assert item_reason(kicked) == "spam"
            seen = await dave.expect(
                occupant_presence(f"{room}/Bob", type_="unavailable", codes={KICKED})
            )
            assert SELF not in status_codes(seen)
            assert item_reason(seen) == "spam"
            # A kicked user may come back.
            again = await join(bob, room, "Bob")
            assert item(again.self_presence)["role"] == "participant"

            reply = await admin_set(
                alice, room, jid=carol.bare, affiliation="outcast", reason="trolling"
            )
            assert reply.get("type") == "result"
            banned = await carol.expect(
                occupant_presence(f"{room}/Carol", type_="unavailable", codes={BANNED, SELF}),
                what="301 to the banned user",
            )
            assert item(banned)["affiliation"] == "outcast"
            assert item_reason(banned) == "trolling"
            await dave.expect(
                occupant_presence(f"{room}/Carol", type_="unavailable", codes={BANNED})
            )
            refused = await join_refused(carol, room, "Carol")
            assert (refused.error_type, refused.condition) == ("auth", "forbidden")
            refused = await join_refused(carol, room, "Someone else")
            assert (refused.error_type, refused.condition) == ("auth", "forbidden")
            outcasts = await admin_list(alice, room, affiliation="outcast")
            assert [i["jid"] for i in outcasts] == [carol.bare]

            # Participants cannot kick; an admin cannot kick an owner; nobody is not there.
            reply = await admin_set(dave, room, nick="Bob", role="none")
            assert error_condition(reply) == ("cancel", "not-allowed")
            await alice.muc.set_affiliation(room, "admin", jid=bob.bare)
            await bob.expect(occupant_presence(f"{room}/Bob", role="moderator"))
            reply = await admin_set(bob, room, nick="Alice", role="none")
            assert error_condition(reply) == ("cancel", "not-allowed")
            reply = await admin_set(alice, room, nick="Nobody", role="none")
            assert error_condition(reply) == ("modify", "item-not-found")
            await dave.expect_none(
                occupant_presence(f"{room}/Alice", type_="unavailable"), within=0.3
            )

            # Lifting the ban lets Carol in again.
            reply = await admin_set(alice, room, jid=carol.bare, affiliation="none")
            assert reply.get("type") == "result"
            await join(carol, room, "Carol")

    run(body())


def test_moderated_room_voice_and_voice_request(server):
    room = f"stage@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob", "carol") as (alice, bob, carol):
            await create_room(alice, room, "Alice", {"muc#roomconfig_moderatedroom": True})
            assert "muc_moderated" in features(await disco_info(alice, room))
            await alice.muc.set_affiliation(room, "member", jid=carol.bare)
            joined = await join(bob, room, "Bob")
            assert item(joined.self_presence)["role"] == "visitor"
            joined = await join(carol, room, "Carol")
            assert item(joined.self_presence)["role"] == "participant", "members have voice"

            bob.send(f"<message to='{room}' type='groupchat' id='v1'><body>may I?</body></message>")
            refused = await bob.expect(lambda e: e.get("id") == "v1" and e.get("type") == "error")
            assert error_condition(refused) == ("auth", "forbidden")
            await alice.expect_none(groupchat(room, "may I?"), within=0.5)

            # Voice granted by a moderator, seen by all.
            await alice.muc.set_role(room, "Bob", "participant")
            await seen_by_all((alice, bob, carol), f"{room}/Bob", role="participant")
            bob.send(f"<message to='{room}' type='groupchat'><body>thanks</body></message>")
            await carol.expect(groupchat(room, "thanks"))
            # ... and revoked.
            await alice.muc.set_role(room, "Bob", "visitor")
            await seen_by_all((alice, bob, carol), f"{room}/Bob", role="visitor")

            # A voice request reaches the moderators as a muc#request form; approving it
            # gives voice.
            bob.muc.request_voice(room, "participant")
            request = await alice.expect(
                lambda e: e.tag == q("message") and form_values(e).get("FORM_TYPE") == [NS_REQUEST],
                what="voice request",
            )
            assert request.get("from") == room
            values = form_values(request)
            assert values["muc#roomnick"] == ["Bob"]
            assert values["muc#jid"] == [bob.jid]
            await carol.expect_none(
                lambda e: e.tag == q("message") and form_values(e).get("FORM_TYPE") == [NS_REQUEST],
                within=0.5,
            )
            answer = form_xml(
                {
                    "muc#role": "participant",
                    "muc#jid": bob.jid,
                    "muc#roomnick": "Bob",
                    "muc#request_allow": True,
                },
                form_type=NS_REQUEST,
            )
            alice.send(f"<message to='{room}'>{answer}</message>")
            await seen_by_all((alice, bob, carol), f"{room}/Bob", role="participant")

    run(body())


def test_password_room(server):
    room = f"vault@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            await create_room(alice, room, "Alice", {"muc#roomconfig_roomsecret": "s3cret"})
            info = await disco_info(bob, room)
            assert "muc_passwordprotected" in features(info)
            assert "muc_unsecured" not in features(info)

            refused = await join_refused(bob, room, "Bob")
            assert (refused.error_type, refused.condition) == ("auth", "not-authorized")
            refused = await join_refused(bob, room, "Bob", password="guess")
            assert (refused.error_type, refused.condition) == ("auth", "not-authorized")
            await alice.expect_none(occupant_presence(f"{room}/Bob"), within=0.3)
            joined = await join(bob, room, "Bob", password="s3cret")
            assert item(joined.self_presence)["role"] == "participant"
            await alice.expect(occupant_presence(f"{room}/Bob"))

    run(body())


def test_members_only_room(server):
    room = f"club@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            await create_room(alice, room, "Alice", {"muc#roomconfig_membersonly": True})
            assert "muc_membersonly" in features(await disco_info(alice, room))
            refused = await join_refused(bob, room, "Bob")
            assert (refused.error_type, refused.condition) == ("auth", "registration-required")

            await alice.muc.set_affiliation(room, "member", jid=bob.bare)
            joined = await join(bob, room, "Bob")
            assert item(joined.self_presence)["affiliation"] == "member"

            # Losing membership in a members-only room removes the occupant (321).
            await alice.muc.set_affiliation(room, "none", jid=bob.bare)
            removed = await bob.expect(
                occupant_presence(
                    f"{room}/Bob", type_="unavailable", codes={AFFILIATION_CHANGED, SELF}
                )
            )
            assert item(removed)["affiliation"] == "none"
            await alice.expect(
                occupant_presence(f"{room}/Bob", type_="unavailable", codes={AFFILIATION_CHANGED})
            )
            refused = await join_refused(bob, room, "Bob")
            assert refused.condition == "registration-required"

    run(body())


def test_reserved_room_configuration(server):
    """A reserved room: the owner fetches the form while the room is locked, submits it,
    and everyone sees the result; other users cannot configure."""
    room = f"reserved@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            created = await join(alice, room, "Alice")
            assert CREATED in created.codes
            reply = await send_iq(alice, "get", room, f"<query xmlns='{NS_MUC_OWNER}'/>")
            assert reply.get("type") == "result"
            form = reply.find(f"{q('query', NS_MUC_OWNER)}/{q('x', NS_DATA)}")
            assert form is not None and form.get("type") == "form"
            values = form_values(reply)
            types = form_field_types(reply)
            assert values["FORM_TYPE"] == [ROOMCONFIG]
            for var, kind in {
                "muc#roomconfig_roomname": "text-single",
                "muc#roomconfig_roomdesc": "text-single",
                "muc#roomconfig_persistentroom": "boolean",
                "muc#roomconfig_publicroom": "boolean",
                "muc#roomconfig_membersonly": "boolean",
                "muc#roomconfig_moderatedroom": "boolean",
                "muc#roomconfig_changesubject": "boolean",
                "muc#roomconfig_roomsecret": "text-private",
                "muc#roomconfig_whois": "list-single",
                "muc#roomconfig_historylength": "text-single",
            }.items():
                assert types.get(var) == kind, f"{var}: {types.get(var)!r}"
            assert values["muc#roomconfig_whois"] == ["moderators"]

            # Still locked while the owner looks at the form.
            refused = await join_refused(bob, room, "Bob")
            assert refused.condition == "item-not-found"

            reply = await submit_config(
                alice,
                room,
                {
                    "muc#roomconfig_roomname": "Reserved room",
                    "muc#roomconfig_roomdesc": "Configured before use",
                    "muc#roomconfig_whois": "anyone",
                    "muc#roomconfig_changesubject": True,
                    "muc#roomconfig_historylength": "5",
                },
            )
            assert reply.get("type") == "result"
            values = await get_config(alice, room)
            assert values["muc#roomconfig_roomname"] == ["Reserved room"]
            assert values["muc#roomconfig_roomdesc"] == ["Configured before use"]
            assert values["muc#roomconfig_whois"] == ["anyone"]
            assert values["muc#roomconfig_changesubject"] in (["1"], ["true"])
            assert values["muc#roomconfig_historylength"] == ["5"]

            # Non-anonymous now: Bob sees Alice's real JID and gets status 100.
            joined = await join(bob, room, "Bob")
            assert NON_ANONYMOUS in joined.codes
            assert item(joined.occupants[0])["jid"] == alice.jid
            # Anyone may set the subject now.
            bob.send(f"<message to='{room}' type='groupchat'><subject>by Bob</subject></message>")
            got = await alice.expect(is_subject(room))
            assert got.get("from") == f"{room}/Bob"

            # Bob may not configure; the form stays as it is.
            reply = await send_iq(bob, "get", room, f"<query xmlns='{NS_MUC_OWNER}'/>")
            assert error_condition(reply) == ("auth", "forbidden")
            reply = await submit_config(bob, room, {"muc#roomconfig_roomname": "Bob's"})
            assert error_condition(reply) == ("auth", "forbidden")

            # A change made while occupants are there is announced (104, 173).
            reply = await submit_config(
                alice,
                room,
                {"muc#roomconfig_roomname": "Renamed", "muc#roomconfig_whois": "moderators"},
            )
            assert reply.get("type") == "result"
            notice = await bob.expect(
                lambda e: e.tag == q("message")
                and e.get("type") == "groupchat"
                and e.get("from") == room
                and CONFIG_CHANGED in status_codes(e),
                what="config change notice",
            )
            assert 173 in status_codes(notice)
            assert (await get_config(alice, room))["muc#roomconfig_roomname"] == ["Renamed"]

            # Cancelling a form changes nothing.
            reply = await owner_set(alice, room, f"<x xmlns='{NS_DATA}' type='cancel'/>")
            assert reply.get("type") == "result"
            assert (await get_config(alice, room))["muc#roomconfig_roomname"] == ["Renamed"]

    run(body())


def test_destroy_with_alternate_venue(server):
    room = f"doomed@{MUC_HOST}"
    venue = f"newhome@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            await create_room(alice, room, "Alice")
            await join(bob, room, "Bob")
            reply = await send_iq(
                bob, "set", room, f"<query xmlns='{NS_MUC_OWNER}'><destroy/></query>"
            )
            assert error_condition(reply) == ("auth", "forbidden")

            reply = await send_iq(
                alice,
                "set",
                room,
                f"<query xmlns='{NS_MUC_OWNER}'><destroy jid='{venue}'>"
                "<reason>moving</reason></destroy></query>",
            )
            assert reply.get("type") == "result"
            for c, nick in ((bob, "Bob"), (alice, "Alice")):
                gone = await c.expect(
                    occupant_presence(f"{room}/{nick}", type_="unavailable"), what="destroy"
                )
                destroy = gone.find(f"{q('x', NS_MUC_USER)}/{q('destroy', NS_MUC_USER)}")
                assert destroy is not None and destroy.get("jid") == venue
                assert destroy.findtext(q("reason", NS_MUC_USER)) == "moving"
                assert item(gone)["role"] == "none"
            info = await disco_info(bob, room)
            assert error_condition(info) == ("cancel", "item-not-found")
            # The name is free: joining creates a new room.
            again = await join(bob, room, "Bob")
            assert CREATED in again.codes
            await leave(bob, room, "Bob")

    run(body())
