"""The prosodyctl-style command line: accounts while the server runs, `check config`, `about`.

Against Prosody the same commands go through `prosodyctl` (reference-prosody ctl).
"""

from __future__ import annotations

import pytest

from lilt_harness.client import Client, run
from lilt_harness.config import DOMAIN, base_config
from lilt_harness.servers import SERVER_KINDS, make_workdir


def output(done) -> str:
    return f"{done.stdout}\n{done.stderr}"


def login(server, jid: str, password: str, mechanism: str = "SCRAM-SHA-1"):
    async def body():
        client = Client(server, jid, password, mechanism=mechanism)
        result = await client.login()
        await client.close()
        return result

    return run(body())


@pytest.fixture
def server(start_server):
    return start_server(base_config())


def test_register_then_login(server):
    done = server.ctl("register", "alice", DOMAIN, "s3cret pass")
    assert done.returncode == 0, output(done)
    for mechanism in ("SCRAM-SHA-1", "PLAIN"):
        result = login(server, f"alice@{DOMAIN}", "s3cret pass", mechanism)
        assert result.ok, f"{mechanism}: {result}"
    # register on an existing account sets its password.
    done = server.ctl("register", "alice", DOMAIN, "another pass")
    assert done.returncode == 0, output(done)
    assert login(server, f"alice@{DOMAIN}", "another pass").ok
    assert "not-authorized" in login(server, f"alice@{DOMAIN}", "s3cret pass").conditions


def test_register_unknown_host_fails(server):
    done = server.ctl("register", "alice", "not-a-host.example", "pw")
    assert done.returncode != 0, output(done)


def test_adduser_and_passwd(server):
    jid = f"carol@{DOMAIN}"
    done = server.ctl("adduser", jid, stdin="first-pw\nfirst-pw\n")
    assert done.returncode == 0, output(done)
    assert login(server, jid, "first-pw").ok

    again = server.ctl("adduser", jid, stdin="x\nx\n")
    assert again.returncode != 0, "adduser of an existing account must fail"
    assert login(server, jid, "first-pw").ok, "a failed adduser must not change the account"

    mismatch = server.ctl("passwd", jid, stdin="one\ntwo\n")
    assert mismatch.returncode != 0, "passwd with two different entries must fail"
    assert login(server, jid, "first-pw").ok

    done = server.ctl("passwd", jid, stdin="second-pw\nsecond-pw\n")
    assert done.returncode == 0, output(done)
    assert login(server, jid, "second-pw").ok
    assert "not-authorized" in login(server, jid, "first-pw").conditions


def test_deluser(server):
    jid = f"dave@{DOMAIN}"
    done = server.ctl("register", "dave", DOMAIN, "dave-pw")
    assert done.returncode == 0, output(done)
    assert login(server, jid, "dave-pw").ok

    done = server.ctl("deluser", jid)
    assert done.returncode == 0, output(done)
    gone = login(server, jid, "dave-pw")
    assert not gone.ok and "not-authorized" in gone.conditions, str(gone)

    done = server.ctl("deluser", jid)
    assert done.returncode != 0, "deluser of a missing account must fail"


def test_about(server):
    done = server.ctl("about")
    assert done.returncode == 0, output(done)
    assert done.stdout.strip()


# prosodyctl check config exits 0 when all is good, 2 when the config loaded but it has
# advice (unknown or unavailable modules, obsolete options...), 1 when it cannot be loaded.
LOADED = (0, 2)


def test_check_config_good(server):
    done = server.ctl("check", "config")
    assert done.returncode in LOADED, output(done)


BAD_CONFIGS = {
    # name: (file contents by name, file and line the error must name)
    "syntax": (
        {"prosody.cfg.lua": 'admins = { }\nmodules_enabled = {\n  "roster"\n  "disco";\n}\n'},
        ("prosody.cfg.lua", 4),
    ),
    "included": (
        {
            "prosody.cfg.lua": 'admins = { }\nInclude "extra.cfg.lua"\nVirtualHost "localhost"\n',
            "extra.cfg.lua": '-- included\nallow_registration = false\nfoo = = 1\n',
        },
        ("extra.cfg.lua", 3),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_check_config_bad_names_file_and_line(server_kind, pki, case):
    files, (bad_file, line) = BAD_CONFIGS[case]
    directory = make_workdir(f"lilt-badcfg-{server_kind}-")
    checker = SERVER_KINDS[server_kind](directory, pki)
    try:
        for name, text in files.items():
            (directory / name).write_text(text)
        done = checker.ctl("check", "config")
        assert done.returncode == 1, output(done)  # prosodyctl: 1 = could not load
        assert f"{bad_file}:{line}" in output(done), output(done)
    finally:
        checker.cleanup()
