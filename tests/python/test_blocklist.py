"""XEP-0191 Blocking Command (`blocklist`, Prosody's mod_blocklist) between two
contacts: the behaviour tests also pass against Prosody 0.12 (`--server=prosody`,
with `bounce_blocked_messages = true`, which is what 0.12 always does); the
data-in-place tests (lilt only, need Debian's Prosody) have Prosody 0.12 write
a blocklist through its own client session and lilt read and enforce it, and
the reverse."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, error_condition, is_message, is_presence, q, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from lilt_harness.inplace import in_place, prosody_missing
from test_im import befriend

NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
NS_DISCO = "http://jabber.org/protocol/disco#info"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
USERS = [("alice", DOMAIN, "alice-pw"), ("bob", DOMAIN, "bob-pw")]
PASSWORDS = {ALICE: "alice-pw", BOB: "bob-pw"}


def config(bounce: bool | None = True):
    extra = {"modules_enabled": TEST_MODULES + ["blocklist"]}
    if bounce is not None:
        extra["bounce_blocked_messages"] = bounce
    return base_config(extra_globals=extra)


def client(server, bare: str, resource: str | None = None) -> Client:
    return Client(server, f"{bare}/{resource}" if resource else bare, PASSWORDS[bare])


async def blocklist(c: Client) -> list[str]:
    reply = await c.iq(f"<iq type='get' id='{{id}}'><blocklist xmlns='{NS_BLOCKING}'/></iq>")
    assert reply.get("type") == "result", ET.tostring(reply)
    return sorted(i.get("jid") for i in reply.iter(f"{{{NS_BLOCKING}}}item"))


async def edit(c: Client, action: str, *jids: str) -> ET.Element:
    items = "".join(f"<item jid='{j}'/>" for j in jids)
    return await c.iq(f"<iq type='set' id='{{id}}'><{action} xmlns='{NS_BLOCKING}'>{items}</{action}></iq>")


def is_push(action: str, jid: str | None = None):
    def match(e: ET.Element) -> bool:
        if e.tag != q("iq") or e.get("type") != "set":
            return False
        el = e.find(f"{{{NS_BLOCKING}}}{action}")
        if el is None:
            return False
        return jid is None or jid in [i.get("jid") for i in el.iter(f"{{{NS_BLOCKING}}}item")]

    return match


def forget_received(*clients: Client) -> None:
    """Treat everything received so far as seen (for `expect_none` after it)."""
    for c in clients:
        c._consumed.update(range(len(c.received)))


def is_error_from(jid: str, name: str = "message"):
    return lambda e: e.tag == q(name) and e.get("type") == "error" and e.get("from", "").startswith(jid)


def test_blocking_a_contact(start_server):
    server = start_server(config(), users=USERS)

    async def body():
        async with client(server, ALICE, "desk") as a, client(server, BOB, "home") as b:
            a.send_presence()
            b.send_presence()
            await befriend(a, b)
            info = await a.iq(f"<iq type='get' id='{{id}}' to='{DOMAIN}'><query xmlns='{NS_DISCO}'/></iq>")
            assert NS_BLOCKING in {f.get("var") for f in info.iter(f"{{{NS_DISCO}}}feature")}
            assert await blocklist(a) == []

            # Errors first: nothing changes.
            reply = await edit(a, "block")
            assert error_condition(reply) == ("modify", "bad-request"), ET.tostring(reply)
            reply = await edit(a, "block", "spam.example", "bad@@jid")
            assert error_condition(reply) == ("modify", "jid-malformed"), ET.tostring(reply)
            assert await blocklist(a) == []

            # Block bob (mixed case, prepared): pushed, and bob sees alice go offline.
            assert (await edit(a, "block", "BOB@localhost")).get("type") == "result"
            await a.expect(is_push("block", BOB), what="block push")
            await b.expect(is_presence(a.jid, "unavailable"), what="unavailable from alice")
            assert await blocklist(a) == [BOB]
            forget_received(a, b)

            # bob -> alice: a chat to the bare JID bounces, to the full JID is dropped,
            # an IQ get bounces; alice gets none of it.
            b.send(f"<message to='{ALICE}' type='chat' id='m1'><body>hi 1</body></message>")
            bounce = await b.expect(is_error_from(ALICE), what="bounce")
            assert error_condition(bounce) == ("cancel", "service-unavailable")
            b.send(f"<message to='{a.jid}' type='chat'><body>hi 2</body></message>")
            reply = await b.iq(f"<iq type='get' id='{{id}}' to='{a.jid}'><ping xmlns='urn:xmpp:ping'/></iq>")
            assert error_condition(reply) == ("cancel", "service-unavailable"), ET.tostring(reply)
            b.send_presence(pstatus="still here")
            await a.expect_none(
                lambda e: is_message()(e) or is_presence(b.jid)(e) or e.tag == q("iq") and e.get("from") == b.jid,
                what="anything from bob",
            )

            # alice -> bob: refused with <blocked/>; her presence does not reach him.
            a.send(f"<message to='{BOB}' type='chat'><body>to bob</body></message>")
            refused = await a.expect(is_error_from(BOB), what="not-acceptable")
            assert error_condition(refused) == ("cancel", "not-acceptable"), ET.tostring(refused)
            assert refused.find(f"{q('error')}/{{{NS_BLOCKING_ERRORS}}}blocked") is not None
            a.send_presence(pstatus="back")
            await b.expect_none(
                lambda e: is_message("to bob")(e) or is_presence(a.jid)(e), what="alice's stanzas"
            )

            # Unblock: pushed, bob gets alice's presence again, messages flow.
            assert (await edit(a, "unblock", BOB)).get("type") == "result"
            await a.expect(is_push("unblock", BOB), what="unblock push")
            await b.expect(is_presence(a.jid), what="alice's presence after unblock")
            assert await blocklist(a) == []
            b.send(f"<message to='{ALICE}' type='chat'><body>hi 3</body></message>")
            await a.expect(is_message("hi 3"))

            # A domain blocks everyone at it; unblock without items empties the list.
            await edit(a, "block", DOMAIN, "x@example.org")
            assert await blocklist(a) == [DOMAIN, "x@example.org"]
            b.send(f"<message to='{ALICE}' type='chat'><body>hi 4</body></message>")
            await b.expect(is_error_from(ALICE), what="bounce from a blocked domain")
            assert (await edit(a, "unblock")).get("type") == "result"
            await a.expect(is_push("unblock"), what="unblock-all push")
            assert await blocklist(a) == []

    run(body())


@pytest.mark.lilt_only
def test_blocked_messages_dropped_by_default(start_server):
    """Without `bounce_blocked_messages` (Prosody 13's default false) they are dropped."""
    server = start_server(config(bounce=None), users=USERS)

    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b:
            a.send_presence()
            await blocklist(a)
            await edit(a, "block", BOB)
            b.send(f"<message to='{ALICE}' type='chat'><body>dropped</body></message>")
            await b.expect_none(is_error_from(ALICE), what="a bounce")
            await a.expect_none(is_message("dropped"), what="the blocked message")

    run(body())


def write_blocklist(server) -> None:
    async def body():
        async with client(server, ALICE) as a:
            for jid in (BOB, "spam.example"):
                assert (await edit(a, "block", jid)).get("type") == "result"

    run(body())


def read_blocklist(server) -> None:
    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b:
            a.send_presence()
            assert await blocklist(a) == [BOB, "spam.example"]
            b.send(f"<message to='{ALICE}' type='chat'><body>blocked</body></message>")
            bounce = await b.expect(is_error_from(ALICE), what="bounce")
            assert error_condition(bounce) == ("cancel", "service-unavailable")
            await a.expect_none(is_message("blocked"))
            # And it is still editable here.
            assert (await edit(a, "unblock", BOB)).get("type") == "result"
            assert await blocklist(a) == ["spam.example"]

    run(body())


@pytest.mark.lilt_only
@pytest.mark.differential
@pytest.mark.parametrize("first,second", [("prosody", "lilt"), ("lilt", "prosody")])
def test_blocklist_data_in_place(pki, first, second):
    reason = prosody_missing()
    if reason:
        pytest.skip(reason)
    in_place(pki, first, second, config(), USERS, write_blocklist, read_blocklist)
