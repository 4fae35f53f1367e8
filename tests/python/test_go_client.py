"""A Go client library the other tests do not use: github.com/xmppo/go-xmpp
(go-sendxmpp's library), driven by tests/go-client (built here with the Go
toolchain, its module cache and build cache under the target directory). One
whole-server scenario: two accounts log in (STARTTLS, SCRAM), become mutual
contacts, exchange 20 chat messages, a second resource sees carbons of both
directions (XEP-0280), the archive pages through every message (XEP-0313, 7
per page), and a file goes up and down through http_file_share (XEP-0363, lilt
on `http_ports = { 0 }`, so the slot URLs must carry the port the system
chose) and its link to the contact (XEP-0066). Also passes against Prosody
0.12 (`--server=prosody`, on a fixed HTTP port). Skipped when `go` is not
installed, or older than go-xmpp needs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lilt_harness import paths
from lilt_harness.config import DOMAIN, TEST_MODULES, Component, base_config
from lilt_harness.servers import free_port

SOURCE = paths.WORKSPACE / "tests" / "go-client"
USERS = [("alice", DOMAIN, "alice-pw"), ("bob", DOMAIN, "bob-pw")]
UPLOAD = f"upload.{DOMAIN}"


def go_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", paths.WORKSPACE / "target"))
    if not target.is_absolute():
        target = paths.WORKSPACE / target
    return target / "go"


def go_env() -> dict:
    base = go_dir()
    return {
        **os.environ,
        "GOPATH": str(base),
        "GOMODCACHE": str(base / "mod"),
        "GOCACHE": str(base / "cache"),
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=mod",
    }


def go_version(text: str) -> tuple[int, ...]:
    """`1.26.8` as (1, 26, 8); what does not parse counts as 0."""
    parts = []
    for p in text.split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


@pytest.fixture(scope="module")
def goclient() -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain (`go`) is not installed: the go-xmpp client test needs it")
    wanted = go_version((SOURCE / "go.mod").read_text().split("\ngo ", 1)[1].split()[0])
    have = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60)
    if go_version(have.stdout.strip().removeprefix("go")) < wanted:
        pytest.skip(f"{have.stdout.strip()} is older than tests/go-client's go.mod asks (go-xmpp needs it)")
    binary = go_dir() / "goclient"
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=SOURCE,
        env=go_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"go build failed:\n{done.stdout}{done.stderr}"
    return binary


def test_go_xmpp_client(start_server, goclient, server_kind):
    config = base_config(
        extra_globals={
            "modules_enabled": TEST_MODULES + ["carbons", "mam"],
            # Prosody cannot report a port the system chose.
            "http_ports": [free_port() if server_kind == "prosody" else 0],
            "http_interfaces": ["127.0.0.1"],
            "https_ports": [],
        }
    )
    config.hosts[UPLOAD] = Component("http_file_share")
    server = start_server(config, users=USERS)
    done = subprocess.run(
        [
            str(goclient),
            "-addr", f"{server.address}:{server.c2s_port}",
            "-domain", DOMAIN,
            "-ca", str(server.pki.ca_file),
            "-messages", "20",
            "-upload", UPLOAD,
            # lilt lists its channel binding (XEP-0440), so go-xmpp picks
            # SCRAM-*-PLUS itself; Prosody 0.12 does not, and go-xmpp's
            # guess is refused there: PLAIN over TLS.
            "-mechanism", "" if server_kind == "lilt" else "PLAIN",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    steps = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("ok ")]
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert steps == ["login", "roster", "messages", "carbons", "mam", "upload", "done"], done.stdout
