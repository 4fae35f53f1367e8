"""XEP-0292 vCard4 (`vcard4`, Prosody's mod_vcard4 over mod_pep): set and get
one's own, a contact's (presence access model), a stranger's refused,
`item-not-found` when there is none. The behaviour test also passes against
Prosody 0.12 (`--server=prosody`); the data-in-place tests (lilt only, need
Debian's Prosody) have one server store the vCard4 in PEP and the other read
it, both ways."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, error_condition, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from lilt_harness.inplace import in_place, prosody_missing
from test_im import befriend

NS_VCARD4 = "urn:ietf:params:xml:ns:vcard-4.0"
ALICE, BOB, CAROL = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))
USERS = [(u, DOMAIN, f"{u}-pw") for u in ("alice", "bob", "carol")]
VCARD = f"<vcard xmlns='{NS_VCARD4}'><fn><text>Alice Liddell</text></fn><nickname><text>al</text></nickname></vcard>"


def config():
    return base_config(extra_globals={"modules_enabled": TEST_MODULES + ["pep", "vcard4"]})


def client(server, bare: str) -> Client:
    return Client(server, bare, f"{bare.split('@')[0]}-pw")


async def get(c: Client, to: str | None) -> ET.Element:
    to_attr = f" to='{to}'" if to else ""
    return await c.iq(f"<iq type='get' id='{{id}}'{to_attr}><vcard xmlns='{NS_VCARD4}'/></iq>")


def fn(reply: ET.Element) -> str | None:
    assert reply.get("type") == "result", ET.tostring(reply)
    return reply.findtext(f"{{{NS_VCARD4}}}vcard/{{{NS_VCARD4}}}fn/{{{NS_VCARD4}}}text")


@pytest.fixture
def server(start_server):
    return start_server(config(), users=USERS)


def test_vcard4(server):
    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b, client(server, CAROL) as c:
            reply = await get(a, None)
            assert error_condition(reply) == ("cancel", "item-not-found"), ET.tostring(reply)
            reply = await a.iq(f"<iq type='set' id='{{id}}'>{VCARD}</iq>")
            assert reply.get("type") == "result", ET.tostring(reply)
            assert fn(await get(a, None)) == "Alice Liddell"
            a.send_presence()
            b.send_presence()
            await befriend(a, b)
            assert fn(await get(b, ALICE)) == "Alice Liddell"
            reply = await get(c, ALICE)
            assert error_condition(reply) == ("auth", "forbidden"), ET.tostring(reply)

    run(body())


def write_vcard4(server) -> None:
    async def body():
        async with client(server, ALICE) as a:
            reply = await a.iq(f"<iq type='set' id='{{id}}'>{VCARD}</iq>")
            assert reply.get("type") == "result", ET.tostring(reply)

    run(body())


def read_vcard4(server) -> None:
    async def body():
        async with client(server, ALICE) as a:
            reply = await get(a, None)
            assert fn(reply) == "Alice Liddell"
            assert reply.findtext(f".//{{{NS_VCARD4}}}nickname/{{{NS_VCARD4}}}text") == "al"

    run(body())


@pytest.mark.lilt_only
@pytest.mark.differential
@pytest.mark.parametrize("first,second", [("prosody", "lilt"), ("lilt", "prosody")])
def test_vcard4_data_in_place(pki, first, second):
    reason = prosody_missing()
    if reason:
        pytest.skip(reason)
    in_place(pki, first, second, config(), USERS, write_vcard4, read_vcard4)
