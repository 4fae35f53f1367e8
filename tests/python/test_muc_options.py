"""Multi-user chat (XEP-0045) with Prosody's component options set away from their defaults.

`muc_room_locking = false`, `restrict_room_creation = "local"`, `max_history_messages`,
`muc_room_default_public`, `muc_room_default_public_jids`,
`muc_room_default_change_subject`, and a server admin who is owner of every room
(`component_admins_as_room_owners`, on by default).
"""

from __future__ import annotations

import pytest
from conftest import running_server

from lilt_harness.client import error_condition, q, run
from lilt_harness.config import DOMAIN
from lilt_harness.muc import (
    CREATED,
    MUC_HOST,
    MUC_USERS,
    NON_ANONYMOUS,
    anonymous,
    disco_info,
    disco_items,
    features,
    get_config,
    groupchat,
    is_subject,
    item,
    join,
    join_refused,
    muc_config,
    online,
)

OPTIONS = {
    "muc_room_locking": False,
    "restrict_room_creation": "local",
    "max_history_messages": 2,
    "muc_room_default_public": True,
    "muc_room_default_public_jids": True,
    "muc_room_default_change_subject": True,
}


@pytest.fixture(scope="module")
def server(server_kind, pki):
    config = muc_config(OPTIONS, extra_globals={"admins": [f"eve@{DOMAIN}"]})
    with running_server(server_kind, pki, config, users=MUC_USERS) as srv:
        yield srv


def test_unlocked_room_is_usable_at_once(server):
    room = f"open@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            created = await join(alice, room, "Alice")
            assert CREATED in created.codes
            # No configuration step: the room is open as soon as it exists.
            joined = await join(bob, room, "Bob")
            assert CREATED not in joined.codes

    run(body())


def test_room_defaults_from_options(server):
    room = f"defaults@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            await join(alice, room, "Alice")
            joined = await join(bob, room, "Bob")
            # muc_room_default_public_jids: everyone sees real JIDs, and is told so.
            assert NON_ANONYMOUS in joined.codes
            assert item(joined.occupants[0])["jid"] == alice.jid
            info = await disco_info(bob, room)
            assert {"muc_public", "muc_nonanonymous"} <= features(info)
            listing = {i.get("jid") for i in (await disco_items(bob, MUC_HOST)).iter()}
            assert room in listing
            values = await get_config(alice, room)
            assert values["muc#roomconfig_publicroom"] in (["1"], ["true"])
            assert values["muc#roomconfig_whois"] == ["anyone"]
            # muc_room_default_change_subject: a participant may set the subject.
            bob.send(f"<message to='{room}' type='groupchat'><subject>from Bob</subject></message>")
            got = await alice.expect(is_subject(room))
            assert got.get("from") == f"{room}/Bob"

    run(body())


def test_max_history_messages_caps_history(server):
    room = f"capped@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "bob", "carol") as (alice, bob, carol):
            await join(alice, room, "Alice")
            for n in range(1, 6):
                alice.send(f"<message to='{room}' type='groupchat'><body>c{n}</body></message>")
                await alice.expect(groupchat(room, f"c{n}"))
            joined = await join(bob, room, "Bob")
            assert [m.findtext(q("body")) for m in joined.history] == ["c4", "c5"]
            joined = await join(carol, room, "Carol", history={"maxstanzas": 10})
            assert [m.findtext(q("body")) for m in joined.history] == ["c4", "c5"]

    run(body())


def test_restrict_room_creation_local(server):
    """Only users of the parent host (localhost) create rooms; others may still join."""
    room = f"localonly@{MUC_HOST}"

    async def body():
        guest = anonymous(server)
        await guest.connect()
        try:
            refused = await join_refused(guest, f"guestroom@{MUC_HOST}", "Guest")
            assert (refused.error_type, refused.condition) == ("cancel", "not-allowed")
            async with online(server, "alice") as (alice,):
                await join(alice, room, "Alice")
                joined = await join(guest, room, "Guest")
                assert item(joined.self_presence)["role"] == "participant"
            info = await disco_info(guest, f"guestroom@{MUC_HOST}")
            assert error_condition(info) == ("cancel", "item-not-found")
        finally:
            await guest.close()

    run(body())


def test_server_admin_is_owner_of_every_room(server):
    room = f"admins@{MUC_HOST}"

    async def body():
        async with online(server, "alice", "eve") as (alice, eve):
            await join(alice, room, "Alice")
            joined = await join(eve, room, "Eve")
            assert item(joined.self_presence)["affiliation"] == "owner"
            assert item(joined.self_presence)["role"] == "moderator"
            values = await get_config(eve, room)
            assert values["muc#roomconfig_whois"] == ["anyone"]

    run(body())
