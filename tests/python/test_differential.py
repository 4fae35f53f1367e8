"""lilt against Debian's Prosody 0.12 on the same inputs: data directories and config files.

- Accounts that `prosodyctl register` wrote log in to lilt serving the same config and
  data directory, which lilt leaves unchanged; and accounts `lilt register` wrote log in
  to Prosody.
- The real-world configs in ../shared/fixtures are accepted by both `check config`s, and
  a syntax error in them is reported by both at the same file and line.

Needs ../shared (reference-prosody) and root; skipped with a message otherwise.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from lilt_harness import paths
from lilt_harness.certs import make_pki
from lilt_harness.client import Client, run
from lilt_harness.config import DOMAIN, base_config, lua_string
from lilt_harness.servers import LiltServer, ProsodyServer, make_workdir

pytestmark = [pytest.mark.differential, pytest.mark.lilt_only]


@pytest.fixture(autouse=True)
def _needs_prosody():
    reason = paths.prosody_usable()
    if reason:
        pytest.skip(reason)


# setup -> (global options, host options, mechanisms to log in with)
SETUPS = {
    "internal_hashed": ({"authentication": "internal_hashed"}, {}, ["SCRAM-SHA-1", "PLAIN"]),
    "internal_hashed_sha256": (
        {"authentication": "internal_hashed"},
        {"password_hash": "SHA-256"},
        ["SCRAM-SHA-256", "PLAIN"],
    ),
    "internal_plain": (
        {"authentication": "internal_plain"},
        {},
        ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"],
    ),
}

# Usernames go through nodeprep (case folding); passwords through SASLprep.
ACCOUNTS = [("alice", "alice", "plain ascii pw"), ("Bob", "bob", "pässwörd ☃ 1")]


def data_snapshot(data_path: Path) -> dict[str, str]:
    return {
        str(f.relative_to(data_path)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(data_path.rglob("*"))
        if f.is_file()
    }


def check_logins(server, mechanisms: list[str]) -> None:
    async def body():
        for _, node, password in ACCOUNTS:
            for mechanism in mechanisms:
                client = Client(server, f"{node}@{DOMAIN}", password, mechanism=mechanism)
                result = await client.login()
                await client.close()
                assert result.ok, f"{server.kind}: {node} with {mechanism}: {result}"
                assert result.mechanism == mechanism
            wrong = Client(server, f"{node}@{DOMAIN}", password + "x", mechanism=mechanisms[0])
            result = await wrong.login()
            assert not result.ok and "not-authorized" in result.conditions, str(result)

    run(body())


def setup_config(setup: str):
    globals_, host, _ = SETUPS[setup]
    # These tests compare Prosody's .dat files, so the internal driver even when the
    # suite runs on sql (LILT_TEST_STORAGE=sql).
    globals_ = dict(globals_, storage="internal")
    return base_config(extra_globals=globals_, extra_host=host)


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_prosody_accounts_log_in_to_lilt(pki, setup):
    directory = make_workdir("lilt-diff-p2l-")
    prosody = ProsodyServer(directory, pki)
    lilt = LiltServer(directory, pki)
    try:
        # One config, with fixed ports, that both servers read unchanged.
        prosody.write_config(setup_config(setup))
        for user, _, password in ACCOUNTS:
            prosody.register(user, DOMAIN, password)
        before = data_snapshot(prosody.data_path)
        assert any("accounts" in name for name in before), before

        lilt.share_config(prosody)
        lilt.start()
        try:
            check_logins(lilt, SETUPS[setup][2])
        finally:
            lilt.stop()
        after = data_snapshot(prosody.data_path)
        changed = {k for k in before if before[k] != after.get(k)}
        assert not changed, f"lilt changed Prosody's account files: {sorted(changed)}"
    finally:
        lilt.stop()
        prosody.cleanup()


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_lilt_accounts_log_in_to_prosody(pki, setup):
    directory = make_workdir("lilt-diff-l2p-")
    lilt = LiltServer(directory, pki)
    prosody = ProsodyServer(directory, pki)
    try:
        prosody.write_config(setup_config(setup))
        lilt.share_config(prosody)
        for user, node, password in ACCOUNTS:
            lilt.register(user, DOMAIN, password)
            assert (prosody.data_path / DOMAIN / "accounts" / f"{node}.dat").is_file(), (
                f"lilt register did not write {node}.dat in Prosody's layout: "
                f"{sorted(data_snapshot(prosody.data_path))}"
            )
        prosody.start()
        try:
            check_logins(prosody, SETUPS[setup][2])
        finally:
            prosody.stop()
    finally:
        prosody.stop()
        prosody.cleanup()


# -- configuration fixtures ------------------------------------------------------------

FIXTURES = ["jitsi-debian", "jitsi-docker", "jitsi-debian-ldap.cfg.lua", "jitsi-token.cfg.lua"]
LOAD_FAILURE = "A problem occurred while reading the config file"
# prosodyctl check config: 0 all good, 2 loaded with advice ("Problems found"), 1 not loaded.
ACCEPTED = (0, 2)


def fixture_hosts(files: list[Path]) -> tuple[list[str], list[str]]:
    """(every VirtualHost, the VirtualHosts whose section sets `ssl`) in the fixture files."""
    hosts, with_ssl = [], []
    for file in files:
        sections = re.split(r'^\s*(?=VirtualHost\s|Component\s)', file.read_text(), flags=re.M)
        for section in sections:
            match = re.match(r'VirtualHost\s*"([^"]+)"', section)
            if match:
                hosts.append(match.group(1))
                if re.search(r"^\s*ssl\s*=", section, flags=re.M):
                    with_ssl.append(match.group(1))
    return hosts, with_ssl


def prepare_fixture(name: str, source: Path | None = None) -> tuple[Path, Path]:
    """Copy the fixture (`source`, by default ../shared/fixtures/NAME) into a fresh
    directory and write a prosody.cfg.lua there that Includes it unchanged, then
    overrides paths (data, pid, logs, certificates, each host's `ssl`) and listens on
    loopback only. Returns (directory, main fixture file)."""
    directory = make_workdir("lilt-fixture-")
    source = source or paths.FIXTURES / name
    if source.is_dir():
        shutil.copytree(source, directory / name)
        main = directory / name / "prosody.cfg.lua"
        files = [main, *sorted((directory / name).rglob("conf.d/*.cfg.lua"))]
    else:
        shutil.copyfile(source, directory / name)
        main = directory / name
        files = [main]
    for sub in ("data", "certs"):
        (directory / sub).mkdir()
    hosts, with_ssl = fixture_hosts(files)
    pki = make_pki(directory / "pki", tuple(hosts) or ("localhost",))
    pki.install(directory / "certs", hosts)
    overrides = [
        "-- test overrides: Included last, so each of these wins",
        f"data_path = {lua_string(str(directory / 'data'))}",
        f"pidfile = {lua_string(str(directory / 'prosody.pid'))}",
        f"certificates = {lua_string(str(directory / 'certs'))}",
        f"log = {{ info = {lua_string(str(directory / 'server.log'))} }}",
        'interfaces = { "127.0.0.1" }',
    ]
    for host in with_ssl:
        overrides += [
            f"VirtualHost {lua_string(host)}",
            "    ssl = {",
            f"        key = {lua_string(str(directory / 'certs' / f'{host}.key'))};",
            f"        certificate = {lua_string(str(directory / 'certs' / f'{host}.crt'))};",
            "    }",
        ]
    (directory / "overrides.cfg.lua").write_text("\n".join(overrides) + "\n")
    (directory / "prosody.cfg.lua").write_text(
        f"Include {lua_string(str(main.relative_to(directory)))}\n"
        'Include "overrides.cfg.lua"\n'
    )
    return directory, main


def both_check(directory: Path, pki):
    lilt = LiltServer(directory, pki).ctl("check", "config")
    prosody = ProsodyServer(directory, pki).ctl("check", "config")
    return lilt, prosody


def show(done) -> str:
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_config_accepted_by_both(pki, fixture):
    directory, _ = prepare_fixture(fixture)
    try:
        lilt, prosody = both_check(directory, pki)
        assert prosody.returncode in ACCEPTED and LOAD_FAILURE not in prosody.stdout, (
            f"prosodyctl rejects {fixture}:\n{show(prosody)}"
        )
        assert lilt.returncode in ACCEPTED, f"lilt rejects {fixture}:\n{show(lilt)}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


DEBIAN_STOCK = Path("/etc/prosody")


@pytest.mark.skipif(
    not (DEBIAN_STOCK / "prosody.cfg.lua").is_file(), reason="Debian's prosody package is not installed"
)
def test_debian_stock_config_passes_both_checks(pki):
    """Debian's stock prosody.cfg.lua (with its conf.d) passes both `check config`s
    (exit 0); lilt names `posix`, which it does without, as a note."""
    directory, _ = prepare_fixture("debian-stock", DEBIAN_STOCK)
    try:
        lilt, prosody = both_check(directory, pki)
        assert prosody.returncode == 0, show(prosody)
        assert lilt.returncode == 0, show(lilt)
        assert "(note) lilt: module \"posix\" is not needed" in lilt.stdout, show(lilt)
        assert "All checks passed" in lilt.stdout, show(lilt)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_syntax_error_reported_alike(pki, fixture):
    directory, main = prepare_fixture(fixture)
    try:
        # Break the last file the fixture consists of, two lines past its end.
        target = sorted(main.parent.rglob("conf.d/*.cfg.lua")) or [main]
        broken = target[-1]
        text = broken.read_text()
        if not text.endswith("\n"):
            text += "\n"
        line = text.count("\n") + 2
        broken.write_text(text + "\nmodules_enabled = { \"ping\" \"version\" }\n")
        lilt, prosody = both_check(directory, pki)
        where = f"{broken.name}:{line}"
        assert prosody.returncode not in ACCEPTED and where in show(prosody), show(prosody)
        assert lilt.returncode not in ACCEPTED, f"lilt accepts a broken config:\n{show(lilt)}"
        assert where in show(lilt), f"lilt does not name {where}:\n{show(lilt)}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)
