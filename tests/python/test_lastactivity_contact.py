"""XEP-0012 Last Activity of accounts (`lastactivity`) and XEP-0157 contact
addresses (`server_contact_info`, option `contact_info`). All also pass against
Prosody 0.12 (`--server=prosody`)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from lilt_harness.client import Client, error_condition, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from test_im import befriend

NS_LAST = "jabber:iq:last"
NS_DISCO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
ALICE, BOB, CAROL = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))
USERS = [(u, DOMAIN, f"{u}-pw") for u in ("alice", "bob", "carol")]


def client(server, bare: str) -> Client:
    return Client(server, bare, f"{bare.split('@')[0]}-pw")


async def last(c: Client, to: str | None) -> ET.Element:
    to_attr = f" to='{to}'" if to else ""
    return await c.iq(f"<iq type='get' id='{{id}}'{to_attr}><query xmlns='{NS_LAST}'/></iq>")


def test_last_activity_of_an_account(start_server):
    config = base_config(extra_globals={"modules_enabled": TEST_MODULES + ["lastactivity"]})
    server = start_server(config, users=USERS)

    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b, client(server, CAROL) as c:
            a.send_presence()
            b.send_presence()
            await befriend(a, b)
            # Nothing known yet: 0 seconds, no text.
            reply = await last(a, BOB)
            query = reply.find(f"{{{NS_LAST}}}query")
            assert reply.get("type") == "result" and query is not None, ET.tostring(reply)
            assert query.get("seconds") == "0" and not (query.text or "")
            b.send("<presence type='unavailable'><status>gone fishing</status></presence>")
            await asyncio.sleep(2.2)
            reply = await last(a, BOB)
            query = reply.find(f"{{{NS_LAST}}}query")
            assert query is not None, ET.tostring(reply)
            assert 2 <= int(query.get("seconds")) <= 5, ET.tostring(reply)
            assert query.text == "gone fishing"
            # To oneself (no `to`): allowed.
            reply = await last(b, None)
            assert reply.get("type") == "result", ET.tostring(reply)
            # Not subscribed: forbidden.
            reply = await last(c, BOB)
            assert error_condition(reply) == ("auth", "forbidden"), ET.tostring(reply)

    run(body())


def serverinfo(info: ET.Element) -> dict[str, list[str]]:
    for x in info.iter(f"{{{NS_DATA}}}x"):
        fields = {
            f.get("var"): [v.text or "" for v in f.findall(f"{{{NS_DATA}}}value")]
            for f in x.findall(f"{{{NS_DATA}}}field")
        }
        if fields.get("FORM_TYPE") == ["http://jabber.org/network/serverinfo"]:
            assert x.get("type") == "result"
            return fields
    raise AssertionError(f"no serverinfo form: {ET.tostring(info)!r}")


async def disco(c: Client) -> ET.Element:
    return await c.iq(f"<iq type='get' id='{{id}}' to='{DOMAIN}'><query xmlns='{NS_DISCO}'/></iq>")


def test_contact_info_option(start_server):
    config = base_config(
        extra_globals={
            "modules_enabled": TEST_MODULES + ["server_contact_info"],
            "contact_info": {
                "abuse": ["mailto:abuse@example.org"],
                "admin": ["xmpp:admin@localhost", "mailto:admin@example.org"],
                "support": ["https://example.org/support"],
            },
        }
    )
    server = start_server(config, users=USERS)

    async def body():
        async with client(server, ALICE) as a:
            fields = serverinfo(await disco(a))
            assert fields["abuse-addresses"] == ["mailto:abuse@example.org"]
            assert fields["admin-addresses"] == ["xmpp:admin@localhost", "mailto:admin@example.org"]
            assert fields["support-addresses"] == ["https://example.org/support"]
            for kind in ("feedback", "sales", "security", "status"):
                assert not fields.get(f"{kind}-addresses"), fields

    run(body())


def test_contact_info_defaults_to_admins(start_server):
    config = base_config(
        extra_globals={
            "modules_enabled": TEST_MODULES + ["server_contact_info"],
            "admins": [f"boss@{DOMAIN}"],
        }
    )
    server = start_server(config, users=USERS)

    async def body():
        async with client(server, ALICE) as a:
            fields = serverinfo(await disco(a))
            assert fields["admin-addresses"] == [f"xmpp:boss@{DOMAIN}"], fields
            assert not fields.get("abuse-addresses"), fields

    run(body())
