"""Server IQs (ping, disco#info, version, time, uptime) and the errors for what nobody handles."""

from __future__ import annotations

import datetime

import pytest

from lilt_harness.client import Client, error_condition, q, run
from lilt_harness.config import DOMAIN, base_config

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"

USERS = [("alice", DOMAIN, "alice-pw"), ("bob", DOMAIN, "bob-pw")]


@pytest.fixture(scope="module")
def server(server_kind, pki):
    from conftest import running_server

    with running_server(server_kind, pki, base_config(), users=USERS) as running:
        yield running


def alice(server) -> Client:
    return Client(server, f"alice@{DOMAIN}", "alice-pw")


def ask(payload: str, to: str = DOMAIN, kind: str = "get") -> str:
    return f"<iq type='{kind}' to='{to}' id='{{id}}'>{payload}</iq>"


def assert_result(reply) -> None:
    assert reply.get("type") == "result", f"expected a result, got error {error_condition(reply)}"
    assert reply.get("from") == DOMAIN


def test_ping(server):
    async def body():
        async with alice(server) as a:
            assert_result(await a.iq(ask("<ping xmlns='urn:xmpp:ping'/>")))

    run(body())


def test_disco_info(server):
    async def body():
        async with alice(server) as a:
            reply = await a.iq(ask(f"<query xmlns='{NS_DISCO_INFO}'/>"))
            assert_result(reply)
            query = reply.find(q("query", NS_DISCO_INFO))
            identities = {
                (i.get("category"), i.get("type")) for i in query.findall(q("identity", NS_DISCO_INFO))
            }
            assert ("server", "im") in identities
            features = {f.get("var") for f in query.findall(q("feature", NS_DISCO_INFO))}
            for needed in (
                NS_DISCO_INFO,
                "urn:xmpp:ping",
                "jabber:iq:version",
                "urn:xmpp:time",
                "jabber:iq:last",
            ):
                assert needed in features, f"{needed} not advertised: {sorted(features)}"

    run(body())


def test_version(server):
    async def body():
        async with alice(server) as a:
            reply = await a.iq(ask("<query xmlns='jabber:iq:version'/>"))
            assert_result(reply)
            query = reply.find(q("query", "jabber:iq:version"))
            assert (query.findtext(q("name", "jabber:iq:version")) or "").strip()
            assert (query.findtext(q("version", "jabber:iq:version")) or "").strip()

    run(body())


def test_time(server):
    async def body():
        async with alice(server) as a:
            reply = await a.iq(ask("<time xmlns='urn:xmpp:time'/>"))
            assert_result(reply)
            time_el = reply.find(q("time", "urn:xmpp:time"))
            tzo = time_el.findtext(q("tzo", "urn:xmpp:time"))
            utc = time_el.findtext(q("utc", "urn:xmpp:time"))
            assert tzo and (tzo == "Z" or tzo[0] in "+-"), tzo
            stamp = datetime.datetime.fromisoformat(utc.replace("Z", "+00:00"))
            now = datetime.datetime.now(datetime.timezone.utc)
            assert abs((now - stamp).total_seconds()) < 60

    run(body())


def test_uptime(server):
    async def body():
        async with alice(server) as a:
            reply = await a.iq(ask("<query xmlns='jabber:iq:last'/>"))
            assert_result(reply)
            seconds = int(reply.find(q("query", "jabber:iq:last")).get("seconds"))
            assert 0 <= seconds < 3600

    run(body())


@pytest.mark.parametrize("to", [DOMAIN, f"bob@{DOMAIN}"])
def test_unknown_iq_is_service_unavailable(server, to):
    async def body():
        async with alice(server) as a:
            for kind in ("get", "set"):
                reply = await a.iq(ask("<query xmlns='urn:example:nothing-handles-this'/>", to, kind))
                assert reply.get("type") == "error"
                assert error_condition(reply) == ("cancel", "service-unavailable")

    run(body())


@pytest.mark.parametrize("bad", ["@localhost", "alice@", "a@b@c", f"alice@{DOMAIN}/"])
def test_malformed_destination_is_jid_malformed(server, bad):
    async def body():
        async with alice(server) as a:
            reply = await a.iq(f"<iq type='get' to='{bad}' id='{{id}}'><ping xmlns='urn:xmpp:ping'/></iq>")
            assert reply.get("type") == "error"
            assert error_condition(reply) == ("modify", "jid-malformed")
            a.send(f"<message to='{bad}' type='chat' id='m-bad'><body>x</body></message>")
            reply = await a.expect(lambda e: e.get("id") == "m-bad", what="message error")
            assert reply.get("type") == "error"
            assert error_condition(reply) == ("modify", "jid-malformed")

    run(body())
