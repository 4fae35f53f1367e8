"""XEP-0313 Message Archive Management (`mam`, Prosody 0.12's mod_mam):
what is archived for both parties, `<stanza-id/>`, the query form, RSM paging
forwards and backwards (also through 1,000 messages), preferences, errors. The
behaviour tests also pass against Prosody 0.12 (`--server=prosody`); the
data-in-place tests (lilt only, need Debian's Prosody) have one server archive
and the other page through the same data directory, both ways."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, error_condition, is_message, q, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from lilt_harness.inplace import in_place, prosody_missing

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_SID = "urn:xmpp:sid:0"
NS_DATA = "jabber:x:data"
NS_DISCO = "http://jabber.org/protocol/disco#info"
ALICE, BOB = (f"{u}@{DOMAIN}" for u in ("alice", "bob"))
USERS = [(u, DOMAIN, f"{u}-pw") for u in ("alice", "bob")]


def config(**options):
    return base_config(extra_globals={"modules_enabled": TEST_MODULES + ["mam"], **options})


def client(server, bare: str) -> Client:
    return Client(server, bare, f"{bare.split('@')[0]}-pw")


async def query(c: Client, rsm: str = "", with_: str | None = None, flip: bool = False):
    """Runs a query; returns (results, fin)."""
    qid = c.next_id("q")
    form = ""
    if with_:
        form = (
            f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE' type='hidden'>"
            f"<value>{NS_MAM}</value></field><field var='with'><value>{with_}</value></field></x>"
        )
    set_ = f"<set xmlns='{NS_RSM}'>{rsm}</set>" if rsm else ""
    flip_el = "<flip-page/>" if flip else ""
    reply = await c.iq(
        f"<iq type='set' id='{{id}}'><query xmlns='{NS_MAM}' queryid='{qid}'>{form}{set_}{flip_el}</query></iq>",
        timeout=180,
    )
    results = [
        e
        for e in c.received
        if e.tag == q("message") and e.find(f"{{{NS_MAM}}}result[@queryid='{qid}']") is not None
    ]
    return results, reply


def bodies(results: list[ET.Element]) -> list[str]:
    return [r.findtext(f".//{{{NS_FORWARD}}}forwarded/{{jabber:client}}message/{{jabber:client}}body") for r in results]


def rsm(reply: ET.Element) -> dict:
    assert reply.get("type") == "result", ET.tostring(reply)
    fin = reply.find(f"{{{NS_MAM}}}fin")
    assert fin is not None, ET.tostring(reply)
    s = fin.find(f"{{{NS_RSM}}}set")
    return {
        "complete": fin.get("complete"),
        "first": s.findtext(f"{{{NS_RSM}}}first"),
        "last": s.findtext(f"{{{NS_RSM}}}last"),
        "count": s.findtext(f"{{{NS_RSM}}}count"),
    }


def chat(to: str, body: str) -> str:
    return f"<message to='{to}' type='chat'><body>{body}</body></message>"


@pytest.fixture
def server(start_server):
    return start_server(config(), users=USERS)


def test_mam_archive_query_and_paging(server):
    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b:
            a.send_presence()
            b.send_presence()
            info = await a.iq(f"<iq type='get' id='{{id}}' to='{ALICE}'><query xmlns='{NS_DISCO}'/></iq>")
            features = {f.get("var") for f in info.iter(f"{{{NS_DISCO}}}feature")}
            assert {NS_MAM, NS_SID} <= features, features
            for i in range(1, 6):
                a.send(chat(BOB, f"m{i}"))
            # Not archived: chat state only, headline.
            a.send(f"<message to='{BOB}' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
            a.send(f"<message to='{BOB}' type='headline'><body>news</body></message>")
            got = None
            for i in range(1, 6):
                got = await b.expect(is_message(f"m{i}"), what=f"m{i}")
            await b.expect(is_message("news"), what="headline")
            sid = got.find(f"{{{NS_SID}}}stanza-id")
            assert sid is not None and sid.get("by") == BOB, ET.tostring(got)

            results, reply = await query(a)
            assert bodies(results) == [f"m{i}" for i in range(1, 6)]
            info = rsm(reply)
            assert info["complete"] == "true" and info["count"] == "5", info
            forwarded = results[0].find(f".//{{{NS_FORWARD}}}forwarded")
            assert forwarded.find(f"{{{NS_DELAY}}}delay").get("stamp")
            assert results[0].get("from") is None or results[0].get("from") == ALICE
            # Bob's archive holds them too, under the stanza-id he was given.
            results, reply = await query(b, with_=ALICE)
            assert bodies(results) == [f"m{i}" for i in range(1, 6)]
            assert results[-1].find(f"{{{NS_MAM}}}result").get("id") == sid.get("id")

            # Paging forwards by two.
            results, reply = await query(a, "<max>2</max>")
            page = rsm(reply)
            assert bodies(results) == ["m1", "m2"] and page["complete"] is None
            results, reply = await query(a, f"<max>2</max><after>{page['last']}</after>")
            assert bodies(results) == ["m3", "m4"]
            page = rsm(reply)
            results, reply = await query(a, f"<max>2</max><after>{page['last']}</after>")
            assert bodies(results) == ["m5"] and rsm(reply)["complete"] == "true"
            # Backwards: the last page, then the one before it.
            results, reply = await query(a, "<max>2</max><before/>")
            page = rsm(reply)
            assert bodies(results) == ["m4", "m5"], bodies(results)
            results, reply = await query(a, f"<max>2</max><before>{page['first']}</before>")
            assert bodies(results) == ["m2", "m3"]
            # flip-page reverses the order within a page.
            results, _ = await query(a, "<max>2</max>", flip=True)
            assert bodies(results) == ["m2", "m1"]
            # An unknown id.
            _, reply = await query(a, "<after>no-such-id</after>")
            assert error_condition(reply) == ("modify", "item-not-found"), ET.tostring(reply)
            # with filter: nothing with someone else.
            results, reply = await query(a, with_=f"carol@{DOMAIN}")
            assert results == [] and rsm(reply)["count"] == "0"

    run(body())


def test_mam_preferences(server):
    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b:
            a.send_presence()
            b.send_presence()
            reply = await a.iq(f"<iq type='get' id='{{id}}'><prefs xmlns='{NS_MAM}'/></iq>")
            prefs = reply.find(f"{{{NS_MAM}}}prefs")
            assert prefs is not None and prefs.get("default") == "always", ET.tostring(reply)
            reply = await a.iq(
                f"<iq type='set' id='{{id}}'><prefs xmlns='{NS_MAM}' default='never'>"
                f"<always/><never><jid>{BOB}</jid></never></prefs></iq>"
            )
            prefs = reply.find(f"{{{NS_MAM}}}prefs")
            assert prefs.get("default") == "never", ET.tostring(reply)
            assert prefs.findtext(f"{{{NS_MAM}}}never/{{{NS_MAM}}}jid") == BOB
            a.send(chat(BOB, "not kept by alice"))
            await b.expect(is_message("not kept by alice"))
            results, _ = await query(a)
            assert results == []
            results, _ = await query(b)
            assert bodies(results) == ["not kept by alice"]
            # Always for Bob, never otherwise.
            await a.iq(
                f"<iq type='set' id='{{id}}'><prefs xmlns='{NS_MAM}' default='never'>"
                f"<always><jid>{BOB}</jid></always><never/></prefs></iq>"
            )
            a.send(chat(BOB, "kept"))
            await b.expect(is_message("kept"))
            results, _ = await query(a)
            assert bodies(results) == ["kept"]

    run(body())


def test_mam_page_through_1000(start_server):
    server = start_server(config(max_archive_query_results=100), users=USERS)

    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b:
            b.send_presence()
            for i in range(1000):
                a.send(chat(BOB, f"n{i}"))
                if i % 100 == 99:
                    await b.expect(is_message(f"n{i}"), timeout=180)
            seen: list[str] = []
            after = None
            pages = 0
            while True:
                rsm_el = "<max>100</max>" + (f"<after>{after}</after>" if after else "")
                results, reply = await query(a, rsm_el)
                page = rsm(reply)
                seen += bodies(results)
                pages += 1
                if page["complete"] == "true":
                    break
                after = page["last"]
                assert pages < 20
            assert seen == [f"n{i}" for i in range(1000)]
            assert page["count"] == "1000"

    run(body(), timeout=900)


def write_mam(server) -> None:
    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b:
            b.send_presence()
            for i in range(1, 4):
                a.send(chat(BOB, f"w{i}"))
            await b.expect(is_message("w3"))
            await a.iq(
                f"<iq type='set' id='{{id}}'><prefs xmlns='{NS_MAM}' default='roster'>"
                f"<always><jid>{BOB}</jid></always><never/></prefs></iq>"
            )
            await asyncio.sleep(0.2)

    run(body())


def read_mam(server) -> None:
    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b:
            b.send_presence()
            results, reply = await query(a, "<max>2</max>")
            assert bodies(results) == ["w1", "w2"]
            results, _ = await query(a, f"<max>2</max><after>{rsm(reply)['last']}</after>")
            assert bodies(results) == ["w3"]
            results, _ = await query(b, with_=ALICE)
            assert bodies(results) == ["w1", "w2", "w3"]
            reply = await a.iq(f"<iq type='get' id='{{id}}'><prefs xmlns='{NS_MAM}'/></iq>")
            prefs = reply.find(f"{{{NS_MAM}}}prefs")
            assert prefs.get("default") == "roster", ET.tostring(reply)
            assert prefs.findtext(f"{{{NS_MAM}}}always/{{{NS_MAM}}}jid") == BOB
            # Appending on top of the other server's archive.
            a.send(chat(BOB, "w4"))
            await b.expect(is_message("w4"))
            results, _ = await query(a, "<max>1</max><before/>")
            assert bodies(results) == ["w4"]

    run(body())


@pytest.mark.lilt_only
@pytest.mark.differential
@pytest.mark.parametrize("first,second", [("prosody", "lilt"), ("lilt", "prosody")])
def test_mam_data_in_place(pki, first, second):
    reason = prosody_missing()
    if reason:
        pytest.skip(reason)
    in_place(pki, first, second, config(), USERS, write_mam, read_mam)
