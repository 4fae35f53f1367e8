"""pytest wiring: which server is under test, certificates, and server start/stop.

    pytest tests/python                    # against lilt (target/debug/lilt)
    pytest tests/python --server=prosody   # the same client tests against Debian's Prosody
    LILT_TEST_SERVER=prosody pytest ...    # same, through the environment
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import pytest

from lilt_harness import paths
from lilt_harness.certs import TestPki, make_pki
from lilt_harness.config import ALL_DOMAINS, ServerConfig, base_config
from lilt_harness.servers import SERVER_KINDS, Server, make_workdir

# Servers currently running, so that a failing test's report carries their logs.
RUNNING: list[Server] = []

KNOWN_FAILURES = Path(__file__).with_name("known_failures.txt")


def known_failures() -> dict[str, str]:
    """Test ids that fail against lilt today, with why (`id  # reason` per line)."""
    known: dict[str, str] = {}
    if KNOWN_FAILURES.is_file():
        for line in KNOWN_FAILURES.read_text().splitlines():
            ident, _, reason = line.partition("#")
            if ident.strip():
                known[ident.strip()] = reason.strip() or "known failure"
    return known


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--server",
        choices=sorted(SERVER_KINDS),
        default=os.environ.get("LILT_TEST_SERVER", "lilt"),
        help="which server the client-behaviour tests run against (default: lilt)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lilt_only: exercises lilt itself (skipped for prosody)")
    config.addinivalue_line("markers", "differential: compares lilt with Debian's Prosody")


def pytest_report_header(config: pytest.Config) -> list[str]:
    kind = config.getoption("--server")
    where = paths.lilt_binary() if kind == "lilt" else paths.REFERENCE_PROSODY
    return [f"server under test: {kind} ({where})", f"shared: {paths.SHARED}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against lilt, known failures are strict xfails: once one passes, the run fails
    until its line is removed from known_failures.txt (the list may only shrink)."""
    if config.getoption("--server") != "lilt":
        return
    known = known_failures()
    for item in items:
        reason = known.get(item.nodeid)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for server in RUNNING:
            report.sections.append((f"{server.kind} logs ({server.directory})", server.logs()))


@pytest.fixture(scope="session")
def server_kind(request: pytest.FixtureRequest) -> str:
    kind = request.config.getoption("--server")
    if kind == "prosody":
        reason = paths.prosody_usable()
        if reason:
            pytest.skip(reason)
    return kind


@pytest.fixture(autouse=True)
def _lilt_only(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("lilt_only") and request.config.getoption("--server") != "lilt":
        pytest.skip("tests lilt itself; not run against prosody")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_pki(tmp_path_factory.mktemp("pki"), ALL_DOMAINS)


@contextmanager
def running_server(
    kind: str,
    pki: TestPki,
    config: ServerConfig | None = None,
    *,
    users: Iterable[tuple[str, str, str]] = (),
    direct_tls: bool = True,
    directory: Path | None = None,
):
    """Write the config, register the users, start the server; stop and clean up after."""
    server = SERVER_KINDS[kind](directory or make_workdir(f"lilt-test-{kind}-"), pki)
    try:
        server.write_config(config or base_config(), direct_tls=direct_tls)
        for user, host, password in users:
            server.register(user, host, password)
    except BaseException:
        server.cleanup()
        raise
    with serving(server):
        yield server


@contextmanager
def serving(server: Server):
    """Start a prepared server (config written, users registered); stop and clean it up
    after. While it runs it is in RUNNING, so a failing test's report carries its output."""
    try:
        RUNNING.append(server)
        server.start()
        yield server
    finally:
        if server in RUNNING:
            RUNNING.remove(server)
        server.stop()
        server.cleanup()


@pytest.fixture
def start_server(server_kind: str, pki: TestPki):
    """A factory: start_server(config, users=[...]) -> a running Server (stopped after)."""
    stack = []

    def start(config: ServerConfig | None = None, **kwargs) -> Server:
        manager = running_server(server_kind, pki, config, **kwargs)
        server = manager.__enter__()
        stack.append(manager)
        return server

    yield start
    while stack:
        stack.pop().__exit__(None, None, None)
