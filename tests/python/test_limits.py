"""mod_limits (a c2s byte rate), c2s_stanza_size_limit, and Jitsi's limits_exception
(unlimited_jids: no rate limit and a larger stanza size limit after authentication).

The rate test is not timed against a clock that could flake: a throttled client needs at
least (bytes - burst - one read) / rate seconds whatever the machine's speed, and the
check leaves a wide margin below that; the unlimited client is only compared with it."""

from __future__ import annotations

import asyncio
import time

import pytest

from lilt_harness.client import Client, q, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from lilt_harness.httpxmpp import NS_SASL, _bind_iq, _plain, _WebSocket, _ws_open

RATE = 50_000  # "50kb/s": Prosody's units are powers of 1000
BURST = 1
STANZA_LIMIT = 16_384
PINGS = 40
PAD = 6_000  # bytes of padding per ping: 40 pings carry 240 KB

USERS = [
    ("alice", DOMAIN, "alice-pw"),
    ("focus", DOMAIN, "focus-pw"),
]


@pytest.fixture(scope="module")
def server(server_kind, pki):
    from conftest import running_server

    host_modules = ["limits_exception"] if server_kind == "lilt" else []
    config = base_config(
        extra_globals={
            "modules_enabled": TEST_MODULES + ["limits", "websocket"],
            "limits": {"c2s": {"rate": "50kb/s", "burst": "1s"}},
            "c2s_stanza_size_limit": STANZA_LIMIT,
            "http_ports": [0],
            "https_ports": [],
            "consider_websocket_secure": True,
        },
        extra_host={
            "modules_enabled": host_modules,
            "unlimited_jids": [f"focus@{DOMAIN}"],
            "unlimited_size": 100_000,
        },
    )
    with running_server(server_kind, pki, config, users=USERS) as running:
        yield running


def padded_ping(ident: str) -> str:
    return (
        f"<iq type='get' to='{DOMAIN}' id='{ident}'><ping xmlns='urn:xmpp:ping'>"
        f"<pad xmlns='urn:x-lilt:test'>{'x' * PAD}</pad></ping></iq>"
    )


async def time_pings(client: Client) -> float:
    """Seconds from sending the padded pings until the last answer arrived."""
    start = time.monotonic()
    idents = [client.next_id("p") for _ in range(PINGS)]
    for ident in idents:
        client.send(padded_ping(ident))
    for ident in idents:
        reply = await client.expect(
            lambda e, i=ident: e.tag == q("iq") and e.get("id") == i, timeout=60, what=f"pong {ident}"
        )
        assert reply.get("type") == "result"
    return time.monotonic() - start


def test_rate_limited_client_is_slowed(server):
    sent = PINGS * (PAD + 120)
    # The bucket starts full (RATE * BURST) and one read may overdraw it by 16 KiB.
    floor = (sent - RATE * BURST - 16_384) / RATE

    async def body():
        async with Client(server, f"alice@{DOMAIN}", "alice-pw") as a:
            elapsed = await time_pings(a)
            print(f"rate-limited: {sent} bytes in {elapsed:.2f}s (floor {floor:.2f}s)")
            assert elapsed >= floor * 0.75, f"{sent} bytes in {elapsed:.2f}s (rate {RATE}/s)"

    run(body())


def http_port(server) -> int:
    deadline = time.monotonic() + 10
    while "http" not in server.listening and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.listening["http"][1]


@pytest.mark.lilt_only  # the harness gives Prosody no HTTP port
def test_rate_limited_websocket_client_is_slowed(server):
    # Prosody's mod_limits throttles every c2s session's bytes, WebSocket ones included
    # (mod_websocket's frames pass its bytes/in filter): Jitsi's guests connect this way.
    ws = _WebSocket(http_port(server), DOMAIN)
    try:
        _ws_open(ws, DOMAIN)
        ws.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{_plain('alice', 'alice-pw')}</auth>")
        assert ws.recv().tag == f"{{{NS_SASL}}}success"
        _ws_open(ws, DOMAIN)
        ws.send(_bind_iq())
        ws.recv()
        pings = [padded_ping(f"w{i}").replace("<iq ", "<iq xmlns='jabber:client' ", 1) for i in range(PINGS)]
        sent = sum(len(p) for p in pings)
        floor = (sent - RATE * BURST - 16_384) / RATE
        start = time.monotonic()
        for p in pings:
            ws.send(p)
        answered = 0
        while answered < PINGS:
            if ws.recv().tag == q("iq"):
                answered += 1
        elapsed = time.monotonic() - start
        print(f"rate-limited WebSocket: {sent} bytes in {elapsed:.2f}s (floor {floor:.2f}s)")
        assert elapsed >= floor * 0.75, f"{sent} bytes in {elapsed:.2f}s (rate {RATE}/s)"
    finally:
        ws.close()


def test_unlimited_jid_is_not_slowed(server):
    async def body():
        async with Client(server, f"alice@{DOMAIN}", "alice-pw") as a:
            limited = await time_pings(a)
        async with Client(server, f"focus@{DOMAIN}", "focus-pw") as f:
            unlimited = await time_pings(f)
        print(f"unlimited {unlimited:.2f}s, limited {limited:.2f}s")
        assert unlimited < limited / 2, f"unlimited {unlimited:.2f}s, limited {limited:.2f}s"

    run(body())


def big_message(to: str, size: int) -> str:
    return f"<message to='{to}' type='chat' id='big'><body>{'y' * size}</body></message>"


def test_stanza_over_the_limit_closes_the_stream(server):
    async def body():
        a = await Client(server, f"alice@{DOMAIN}", "alice-pw").connect()
        try:
            # Prosody checks the bytes of the unfinished stanza after each read, so a
            # stanza a little over the limit can slip through it in one read; three
            # times the limit cannot.
            a.send(big_message(f"alice@{DOMAIN}", 3 * STANZA_LIMIT))
            await asyncio.wait_for(a.closed.wait(), 30)
            assert a.stream_errors == ["policy-violation"], a.stream_errors
        finally:
            await a.close()

    run(body())


@pytest.mark.lilt_only
def test_unlimited_jid_may_send_a_larger_stanza(server):
    async def body():
        async with Client(server, f"focus@{DOMAIN}", "focus-pw") as f:
            f.send_presence()
            size = 4 * STANZA_LIMIT
            f.send(big_message(f.jid, size))
            got = await f.expect(
                lambda e: e.tag == q("message") and e.get("id") == "big", timeout=20, what="big message"
            )
            assert len(got.findtext(q("body")) or "") == size
            assert not f.stream_errors

    run(body())
