"""XEP-0049 private XML storage (`private`, Prosody's mod_private): the behaviour
tests also pass against Prosody 0.12 (`--server=prosody`); the data-in-place tests
(lilt only, need Debian's Prosody) have Prosody 0.12 write through its own client
session and lilt read the same data directory, and the reverse."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, error_condition, q, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from lilt_harness.inplace import in_place, prosody_missing

NS_PRIVATE = "jabber:iq:private"
NS_DISCO = "http://jabber.org/protocol/disco#info"
NS_BOOKMARKS = "storage:bookmarks"
NS_NOTES = "storage:rosternotes"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
USERS = [("alice", DOMAIN, "alice-pw"), ("bob", DOMAIN, "bob-pw")]
PASSWORDS = {ALICE: "alice-pw", BOB: "bob-pw"}

BOOKMARKS = (
    f"<storage xmlns='{NS_BOOKMARKS}'>"
    "<conference jid='room@conference.example.org' autojoin='true' name='The Room'>"
    "<nick>alice</nick><password>s&amp;cret</password></conference>"
    "<url name='Site' url='https://example.org/'/></storage>"
)
NOTES = (
    f"<storage xmlns='{NS_NOTES}'><note jid='bob@localhost' cdate='2026-01-01T00:00:00Z' "
    "mdate='2026-01-02T00:00:00Z'>met at a café</note></storage>"
)


def config():
    return base_config(extra_globals={"modules_enabled": TEST_MODULES + ["private"]})


@pytest.fixture
def server(start_server):
    return start_server(config(), users=USERS)


async def private_get(c: Client, name: str, ns: str) -> ET.Element:
    return await c.iq(
        f"<iq type='get' id='{{id}}'><query xmlns='{NS_PRIVATE}'><{name} xmlns='{ns}'/></query></iq>"
    )


async def private_set(c: Client, payload: str) -> ET.Element:
    return await c.iq(f"<iq type='set' id='{{id}}'><query xmlns='{NS_PRIVATE}'>{payload}</query></iq>")


def stored(reply: ET.Element, name: str, ns: str) -> ET.Element | None:
    assert reply.get("type") == "result", ET.tostring(reply)
    return reply.find(f"{{{NS_PRIVATE}}}query/{{{ns}}}{name}")


def check_bookmarks(element: ET.Element | None) -> None:
    assert element is not None
    conf = element.find(f"{{{NS_BOOKMARKS}}}conference")
    assert conf is not None, ET.tostring(element)
    assert conf.get("jid") == "room@conference.example.org"
    assert conf.get("autojoin") == "true" and conf.get("name") == "The Room"
    assert conf.findtext(f"{{{NS_BOOKMARKS}}}nick") == "alice"
    assert conf.findtext(f"{{{NS_BOOKMARKS}}}password") == "s&cret"
    url = element.find(f"{{{NS_BOOKMARKS}}}url")
    assert url is not None and url.get("url") == "https://example.org/"


def check_notes(element: ET.Element | None) -> None:
    assert element is not None
    note = element.find(f"{{{NS_NOTES}}}note")
    assert note is not None and note.text == "met at a café", ET.tostring(element)
    assert note.get("jid") == "bob@localhost"


def test_private_storage(server):
    async def body():
        async with Client(server, ALICE, PASSWORDS[ALICE]) as a:
            info = await a.iq(
                f"<iq type='get' id='{{id}}' to='{DOMAIN}'><query xmlns='{NS_DISCO}'/></iq>"
            )
            assert NS_PRIVATE in {f.get("var") for f in info.iter(f"{{{NS_DISCO}}}feature")}
            # Nothing stored: the query comes back as asked.
            reply = await private_get(a, "storage", NS_BOOKMARKS)
            empty = stored(reply, "storage", NS_BOOKMARKS)
            assert empty is not None and len(empty) == 0
            assert (await private_set(a, BOOKMARKS)).get("type") == "result"
            assert (await private_set(a, NOTES)).get("type") == "result"
            check_bookmarks(stored(await private_get(a, "storage", NS_BOOKMARKS), "storage", NS_BOOKMARKS))
            check_notes(stored(await private_get(a, "storage", NS_NOTES), "storage", NS_NOTES))
            # Overwritten whole.
            await private_set(a, f"<storage xmlns='{NS_BOOKMARKS}'><url name='x' url='https://x/'/></storage>")
            got = stored(await private_get(a, "storage", NS_BOOKMARKS), "storage", NS_BOOKMARKS)
            assert [c.tag for c in got] == [f"{{{NS_BOOKMARKS}}}url"]
            # Not exactly one element: bad-format.
            for payload in ("", BOOKMARKS + NOTES):
                reply = await private_set(a, payload)
                assert error_condition(reply) == ("modify", "bad-format"), ET.tostring(reply)
            # An empty element removes the entry.
            await private_set(a, f"<storage xmlns='{NS_BOOKMARKS}'/>")
            got = stored(await private_get(a, "storage", NS_BOOKMARKS), "storage", NS_BOOKMARKS)
            assert got is not None and len(got) == 0
            # Another account's storage is not reachable.
            reply = await a.iq(
                f"<iq type='get' id='{{id}}' to='{BOB}'><query xmlns='{NS_PRIVATE}'>"
                f"<storage xmlns='{NS_NOTES}'/></query></iq>"
            )
            assert error_condition(reply) == ("cancel", "service-unavailable"), ET.tostring(reply)
        # Kept across sessions.
        async with Client(server, ALICE, PASSWORDS[ALICE]) as a:
            check_notes(stored(await private_get(a, "storage", NS_NOTES), "storage", NS_NOTES))
        async with Client(server, BOB, PASSWORDS[BOB]) as b:
            got = stored(await private_get(b, "storage", NS_NOTES), "storage", NS_NOTES)
            assert got is not None and len(got) == 0, "bob sees alice's notes"

    run(body())


def write_private(server) -> None:
    async def body():
        async with Client(server, ALICE, PASSWORDS[ALICE]) as a:
            assert (await private_set(a, BOOKMARKS)).get("type") == "result"
            assert (await private_set(a, NOTES)).get("type") == "result"

    run(body())


def read_private(server) -> None:
    async def body():
        async with Client(server, ALICE, PASSWORDS[ALICE]) as a:
            check_bookmarks(stored(await private_get(a, "storage", NS_BOOKMARKS), "storage", NS_BOOKMARKS))
            check_notes(stored(await private_get(a, "storage", NS_NOTES), "storage", NS_NOTES))

    run(body())


@pytest.mark.lilt_only
@pytest.mark.differential
@pytest.mark.parametrize("first,second", [("prosody", "lilt"), ("lilt", "prosody")])
def test_private_data_in_place(pki, first, second):
    reason = prosody_missing()
    if reason:
        pytest.skip(reason)
    in_place(pki, first, second, config(), USERS, write_private, read_private)
