"""XEP-0077 In-Band Registration (`register`, Prosody 0.12's mod_register:
register_ibr with `allow_registration`, user_account_management, and
register_limits' `registration_blocklist`): the stream feature and the form
before authentication, an account created in band then used, `conflict` for an
existing one, `not-acceptable` for missing fields, a blocklisted IP refused,
password change and account removal in band. All also pass against Prosody 0.12
(`--server=prosody`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, error_condition, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from lilt_harness.rawstream import RawStream

NS_REGISTER = "jabber:iq:register"
NS_FEATURE = "http://jabber.org/features/iq-register"
NS_DATA = "jabber:x:data"
NS_CLIENT = "jabber:client"
ALICE = f"alice@{DOMAIN}"
USERS = [("alice", DOMAIN, "alice-pw")]


def config(**extra):
    return base_config(
        extra_globals={"modules_enabled": TEST_MODULES + ["register"], "allow_registration": True, **extra}
    )


def stream(server) -> RawStream:
    s = RawStream(server.address, server.c2s_port, DOMAIN, ca_file=server.pki.ca_file)
    s.open()
    return s


def iq(s: RawStream, body: str, type_: str = "set", ident: str = "r1") -> ET.Element:
    s.send(f"<iq type='{type_}' id='{ident}'><query xmlns='{NS_REGISTER}'>{body}</query></iq>")
    while True:
        e = s.recv()
        if e.tag == f"{{{NS_CLIENT}}}iq" and e.get("id") == ident:
            return e


def test_register_in_band(start_server):
    server = start_server(config(), users=USERS)
    with stream(server) as s:
        features = s.starttls()
        assert features.find(f"{{{NS_FEATURE}}}register") is not None, ET.tostring(features)
        reply = iq(s, "", type_="get")
        assert reply.get("type") == "result", ET.tostring(reply)
        query = reply.find(f"{{{NS_REGISTER}}}query")
        assert query.find(f"{{{NS_REGISTER}}}username") is not None
        assert query.find(f"{{{NS_REGISTER}}}password") is not None
        form_vars = {f.get("var") for f in query.iter(f"{{{NS_DATA}}}field")}
        assert {"FORM_TYPE", "username", "password"} <= form_vars
        reply = iq(s, "<username>alice</username><password>x</password>", ident="r2")
        assert error_condition(reply) == ("cancel", "conflict"), ET.tostring(reply)
        reply = iq(s, "<username>carol</username>", ident="r3")
        assert error_condition(reply) == ("modify", "not-acceptable"), ET.tostring(reply)
        reply = iq(s, "<username>Carol</username><password>carol-pw</password>", ident="r4")
        assert reply.get("type") == "result", ET.tostring(reply)
    # A data form works too.
    with stream(server) as s:
        s.starttls()
        form = (
            f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE'><value>{NS_REGISTER}</value></field>"
            "<field var='username'><value>dave</value></field>"
            "<field var='password'><value>dave-pw</value></field></x>"
        )
        assert iq(s, form).get("type") == "result"

    async def body():
        # The new account (nodeprepped) logs in; change the password; remove it.
        async with Client(server, f"carol@{DOMAIN}", "carol-pw") as c:
            reply = await c.iq(f"<iq type='get' id='{{id}}'><query xmlns='{NS_REGISTER}'/></iq>")
            query = reply.find(f"{{{NS_REGISTER}}}query")
            assert query.find(f"{{{NS_REGISTER}}}registered") is not None, ET.tostring(reply)
            assert query.findtext(f"{{{NS_REGISTER}}}username") == "carol"
            reply = await c.iq(
                f"<iq type='set' id='{{id}}'><query xmlns='{NS_REGISTER}'>"
                "<username>carol</username><password>new-pw</password></query></iq>"
            )
            assert reply.get("type") == "result", ET.tostring(reply)
            reply = await c.iq(
                f"<iq type='set' id='{{id}}'><query xmlns='{NS_REGISTER}'>"
                "<username>alice</username><password>mine-now</password></query></iq>"
            )
            assert error_condition(reply) == ("modify", "bad-request"), ET.tostring(reply)
        failed = await Client(server, f"carol@{DOMAIN}", "carol-pw").login()
        assert not failed.ok
        async with Client(server, f"carol@{DOMAIN}", "new-pw") as c:
            reply = await c.iq(
                f"<iq type='set' id='{{id}}'><query xmlns='{NS_REGISTER}'><remove/></query></iq>"
            )
            assert reply.get("type") == "result", ET.tostring(reply)
            await c.closed.wait()
        gone = await Client(server, f"carol@{DOMAIN}", "new-pw").login()
        assert not gone.ok

    run(body())


def test_register_disabled(start_server):
    server = start_server(
        base_config(extra_globals={"modules_enabled": TEST_MODULES + ["register"]}), users=USERS
    )
    with stream(server) as s:
        features = s.starttls()
        assert features.find(f"{{{NS_FEATURE}}}register") is None, ET.tostring(features)
        reply = iq(s, "<username>eve</username><password>pw</password>")
        assert reply.get("type") == "error", ET.tostring(reply)


@pytest.mark.lilt_only
def test_register_blocklisted(start_server):
    # Debian's Prosody 0.12 in the harness registered this account all the same
    # (its register_limits did not refuse 127.0.0.1); lilt applies the list.
    blocked = start_server(config(registration_blacklist=["127.0.0.0/8"]), users=USERS)
    with stream(blocked) as s:
        s.starttls()
        reply = iq(s, "<username>eve</username><password>pw</password>")
        assert error_condition(reply) == ("auth", "forbidden"), ET.tostring(reply)
