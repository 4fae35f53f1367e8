"""XEP-0163 PEP (`pep`, Prosody 0.12's mod_pep): publishing, `+notify`
filtering by entity caps, access models, publish-options preconditions,
retraction, node configuration, max_items. The behaviour tests also pass
against Prosody 0.12 (`--server=prosody`); the data-in-place tests (lilt only,
need Debian's Prosody) have one server write nodes and items and the other read
them from the same data directory, both ways."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, error_condition, q, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from lilt_harness.inplace import in_place, prosody_missing
from test_im import befriend

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_DISCO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_DATA = "jabber:x:data"
NS_TUNE = "http://jabber.org/protocol/tune"
NS_MOOD = "http://jabber.org/protocol/mood"
ALICE, BOB, CAROL = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))
USERS = [(u, DOMAIN, f"{u}-pw") for u in ("alice", "bob", "carol")]


def config():
    return base_config(extra_globals={"modules_enabled": TEST_MODULES + ["pep"]})


def client(server, bare: str) -> Client:
    return Client(server, bare, f"{bare.split('@')[0]}-pw")


def form(fields: dict[str, str], type_: str = "submit") -> str:
    out = (
        f"<x xmlns='{NS_DATA}' type='{type_}'><field var='FORM_TYPE' type='hidden'>"
        "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
    )
    for var, value in fields.items():
        out += f"<field var='{var}'><value>{value}</value></field>"
    return out + "</x>"


async def publish(c: Client, node: str, item_id: str, payload: str, options: dict | None = None):
    opts = f"<publish-options>{form(options)}</publish-options>" if options else ""
    return await c.iq(
        f"<iq type='set' id='{{id}}'><pubsub xmlns='{NS_PUBSUB}'><publish node='{node}'>"
        f"<item id='{item_id}'>{payload}</item></publish>{opts}</pubsub></iq>"
    )


async def items(c: Client, owner: str | None, node: str, extra: str = "") -> ET.Element:
    to = f" to='{owner}'" if owner else ""
    return await c.iq(
        f"<iq type='get' id='{{id}}'{to}><pubsub xmlns='{NS_PUBSUB}'>"
        f"<items node='{node}'{extra}/></pubsub></iq>"
    )


def item_ids(reply: ET.Element) -> list[str]:
    assert reply.get("type") == "result", ET.tostring(reply)
    return [i.get("id") for i in reply.iter(f"{{{NS_PUBSUB}}}item")]


def tune(title: str) -> str:
    return f"<tune xmlns='{NS_TUNE}'><title>{title}</title></tune>"


def caps_presence(c: Client, ver: str) -> None:
    c.send(f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='https://lilt.test' ver='{ver}'/></presence>")


async def answer_caps(c: Client, account: str, notify: list[str]) -> None:
    """Answers the caps disco#info query `account`'s PEP service sends."""
    query = await c.expect(
        lambda e: e.tag == q("iq")
        and e.get("type") == "get"
        and e.get("from") == account
        and e.find(f"{{{NS_DISCO}}}query") is not None,
        what=f"caps query from {account}",
    )
    node = query.find(f"{{{NS_DISCO}}}query").get("node")
    features = "".join(f"<feature var='{n}+notify'/>" for n in notify)
    c.send(
        f"<iq type='result' id='{query.get('id')}' to='{account}'>"
        f"<query xmlns='{NS_DISCO}' node='{node}'><identity category='client' type='pc'/>"
        f"<feature var='{NS_DISCO}'/>{features}</query></iq>"
    )


def is_event(from_: str, node: str, kind: str = "items"):
    def match(e: ET.Element) -> bool:
        return (
            e.tag == q("message")
            and e.get("from") == from_
            and e.find(f"{{{NS_EVENT}}}event/{{{NS_EVENT}}}{kind}[@node='{node}']") is not None
        )

    return match


def test_pep_publish_notify_and_access(server):
    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b, client(server, CAROL) as c:
            info = await b.iq(f"<iq type='get' id='{{id}}' to='{ALICE}'><query xmlns='{NS_DISCO}'/></iq>")
            assert info.get("type") == "error"  # not yet a contact
            a.send_presence()
            b.send_presence()
            await befriend(a, b)
            info = await b.iq(f"<iq type='get' id='{{id}}' to='{ALICE}'><query xmlns='{NS_DISCO}'/></iq>")
            identities = [(i.get("category"), i.get("type")) for i in info.iter(f"{{{NS_DISCO}}}identity")]
            assert ("pubsub", "pep") in identities, ET.tostring(info)
            features = {f.get("var") for f in info.iter(f"{{{NS_DISCO}}}feature")}
            assert f"{NS_PUBSUB}#publish-options" in features

            # Bob's caps say he wants tune notifications (not mood).
            caps_presence(b, "bob-caps-1")
            await answer_caps(b, ALICE, [NS_TUNE])
            await answer_caps(b, BOB, [NS_TUNE])

            reply = await publish(a, NS_TUNE, "t1", tune("First"))
            assert reply.get("type") == "result", ET.tostring(reply)
            got = reply.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish/{{{NS_PUBSUB}}}item")
            assert got is not None and got.get("id") == "t1"
            event = await b.expect(is_event(ALICE, NS_TUNE), what="tune notification")
            assert event.get("type") == "headline"
            assert event.findtext(f".//{{{NS_TUNE}}}title") == "First"

            reply = await publish(a, NS_MOOD, "m1", f"<mood xmlns='{NS_MOOD}'><happy/></mood>")
            assert reply.get("type") == "result"
            await b.expect_none(is_event(ALICE, NS_MOOD), what="mood notification without +notify")

            # Items: the contact may, a stranger may not (presence access model).
            assert item_ids(await items(b, ALICE, NS_TUNE)) == ["t1"]
            reply = await items(c, ALICE, NS_TUNE)
            assert error_condition(reply) == ("auth", "forbidden"), ET.tostring(reply)
            reply = await items(b, ALICE, "urn:xmpp:nothing-here")
            assert error_condition(reply) == ("cancel", "item-not-found"), ET.tostring(reply)

            # publish-options: a matching precondition publishes, a different one does not.
            reply = await publish(a, NS_TUNE, "t2", tune("Second"), {"pubsub#access_model": "presence"})
            assert reply.get("type") == "result", ET.tostring(reply)
            await b.expect(is_event(ALICE, NS_TUNE), what="second tune notification")
            reply = await publish(a, NS_TUNE, "t3", tune("Third"), {"pubsub#access_model": "open"})
            assert error_condition(reply) == ("cancel", "conflict"), ET.tostring(reply)
            assert reply.find(f".//{{{NS_ERRORS}}}precondition-not-met") is not None, ET.tostring(reply)
            # max_items defaults to 1: only the latest is kept.
            assert item_ids(await items(a, None, NS_TUNE)) == ["t2"]

            # Others cannot publish to Alice's service.
            reply = await b.iq(
                f"<iq type='set' id='{{id}}' to='{ALICE}'><pubsub xmlns='{NS_PUBSUB}'>"
                f"<publish node='{NS_TUNE}'><item id='x'>{tune('Nope')}</item></publish></pubsub></iq>"
            )
            assert error_condition(reply) == ("auth", "forbidden"), ET.tostring(reply)

            # Retract with notify.
            reply = await a.iq(
                f"<iq type='set' id='{{id}}'><pubsub xmlns='{NS_PUBSUB}'><retract node='{NS_TUNE}' notify='1'>"
                f"<item id='t2'/></retract></pubsub></iq>"
            )
            assert reply.get("type") == "result", ET.tostring(reply)
            # (Bob may get each notification twice: to his full JID from his caps,
            # and to his bare JID from his own caps answer, as with Prosody.)
            await b.expect(
                lambda e: is_event(ALICE, NS_TUNE)(e)
                and e.find(f".//{{{NS_EVENT}}}retract[@id='t2']") is not None,
                what="retraction",
            )
            assert item_ids(await items(a, None, NS_TUNE)) == []

            # Disco items: the contact sees the nodes.
            listed = await b.iq(f"<iq type='get' id='{{id}}' to='{ALICE}'><query xmlns='{NS_ITEMS}'/></iq>")
            nodes = {i.get("node") for i in listed.iter(f"{{{NS_ITEMS}}}item")}
            assert {NS_TUNE, NS_MOOD} <= nodes, ET.tostring(listed)

    run(body())


def test_pep_open_node_and_configure(server):
    async def body():
        async with client(server, ALICE) as a, client(server, CAROL) as c:
            # An open node is readable by anyone; whitelist by the owner only.
            reply = await publish(a, "urn:xmpp:open", "o1", tune("Open"), {"pubsub#access_model": "open"})
            assert reply.get("type") == "result", ET.tostring(reply)
            assert item_ids(await items(c, ALICE, "urn:xmpp:open")) == ["o1"]
            reply = await publish(a, "urn:xmpp:wl", "w1", tune("Mine"), {"pubsub#access_model": "whitelist"})
            assert reply.get("type") == "result", ET.tostring(reply)
            assert error_condition(await items(c, ALICE, "urn:xmpp:wl")) == ("auth", "forbidden")
            assert item_ids(await items(a, None, "urn:xmpp:wl")) == ["w1"]
            # An access model mod_pep does not allow is refused.
            reply = await publish(a, "urn:xmpp:auth", "x", tune("x"), {"pubsub#access_model": "authorize"})
            assert error_condition(reply) == ("modify", "not-acceptable"), ET.tostring(reply)

            # Configure: max_items 3 keeps the three newest, oldest first.
            reply = await a.iq(
                f"<iq type='set' id='{{id}}'><pubsub xmlns='{NS_OWNER}'><configure node='urn:xmpp:open'>"
                f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE' type='hidden'>"
                "<value>http://jabber.org/protocol/pubsub#node_config</value></field>"
                "<field var='pubsub#max_items'><value>3</value></field></x></configure></pubsub></iq>"
            )
            assert reply.get("type") == "result", ET.tostring(reply)
            for i in range(2, 6):
                assert (await publish(a, "urn:xmpp:open", f"o{i}", tune(f"n{i}"))).get("type") == "result"
            assert item_ids(await items(c, ALICE, "urn:xmpp:open")) == ["o3", "o4", "o5"]
            assert item_ids(await items(c, ALICE, "urn:xmpp:open", " max_items='1'")) == ["o5"]
            reply = await a.iq(
                f"<iq type='get' id='{{id}}'><pubsub xmlns='{NS_OWNER}'>"
                "<configure node='urn:xmpp:open'/></pubsub></iq>"
            )
            fields = {
                f.get("var"): f.findtext(f"{{{NS_DATA}}}value")
                for f in reply.iter(f"{{{NS_DATA}}}field")
            }
            assert fields["pubsub#max_items"] == "3" and fields["pubsub#access_model"] == "open", fields
            # Another account cannot configure or delete.
            reply = await c.iq(
                f"<iq type='set' id='{{id}}' to='{ALICE}'><pubsub xmlns='{NS_OWNER}'>"
                "<delete node='urn:xmpp:open'/></pubsub></iq>"
            )
            assert error_condition(reply) == ("auth", "forbidden"), ET.tostring(reply)
            # Delete: gone.
            reply = await a.iq(
                f"<iq type='set' id='{{id}}'><pubsub xmlns='{NS_OWNER}'>"
                "<delete node='urn:xmpp:open'/></pubsub></iq>"
            )
            assert reply.get("type") == "result", ET.tostring(reply)
            reply = await items(c, ALICE, "urn:xmpp:open")
            assert error_condition(reply)[1] in ("item-not-found", "forbidden"), ET.tostring(reply)

    run(body())


@pytest.fixture
def server(start_server):
    return start_server(config(), users=USERS)


def write_pep(server) -> None:
    async def body():
        async with client(server, ALICE) as a:
            reply = await publish(a, NS_TUNE, "t1", tune("Kept"), {"pubsub#access_model": "open"})
            assert reply.get("type") == "result", ET.tostring(reply)
            reply = await publish(a, "urn:xmpp:many", "m1", tune("1"), {"pubsub#max_items": "3"})
            assert reply.get("type") == "result", ET.tostring(reply)
            for i in range(2, 5):
                assert (await publish(a, "urn:xmpp:many", f"m{i}", tune(str(i)))).get("type") == "result"

    run(body())


def read_pep(server) -> None:
    async def body():
        async with client(server, ALICE) as a, client(server, CAROL) as c:
            reply = await items(c, ALICE, NS_TUNE)
            assert item_ids(reply) == ["t1"]
            assert reply.findtext(f".//{{{NS_TUNE}}}title") == "Kept"
            reply = await items(a, None, "urn:xmpp:many")
            assert item_ids(reply) == ["m2", "m3", "m4"]
            # Writing on top of the other server's data.
            assert (await publish(a, "urn:xmpp:many", "m5", tune("5"))).get("type") == "result"
            assert item_ids(await items(a, None, "urn:xmpp:many")) == ["m3", "m4", "m5"]
            reply = await publish(a, NS_TUNE, "t2", tune("x"), {"pubsub#access_model": "presence"})
            assert error_condition(reply) == ("cancel", "conflict"), ET.tostring(reply)

    run(body())


@pytest.mark.lilt_only
@pytest.mark.differential
@pytest.mark.parametrize("first,second", [("prosody", "lilt"), ("lilt", "prosody")])
def test_pep_data_in_place(pki, first, second):
    reason = prosody_missing()
    if reason:
        pytest.skip(reason)
    in_place(pki, first, second, config(), USERS, write_pep, read_pep)
