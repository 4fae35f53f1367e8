"""Durability: lilt is killed (SIGKILL) during a burst of registrations and roster
writes, on the internal driver, on SQLite and on PostgreSQL; after a restart every
acknowledged write is there (each registration that `lilt register` reported done
logs in, each roster item whose set got a result is in the roster) and nothing is
corrupt (every account listed by the store logs in; lilt starts cleanly).

A store failure reaches the client: with PostgreSQL stopped under a running lilt, a
roster set is answered with an error, not a silent success; once the database is back,
writes work again.
"""

from __future__ import annotations

import asyncio
import threading
import subprocess
import time

import pytest

from lilt_harness.client import Client, roster_item, run
from lilt_harness.config import DOMAIN, base_config
from lilt_harness.postgres import PgCluster, postgres_missing
from lilt_harness.servers import LiltServer, make_workdir

pytestmark = [pytest.mark.lilt_only]

NS_ROSTER = "jabber:iq:roster"
WRITERS = [(f"writer{i}", f"pw{i}") for i in range(4)]


@pytest.fixture(params=["internal", "sqlite", "postgresql"])
def storage(request):
    if request.param == "internal":
        yield {"storage": "internal"}
    elif request.param == "sqlite":
        yield {"storage": "sql", "sql": {"driver": "SQLite3", "database": "prosody.sqlite"}}
    else:
        reason = postgres_missing()
        if reason:
            pytest.skip(reason)
        with PgCluster() as pg:
            pg.create_database("prosody")
            yield {"storage": "sql", "sql": pg.sql_option("prosody")}


def roster_set(contact: str) -> str:
    return (
        f"<iq type='set' id='{{id}}'><query xmlns='{NS_ROSTER}'>"
        f"<item jid='{contact}' name='n'><group>G</group></item></query></iq>"
    )


def kill9(server: LiltServer) -> None:
    proc, server.proc = server.proc, None
    assert proc is not None
    proc.kill()
    proc.wait()


def test_acknowledged_writes_survive_kill_9(pki, storage):
    directory = make_workdir("lilt-crash-")
    server = LiltServer(directory, pki)
    server.write_config(base_config(extra_globals=storage))
    for name, password in WRITERS:
        server.register(name, DOMAIN, password)
    server.start()
    acked_items: dict[str, list[str]] = {name: [] for name, _ in WRITERS}
    registered: list[str] = []
    going: set[str] = set()
    try:
        stop = time.monotonic() + 3600.0  # set once every writer is going

        async def writer(name: str, password: str) -> None:
            try:
                async with Client(server, f"{name}@{DOMAIN}", password) as c:
                    n = 0
                    while True:
                        contact = f"c{n}@example.com"
                        reply = await c.iq(roster_set(contact), timeout=10)
                        if reply.get("type") == "result":
                            acked_items[name].append(contact)
                            going.add(name)
                        n += 1
            except Exception as e:  # noqa: BLE001 - the server is killed under us
                print(f"{name}: stopped by {e!r:.100} after {len(acked_items[name])} acks")
                return

        def registrations() -> None:
            n = 0
            while time.monotonic() < stop + 1.0:
                user = f"reg{n}"
                done = subprocess.run(
                    [str(server.binary), "--config", str(server.config_path),
                     "register", user, DOMAIN, f"pw-{user}"],
                    capture_output=True, timeout=60, cwd=directory,
                )
                if done.returncode == 0:
                    registered.append(user)
                n += 1

        async def burst() -> None:
            nonlocal stop
            tasks = [asyncio.ensure_future(writer(n, p)) for n, p in WRITERS]
            deadline = time.monotonic() + 60
            while len(going) < len(WRITERS) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert len(going) == len(WRITERS), f"writers not going: {going}"
            stop = time.monotonic() + 3.0
            # A thread of its own: the event loop's executor resolves the clients' addresses.
            reg = threading.Thread(target=registrations, daemon=True)
            reg.start()
            await asyncio.sleep(max(0.0, stop - time.monotonic()))
            kill9(server)  # in the middle of the burst
            await asyncio.gather(*tasks)
            while reg.is_alive():
                await asyncio.sleep(0.1)

        run(burst(), timeout=120)
        total = sum(len(v) for v in acked_items.values())
        assert total > 0, "no roster write was acknowledged before the kill"
        assert registered, "no registration finished before the kill"

        server.start()

        async def check() -> None:
            for name, password in WRITERS:
                async with Client(server, f"{name}@{DOMAIN}", password) as c:
                    reply = await c.iq(f"<iq type='get' id='{{id}}'><query xmlns='{NS_ROSTER}'/></iq>")
                    assert reply.get("type") == "result"
                    missing = [x for x in acked_items[name] if roster_item(reply, x) is None]
                    assert not missing, f"{name}: acknowledged items lost: {missing[:5]}"
            for user in registered:
                c = Client(server, f"{user}@{DOMAIN}", f"pw-{user}")
                result = await c.login()
                await c.close()
                assert result.ok, f"acknowledged registration {user} lost: {result}"

        run(check(), timeout=180)
    except BaseException:
        print(server.logs())
        raise
    finally:
        server.stop()
        server.cleanup()


def test_database_outage_gives_stanza_errors(pki):
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    with PgCluster() as pg:
        pg.create_database("prosody")
        directory = make_workdir("lilt-outage-")
        server = LiltServer(directory, pki)
        server.write_config(base_config(extra_globals={"storage": "sql", "sql": pg.sql_option("prosody")}))
        server.register("alice", DOMAIN, "alice-pw")
        server.start()
        try:
            async def body() -> None:
                async with Client(server, f"alice@{DOMAIN}", "alice-pw") as c:
                    ok = await c.iq(roster_set("before@example.com"))
                    assert ok.get("type") == "result"
                    pg_data = pg.dir / "data"
                    subprocess.run(pg._cmd("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(pg_data)),
                                   capture_output=True, check=True)
                    failed = await c.iq(roster_set("during@example.com"), timeout=30)
                    assert failed.get("type") == "error", "a failed store write was acknowledged"
                    log = pg.dir / "restart.log"
                    subprocess.run(
                        pg._cmd("pg_ctl", "start", "-w", "-l", str(log), "-D", str(pg_data), "-o",
                                f"-c listen_addresses=127.0.0.1 -p {pg.port} -k {pg.dir}"),
                        capture_output=True, check=True,
                    )
                    deadline = time.monotonic() + 30
                    while True:
                        again = await c.iq(roster_set("after@example.com"), timeout=30)
                        if again.get("type") == "result" or time.monotonic() > deadline:
                            break
                        await asyncio.sleep(0.5)
                    assert again.get("type") == "result", "writes did not recover"
                    reply = await c.iq(f"<iq type='get' id='{{id}}'><query xmlns='{NS_ROSTER}'/></iq>")
                    assert roster_item(reply, "before@example.com") is not None
                    assert roster_item(reply, "after@example.com") is not None
            run(body(), timeout=150)
            assert server.logs().count("is unreachable") <= 2, "the outage was not reported once"
        except BaseException:
            print(server.logs())
            raise
        finally:
            server.stop()
            server.cleanup()
