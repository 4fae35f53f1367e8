"""Jitsi Meet's MUC modules on lilt, with real clients.

The config is the Debian jitsi-meet-prosody fixture's shape
(../shared/fixtures/jitsi-debian/conf.d/meet.example.com.cfg.lua, with the docker
fixture's muc_resource_validate and muc_filter_access) moved onto the test domains:
`localhost` is the meet host (features_identity, conference_duration, main_muc),
`focus@localhost` plays Jicofo's `focus@auth.<domain>` (an admin, password-whitelisted),
`conference.localhost` the conference MUC, `internal.auth.localhost` the brewery MUC
(only `anon.localhost` may send it presence) and tenants live under
`conference.<tenant>.localhost` (`muc_mapper_domain_base = "localhost"`).
`restrict_room_creation` is off here so that a participant can make a room before the
focus is in (what the pre-join queue is for).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from conftest import running_server

from lilt_harness.client import error_condition, q, run
from lilt_harness.config import DOMAIN, Component
from lilt_harness.muc import (
    MUC_HOST,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    SELF,
    MucClient,
    anonymous,
    disco_info,
    disco_items,
    form_values,
    get_config,
    groupchat,
    identities,
    join,
    join_refused,
    join_stanza,
    muc_config,
    occupant_presence,
    settle,
    status_codes,
    submit_config,
    user,
)

SHARED = Path(__file__).resolve().parents[3] / "shared"
INTERNAL_MUC = f"internal.auth.{DOMAIN}"
FOCUS = f"focus@{DOMAIN}"
USERS = [(n, DOMAIN, f"{n}-pw") for n in ("focus", "alice", "bob", "carol")]


def config():
    cfg = muc_config(
        {
            "modules_enabled": [
                "muc_hide_all",
                "muc_meeting_id",
                "muc_domain_mapper",
                "muc_rate_limit",
                "muc_password_whitelist",
                "muc_resource_validate",
            ],
            "admins": [FOCUS],
            "muc_password_whitelist": [FOCUS],
            "muc_room_locking": False,
            "muc_room_default_public_jids": True,
            "muc_rate_joins": 2,
        },
        extra_globals={"muc_mapper_domain_base": DOMAIN, "admins": [FOCUS]},
    )
    cfg.hosts[DOMAIN].update(
        {
            "modules_enabled": ["features_identity", "conference_duration"],
            "main_muc": MUC_HOST,
        }
    )
    cfg.hosts[INTERNAL_MUC] = Component(
        "muc",
        {
            "modules_enabled": ["muc_hide_all", "muc_filter_access"],
            "muc_filter_whitelist": "anon.localhost",
            # Jitsi makes the bridges admins (restrict_room_creation = true); here the
            # anonymous bridge may create the brewery room.
            "restrict_room_creation": False,
            "muc_room_locking": False,
        },
    )
    return cfg


@pytest.fixture(scope="module")
def server(server_kind, pki):
    if not SHARED.is_dir():
        pytest.skip("skipping: ../shared not found (the Jitsi fixtures)")
    if server_kind != "lilt":
        pytest.skip("Jitsi's modules are not installed in the reference Prosody")
    with running_server(server_kind, pki, config(), users=USERS) as srv:
        yield srv


def focus(server, resource="focus"):
    return MucClient(server, f"{FOCUS}/{resource}", "focus-pw")


async def connected(*clients):
    await asyncio.gather(*(c.connect() for c in clients))
    await asyncio.gather(*(c.available() for c in clients))
    return clients


async def closed(*clients):
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def is_self(room_nick):
    return occupant_presence(room_nick, codes={SELF})


def test_participants_wait_for_the_focus(server):
    room = f"held@{MUC_HOST}"

    async def body():
        alice, jicofo = await connected(user(server, "alice"), focus(server))
        try:
            alice.send(join_stanza(room, "alice1"))
            await alice.expect_none(
                lambda e: e.tag == q("presence") and e.get("from", "").startswith(room),
                within=1.5,
                what="a presence before the focus joined",
            )
            await join(jicofo, room, "focus", subject=False)
            own = await alice.expect(is_self(f"{room}/alice1"), what="alice released")
            assert own.get("type") is None
        finally:
            await closed(alice, jicofo)

    run(body())


def test_meeting_id_and_created_timestamp(server):
    room = f"mid@{MUC_HOST}"

    async def body():
        jicofo, alice = await connected(focus(server), user(server, "alice"))
        try:
            await join(jicofo, room, "focus", subject=False)
            info = form_values(await disco_info(jicofo, room))
            meeting_id = info["muc#roominfo_meetingId"][0]
            assert len(meeting_id) >= 32, info
            assert info.get("muc#roominfo_created_timestamp", [""]) in ([""], [])
            assert (await get_config(jicofo, room))["muc#roominfo_meetingId"] == [meeting_id]
            before = int(time.time()) * 1000
            await join(alice, room, "alice1", subject=False)
            info = form_values(await disco_info(alice, room))
            created = int(info["muc#roominfo_created_timestamp"][0])
            assert before - 2000 <= created <= int(time.time()) * 1000 + 1000
            assert info["muc#roominfo_meetingId"] == [meeting_id]
        finally:
            await closed(jicofo, alice)

    run(body())


def test_tenant_rooms_are_the_same_room(server):
    virtual = f"room1@conference.acme.{DOMAIN}"
    real = f"[acme]room1@{MUC_HOST}"

    async def body():
        jicofo, alice, bob = await connected(
            focus(server), user(server, "alice"), user(server, "bob")
        )
        try:
            await join(jicofo, virtual, "focus", subject=False)
            await join(alice, virtual, "alice1", subject=False)
            # Bob uses the real address: the same room, seen under the tenant address.
            bob.send(join_stanza(real, "bob1"))
            own = await bob.expect(is_self(f"{virtual}/bob1"), what="bob's self-presence")
            assert own.get("type") is None
            await bob.expect(occupant_presence(f"{virtual}/alice1"), what="alice in bob's list")
            await alice.expect(occupant_presence(f"{virtual}/bob1"), what="bob joining")
            await jicofo.expect(occupant_presence(f"{virtual}/bob1"), what="bob for focus")
            alice.send(f"<message to='{virtual}' type='groupchat'><body>hi</body></message>")
            got = await bob.expect(groupchat(virtual, "hi"), what="message via the tenant")
            assert got.get("from") == f"{virtual}/alice1"
        finally:
            await closed(jicofo, alice, bob)

    run(body())


def test_hide_all(server):
    room = f"hidden1@{MUC_HOST}"

    async def body():
        jicofo, bob = await connected(focus(server), user(server, "bob"))
        try:
            await join(jicofo, room, "focus", subject=False)
            items = await disco_items(bob, MUC_HOST)
            listed = [i.get("jid") for i in items.iter(q("item", NS_DISCO_ITEMS))]
            assert room not in listed, listed
            refused = await disco_info(bob, room)
            assert refused.get("type") == "error"
            assert error_condition(refused) == ("auth", "forbidden")
        finally:
            await closed(jicofo, bob)

    run(body())


def test_password_whitelist_lets_the_focus_in(server):
    room = f"locked@{MUC_HOST}"

    async def body():
        jicofo, alice, other = await connected(
            focus(server), user(server, "alice"), focus(server, "second")
        )
        try:
            await join(jicofo, room, "focus", subject=False)
            reply = await submit_config(
                jicofo,
                room,
                {
                    "muc#roomconfig_passwordprotectedroom": True,
                    "muc#roomconfig_roomsecret": "s3cret",
                },
            )
            assert reply.get("type") == "result", error_condition(reply)
            refused = await join_refused(alice, room, "alice1")
            assert refused.condition == "not-authorized"
            await join(other, room, "focus2", subject=False)
        finally:
            await closed(jicofo, alice, other)

    run(body())


def test_resource_validation(server):
    room = f"rv@{MUC_HOST}"

    async def body():
        jicofo, alice = await connected(focus(server), user(server, "alice"))
        try:
            await join(jicofo, room, "focus", subject=False)
            for bad in ("bad-nick", "_under", "sp ace"):
                refused = await join_refused(alice, room, bad)
                assert (refused.error_type, refused.condition) == ("cancel", "not-allowed"), bad
            await join(alice, room, "good_1", subject=False)
        finally:
            await closed(jicofo, alice)

    run(body())


def test_filter_access_on_internal_muc(server):
    room = f"brewery@{INTERNAL_MUC}"

    async def body():
        bridge, alice = await connected(anonymous(server), user(server, "alice"))
        try:
            await join(bridge, room, "jvb1", subject=False)
            alice.send(join_stanza(room, "alice1"))
            await alice.expect_none(
                lambda e: e.get("from", "").startswith(room), within=1.5, what="an answer"
            )
        finally:
            await closed(bridge, alice)

    run(body())


def test_rate_limit_delays_joins_without_losing_any(server):
    room = f"rate@{MUC_HOST}"

    async def body():
        jicofo = focus(server)
        crowd = [anonymous(server) for _ in range(6)]
        await connected(jicofo, *crowd)
        try:
            await join(jicofo, room, "focus", subject=False)
            await asyncio.sleep(1.1)
            start = time.monotonic()
            for i, c in enumerate(crowd):
                c.send(join_stanza(room, f"p{i}"))
            done = []
            for i, c in enumerate(crowd):
                own = await c.expect(is_self(f"{room}/p{i}"), timeout=15, what=f"p{i} joined")
                assert own.get("type") is None
                done.append(time.monotonic() - start)
            # 2 per second: the 6th join waits at least two seconds.
            assert max(done) >= 1.8, done
        finally:
            await closed(jicofo, *crowd)

    run(body())


def test_identities_on_the_main_host(server):
    async def body():
        (alice,) = await connected(user(server, "alice"))
        try:
            ids = identities(await disco_info(alice, DOMAIN))
            assert {
                "category": "component",
                "type": "conference_duration",
                "name": f"conferenceduration.{DOMAIN}",
            } in ids, ids
        finally:
            await closed(alice)

    run(body())
