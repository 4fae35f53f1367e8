"""XEP-0313 for rooms (`muc_mam`, Prosody 0.12's mod_muc_mam on the MUC component):
groupchat is archived with the archive's id as the room's `<stanza-id/>`, the room
answers queries with RSM paging, advertises urn:xmpp:mam:2, and refuses outcasts. The
behaviour test also passes against Prosody 0.12 (`--server=prosody`); the data-in-place
tests (lilt only, need Debian's Prosody) have one server archive a room's messages and
the other page through them and serve them as join history from the same data
directory (the `muc_log` archive store), both ways."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, error_condition, q, run
from lilt_harness.inplace import in_place, prosody_missing
from lilt_harness.muc import (
    MUC_HOST,
    MUC_USERS,
    NS_SID,
    admin_set,
    create_room,
    disco_info,
    features,
    groupchat,
    join,
    muc_config,
    online,
)

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
ROOM = f"garden@{MUC_HOST}"


def config():
    return muc_config({"modules_enabled": ["muc_mam"]})


async def query(c: Client, room: str, rsm: str = ""):
    """Queries the room's archive; returns (results, reply)."""
    qid = c.next_id("q")
    set_ = f"<set xmlns='{NS_RSM}'>{rsm}</set>" if rsm else ""
    reply = await c.iq(
        f"<iq type='set' id='{{id}}' to='{room}'><query xmlns='{NS_MAM}' queryid='{qid}'>{set_}</query></iq>",
        timeout=60,
    )
    results = [
        e
        for e in c.received
        if e.tag == q("message") and e.find(f"{{{NS_MAM}}}result[@queryid='{qid}']") is not None
    ]
    return results, reply


def forwarded(result: ET.Element) -> ET.Element:
    return result.find(f"{{{NS_MAM}}}result/{{{NS_FORWARD}}}forwarded/{{jabber:client}}message")


def bodies(results: list[ET.Element]) -> list[str]:
    return [forwarded(r).findtext(q("body")) for r in results]


def result_ids(results: list[ET.Element]) -> list[str]:
    return [r.find(f"{{{NS_MAM}}}result").get("id") for r in results]


def fin(reply: ET.Element) -> dict:
    assert reply.get("type") == "result", ET.tostring(reply)
    f = reply.find(f"{{{NS_MAM}}}fin")
    assert f is not None, ET.tostring(reply)
    s = f.find(f"{{{NS_RSM}}}set")
    return {
        "complete": f.get("complete"),
        "last": s.findtext(f"{{{NS_RSM}}}last"),
        "count": s.findtext(f"{{{NS_RSM}}}count"),
    }


def room_stanza_id(message: ET.Element, room: str = ROOM) -> str | None:
    for sid in message.findall(f"{{{NS_SID}}}stanza-id"):
        if sid.get("by") == room:
            return sid.get("id")
    return None


async def say(sender, listener, room: str, texts: list[str]) -> list[ET.Element]:
    """`sender` says each text; returns the broadcasts `listener` got, in order."""
    got = []
    for text in texts:
        sender.send(f"<message to='{room}' type='groupchat'><body>{text}</body></message>")
        got.append(await listener.expect(groupchat(room, text), what=text))
    return got


@pytest.fixture
def server(start_server):
    return start_server(config(), users=MUC_USERS)


def test_muc_mam_archive_query_and_paging(server):
    async def body():
        async with online(server, "alice", "bob", "eve") as (alice, bob, eve):
            await create_room(alice, ROOM, "Alice")
            await join(bob, ROOM, "Bob")
            assert NS_MAM in features(await disco_info(bob, ROOM))
            got = await say(alice, bob, ROOM, ["m1", "m2", "m3"])
            ids = [room_stanza_id(m) for m in got]
            assert all(ids), [ET.tostring(m) for m in got]

            results, reply = await query(bob, ROOM, "<max>2</max>")
            page = fin(reply)
            assert bodies(results) == ["m1", "m2"] and page["complete"] is None
            # The broadcast's stanza-id is the archive's id.
            assert result_ids(results) == ids[:2]
            message = forwarded(results[0])
            assert message.get("from") == f"{ROOM}/Alice"
            assert message.find(f"{{{NS_DELAY}}}delay") is None
            stamp = results[0].find(f".//{{{NS_FORWARD}}}forwarded/{{{NS_DELAY}}}delay")
            assert stamp is not None and stamp.get("stamp")
            # Not a non-anonymous room: the sender's real JID is not shown.
            assert message.find("{http://jabber.org/protocol/muc#user}x") is None
            results, reply = await query(bob, ROOM, f"<max>2</max><after>{page['last']}</after>")
            assert bodies(results) == ["m3"] and fin(reply)["complete"] == "true"
            results, reply = await query(bob, ROOM, "<max>1</max><before/>")
            assert bodies(results) == ["m3"]

            # An outcast may not read it.
            reply = await admin_set(alice, ROOM, jid=eve.bare, affiliation="outcast")
            assert reply.get("type") == "result", error_condition(reply)
            results, reply = await query(eve, ROOM)
            assert results == [] and error_condition(reply) == ("auth", "forbidden")

    run(body())


def write_room(server) -> None:
    async def body():
        async with online(server, "alice", "bob") as (alice, bob):
            await create_room(
                alice, ROOM, "Alice", {"muc#roomconfig_persistentroom": True}
            )
            await join(bob, ROOM, "Bob")
            await say(alice, bob, ROOM, ["w1", "w2", "w3"])

    run(body())


def read_room(server) -> None:
    async def body():
        async with online(server, "bob", "carol") as (bob, carol):
            results, reply = await query(bob, ROOM, "<max>2</max>")
            assert bodies(results) == ["w1", "w2"], [ET.tostring(r) for r in results]
            results, reply = await query(bob, ROOM, f"<max>2</max><after>{fin(reply)['last']}</after>")
            assert bodies(results) == ["w3"] and fin(reply)["complete"] == "true"
            archived = result_ids(results)
            # Join history comes from the archive (the room's memory is empty after
            # the restart), with the archive's ids.
            joined = await join(carol, ROOM, "Carol")
            assert [m.findtext(q("body")) for m in joined.history] == ["w1", "w2", "w3"]
            assert room_stanza_id(joined.history[-1]) == archived[-1]
            # Appending on top of the other server's archive.
            await join(bob, ROOM, "Bob")
            got = await say(bob, carol, ROOM, ["w4"])
            results, _ = await query(bob, ROOM, "<max>1</max><before/>")
            assert bodies(results) == ["w4"]
            assert result_ids(results) == [room_stanza_id(got[0])]

    run(body())


@pytest.mark.lilt_only
@pytest.mark.differential
@pytest.mark.parametrize("first,second", [("prosody", "lilt"), ("lilt", "prosody")])
def test_muc_mam_data_in_place(pki, first, second):
    reason = prosody_missing()
    if reason:
        pytest.skip(reason)
    in_place(pki, first, second, config(), MUC_USERS, write_room, read_room)
