"""XEP-0060 pubsub as a component (`pubsub`, Prosody's mod_pubsub): an admin
creates a node, a user subscribes and gets the notification of a publish, the
items are read back, and the service's data (stores `pubsub_nodes` and
`pubsub_<node>`) is used in place by the other server, both ways. The behaviour
test also passes against Prosody 0.12 (`--server=prosody`); the data-in-place
test (lilt only) needs Debian's Prosody."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, error_condition, run
from lilt_harness.config import DOMAIN, TEST_MODULES, Component, base_config
from lilt_harness.inplace import in_place, prosody_missing

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
SERVICE = f"pubsub.{DOMAIN}"
ADMIN, USER = (f"{u}@{DOMAIN}" for u in ("alice", "bob"))
USERS = [(u, DOMAIN, f"{u}-pw") for u in ("alice", "bob")]


def config():
    cfg = base_config(extra_globals={"admins": [ADMIN], "modules_enabled": TEST_MODULES})
    cfg.hosts[SERVICE] = Component("pubsub", {"expose_publisher": True})
    return cfg


def client(server, bare: str) -> Client:
    return Client(server, bare, f"{bare.split('@')[0]}-pw")


async def create(c: Client, node: str) -> ET.Element:
    return await c.iq(
        f"<iq type='set' id='{{id}}' to='{SERVICE}'><pubsub xmlns='{NS_PUBSUB}'>"
        f"<create node='{node}'/></pubsub></iq>"
    )


async def publish(c: Client, node: str, item_id: str, text: str) -> ET.Element:
    return await c.iq(
        f"<iq type='set' id='{{id}}' to='{SERVICE}'><pubsub xmlns='{NS_PUBSUB}'>"
        f"<publish node='{node}'><item id='{item_id}'><entry xmlns='urn:lilt:test'>{text}</entry>"
        "</item></publish></pubsub></iq>"
    )


async def subscribe(c: Client, node: str, jid: str | None = None) -> ET.Element:
    return await c.iq(
        f"<iq type='set' id='{{id}}' to='{SERVICE}'><pubsub xmlns='{NS_PUBSUB}'>"
        f"<subscribe node='{node}' jid='{jid or c.jid}'/></pubsub></iq>"
    )


async def items(c: Client, node: str) -> ET.Element:
    return await c.iq(
        f"<iq type='get' id='{{id}}' to='{SERVICE}'><pubsub xmlns='{NS_PUBSUB}'>"
        f"<items node='{node}'/></pubsub></iq>"
    )


def item_ids(reply: ET.Element) -> list[str]:
    assert reply.get("type") == "result", ET.tostring(reply)
    return [i.get("id") for i in reply.iter(f"{{{NS_PUBSUB}}}item")]


def ok(reply: ET.Element) -> ET.Element:
    assert reply.get("type") == "result", ET.tostring(reply)
    return reply


@pytest.fixture
def server(start_server):
    return start_server(config(), users=USERS)


def test_create_subscribe_publish_notify(server):
    async def body():
        async with client(server, ADMIN) as a, client(server, USER) as b:
            assert error_condition(await create(b, "news")) == ("auth", "forbidden")
            ok(await create(a, "news"))
            assert error_condition(await create(a, "news")) == ("cancel", "conflict")
            ok(await subscribe(b, "news"))
            ok(await publish(a, "news", "first", "hello"))
            note = await b.expect(
                lambda s: s.find(f"{{{NS_EVENT}}}event") is not None, what="the notification"
            )
            assert note.get("from") == SERVICE
            item = note.find(f".//{{{NS_EVENT}}}item")
            assert item is not None and item.get("id") == "first"
            assert item.get("publisher") == ADMIN
            assert item_ids(await items(b, "news")) == ["first"]
            assert error_condition(await publish(b, "news", "x", "no")) == ("auth", "forbidden")
            ok(await a.iq(
                f"<iq type='set' id='{{id}}' to='{SERVICE}'><pubsub xmlns='{NS_OWNER}'>"
                "<delete node='news'/></pubsub></iq>"
            ))
            await b.expect(
                lambda s: s.find(f".//{{{NS_EVENT}}}delete") is not None, what="the deletion"
            )
            assert error_condition(await items(b, "news")) == ("cancel", "item-not-found")

    run(body())


def write_pubsub(server) -> None:
    async def body():
        async with client(server, ADMIN) as a, client(server, USER) as b:
            ok(await create(a, "kept"))
            # The bare JID: the reading server's session has another resource.
            ok(await subscribe(b, "kept", USER))
            for i in range(1, 4):
                ok(await publish(a, "kept", f"i{i}", f"text {i}"))

    run(body())


def read_pubsub(server) -> None:
    async def body():
        async with client(server, ADMIN) as a, client(server, USER) as b:
            reply = await items(b, "kept")
            assert item_ids(reply) == ["i1", "i2", "i3"]
            assert reply.findtext(".//{urn:lilt:test}entry") == "text 1"
            # The stored subscription and the owner's affiliation carried over.
            ok(await publish(a, "kept", "i4", "text 4"))
            reply = ok(await a.iq(
                f"<iq type='get' id='{{id}}' to='{SERVICE}'><pubsub xmlns='{NS_OWNER}'>"
                "<subscriptions node='kept'/></pubsub></iq>"
            ))
            subs = [s.get("jid") for s in reply.iter(f"{{{NS_OWNER}}}subscription")]
            assert subs == [USER], ET.tostring(reply)
            assert item_ids(await items(b, "kept")) == ["i1", "i2", "i3", "i4"]
            assert error_condition(await create(a, "kept")) == ("cancel", "conflict")

    run(body())


@pytest.mark.lilt_only
@pytest.mark.differential
@pytest.mark.parametrize("first,second", [("prosody", "lilt"), ("lilt", "prosody")])
def test_pubsub_data_in_place(pki, first, second):
    reason = prosody_missing()
    if reason:
        pytest.skip(reason)
    in_place(pki, first, second, config(), USERS, write_pubsub, read_pubsub)
