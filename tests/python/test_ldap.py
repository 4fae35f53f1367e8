"""LDAP accounts (authentication = "ldap" and "ldap2") and Cyrus saslauthd, against
Debian's real slapd and saslauthd started on 127.0.0.1 by the test itself.

See lilt_harness/slapd.py for the directory (users alice, bob, jurgen under
ou=people,dc=example,dc=org, with uid and cn).
"""

from __future__ import annotations

import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lilt_harness import paths, slapd as ldap
from lilt_harness.client import Client, is_presence, run
from lilt_harness.config import DOMAIN, TEST_MODULES, Component, ServerConfig, lua_string
from lilt_harness.httpxmpp import bosh_login, ws_login
from lilt_harness.rawstream import RawStream, mechanisms
from lilt_harness.servers import LiltServer, make_workdir

pytestmark = pytest.mark.lilt_only

ALICE, BOB, JURGEN = ldap.USERS
NS_NICK = "http://jabber.org/protocol/nick"
NS_MUC = "http://jabber.org/protocol/muc"
MUC = "rooms.localhost"


@pytest.fixture(scope="module")
def directory():
    reason = ldap.unavailable()
    if reason:
        pytest.skip(reason)
    with ldap.Slapd() as server:
        yield server


def ldap_options(d: ldap.Slapd, **extra) -> dict:
    """Prosody's mod_auth_ldap options for the test directory."""
    return {
        "authentication": "ldap",
        "ldap_server": f"127.0.0.1:{d.port}",
        "ldap_rootdn": ldap.ROOT_DN,
        "ldap_password": ldap.ROOT_PW,
        "ldap_base": ldap.PEOPLE,
        "ldap_filter": "(uid=$user)",
        "ldap_namefield": "cn",
        **extra,
    }


def ldap2_options(d: ldap.Slapd, **extra) -> dict:
    """prosody-modules' mod_lib_ldap table for the test directory."""
    return {
        "authentication": "ldap2",
        "ldap": {
            "hostname": f"127.0.0.1:{d.port}",
            "bind_dn": ldap.ROOT_DN,
            "bind_password": ldap.ROOT_PW,
            "use_tls": False,
            "user": {
                "usernamefield": "uid",
                "basedn": ldap.PEOPLE,
                "filter": "(objectClass=inetOrgPerson)",
                "namefield": "cn",
            },
            **extra,
        },
    }


STYLES = {"ldap": ldap_options, "ldap2": ldap2_options}


def config(host: dict, *, require_encryption: bool = True, muc: bool = False, **globals_) -> ServerConfig:
    hosts: dict = {DOMAIN: host}
    if muc:
        hosts[MUC] = Component("muc", {"muc_room_locking": False})
    return ServerConfig(
        globals={
            "modules_enabled": [*TEST_MODULES, "bosh", "websocket"],
            "c2s_require_encryption": require_encryption,
            "storage": "internal",
            "http_ports": [0],
            "https_ports": [],
            **globals_,
        },
        hosts=hosts,
    )


def login(server, user: str, password: str, transport: str = "starttls", mechanism=None):
    async def body():
        client = Client(server, f"{user}@{DOMAIN}", password, transport=transport, mechanism=mechanism)
        result = await client.login()
        if result.ok:
            await client.close()
        return result

    return run(body())


def offered(server, starttls: bool = True) -> list[str]:
    with RawStream(server.address, server.c2s_port, DOMAIN, ca_file=server.pki.ca_file) as s:
        features = s.open()
        return mechanisms(s.starttls() if starttls else features)


def http_port(server) -> int:
    """The HTTP listener's port (its line may be read just after the c2s ones)."""
    deadline = time.monotonic() + 10
    while "http" not in server.listening and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.listening["http"][1]


# -- logins over TCP, BOSH and WebSocket, both option styles --------------------------


@pytest.mark.parametrize("style", STYLES)
def test_tcp_login_and_refusals(directory, start_server, style):
    server = start_server(config(STYLES[style](directory)))
    assert offered(server) == ["PLAIN"], "LDAP in bind mode can only verify PLAIN"
    result = login(server, "alice", ALICE.password)
    assert result.ok and result.mechanism == "PLAIN", result
    # Non-ASCII cn, uid and password.
    assert login(server, "jurgen", JURGEN.password).ok
    # Usernames are nodeprepped before the directory sees them.
    assert login(server, "Bob", BOB.password).ok
    wrong = login(server, "alice", "not-her-password")
    assert not wrong.ok and wrong.conditions == ["not-authorized"], wrong
    missing = login(server, "mallory", ALICE.password)
    assert not missing.ok and missing.conditions == ["not-authorized"], missing
    # Filter metacharacters are escaped: these match nobody.
    for sneaky in ("*", "*)(uid=*", "alice)(uid=*"):
        attempt = login(server, sneaky, ALICE.password)
        assert not attempt.ok and attempt.conditions == ["not-authorized"], (sneaky, attempt)
    # Another user's password is still wrong.
    assert not login(server, "bob", ALICE.password).ok
    logs = server.logs()
    for pw in (ALICE.password, "not-her-password"):
        assert pw not in logs


@pytest.mark.parametrize("style", STYLES)
def test_plain_tcp_only_with_allow_unencrypted_plain_auth(directory, start_server, style):
    server = start_server(config(STYLES[style](directory), require_encryption=False))
    assert offered(server, starttls=False) == [], "PLAIN is not offered unencrypted by default"
    assert offered(server) == ["PLAIN"]
    server = start_server(
        config(
            STYLES[style](directory),
            require_encryption=False,
            allow_unencrypted_plain_auth=True,
        )
    )
    assert offered(server, starttls=False) == ["PLAIN"]
    result = login(server, "alice", ALICE.password, transport="plain")
    assert result.ok and result.tls_version is None, result


@pytest.mark.parametrize("style", STYLES)
def test_bosh_and_websocket_logins(directory, start_server, style):
    server = start_server(
        config(
            STYLES[style](directory),
            require_encryption=False,
            consider_bosh_secure=True,
            consider_websocket_secure=True,
        )
    )
    port = http_port(server)
    for how in (bosh_login, ws_login):
        ok = how(port, DOMAIN, "alice", ALICE.password)
        assert ok.ok and ok.mechanisms == ["PLAIN"], (how.__name__, ok)
        assert ok.jid and ok.jid.startswith(f"alice@{DOMAIN}/"), ok
        wrong = how(port, DOMAIN, "alice", "wrong")
        assert not wrong.ok and wrong.condition == "not-authorized", (how.__name__, wrong)
        missing = how(port, DOMAIN, "nobody", "x")
        assert not missing.ok and missing.condition == "not-authorized", (how.__name__, missing)


def test_http_transports_not_secure_do_not_offer_plain(directory, start_server):
    server = start_server(
        config(
            ldap_options(directory),
            require_encryption=False,
            consider_bosh_secure=False,
            consider_websocket_secure=False,
        )
    )
    port = http_port(server)
    for how in (bosh_login, ws_login):
        refused = how(port, DOMAIN, "alice", ALICE.password)
        assert not refused.ok and "PLAIN" not in refused.mechanisms, (how.__name__, refused)


# -- the directory over TLS --------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("tls", ["starttls", "ldaps"])
def test_directory_over_tls(directory, start_server, monkeypatch, style, tls):
    # lilt finds the CA as libldap (Prosody's lualdap) does: LDAPTLS_CACERT.
    monkeypatch.setenv("LDAPTLS_CACERT", str(directory.ca_file))
    address = f"localhost:{directory.port}" if tls == "starttls" else directory.ldaps_url
    if style == "ldap":
        host = ldap_options(directory, ldap_server=address, ldap_tls=tls == "starttls")
    else:
        host = ldap2_options(directory, hostname=address, use_tls=tls == "starttls")
    server = start_server(config(host))
    assert login(server, "alice", ALICE.password).ok
    assert login(server, "alice", "wrong").conditions == ["not-authorized"]


def test_untrusted_directory_certificate_is_a_temporary_failure(directory, start_server, monkeypatch):
    monkeypatch.delenv("LDAPTLS_CACERT", raising=False)
    monkeypatch.setenv("LDAPCONF", "/nonexistent")
    server = start_server(config(ldap_options(directory, ldap_server=directory.ldaps_url)))
    result = login(server, "alice", ALICE.password)
    assert not result.ok and result.conditions == ["temporary-auth-failure"], result
    assert "directory unreachable" in server.logs()


def test_unreachable_directory(directory, start_server):
    from lilt_harness.servers import free_port

    server = start_server(config(ldap_options(directory, ldap_server=f"127.0.0.1:{free_port()}")))
    result = login(server, "alice", ALICE.password)
    assert not result.ok and result.conditions == ["temporary-auth-failure"], result
    logs = server.logs()
    assert "directory unreachable" in logs and "alice" in logs
    assert ALICE.password not in logs


def test_getpasswd_mode_offers_scram(directory, start_server):
    server = start_server(config(ldap_options(directory, ldap_mode="getpasswd")))
    # getpasswd is Prosody's `plain` profile: SCRAM is derived from the clear password.
    assert {"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"} <= set(offered(server))
    for mech in ("PLAIN", "SCRAM-SHA-1"):
        result = login(server, "bob", BOB.password, mechanism=mech)
        assert result.ok and result.mechanism == mech, result
        assert not login(server, "bob", "wrong", mechanism=mech).ok


# -- display names from the directory in MUC rooms -----------------------------------------


def nick_of(presence: ET.Element) -> str | None:
    nick = presence.find(f"{{{NS_NICK}}}nick")
    return nick.text if nick is not None else None


@pytest.mark.parametrize("style", STYLES)
def test_directory_display_name_in_rooms(directory, start_server, style):
    server = start_server(config(STYLES[style](directory), muc=True))
    room = f"lounge@{MUC}"

    async def body():
        alice = await Client(server, f"alice@{DOMAIN}", ALICE.password).connect()
        bob = await Client(server, f"bob@{DOMAIN}", BOB.password).connect()
        alice.send(f"<presence to='{room}/a'><x xmlns='{NS_MUC}'/></presence>")
        own = await alice.expect(is_presence(from_=f"{room}/a"))
        assert nick_of(own) == ALICE.cn
        # A nick the client sends itself is kept.
        bob.send(
            f"<presence to='{room}/b'><x xmlns='{NS_MUC}'/>"
            f"<nick xmlns='{NS_NICK}'>Bobby</nick></presence>"
        )
        seen = await bob.expect(is_presence(from_=f"{room}/a"))
        assert nick_of(seen) == ALICE.cn
        bobs = await alice.expect(is_presence(from_=f"{room}/b"))
        assert nick_of(bobs) == "Bobby"
        await alice.close()
        await bob.close()

    run(body())


# -- the Jitsi Debian fixture with LDAP ----------------------------------------------------


def prepare_jitsi_ldap(port: int, pki_dir: Path):
    """Debian's main file + Jitsi's conf.d + jitsi-debian-ldap.cfg.lua (its slapd port
    rewritten), with test overrides for paths, ports and certificates."""
    from lilt_harness.certs import make_pki

    work = make_workdir("lilt-jitsi-ldap-")
    tree = work / "jitsi-debian"
    shutil.copytree(paths.FIXTURES / "jitsi-debian", tree)
    fixture = (paths.FIXTURES / "jitsi-debian-ldap.cfg.lua").read_text()
    fixture = fixture.replace("127.0.0.1:3389", f"127.0.0.1:{port}")
    # conf.d/*.cfg.lua are Included in name order: after meet.example.com.cfg.lua.
    (tree / "conf.d" / "zz-ldap.cfg.lua").write_text(fixture)
    hosts = ["localhost", "meet.example.com", "guest.meet.example.com", "staff.example.com",
             "auth.meet.example.com"]
    pki = make_pki(pki_dir, tuple(hosts))
    pki.install(work / "certs", hosts)
    overrides = [
        f"data_path = {lua_string(str(work / 'data'))}",
        f"pidfile = {lua_string(str(work / 'prosody.pid'))}",
        f"certificates = {lua_string(str(work / 'certs'))}",
        'interfaces = { "127.0.0.1" }',
        "c2s_ports = { 0 }",
        "c2s_direct_tls_ports = { }",
        "s2s_ports = { }",
        "component_ports = { }",
        "http_ports = { 0 }",
        "https_ports = { }",
    ]
    for host in ("meet.example.com",):
        overrides += [
            f"VirtualHost {lua_string(host)}",
            "    ssl = {",
            f"        key = {lua_string(str(work / 'certs' / f'{host}.key'))};",
            f"        certificate = {lua_string(str(work / 'certs' / f'{host}.crt'))};",
            "    }",
        ]
    (work / "data").mkdir()
    (work / "overrides.cfg.lua").write_text("\n".join(overrides) + "\n")
    (work / "prosody.cfg.lua").write_text(
        'Include "jitsi-debian/prosody.cfg.lua"\nInclude "overrides.cfg.lua"\n'
    )
    return work, pki


def test_jitsi_debian_ldap_fixture(directory, tmp_path):
    if not paths.shared_available():
        pytest.skip(paths.SKIP_NO_SHARED)
    work, pki = prepare_jitsi_ldap(directory.port, tmp_path / "pki")
    server = LiltServer(work, pki)
    server.expect_direct_tls = False
    try:
        server.start()
        for host in ("meet.example.com", "staff.example.com"):
            with RawStream(server.address, server.c2s_port, host) as s:
                # c2s_require_encryption = false, no allow_unencrypted_plain_auth.
                assert "PLAIN" not in mechanisms(s.open())

            async def tcp(user=f"alice@{host}"):
                result = await Client(server, user, ALICE.password).login()
                assert result.ok and result.mechanism == "PLAIN", (host, result)
                wrong = await Client(server, user, "wrong").login()
                assert wrong.conditions == ["not-authorized"], (host, wrong)

            run(tcp())
        # meet.example.com has BOSH and WebSocket, considered secure (consider_bosh_secure).
        host = "meet.example.com"
        ok = bosh_login(http_port(server), host, "alice", ALICE.password)
        assert ok.ok and ok.jid.startswith(f"alice@{host}/"), (host, ok)
        ok = ws_login(http_port(server), host, "bob", BOB.password)
        assert ok.ok, (host, ok)
        bad = bosh_login(http_port(server), host, "alice", "wrong")
        assert bad.condition == "not-authorized", (host, bad)
        # guests stay anonymous
        with RawStream(server.address, server.c2s_port, "guest.meet.example.com") as s:
            assert "ANONYMOUS" in mechanisms(s.open())
    finally:
        server.stop()
        server.cleanup()


# -- authentication = "cyrus" through saslauthd --------------------------------------------


def test_cyrus_through_saslauthd(directory, start_server, tmp_path, monkeypatch):
    reason = ldap.saslauthd_unavailable()
    if reason:
        pytest.skip(reason)
    daemon = ldap.Saslauthd(directory).start()
    try:
        # Where libsasl2 looks for the application's config: SASL_CONF_PATH.
        sasl_dir = tmp_path / "sasl2"
        sasl_dir.mkdir()
        (sasl_dir / "xmpp.conf").write_text(
            f"pwcheck_method: saslauthd\nmech_list: PLAIN\nsaslauthd_path: {daemon.socket}\n"
        )
        monkeypatch.setenv("SASL_CONF_PATH", str(sasl_dir))
        server = start_server(
            config(
                {"authentication": "cyrus", "cyrus_application_name": "xmpp"},
                require_encryption=False,
                allow_unencrypted_plain_auth=True,
            )
        )
        assert offered(server, starttls=False) == ["PLAIN"]
        assert login(server, "alice", ALICE.password, transport="plain").ok
        assert login(server, "bob", BOB.password).ok
        assert login(server, "alice", "wrong").conditions == ["not-authorized"]
        assert login(server, "nobody", "x").conditions == ["not-authorized"]
    finally:
        daemon.stop()


def test_cyrus_without_saslauthd_says_what_to_use(start_server, tmp_path, monkeypatch):
    sasl_dir = tmp_path / "sasl2"
    sasl_dir.mkdir()
    (sasl_dir / "xmpp.conf").write_text(
        f"pwcheck_method: saslauthd\nsaslauthd_path: {tmp_path / 'no-such-mux'}\n"
    )
    monkeypatch.setenv("SASL_CONF_PATH", str(sasl_dir))
    server = start_server(
        config({"authentication": "cyrus", "cyrus_application_name": "xmpp"})
    )
    logs = server.logs()
    assert re.search(r"saslauthd.*no-such-mux", logs), logs
    assert 'authentication = "ldap"' in logs, logs
    assert login(server, "alice", "x").conditions == ["temporary-auth-failure"]


# -- differential: Prosody 0.12's own mod_auth_ldap on the same directory --------------------


def lualdap_unavailable() -> str | None:
    reason = paths.prosody_usable()
    if reason:
        return reason
    if not list(Path("/usr/lib/x86_64-linux-gnu/lua").glob("*/lualdap.so")):
        return "skipping: lua-ldap (Prosody's LDAP library) is not installed (scripts/test.sh installs it as root)"
    return None


def outcomes(server) -> dict:
    """What a server answers for the same logins (STARTTLS, PLAIN)."""
    # Compared as sets without -PLUS: Prosody 0.12 has no tls-exporter, and the order of
    # SCRAM mechanisms is the core's (as for internal_hashed), not the provider's.
    result = {"offered": sorted(m for m in offered(server) if not m.endswith("-PLUS"))}
    for user, password in [
        ("alice", ALICE.password),
        ("jurgen", JURGEN.password),
        ("alice", "wrong"),
        ("mallory", ALICE.password),
        ("*", ALICE.password),
        ("*)(uid=*", ALICE.password),
    ]:
        r = login(server, user, password)
        result[f"{user}/{'right' if password in (ALICE.password, JURGEN.password) else 'wrong'}"] = (
            r.ok,
            r.conditions,
        )
    return result


@pytest.mark.parametrize("mode", ["bind", "getpasswd"])
def test_same_logins_as_prosody_mod_auth_ldap(directory, pki, mode):
    reason = lualdap_unavailable()
    if reason:
        pytest.skip(reason)
    from conftest import running_server

    host = ldap_options(directory, ldap_mode=mode)
    del host["ldap_namefield"]
    seen = {}
    for kind in ("lilt", "prosody"):
        with running_server(kind, pki, config(host), direct_tls=False) as server:
            seen[kind] = outcomes(server)
    assert seen["lilt"] == seen["prosody"]
