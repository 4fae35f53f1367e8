"""A throw-away PostgreSQL cluster for tests: Debian's `initdb` in a temporary
directory, `postgres` on 127.0.0.1 and a free port with trust authentication,
run as the `postgres` user when the tests run as root (PostgreSQL refuses root).

    with PgCluster() as pg:
        pg.create_database("prosody")
        option = pg.sql_option("prosody")   # the `sql` table for prosody.cfg.lua
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def pg_bin_dir() -> Path | None:
    """Where Debian's PostgreSQL binaries are, None when it is not installed."""
    base = Path("/usr/lib/postgresql")
    if not base.is_dir():
        return None
    found = sorted(p / "bin" for p in base.iterdir() if (p / "bin" / "initdb").is_file())
    return found[-1] if found else None


def postgres_missing() -> str | None:
    if pg_bin_dir() is None:
        return "skipping: PostgreSQL is not installed (apt-get install postgresql)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self) -> None:
        bin_dir = pg_bin_dir()
        if bin_dir is None:
            raise RuntimeError(postgres_missing())
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="lilt-pg-"))
        self.as_root = os.geteuid() == 0
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def _cmd(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin / program), *args]
        return ["runuser", "-u", "postgres", "--", *command] if self.as_root else command

    def start(self) -> "PgCluster":
        if self.as_root:
            os.chmod(self.dir, 0o777)
            shutil.chown(self.dir, "postgres")
        data = self.dir / "data"
        subprocess.run(
            self._cmd("initdb", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D", str(data)),
            check=True,
            capture_output=True,
        )
        self.port = _free_port()
        log = open(self.dir / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            self._cmd(
                "postgres", "-D", str(data), "-c", "listen_addresses=127.0.0.1",
                "-p", str(self.port), "-k", str(self.dir),
            ),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                self._cmd("pg_isready", "-h", "127.0.0.1", "-p", str(self.port)),
                capture_output=True,
            )
            if ready.returncode == 0:
                return self
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"postgres did not start:\n{(self.dir / 'postgres.log').read_text()}")
            time.sleep(0.2)

    def psql(self, database: str, sql: str) -> str:
        done = subprocess.run(
            self._cmd("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                      "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return done.stdout

    def create_database(self, name: str) -> None:
        self.psql("postgres", f'CREATE DATABASE "{name}"')

    def sql_option(self, database: str) -> dict:
        return {
            "driver": "PostgreSQL",
            "database": database,
            "username": "postgres",
            "host": "127.0.0.1",
            "port": self.port,
        }

    def stop(self) -> None:
        if self.proc is None:
            return
        subprocess.run(
            self._cmd("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.dir / "data")),
            capture_output=True,
        )
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PgCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
