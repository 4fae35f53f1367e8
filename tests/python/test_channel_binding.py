"""SCRAM-*-PLUS with tls-exporter (RFC 9266) against lilt, through pyOpenSSL.

slixmpp cannot bind to TLS 1.3 on this Python (see test_auth.py), so these tests speak
SASL themselves over a pyOpenSSL connection, which can export keying material. Prosody
0.12 only knows tls-unique (not defined for TLS 1.3), so the -PLUS tests are lilt's alone;
the plain SCRAM one also runs against Prosody, which checks the SCRAM client here.
"""

from __future__ import annotations

import pytest

from lilt_harness.config import DOMAIN, base_config
from lilt_harness.rawstream import mechanisms

scram_plus = pytest.importorskip("lilt_harness.scram_plus", reason="pyOpenSSL not installed")

PASSWORD = "bound to this channel"
MECHANISMS = ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"]


@pytest.fixture(scope="module")
def server(server_kind, pki):
    from conftest import running_server

    # internal_plain: both SCRAM hashes can be derived, so both -PLUS forms apply.
    config = base_config(authentication="internal_plain")
    with running_server(server_kind, pki, config, users=[("alice", DOMAIN, PASSWORD)]) as running:
        yield running


def open_tls(server, direct: bool):
    port = server.direct_tls_port if direct else server.c2s_port
    stream = scram_plus.ExporterStream(
        server.address, port, DOMAIN, ca_file=server.pki.ca_file, direct_tls=direct
    )
    features = stream.open()
    if not direct:
        features = stream.starttls()
    return stream, features


@pytest.mark.lilt_only
@pytest.mark.parametrize("direct", [False, True], ids=["starttls", "direct_tls"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_scram_plus_with_tls_exporter(server, mechanism, direct):
    stream, features = open_tls(server, direct)
    with stream:
        assert mechanism in mechanisms(features), mechanisms(features)
        outcome = scram_plus.scram_login(
            stream,
            mechanism,
            "alice",
            PASSWORD,
            gs2_flag="p=tls-exporter",
            binding=stream.tls_exporter(),
        )
        assert outcome.ok, f"{mechanism} over {stream.tls_version()}: {outcome.condition}"
        assert outcome.server_signature_ok, "server signature (v=) does not verify"
        # The stream restarts authenticated: resource binding is offered next.
        after = stream.restart()
        assert after.find("{urn:ietf:params:xml:ns:xmpp-bind}bind") is not None


@pytest.mark.lilt_only
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_scram_plus_wrong_binding_fails(server, mechanism):
    stream, _ = open_tls(server, direct=False)
    with stream:
        wrong = bytes(b ^ 0xFF for b in stream.tls_exporter())
        outcome = scram_plus.scram_login(
            stream, mechanism, "alice", PASSWORD, gs2_flag="p=tls-exporter", binding=wrong
        )
        assert not outcome.ok, "a channel binding from another channel was accepted"


@pytest.mark.lilt_only
def test_downgrade_flag_y_is_refused(server):
    """A client that could bind says 'y' (it thinks the server cannot) while the server
    offers -PLUS: RFC 5802 requires the server to fail the authentication."""
    stream, features = open_tls(server, direct=False)
    with stream:
        assert "SCRAM-SHA-1-PLUS" in mechanisms(features)
        outcome = scram_plus.scram_login(stream, "SCRAM-SHA-1", "alice", PASSWORD, gs2_flag="y")
        assert not outcome.ok, "'y' accepted although the server supports channel binding"


def test_plain_scram_still_works_without_binding(server):
    stream, _ = open_tls(server, direct=False)
    with stream:
        outcome = scram_plus.scram_login(stream, "SCRAM-SHA-256", "alice", PASSWORD, gs2_flag="n")
        assert outcome.ok and outcome.server_signature_ok, outcome.condition


@pytest.mark.lilt_only
def test_tls_unique_is_not_accepted_as_exporter(server):
    """Binding type tls-unique is undefined in TLS 1.3; a server binding with
    tls-exporter must not take it."""
    stream, _ = open_tls(server, direct=False)
    with stream:
        if stream.tls_version() != "TLSv1.3":
            pytest.skip(f"negotiated {stream.tls_version()}")
        outcome = scram_plus.scram_login(
            stream,
            "SCRAM-SHA-256-PLUS",
            "alice",
            PASSWORD,
            gs2_flag="p=tls-unique",
            binding=stream.tls_exporter(),
        )
        assert not outcome.ok
