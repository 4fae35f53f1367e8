"""Starting and stopping: SIGTERM ends the server cleanly and tells connected clients."""

from __future__ import annotations

import asyncio

from lilt_harness.client import Client, run
from lilt_harness.config import DOMAIN, base_config


def test_sigterm_stops_cleanly(start_server):
    server = start_server(base_config(), users=[("alice", DOMAIN, "alice-pw")])

    async def body():
        client = await Client(server, f"alice@{DOMAIN}", "alice-pw").connect()
        client.send_presence()
        loop = asyncio.get_running_loop()
        code = await loop.run_in_executor(None, server.stop)
        assert code == 0, f"{server.kind} exited with {code} on SIGTERM"
        await asyncio.wait_for(client.closed.wait(), 10)
        assert client.stream_errors == ["system-shutdown"], client.stream_errors

    run(body())
