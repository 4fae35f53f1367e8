"""XEP-0402 PEP Native Bookmarks with XEP-0048 compatibility (`bookmarks`,
Prosody 0.12's mod_bookmarks over mod_pep): bookmarks set through private XML
storage appear as PEP items and the reverse, the legacy PEP node, retraction of
rooms gone from a legacy set, `urn:xmpp:bookmarks:0` refused. The behaviour
test also passes against Prosody 0.12 (`--server=prosody`); the data-in-place
tests (lilt only, need Debian's Prosody) have one server store bookmarks and
the other read them from the same data directory, both ways."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, error_condition, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from lilt_harness.inplace import in_place, prosody_missing

NS_PRIVATE = "jabber:iq:private"
NS_LEGACY = "storage:bookmarks"
NS_B2 = "urn:xmpp:bookmarks:1"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DISCO = "http://jabber.org/protocol/disco#info"
ALICE = f"alice@{DOMAIN}"
USERS = [("alice", DOMAIN, "alice-pw")]
ROOM1 = "room1@conference.example.org"
ROOM2 = "room2@conference.example.org"


def config():
    return base_config(extra_globals={"modules_enabled": TEST_MODULES + ["private", "pep", "bookmarks"]})


@pytest.fixture
def server(start_server):
    return start_server(config(), users=USERS)


def legacy(*rooms: tuple[str, str]) -> str:
    out = f"<storage xmlns='{NS_LEGACY}'>"
    for jid, nick in rooms:
        out += f"<conference jid='{jid}' name='Room {nick}' autojoin='true'><nick>{nick}</nick></conference>"
    return out + "</storage>"


async def private_set(c: Client, payload: str) -> ET.Element:
    return await c.iq(f"<iq type='set' id='{{id}}'><query xmlns='{NS_PRIVATE}'>{payload}</query></iq>")


async def private_rooms(c: Client) -> dict[str, str | None]:
    reply = await c.iq(
        f"<iq type='get' id='{{id}}'><query xmlns='{NS_PRIVATE}'><storage xmlns='{NS_LEGACY}'/></query></iq>"
    )
    assert reply.get("type") == "result", ET.tostring(reply)
    return {
        conf.get("jid"): conf.findtext(f"{{{NS_LEGACY}}}nick")
        for conf in reply.iter(f"{{{NS_LEGACY}}}conference")
    }


async def pep_rooms(c: Client) -> dict[str, str | None]:
    reply = await c.iq(
        f"<iq type='get' id='{{id}}'><pubsub xmlns='{NS_PUBSUB}'><items node='{NS_B2}'/></pubsub></iq>"
    )
    assert reply.get("type") == "result", ET.tostring(reply)
    return {
        item.get("id"): item.findtext(f"{{{NS_B2}}}conference/{{{NS_B2}}}nick")
        for item in reply.iter(f"{{{NS_PUBSUB}}}item")
    }


def test_bookmarks_both_ways(server):
    async def body():
        async with Client(server, ALICE, "alice-pw") as a:
            info = await a.iq(f"<iq type='get' id='{{id}}' to='{ALICE}'><query xmlns='{NS_DISCO}'/></iq>")
            features = {f.get("var") for f in info.iter(f"{{{NS_DISCO}}}feature")}
            assert f"{NS_B2}#compat" in features, features
            # Nothing yet: the query comes back as asked.
            assert await private_rooms(a) == {}
            # XEP-0048 set: PEP items.
            assert (await private_set(a, legacy((ROOM1, "al")))).get("type") == "result"
            assert await pep_rooms(a) == {ROOM1: "al"}
            # XEP-0402 publish: seen through private storage.
            reply = await a.iq(
                f"<iq type='set' id='{{id}}'><pubsub xmlns='{NS_PUBSUB}'><publish node='{NS_B2}'>"
                f"<item id='{ROOM2}'><conference xmlns='{NS_B2}' name='Two' autojoin='false'><nick>bo</nick>"
                "</conference></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'>"
                "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
                "<field var='pubsub#persist_items'><value>true</value></field>"
                "<field var='pubsub#access_model'><value>whitelist</value></field>"
                "</x></publish-options></pubsub></iq>"
            )
            assert reply.get("type") == "result", ET.tostring(reply)
            assert await private_rooms(a) == {ROOM1: "al", ROOM2: "bo"}
            # The legacy PEP node shows the same.
            reply = await a.iq(
                f"<iq type='get' id='{{id}}'><pubsub xmlns='{NS_PUBSUB}'><items node='{NS_LEGACY}'/></pubsub></iq>"
            )
            assert reply.get("type") == "result", ET.tostring(reply)
            jids = {c.get("jid") for c in reply.iter(f"{{{NS_LEGACY}}}conference")}
            assert jids == {ROOM1, ROOM2}
            # A legacy set without room 1 retracts it; a changed nick republishes.
            assert (await private_set(a, legacy((ROOM2, "bob")))).get("type") == "result"
            assert await pep_rooms(a) == {ROOM2: "bob"}
            # Legacy PEP publish works too.
            reply = await a.iq(
                f"<iq type='set' id='{{id}}'><pubsub xmlns='{NS_PUBSUB}'><publish node='{NS_LEGACY}'>"
                f"<item id='current'>{legacy((ROOM1, 'x'), (ROOM2, 'bob'))}</item></publish></pubsub></iq>"
            )
            assert reply.get("type") == "result", ET.tostring(reply)
            assert await pep_rooms(a) == {ROOM1: "x", ROOM2: "bob"}
            # XEP-0402 0.3 is refused.
            reply = await a.iq(
                f"<iq type='set' id='{{id}}'><pubsub xmlns='{NS_PUBSUB}'><publish node='urn:xmpp:bookmarks:0'>"
                "<item id='current'><storage xmlns='urn:xmpp:bookmarks:0'/></item></publish></pubsub></iq>"
            )
            assert error_condition(reply) == ("modify", "not-allowed"), ET.tostring(reply)
            # An empty legacy set purges.
            assert (await private_set(a, f"<storage xmlns='{NS_LEGACY}'/>")).get("type") == "result"
            assert await pep_rooms(a) == {}

    run(body())


def write_bookmarks(server) -> None:
    async def body():
        async with Client(server, ALICE, "alice-pw") as a:
            assert (await private_set(a, legacy((ROOM1, "al"), (ROOM2, "bo")))).get("type") == "result"

    run(body())


def read_bookmarks(server) -> None:
    async def body():
        async with Client(server, ALICE, "alice-pw") as a:
            assert await pep_rooms(a) == {ROOM1: "al", ROOM2: "bo"}
            assert await private_rooms(a) == {ROOM1: "al", ROOM2: "bo"}
            assert (await private_set(a, legacy((ROOM2, "bo")))).get("type") == "result"
            assert await pep_rooms(a) == {ROOM2: "bo"}

    run(body())


@pytest.mark.lilt_only
@pytest.mark.differential
@pytest.mark.parametrize("first,second", [("prosody", "lilt"), ("lilt", "prosody")])
def test_bookmarks_data_in_place(pki, first, second):
    reason = prosody_missing()
    if reason:
        pytest.skip(reason)
    in_place(pki, first, second, config(), USERS, write_bookmarks, read_bookmarks)
