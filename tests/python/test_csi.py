"""XEP-0352 Client State Indication (`csi` + `csi_simple`, Prosody 0.12's
queueing rules): the stream feature; while a client is inactive, presence
updates and chat states are held and then delivered, in order and stamped with
`<delay/>`, ahead of the first message with a body; `<active/>` flushes. All
also pass against Prosody 0.12 (`--server=prosody`)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from lilt_harness.client import Client, is_message, q, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from test_im import befriend

NS_CSI = "urn:xmpp:csi:0"
NS_DELAY = "urn:xmpp:delay"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
ALICE, BOB = (f"{u}@{DOMAIN}" for u in ("alice", "bob"))
USERS = [(u, DOMAIN, f"{u}-pw") for u in ("alice", "bob")]


def client(server, bare: str) -> Client:
    return Client(server, bare, f"{bare.split('@')[0]}-pw")


def test_csi_holds_unimportant_stanzas(start_server):
    config = base_config(extra_globals={"modules_enabled": TEST_MODULES + ["csi_simple"]})
    server = start_server(config, users=USERS)

    async def body():
        async with client(server, ALICE) as a, client(server, BOB) as b:
            features = [e for e in a.received if e.tag == "{http://etherx.jabber.org/streams}features"]
            assert any(f.find(f"{{{NS_CSI}}}csi") is not None for f in features), "no csi feature"
            a.send_presence()
            b.send_presence()
            await befriend(a, b)
            await asyncio.sleep(0.5)
            a.send(f"<inactive xmlns='{NS_CSI}'/>")
            await asyncio.sleep(0.5)
            start = len(a.received)
            b.send("<presence><show>away</show></presence>")
            b.send(f"<message to='{ALICE}' type='chat'><composing xmlns='{NS_CHATSTATES}'/></message>")
            await a.expect_none(
                lambda e: e.tag == q("presence") and e.findtext(q("show")) == "away",
                within=1.5,
                what="held presence",
            )
            b.send(f"<message to='{ALICE}' type='chat'><body>wake up</body></message>")
            await a.expect(is_message("wake up"), what="the important message")
            arrived = [e for e in a.received[start:] if e.tag in (q("presence"), q("message"))]
            kinds = [
                "presence" if e.tag == q("presence")
                else "body" if e.find(q("body")) is not None
                else "chatstate"
                for e in arrived
            ]
            assert kinds[-3:] == ["presence", "chatstate", "body"], kinds
            assert arrived[-3].find(f"{{{NS_DELAY}}}delay") is not None, ET.tostring(arrived[-3])
            # Holding again after the resume delay, then <active/> flushes.
            await asyncio.sleep(6)
            b.send("<presence><show>dnd</show></presence>")
            await a.expect_none(
                lambda e: e.tag == q("presence") and e.findtext(q("show")) == "dnd", within=1.5
            )
            a.send(f"<active xmlns='{NS_CSI}'/>")
            await a.expect(lambda e: e.tag == q("presence") and e.findtext(q("show")) == "dnd", what="flushed")

    run(body())
