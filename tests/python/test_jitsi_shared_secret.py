"""authentication = "jitsi-shared-secret" (Jitsi Meet's mod_auth_jitsi-shared-secret): any
username logs in with shared_secret; shared_secret_prev is accepted during a rotation
(PLAIN); anything else is refused. A Jitsi module, so lilt only."""

from __future__ import annotations

import pytest

from lilt_harness.client import Client, run
from lilt_harness.config import DOMAIN, base_config

SECRET = "jibri-shared-s3cret"
PREVIOUS = "the-old-s3cret"

pytestmark = pytest.mark.lilt_only


@pytest.fixture(scope="module")
def server(server_kind, pki):
    from conftest import running_server

    config = base_config(
        extra_host={
            "authentication": "jitsi-shared-secret",
            "shared_secret": SECRET,
            "shared_secret_prev": PREVIOUS,
        }
    )
    with running_server(server_kind, pki, config) as running:
        yield running


@pytest.mark.parametrize(
    "user,password,mechanism,ok",
    [
        ("jibri", SECRET, "PLAIN", True),
        ("jigasi-7f3a", SECRET, "PLAIN", True),
        ("jibri", SECRET, "SCRAM-SHA-1", True),
        ("jibri", SECRET, "SCRAM-SHA-256", True),
        ("jibri", PREVIOUS, "PLAIN", True),
        ("jibri", "wrong", "PLAIN", False),
        ("jibri", SECRET + "x", "PLAIN", False),
        ("jibri", "wrong", "SCRAM-SHA-1", False),
    ],
)
def test_login(server, user, password, mechanism, ok):
    async def body():
        client = Client(server, f"{user}@{DOMAIN}", password, mechanism=mechanism)
        result = await client.login()
        try:
            assert result.ok == ok, result
            if ok:
                assert result.mechanism == mechanism
                assert result.jid.startswith(f"{user}@{DOMAIN}/")
            else:
                assert "not-authorized" in result.conditions, result
        finally:
            await client.close()

    run(body())
