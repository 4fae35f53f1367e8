"""`storage = "sql"` against Debian's Prosody 0.12 with lua-dbi: the same
database (SQLite `prosody.sqlite` in the data directory, or a throw-away
PostgreSQL cluster) written by one server through its client sessions is
served by the other: accounts (registered by the writer), rosters, private
XML, blocklists and MUC room configurations, both ways. The rows are checked
to be in the database, not in the data directory.

Needs root and ../shared (reference-prosody); the PostgreSQL cases also need
Debian's postgresql and lua-dbi-postgresql. Skipped with a message otherwise.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from lilt_harness import paths
from lilt_harness.client import Client, is_message, q, roster_item, run
from lilt_harness.config import DOMAIN, ServerConfig, lua_value
from lilt_harness.inplace import in_place
from lilt_harness.postgres import PgCluster, postgres_missing
from lilt_harness.servers import LiltServer, ProsodyServer, Server, make_workdir

import test_blocklist
import test_muc_persistence
import test_private
from lilt_harness.muc import MUC_USERS, muc_config

pytestmark = [pytest.mark.differential, pytest.mark.lilt_only]

NS_ROSTER = "jabber:iq:roster"
ALICE = f"alice@{DOMAIN}"
USERS = [("alice", DOMAIN, "alice-pw"), ("bob", DOMAIN, "bob-pw")]


def lua_dbi_postgresql_missing() -> str | None:
    if Path("/usr/lib/x86_64-linux-gnu/lua/5.4/dbd/postgresql.so").exists() or list(
        Path("/usr/lib").glob("*/lua/*/dbd/postgresql.so")
    ):
        return None
    if shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "lua-dbi-postgresql"],
            capture_output=True,
            check=False,
        )
        if list(Path("/usr/lib").glob("*/lua/*/dbd/postgresql.so")):
            return None
    return "skipping: lua-dbi-postgresql is not installed"


class Database:
    """Where the rows are, and a way to count them."""

    def __init__(self, engine: str, pg: PgCluster | None) -> None:
        self.engine = engine
        self.pg = pg
        self.server: Server | None = None

    def option(self) -> dict:
        if self.pg is not None:
            return self.pg.sql_option("prosody")
        return {"driver": "SQLite3", "database": "prosody.sqlite"}

    def rows(self, data_path: Path, sql: str) -> list[tuple]:
        if self.pg is not None:
            out = self.pg.psql("prosody", sql)
            return [tuple(line.split("|")) for line in out.splitlines() if line]
        with sqlite3.connect(data_path / "prosody.sqlite") as db:
            return [tuple(str(c) for c in row) for row in db.execute(sql)]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    reason = paths.prosody_usable()
    if reason:
        pytest.skip(reason)
    if request.param == "sqlite":
        yield Database("sqlite", None)
        return
    reason = postgres_missing() or lua_dbi_postgresql_missing()
    if reason:
        pytest.skip(reason)
    with PgCluster() as pg:
        pg.create_database("prosody")
        yield Database("postgresql", pg)


def with_sql(config: ServerConfig, database: Database) -> ServerConfig:
    config.globals["storage"] = "sql"
    config.globals["sql"] = database.option()
    return config


def on_internal(config: ServerConfig) -> ServerConfig:
    """The config on the internal driver (a migration's source), also when the suite
    runs with LILT_TEST_STORAGE=sql."""
    config.globals["storage"] = "internal"
    config.globals.pop("sql", None)
    return config


def assert_in_database(server: Server, database: Database, store: str) -> None:
    rows = database.rows(
        server.data_path,
        f"SELECT \"user\" FROM prosody WHERE store = '{store}' AND \"user\" = 'alice'",
    )
    assert rows, f"no {store} rows for alice in the {database.engine} database"
    dat = list(server.data_path.glob(f"*/{store}/*.dat"))
    assert not dat, f"{store} written to the data directory: {dat}"


DIRECTIONS = [("prosody", "lilt"), ("lilt", "prosody")]


def write_roster_and_private(server: Server) -> None:
    async def body():
        async with Client(server, ALICE, "alice-pw") as a:
            reply = await a.iq(
                f"<iq type='set' id='{{id}}'><query xmlns='{NS_ROSTER}'>"
                f"<item jid='bob@{DOMAIN}' name='Bobby'><group>Friends</group></item>"
                "</query></iq>"
            )
            assert reply.get("type") == "result"
    run(body())
    test_private.write_private(server)


def read_roster_and_private(server: Server) -> None:
    async def body():
        async with Client(server, ALICE, "alice-pw") as a:
            reply = await a.iq(f"<iq type='get' id='{{id}}'><query xmlns='{NS_ROSTER}'/></iq>")
            item = roster_item(reply, f"bob@{DOMAIN}")
            assert item is not None, "the roster item is missing"
            assert item.get("name") == "Bobby"
            assert [g.text for g in item.findall(q("group", NS_ROSTER))] == ["Friends"]
    run(body())
    test_private.read_private(server)


@pytest.mark.parametrize("first,second", DIRECTIONS)
def test_roster_and_private_xml_in_sql(pki, database, first, second):
    config = with_sql(test_private.config(), database)

    def write(server: Server) -> None:
        write_roster_and_private(server)
        for store in ("accounts", "roster", "private"):
            assert_in_database(server, database, store)

    in_place(pki, first, second, config, USERS, write, read_roster_and_private)


@pytest.mark.parametrize("first,second", DIRECTIONS)
def test_blocklist_in_sql(pki, database, first, second):
    config = with_sql(test_blocklist.config(), database)
    in_place(
        pki, first, second, config, test_blocklist.USERS,
        test_blocklist.write_blocklist, test_blocklist.read_blocklist,
    )


@pytest.mark.parametrize("first,second", DIRECTIONS)
def test_muc_rooms_in_sql(pki, database, first, second):
    config = with_sql(muc_config(), database)

    def write(server: Server) -> None:
        test_muc_persistence.make_rooms(server)
        rows = database.rows(
            server.data_path,
            "SELECT \"user\" FROM prosody WHERE host = 'conference.localhost' AND store = 'config'",
        )
        assert ("kept",) in rows, f"room config not in the database: {rows}"

    in_place(pki, first, second, config, MUC_USERS, write, test_muc_persistence.check_rooms)


def test_migrate_data_directory_into_sql_and_back(pki, database):
    """Prosody 0.12 writes a data directory; `lilt migrate` copies it into the
    database; lilt and then Prosody serve it from there (the data directory's stores
    are gone); `lilt migrate` back into a fresh data directory, served by lilt."""
    directory = make_workdir("lilt-migrate-")
    prosody = ProsodyServer(directory, pki)
    lilt = LiltServer(directory, pki)
    try:
        prosody.write_config(on_internal(test_private.config()))
        lilt.share_config(prosody)
        source = prosody.config_path.read_text()
        assert 'storage = "internal"' in source
        for user, host, password in USERS:
            prosody.register(user, host, password)
        prosody.start()
        try:
            write_roster_and_private(prosody)
        finally:
            prosody.stop()
        option = database.option()
        sql_lines = 'storage = "sql"\nsql = ' + lua_value(option)
        dst = directory / "dst.cfg.lua"
        dst.write_text(source.replace('storage = "internal"', sql_lines))
        done = lilt.ctl("migrate", "--to", str(dst))
        assert done.returncode == 0, done.stdout + done.stderr
        for store in ("accounts", "roster", "private"):
            assert re.search(rf"^{DOMAIN}\t{store}\tkeyval\t\d+\t\d+$", done.stdout, re.M), done.stdout
        assert re.search(r"migrated (\d+) of \1 ", done.stdout), done.stdout
        shutil.move(str(prosody.data_path / DOMAIN), str(directory / "old-data"))
        prosody.config_path.write_text(dst.read_text())
        for server in (lilt, prosody):
            server.start()
            try:
                read_roster_and_private(server)
            finally:
                server.stop()
        # ... and back into a data directory.
        back = directory / "back.cfg.lua"
        back_data = directory / "back-data"
        back.write_text(
            source.replace(str(prosody.data_path), str(back_data))
        )
        done = lilt.ctl("migrate", "--to", str(back))
        assert done.returncode == 0, done.stdout + done.stderr
        assert (back_data / DOMAIN / "accounts" / "alice.dat").is_file()
        assert not (back_data / "lilt-migrate.progress").exists()
        prosody.config_path.write_text(back.read_text())
        lilt.start()
        try:
            read_roster_and_private(lilt)
        finally:
            lilt.stop()
    except BaseException:
        for s in (prosody, lilt):
            print(s.logs())
        raise
    finally:
        lilt.stop()
        prosody.stop()
        prosody.cleanup()


@pytest.mark.parametrize("first,second", DIRECTIONS)
def test_offline_archive_in_sql(pki, database, first, second):
    """An archive store (`offline`, in `prosodyarchive`): a message to an offline
    account stored by one server is delivered, with its delay stamp, by the other."""
    config = with_sql(test_private.config(), database)
    bob = f"bob@{DOMAIN}"

    def write(server: Server) -> None:
        async def body():
            async with Client(server, ALICE, "alice-pw") as a:
                a.send_presence()
                a.send(f"<message to='{bob}' type='chat' id='off1'><body>kept in sql</body></message>")
                await a.expect_none(lambda e: e.get("id") == "off1", within=1.0, what="error")
        run(body())
        rows = database.rows(
            server.data_path,
            "SELECT \"user\", \"type\", \"with\" FROM prosodyarchive WHERE store = 'offline'",
        )
        assert rows and rows[0][0] == "bob" and rows[0][1] == "xml", rows

    def read(server: Server) -> None:
        async def body():
            async with Client(server, bob, "bob-pw") as b:
                b.send_presence()
                got = await b.expect(is_message("kept in sql"), what="offline message")
                assert got.get("from", "").split("/")[0] == ALICE
                assert got.find(q("delay", "urn:xmpp:delay")) is not None
        run(body())

    in_place(pki, first, second, config, USERS, write, read)


def test_migrate_resumes_after_an_interruption(pki):
    """An interrupted migration (its progress file left in the destination's data
    directory) continues: what the file lists is not copied again, the rest is; a
    completed migration removes the file."""
    directory = make_workdir("lilt-migrate-resume-")
    lilt = LiltServer(directory, pki)
    try:
        lilt.write_config(on_internal(test_private.config()))
        for user, host, password in USERS:
            lilt.register(user, host, password)
        source = lilt.config_path.read_text()
        assert 'storage = "internal"' in source
        dst_data = directory / "dst-data"
        dst_data.mkdir()
        dst = directory / "dst.cfg.lua"
        dst.write_text(
            source.replace('storage = "internal"', 'storage = "sql"').replace(
                str(lilt.data_path), str(dst_data)
            )
        )
        (dst_data / "lilt-migrate.progress").write_text(f"keyval\t{DOMAIN}\taccounts\talice\n")
        done = lilt.ctl("migrate", "--to", str(dst))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "resuming: 1 of 2 already copied" in done.stderr, done.stderr
        assert re.search(r"migrated 1 of 2 user stores \(1 in an earlier run\)", done.stdout), done.stdout
        with sqlite3.connect(dst_data / "prosody.sqlite") as db:
            users = sorted(r[0] for r in db.execute("SELECT DISTINCT \"user\" FROM prosody WHERE store = 'accounts'"))
        assert users == ["bob"], users
        assert not (dst_data / "lilt-migrate.progress").exists()
        done = lilt.ctl("migrate", "--to", str(dst))
        assert re.search(r"migrated 2 of 2 ", done.stdout), done.stdout
    finally:
        lilt.cleanup()
