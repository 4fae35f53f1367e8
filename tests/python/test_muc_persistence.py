"""Multi-user chat (XEP-0045): a persistent room survives a restart of the server.

The server is stopped and started again over the same directory (`storage =
"internal"`, Prosody's data directory layout); the room comes back with its
configuration, affiliations and subject, and a temporary room does not. The
differential variant hands the directory from Debian's Prosody to lilt and back.
"""

from __future__ import annotations

import os

import pytest
from conftest import RUNNING

from lilt_harness import paths
from lilt_harness.client import error_condition, q, run
from lilt_harness.muc import (
    CREATED,
    MUC_HOST,
    MUC_USERS,
    admin_list,
    admin_set,
    create_room,
    disco_info,
    disco_items,
    features,
    form_values,
    get_config,
    identities,
    item,
    join,
    join_refused,
    muc_config,
    online,
    submit_config,
)
from lilt_harness.servers import LiltServer, ProsodyServer, make_workdir

KEPT = f"kept@{MUC_HOST}"
FLEETING = f"fleeting@{MUC_HOST}"


@pytest.fixture
def server(start_server):
    return start_server(muc_config(), users=MUC_USERS)


def restart(server) -> None:
    server.stop()
    server.start()


def make_rooms(server) -> None:
    """A persistent room with config, affiliations and subject; a temporary one in use."""

    async def body():
        async with online(server, "alice", "bob", "carol", "eve") as (alice, bob, carol, eve):
            await create_room(
                alice,
                KEPT,
                "Alice",
                {
                    "muc#roomconfig_roomname": "Kept room",
                    "muc#roomconfig_roomdesc": "Survives restarts",
                    "muc#roomconfig_persistentroom": True,
                    "muc#roomconfig_publicroom": True,
                    "muc#roomconfig_membersonly": True,
                    "muc#roomconfig_historylength": "7",
                },
            )
            for jid, affiliation in (
                (bob.bare, "member"),
                (carol.bare, "admin"),
                (eve.bare, "outcast"),
            ):
                reply = await admin_set(alice, KEPT, jid=jid, affiliation=affiliation)
                assert reply.get("type") == "result", f"{affiliation}: {error_condition(reply)}"
            alice.muc.set_subject(KEPT, "Kept topic")
            await alice.expect(lambda e: e.findtext(q("subject")) == "Kept topic")
            # A temporary room with someone in it at shutdown.
            await create_room(bob, FLEETING, "Bob")

    run(body())


def check_rooms(server) -> None:
    """What make_rooms left, as the (restarted or other) server serves it."""

    async def body():
        async with online(server, "alice", "bob", "carol", "dave", "eve") as (
            alice,
            bob,
            carol,
            dave,
            eve,
        ):
            info = await disco_info(dave, KEPT)
            assert info.get("type") == "result", f"room gone: {error_condition(info)}"
            assert identities(info)[0].get("name") == "Kept room"
            assert {"muc_persistent", "muc_membersonly", "muc_public"} <= features(info)
            assert form_values(info)["muc#roominfo_description"] == ["Survives restarts"]
            listing = {i.get("jid") for i in (await disco_items(dave, MUC_HOST)).iter()}
            assert KEPT in listing
            assert FLEETING not in listing

            values = await get_config(alice, KEPT)
            assert values["muc#roomconfig_roomname"] == ["Kept room"]
            assert values["muc#roomconfig_persistentroom"] in (["1"], ["true"])
            assert values["muc#roomconfig_membersonly"] in (["1"], ["true"])
            assert values["muc#roomconfig_historylength"] == ["7"]

            assert [i["jid"] for i in await admin_list(alice, KEPT, affiliation="member")] == [
                bob.bare
            ]
            assert [i["jid"] for i in await admin_list(alice, KEPT, affiliation="admin")] == [
                carol.bare
            ]
            assert [i["jid"] for i in await admin_list(alice, KEPT, affiliation="outcast")] == [
                eve.bare
            ]
            assert [i["jid"] for i in await admin_list(alice, KEPT, affiliation="owner")] == [
                alice.bare
            ]

            refused = await join_refused(dave, KEPT, "Dave")
            assert refused.condition == "registration-required"
            # Opened up, the room still remembers the ban.
            reply = await submit_config(alice, KEPT, {"muc#roomconfig_membersonly": False})
            assert reply.get("type") == "result"
            refused = await join_refused(eve, KEPT, "Eve")
            assert (refused.error_type, refused.condition) == ("auth", "forbidden")
            await join(dave, KEPT, "Dave")
            joined = await join(bob, KEPT, "Bob")
            assert CREATED not in joined.codes
            assert item(joined.self_presence)["affiliation"] == "member"
            assert joined.subject is not None
            assert joined.subject.findtext(q("subject")) == "Kept topic"
            joined = await join(carol, KEPT, "Carol")
            assert item(joined.self_presence)["affiliation"] == "admin"
            assert item(joined.self_presence)["role"] == "moderator"

            # The temporary room is gone: joining creates it anew.
            again = await join(alice, FLEETING, "Alice")
            assert CREATED in again.codes

    run(body())


def test_persistent_room_survives_restart(server):
    make_rooms(server)
    # In the data directory with the internal driver (LILT_TEST_STORAGE=sql: in the database).
    if os.environ.get("LILT_TEST_STORAGE") != "sql":
        room_files = list(server.data_path.glob("conference%2elocalhost/config/*.dat"))
        assert [f.name for f in room_files] == ["kept.dat"], "rooms are kept in Prosody's layout"
    restart(server)
    check_rooms(server)


@pytest.mark.differential
@pytest.mark.lilt_only
@pytest.mark.parametrize("writer", ["prosody", "lilt"])
def test_room_data_shared_with_prosody(pki, writer):
    """The same data directory served by the other implementation after a stop: a room
    Prosody saved is served by lilt, and one lilt saved is served by Prosody."""
    reason = paths.prosody_usable()
    if reason:
        pytest.skip(reason)
    directory = make_workdir(f"lilt-diff-muc-{writer}-")
    prosody = ProsodyServer(directory, pki)
    lilt = LiltServer(directory, pki)
    first, second = (prosody, lilt) if writer == "prosody" else (lilt, prosody)
    try:
        # Fixed ports, one config both read unchanged.
        prosody.write_config(muc_config())
        lilt.share_config(prosody)
        for name, host, password in MUC_USERS:
            first.register(name, host, password)
        RUNNING.append(first)
        first.start()
        make_rooms(first)
        first.stop()
        RUNNING.remove(first)
        RUNNING.append(second)
        second.start()
        check_rooms(second)
    finally:
        for srv in (first, second):
            if srv in RUNNING:
                RUNNING.remove(srv)
            srv.stop()
        prosody.cleanup()
