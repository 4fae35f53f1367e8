"""`motd` (message of the day on initial presence: `motd_text`, `motd_jid`) and
`announce` (an admin's message to `<host>/announce/online` goes to every online
user as a headline). All also pass against Prosody 0.12 (`--server=prosody`).
(`welcome` needs in-band registration, which lilt does not have yet: its test is
modules/tests/integration/im_welcome_motd.rs.)"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lilt_harness.client import Client, is_message, is_presence, q, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config

ALICE, BOB, BOSS = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "boss"))
USERS = [(u, DOMAIN, f"{u}-pw") for u in ("alice", "bob", "boss")]


def client(server, jid: str) -> Client:
    return Client(server, jid, f"{jid.split('@')[0]}-pw")


def test_motd_on_initial_presence(start_server):
    config = base_config(
        extra_globals={
            "modules_enabled": TEST_MODULES + ["motd"],
            "motd_text": "\n    Welcome to the test server!\n    Be nice.\n  ",
            "motd_jid": f"news@{DOMAIN}",
        }
    )
    server = start_server(config, users=USERS)

    async def body():
        async with client(server, ALICE) as a:
            await a.expect_none(is_message(), within=0.5, what="a message before presence")
            a.send_presence()
            motd = await a.expect(is_message(), what="the message of the day")
            assert motd.get("from") == f"news@{DOMAIN}"
            assert motd.get("to") == a.jid
            assert motd.findtext(q("body")) == "Welcome to the test server!\nBe nice."
            a.send_presence(pstatus="again")
            await a.expect_none(is_message(), what="a second message of the day")

    run(body())


def test_announcement_to_online_users(start_server):
    config = base_config(
        extra_globals={"modules_enabled": TEST_MODULES + ["announce"], "admins": [BOSS]}
    )
    server = start_server(config, users=USERS)

    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b, client(server, BOSS) as boss:
            for c in (a, b, boss):
                c.send_presence()
            for c in (a, b, boss):  # online (available) before the announcement
                await c.expect(is_presence(c.jid), what="own presence")
            boss.send(
                f"<message to='{DOMAIN}/announce/online'><subject>Maintenance</subject>"
                "<body>Down at noon</body></message>"
            )
            for c in (a, b):
                got = await c.expect(is_message("Down at noon"), what="the announcement")
                assert got.get("from") == DOMAIN and got.get("type") == "headline", ET.tostring(got)
                assert got.findtext(q("subject")) == "Maintenance"
            # A non-admin's announcement goes nowhere.
            a.send(f"<message to='{DOMAIN}/announce/online'><body>I am not the boss</body></message>")
            await b.expect_none(is_message("I am not the boss"), what="a non-admin's announcement")

    run(body())
