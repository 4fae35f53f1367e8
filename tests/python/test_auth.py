"""SASL: every mechanism over STARTTLS, direct TLS and plain TCP; failures; what is offered when."""

from __future__ import annotations

import ssl
from contextlib import ExitStack

import pytest
from conftest import running_server

from lilt_harness.client import Client, run
from lilt_harness.config import ANON_DOMAIN, DOMAIN, base_config
from lilt_harness.rawstream import RawStream, mechanisms, starttls_offer

PASSWORD = "correct horse battery staple"

# authentication setup -> (config options, the mechanisms it can verify)
AUTH_SETUPS = {
    # Prosody's default: SCRAM-SHA-1 keys on disk, PLAIN checked against them.
    "internal_hashed": ({"authentication": "internal_hashed"}, {}, ["PLAIN", "SCRAM-SHA-1"]),
    # password_hash = "SHA-256": SCRAM-SHA-256 keys on disk.
    "internal_hashed_sha256": (
        {"authentication": "internal_hashed"},
        {"password_hash": "SHA-256"},
        ["PLAIN", "SCRAM-SHA-256"],
    ),
    # Plaintext on disk: every SCRAM can be derived.
    "internal_plain": (
        {"authentication": "internal_plain"},
        {},
        ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"],
    ),
}
TRANSPORTS = ["starttls", "direct_tls", "plain"]
LOGIN_CASES = [
    (setup, mech, transport)
    for setup, (_, _, mechs) in AUTH_SETUPS.items()
    for mech in mechs
    for transport in TRANSPORTS
]


class AuthServers:
    """One server per authentication setup, started on first use, kept for the module.

    Plain TCP is allowed on them, and PLAIN on plain TCP too.
    """

    def __init__(self, kind, pki):
        self.kind, self.pki = kind, pki
        self.stack = ExitStack()
        self.servers = {}

    def get(self, setup: str):
        if setup not in self.servers:
            globals_, host, _ = AUTH_SETUPS[setup]
            config = base_config(
                require_encryption=False,
                extra_globals={**globals_, "allow_unencrypted_plain_auth": True},
                extra_host=host,
            )
            users = [("alice", DOMAIN, PASSWORD), ("bob", DOMAIN, "bob's password")]
            manager = running_server(self.kind, self.pki, config, users=users)
            self.servers[setup] = self.stack.enter_context(manager)
        return self.servers[setup]


@pytest.fixture(scope="module")
def auth_servers(server_kind, pki):
    servers = AuthServers(server_kind, pki)
    with servers.stack:
        yield servers


def offered(server, *, tls: str) -> list[str]:
    """Mechanisms offered before authentication: tls is "none", "starttls" or "direct"."""
    port = server.direct_tls_port if tls == "direct" else server.c2s_port
    with RawStream(
        server.address, port, DOMAIN, ca_file=server.pki.ca_file, direct_tls=tls == "direct"
    ) as stream:
        features = stream.open()
        if tls == "starttls":
            features = stream.starttls()
        return mechanisms(features)


@pytest.mark.parametrize("setup,mechanism,transport", LOGIN_CASES)
def test_login(auth_servers, setup, mechanism, transport):
    auth_server = auth_servers.get(setup)
    async def body():
        client = Client(
            auth_server, f"alice@{DOMAIN}", PASSWORD, transport=transport, mechanism=mechanism
        )
        result = await client.login()
        try:
            assert result.ok, str(result)
            assert result.mechanism == mechanism
            assert result.jid.startswith(f"alice@{DOMAIN}/")
            if transport == "plain":
                assert result.tls_version is None
            else:
                assert result.tls_version is not None
        finally:
            await client.close()

    run(body())


@pytest.mark.parametrize("setup", list(AUTH_SETUPS))
def test_offered_mechanisms(auth_servers, setup):
    """Over TLS exactly the mechanisms the stored credentials can verify (+ -PLUS forms)."""
    auth_server = auth_servers.get(setup)
    _, _, expected = AUTH_SETUPS[setup]
    for tls in ("starttls", "direct"):
        mechs = offered(auth_server, tls=tls)
        base = sorted({m.removesuffix("-PLUS") for m in mechs})
        assert base == sorted(expected), f"{tls}: offered {mechs}"
        for plus in (m for m in mechs if m.endswith("-PLUS")):
            assert plus.removesuffix("-PLUS") in expected
    # allow_unencrypted_plain_auth = true: PLAIN is offered without TLS as well.
    plain = offered(auth_server, tls="none")
    assert "PLAIN" in plain
    assert not any(m.endswith("-PLUS") for m in plain), "channel binding without TLS"


@pytest.mark.parametrize(
    "setup,mechanism",
    [(setup, mech) for setup, (_, _, mechs) in AUTH_SETUPS.items() for mech in mechs],
)
def test_wrong_password_is_not_authorized(auth_servers, setup, mechanism):
    auth_server = auth_servers.get(setup)
    async def body():
        wrong = Client(auth_server, f"alice@{DOMAIN}", "not the password", mechanism=mechanism)
        result = await wrong.login()
        assert not result.ok
        assert "not-authorized" in result.conditions, str(result)
        nobody = Client(auth_server, f"nobody@{DOMAIN}", PASSWORD, mechanism=mechanism)
        result = await nobody.login()
        assert not result.ok
        assert "not-authorized" in result.conditions, str(result)
        # The account still works afterwards.
        good = Client(auth_server, f"alice@{DOMAIN}", PASSWORD, mechanism=mechanism)
        assert (await good.login()).ok
        await good.close()

    run(body())


def test_plain_not_offered_unencrypted_by_default(start_server):
    """c2s_require_encryption = false alone: SCRAM without TLS, but never PLAIN."""
    server = start_server(
        base_config(require_encryption=False), users=[("alice", DOMAIN, PASSWORD)]
    )
    plain = offered(server, tls="none")
    assert plain, "some mechanism must be offered when encryption is not required"
    assert "PLAIN" not in plain
    assert "PLAIN" in offered(server, tls="starttls")

    async def body():
        refused = Client(server, f"alice@{DOMAIN}", PASSWORD, transport="plain", mechanism="PLAIN")
        result = await refused.login()
        assert not result.ok, "PLAIN must not work on an unencrypted stream"
        scram = Client(
            server, f"alice@{DOMAIN}", PASSWORD, transport="plain", mechanism="SCRAM-SHA-1"
        )
        result = await scram.login()
        assert result.ok, str(result)
        assert result.tls_version is None
        await scram.close()

    run(body())


def test_require_encryption_offers_no_auth_before_tls(start_server):
    server = start_server(base_config(require_encryption=True), users=[("alice", DOMAIN, PASSWORD)])
    with RawStream(server.address, server.c2s_port, DOMAIN, ca_file=server.pki.ca_file) as stream:
        features = stream.open()
        assert starttls_offer(features) == (True, True), "STARTTLS must be offered as required"
        assert mechanisms(features) == []
        after = stream.starttls()
        assert "SCRAM-SHA-1" in mechanisms(after)
        assert starttls_offer(after) == (False, False)

    async def body():
        client = Client(server, f"alice@{DOMAIN}", PASSWORD, transport="plain")
        result = await client.login(timeout=5)
        assert not result.ok

    run(body())


def test_anonymous_login(start_server):
    server = start_server(base_config(anonymous_host=True))
    with RawStream(server.address, server.c2s_port, ANON_DOMAIN, ca_file=server.pki.ca_file) as s:
        s.open()
        assert mechanisms(s.starttls()) == ["ANONYMOUS"]

    async def body():
        first = Client(server, ANON_DOMAIN)
        second = Client(server, ANON_DOMAIN, transport="direct_tls")
        one = await first.login()
        two = await second.login()
        try:
            assert one.ok, str(one)
            assert two.ok, str(two)
            assert one.mechanism == two.mechanism == "ANONYMOUS"
            for jid in (one.jid, two.jid):
                local, _, rest = jid.partition("@")
                domain, _, resource = rest.partition("/")
                assert local and resource and domain == ANON_DOMAIN, jid
            assert one.jid.split("/")[0] != two.jid.split("/")[0], "anonymous JIDs must differ"
        finally:
            await first.close()
            await second.close()
        # An account host does not offer ANONYMOUS.
        named = Client(server, DOMAIN)
        assert not (await named.login()).ok

    run(body())


def test_insecure_open_authentication(start_server):
    server = start_server(
        base_config(
            authentication="insecure",
            extra_globals={"insecure_open_authentication": "Yes please, I know what I'm doing!"},
        )
    )

    async def body():
        client = Client(server, f"whoever@{DOMAIN}", "any password at all")
        result = await client.login()
        assert result.ok, str(result)
        assert result.mechanism == "PLAIN"
        await client.close()

    run(body())


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
def test_scram_plus_tls_exporter(start_server, mechanism):
    if "tls-exporter" not in ssl.CHANNEL_BINDING_TYPES:
        pytest.skip(
            "this Python's ssl module has no tls-exporter channel binding "
            f"(has {ssl.CHANNEL_BINDING_TYPES}), so slixmpp cannot do SCRAM-*-PLUS on TLS 1.3; "
            "test_channel_binding.py covers it with pyOpenSSL"
        )
    config = base_config(authentication="internal_plain")
    server = start_server(config, users=[("alice", DOMAIN, PASSWORD)])

    async def body():
        client = Client(server, f"alice@{DOMAIN}", PASSWORD, mechanism=mechanism)
        result = await client.login()
        assert result.ok and result.mechanism == mechanism, str(result)
        await client.close()

    run(body())
