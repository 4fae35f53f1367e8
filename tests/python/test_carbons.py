"""XEP-0280 Message Carbons (`carbons`, Prosody's mod_carbons rules) between two
resources of one account and a contact. All also pass against Prosody 0.12
(`--server=prosody`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, is_message, q, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DISCO = "http://jabber.org/protocol/disco#info"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
USERS = [("alice", DOMAIN, "alice-pw"), ("bob", DOMAIN, "bob-pw")]
PASSWORDS = {ALICE: "alice-pw", BOB: "bob-pw"}


@pytest.fixture
def server(start_server):
    return start_server(
        base_config(extra_globals={"modules_enabled": TEST_MODULES + ["carbons"]}), users=USERS
    )


def client(server, bare: str, resource: str) -> Client:
    return Client(server, f"{bare}/{resource}", PASSWORDS[bare])


async def enable(c: Client, on: bool = True) -> None:
    what = "enable" if on else "disable"
    reply = await c.iq(f"<iq type='set' id='{{id}}'><{what} xmlns='{NS_CARBONS}'/></iq>")
    assert reply.get("type") == "result", ET.tostring(reply)


def is_carbon(direction: str, body: str | None = None):
    """A carbon (`sent` or `received`) whose forwarded message has `body`."""

    def match(e: ET.Element) -> bool:
        if e.tag != q("message"):
            return False
        wrapper = e.find(f"{{{NS_CARBONS}}}{direction}")
        if wrapper is None:
            return False
        inner = wrapper.find(f"{{{NS_FORWARD}}}forwarded/{q('message')}")
        return inner is not None and (body is None or inner.findtext(q("body")) == body)

    return match


def any_carbon(e: ET.Element) -> bool:
    return is_carbon("sent")(e) or is_carbon("received")(e)


def test_carbons_between_two_resources(server):
    async def body():
        async with client(server, ALICE, "desk") as desk, client(
            server, ALICE, "phone"
        ) as phone, client(server, BOB, "home") as bob:
            for c in (desk, phone, bob):
                c.send_presence()
            # Feature in the server's disco#info.
            info = await desk.iq(
                f"<iq type='get' id='{{id}}' to='{DOMAIN}'><query xmlns='{NS_DISCO}'/></iq>"
            )
            features = {f.get("var") for f in info.iter(f"{{{NS_DISCO}}}feature")}
            assert NS_CARBONS in features
            await enable(phone)

            # Incoming chat to the desk: the phone gets a received carbon.
            bob.send(f"<message to='{desk.jid}' type='chat'><body>in-1</body></message>")
            await desk.expect(is_message("in-1"), what="the message")
            carbon = await phone.expect(is_carbon("received", "in-1"), what="received carbon")
            assert carbon.get("from") == ALICE
            assert carbon.get("to") == phone.jid
            assert carbon.get("type") == "chat"
            inner = carbon.find(f"{{{NS_CARBONS}}}received/{{{NS_FORWARD}}}forwarded/{q('message')}")
            assert inner.get("from") == bob.jid and inner.get("to") == desk.jid

            # Outgoing from the desk: the phone gets a sent carbon.
            desk.send(f"<message to='{BOB}' type='chat'><body>out-1</body></message>")
            await bob.expect(is_message("out-1"))
            carbon = await phone.expect(is_carbon("sent", "out-1"), what="sent carbon")
            inner = carbon.find(f"{{{NS_CARBONS}}}sent/{{{NS_FORWARD}}}forwarded/{q('message')}")
            assert inner.get("from") == desk.jid and inner.get("to") == BOB

            # The phone sending: the desk has carbons off, gets nothing.
            phone.send(f"<message to='{BOB}' type='chat'><body>out-2</body></message>")
            await bob.expect(is_message("out-2"))
            await desk.expect_none(any_carbon, what="carbon to a resource without carbons")

            # A normal message with a body is copied, a headline is not, nor one
            # without a body.
            bob.send(f"<message to='{desk.jid}'><body>normal-1</body></message>")
            await phone.expect(is_carbon("received", "normal-1"))
            bob.send(f"<message to='{desk.jid}' type='headline'><body>news</body></message>")
            bob.send(
                f"<message to='{desk.jid}'>"
                "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
            )
            await desk.expect(is_message("news"))

            # <private/> and <no-copy/>: no carbon; the private hint is removed.
            bob.send(
                f"<message to='{desk.jid}' type='chat'><body>secret</body>"
                f"<private xmlns='{NS_CARBONS}'/></message>"
            )
            got = await desk.expect(is_message("secret"))
            assert got.find(f"{{{NS_CARBONS}}}private") is None, ET.tostring(got)
            desk.send(
                f"<message to='{BOB}' type='chat'><body>quiet</body>"
                f"<no-copy xmlns='urn:xmpp:hints'/></message>"
            )
            sent_private = await bob.expect(is_message("quiet"))
            assert sent_private is not None
            desk.send(
                f"<message to='{BOB}' type='chat'><body>private-out</body>"
                f"<private xmlns='{NS_CARBONS}'/></message>"
            )
            got = await bob.expect(is_message("private-out"))
            # The hint is removed on delivery to the (local) recipient too.
            assert got.find(f"{{{NS_CARBONS}}}private") is None
            await phone.expect_none(
                lambda e: any_carbon(e)
                and not is_carbon("received", "normal-1")(e),
                what="carbon of a headline, a bodiless normal message, a private or no-copy message",
            )

            # Disabled again: nothing more.
            await enable(phone, on=False)
            bob.send(f"<message to='{desk.jid}' type='chat'><body>in-2</body></message>")
            await desk.expect(is_message("in-2"))
            await phone.expect_none(any_carbon, what="carbon after disable")

    run(body())


def test_carbons_to_the_bare_jid(server):
    """To the bare JID the top-priority resources get the message itself, not a carbon;
    a lower-priority resource with carbons on gets a carbon."""

    async def body():
        async with client(server, ALICE, "desk") as desk, client(
            server, ALICE, "phone"
        ) as phone, client(server, BOB, "home") as bob:
            desk.send_presence(ppriority=5)
            phone.send_presence(ppriority=1)
            bob.send_presence()
            await enable(desk)
            await enable(phone)
            bob.send(f"<message to='{ALICE}' type='chat'><body>bare-1</body></message>")
            await desk.expect(is_message("bare-1"), what="the message at the top resource")
            await phone.expect(is_carbon("received", "bare-1"), what="carbon at the other")
            await desk.expect_none(any_carbon, what="carbon at the top resource")
            await phone.expect_none(is_message("bare-1"), what="the message itself")

    run(body())
