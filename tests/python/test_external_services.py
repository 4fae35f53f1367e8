"""XEP-0215 External Service Discovery (mod_external_services) with the option shapes of
../shared/fixtures/jitsi-debian: a STUN service and TURN/TURNS services with REST credentials
derived from external_service_secret. Runs against Prosody 0.12 too (--server=prosody)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import time

import pytest

from lilt_harness.client import Client, error_condition, q, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config

NS2 = "urn:xmpp:extdisco:2"
NS1 = "urn:xmpp:extdisco:1"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
SECRET = "turnsecret-0123456789abcdef"
TURN_HOST = "turn.example.com"

# As in the jitsi-debian fixture's conf.d (host names changed to one that is not the
# XMPP host, so the default external_service_host cannot hide a bug).
SERVICES = [
    {"type": "stun", "host": TURN_HOST, "port": 3478},
    {
        "type": "turn",
        "host": TURN_HOST,
        "port": 3478,
        "transport": "udp",
        "secret": True,
        "ttl": 86400,
        "algorithm": "turn",
    },
    {
        "type": "turns",
        "host": TURN_HOST,
        "port": 5349,
        "transport": "tcp",
        "secret": True,
        "ttl": 86400,
        "algorithm": "turn",
    },
    # No host: external_service_host applies; a fixed username and password.
    {"type": "turn", "port": 3479, "transport": "tcp", "username": "u1", "password": "p1"},
]

USERS = [("alice", DOMAIN, "alice-pw")]


@pytest.fixture(scope="module")
def server(server_kind, pki):
    from conftest import running_server

    config = base_config(
        extra_globals={
            "modules_enabled": TEST_MODULES + ["external_services"],
            "external_service_secret": SECRET,
            "external_service_host": "default.example.com",
            "external_services": SERVICES,
        }
    )
    with running_server(server_kind, pki, config, users=USERS) as running:
        yield running


def alice(server) -> Client:
    return Client(server, f"alice@{DOMAIN}", "alice-pw")


def services_of(reply, name: str = "services", ns: str = NS2) -> list[dict]:
    assert reply.get("type") == "result", f"error {error_condition(reply)}"
    payload = reply.find(q(name, ns))
    assert payload is not None, f"no <{name} xmlns='{ns}'/> in the reply"
    return [dict(s.attrib) for s in payload.findall(q("service", ns))]


def expected_password(username: str) -> str:
    mac = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def check_turn_credentials(service: dict, asked_at: float) -> None:
    """username is the expiry (now + ttl), password base64(HMAC-SHA1(secret, username))."""
    expiry = int(service["username"])
    assert asked_at + 86400 - 5 <= expiry <= time.time() + 86400 + 5, service
    assert service["password"] == expected_password(service["username"])
    assert service["restricted"] == "1"
    stamp = datetime.datetime.fromtimestamp(expiry, datetime.timezone.utc)
    assert service["expires"] == stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_features_advertised(server):
    async def body():
        async with alice(server) as a:
            reply = await a.iq(f"<iq type='get' to='{DOMAIN}' id='{{id}}'><query xmlns='{NS_DISCO_INFO}'/></iq>")
            features = {f.get("var") for f in reply.iter(q("feature", NS_DISCO_INFO))}
            assert {NS1, NS2} <= features, sorted(features)

    run(body())


def test_services_with_turn_rest_credentials(server):
    async def body():
        async with alice(server) as a:
            asked_at = time.time()
            reply = await a.iq(f"<iq type='get' to='{DOMAIN}' id='{{id}}'><services xmlns='{NS2}'/></iq>")
            got = services_of(reply)
            assert [(s["type"], s["host"], s.get("port")) for s in got] == [
                ("stun", TURN_HOST, "3478"),
                ("turn", TURN_HOST, "3478"),
                ("turns", TURN_HOST, "5349"),
                ("turn", "default.example.com", "3479"),
            ]
            stun, turn, turns, fixed = got
            assert stun == {"type": "stun", "host": TURN_HOST, "port": "3478"}
            assert turn["transport"] == "udp" and turns["transport"] == "tcp"
            check_turn_credentials(turn, asked_at)
            check_turn_credentials(turns, asked_at)
            assert fixed["username"] == "u1" and fixed["password"] == "p1"
            assert fixed["restricted"] == "1" and "expires" not in fixed

    run(body())


def test_services_of_one_type(server):
    async def body():
        async with alice(server) as a:
            reply = await a.iq(
                f"<iq type='get' to='{DOMAIN}' id='{{id}}'><services xmlns='{NS2}' type='turn'/></iq>"
            )
            got = services_of(reply)
            assert [(s["type"], s.get("port")) for s in got] == [("turn", "3478"), ("turn", "3479")]

    run(body())


def test_credentials(server):
    async def body():
        async with alice(server) as a:
            asked_at = time.time()
            reply = await a.iq(
                f"<iq type='get' to='{DOMAIN}' id='{{id}}'><credentials xmlns='{NS2}'>"
                f"<service type='turns' host='{TURN_HOST}' port='5349'/></credentials></iq>"
            )
            got = services_of(reply, "credentials")
            assert len(got) == 1, got
            assert (got[0]["type"], got[0]["port"]) == ("turns", "5349")
            check_turn_credentials(got[0], asked_at)
            # Without a port: every restricted service of that type and host.
            reply = await a.iq(
                f"<iq type='get' to='{DOMAIN}' id='{{id}}'><credentials xmlns='{NS2}'>"
                f"<service type='turn' host='{TURN_HOST}'/></credentials></iq>"
            )
            got = services_of(reply, "credentials")
            assert [(s["type"], s["port"]) for s in got] == [("turn", "3478")]
            # STUN has no credentials; an unknown host neither.
            reply = await a.iq(
                f"<iq type='get' to='{DOMAIN}' id='{{id}}'><credentials xmlns='{NS2}'>"
                f"<service type='stun' host='{TURN_HOST}' port='3478'/>"
                f"<service type='turn' host='elsewhere.example.com' port='3478'/></credentials></iq>"
            )
            assert services_of(reply, "credentials") == []

    run(body())


def test_credentials_need_type_and_host(server):
    async def body():
        async with alice(server) as a:
            reply = await a.iq(
                f"<iq type='get' to='{DOMAIN}' id='{{id}}'><credentials xmlns='{NS2}'>"
                f"<service type='turn'/></credentials></iq>"
            )
            assert reply.get("type") == "error"
            assert error_condition(reply) == ("modify", "bad-request")

    run(body())


def test_extdisco_1(server):
    async def body():
        async with alice(server) as a:
            asked_at = time.time()
            reply = await a.iq(f"<iq type='get' to='{DOMAIN}' id='{{id}}'><services xmlns='{NS1}'/></iq>")
            got = services_of(reply, "services", NS1)
            assert [s["type"] for s in got] == ["stun", "turn", "turns", "turn"]
            check_turn_credentials(got[1], asked_at)
            reply = await a.iq(
                f"<iq type='get' to='{DOMAIN}' id='{{id}}'><credentials xmlns='{NS1}'>"
                f"<service type='turn' host='{TURN_HOST}' port='3478'/></credentials></iq>"
            )
            got = services_of(reply, "credentials", NS1)
            assert len(got) == 1
            check_turn_credentials(got[0], asked_at)

    run(body())
