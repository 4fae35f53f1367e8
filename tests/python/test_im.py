"""Roster, the subscription handshake, presence and messages between real clients."""

from __future__ import annotations

import datetime

import pytest

from lilt_harness.client import (
    NS_DELAY,
    NS_ROSTER,
    Client,
    error_condition,
    is_message,
    is_presence,
    q,
    roster_item,
    roster_push,
    run,
)
from lilt_harness.config import DOMAIN, base_config

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
CAROL = f"carol@{DOMAIN}"
USERS = [
    ("alice", DOMAIN, "alice-pw"),
    ("bob", DOMAIN, "bob-pw"),
    ("carol", DOMAIN, "carol-pw"),
]
PASSWORDS = {f"{u}@{h}": p for u, h, p in USERS}


@pytest.fixture
def server(start_server):
    return start_server(base_config(), users=USERS)


def client(server, jid: str, resource: str | None = None) -> Client:
    bare = jid.split("/")[0]
    return Client(server, f"{bare}/{resource}" if resource else jid, PASSWORDS[bare])


async def roster_get(c: Client):
    reply = await c.iq(f"<iq type='get' id='{{id}}'><query xmlns='{NS_ROSTER}'/></iq>")
    assert reply.get("type") == "result", "roster get failed"
    return reply


async def befriend(a: Client, b: Client) -> None:
    """The full RFC 6121 handshake between two online users, ending in `both`.

    Both first fetch their roster: pushes go to "interested" resources only.
    """
    await roster_get(a)
    await roster_get(b)
    reply = await a.iq(
        f"<iq type='set' id='{{id}}'><query xmlns='{NS_ROSTER}'>"
        f"<item jid='{b.bare}' name='Friend'><group>Friends</group></item></query></iq>"
    )
    assert reply.get("type") == "result"
    await a.expect(roster_push(b.bare, "none", ask=None), what="push: added, none")

    # a -> b: subscribe; b approves.
    a.send(f"<presence to='{b.bare}' type='subscribe'/>")
    await a.expect(roster_push(b.bare, "none", ask="subscribe"), what="push: none+ask")
    request = await b.expect(is_presence(a.bare, "subscribe", bare=True), what="subscribe")
    assert request.get("from") == a.bare, "subscription requests come from the bare JID"
    b.send(f"<presence to='{a.bare}' type='subscribed'/>")
    await b.expect(roster_push(a.bare, "from"), what="push on b: from")
    await a.expect(roster_push(b.bare, "to", ask=None), what="push on a: to")
    await a.expect(is_presence(b.bare, "subscribed", bare=True), what="subscribed")
    await a.expect(is_presence(b.jid, None), what="b's presence after approval")

    # b -> a: subscribe; a approves.
    b.send(f"<presence to='{a.bare}' type='subscribe'/>")
    await b.expect(roster_push(a.bare, "from", ask="subscribe"), what="push on b: from+ask")
    await a.expect(is_presence(b.bare, "subscribe", bare=True), what="subscribe from b")
    a.send(f"<presence to='{b.bare}' type='subscribed'/>")
    await a.expect(roster_push(b.bare, "both"), what="push on a: both")
    await b.expect(roster_push(a.bare, "both", ask=None), what="push on b: both")
    await b.expect(is_presence(a.bare, "subscribed", bare=True), what="subscribed from a")
    await b.expect(is_presence(a.jid, None), what="a's presence after approval")


def test_roster_and_subscription_handshake(server):
    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b:
            a.send_presence()
            b.send_presence()
            await befriend(a, b)
            for me, other in ((a, b), (b, a)):
                item = roster_item(await roster_get(me), other.bare)
                assert item is not None, f"{other.bare} missing from {me.bare}'s roster"
                assert item.get("subscription") == "both"
                assert item.get("ask") is None
            item = roster_item(await roster_get(a), BOB)
            assert item.get("name") == "Friend"
            assert [g.text for g in item.findall(q("group", NS_ROSTER))] == ["Friends"]

        # The roster is stored: a new session sees it.
        async with client(server, ALICE) as again:
            item = roster_item(await roster_get(again), BOB)
            assert item is not None and item.get("subscription") == "both"

    run(body())


def test_roster_remove(server):
    async def body():
        async with client(server, ALICE) as a:
            await roster_get(a)
            await a.iq(
                f"<iq type='set' id='{{id}}'><query xmlns='{NS_ROSTER}'>"
                f"<item jid='{CAROL}'/></query></iq>"
            )
            await a.expect(roster_push(CAROL, "none"))
            reply = await a.iq(
                f"<iq type='set' id='{{id}}'><query xmlns='{NS_ROSTER}'>"
                f"<item jid='{CAROL}' subscription='remove'/></query></iq>"
            )
            assert reply.get("type") == "result"
            await a.expect(roster_push(CAROL, "remove"))
            assert roster_item(await roster_get(a), CAROL) is None

    run(body())


def test_presence_initial_and_unavailable_on_disconnect(server):
    async def body():
        async with client(server, ALICE) as a, client(server, BOB, "first") as b:
            a.send_presence()
            b.send_presence()
            await befriend(a, b)
            # bob closes his stream without saying goodbye: alice learns it.
            await b.close()
            await a.expect(is_presence(b.jid, "unavailable"), what="unavailable on close")

            # A new session: its initial presence reaches alice, alice's reaches it.
            b2 = await client(server, BOB, "second").connect()
            b2.send_presence(pstatus="back")
            got = await a.expect(is_presence(b2.jid, None), what="initial presence")
            assert got.findtext(q("status")) == "back"
            await b2.expect(is_presence(a.jid, None), what="presence of contacts (probe)")

            # The connection is dropped without closing the stream.
            b2.abort()
            await a.expect(is_presence(b2.jid, "unavailable"), what="unavailable on drop")

    run(body())


def test_directed_presence(server):
    async def body():
        async with client(server, ALICE) as a, client(server, CAROL) as c:
            a.send_presence()
            c.send_presence()
            a.send(f"<presence to='{c.jid}'><status>hi carol</status></presence>")
            got = await c.expect(is_presence(a.jid, None), what="directed presence")
            assert got.findtext(q("status")) == "hi carol"
            await a.close()
            await c.expect(is_presence(a.jid, "unavailable"), what="unavailable after directed")

    run(body())


def test_messages_full_and_bare_with_two_resources(server):
    async def body():
        async with (
            client(server, ALICE) as a,
            client(server, BOB, "r1") as r1,
            client(server, BOB, "r2") as r2,
        ):
            for c in (a, r1, r2):
                c.send_presence()
            await r1.expect(is_presence(r2.jid, None), what="own other resource")

            a.send(f"<message to='{r1.jid}' type='chat'><body>to r1 only</body></message>")
            got = await r1.expect(is_message("to r1 only"), what="full-JID message")
            assert got.get("from") == a.jid
            await r2.expect_none(is_message("to r1 only"), what="message for r1 on r2")

            a.send(f"<message to='{BOB}' type='chat'><body>to both</body></message>")
            await r1.expect(is_message("to both"), what="bare-JID message on r1")
            await r2.expect(is_message("to both"), what="bare-JID message on r2")

            # A full JID whose resource is not online: delivered as to the bare JID.
            a.send(f"<message to='{BOB}/gone' type='chat'><body>fallback</body></message>")
            await r1.expect(is_message("fallback"), what="fallback on r1")
            await r2.expect(is_message("fallback"), what="fallback on r2")

            # Highest priority wins for the bare JID.
            r2.send_presence(ppriority=5)
            await r1.expect(is_presence(r2.jid, None), what="r2's new priority")
            a.send(f"<message to='{BOB}' type='chat'><body>to the top</body></message>")
            await r2.expect(is_message("to the top"), what="bare-JID message on top resource")
            await r1.expect_none(is_message("to the top"), what="message on lower resource")

    run(body())


def test_offline_delivery_with_delay(server):
    async def body():
        before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        async with client(server, ALICE) as a:
            a.send_presence()
            a.send(f"<message to='{BOB}' type='chat' id='off1'><body>while you were away</body></message>")
            # Nothing comes back (no error): the message is stored.
            await a.expect_none(lambda e: e.get("id") == "off1", within=1.0, what="error")
        async with client(server, BOB) as b:
            b.send_presence()
            got = await b.expect(is_message("while you were away"), what="offline message")
            assert got.get("from", "").split("/")[0] == ALICE
            delay = got.find(q("delay", NS_DELAY))
            assert delay is not None, "offline message without <delay/>"
            assert delay.get("from") == DOMAIN
            stamp = datetime.datetime.fromisoformat(delay.get("stamp").replace("Z", "+00:00"))
            now = datetime.datetime.now(datetime.timezone.utc)
            assert before - datetime.timedelta(seconds=2) <= stamp <= now
        # Delivered once: a second login gets nothing.
        async with client(server, BOB, "later") as b:
            b.send_presence()
            await b.expect_none(is_message("while you were away"), what="redelivery")

    run(body())


def test_message_to_unknown_user_is_service_unavailable(server):
    async def body():
        async with client(server, ALICE) as a:
            a.send(
                f"<message to='nobody@{DOMAIN}' type='chat' id='nx1'><body>anyone?</body></message>"
            )
            reply = await a.expect(lambda e: e.get("id") == "nx1", what="error reply")
            assert reply.get("type") == "error"
            assert error_condition(reply) == ("cancel", "service-unavailable")

    run(body())
