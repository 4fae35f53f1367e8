"""Invitations (`invites`, `invites_adhoc`, `invites_register`, Prosody 0.12's
mod_invites family; XEP-0401 and XEP-0379): account invites from the ad-hoc
command and from the command line (`lilt mod_invites generate HOST`, as
prosodyctl's; `lilt invite generate HOST`), registration with a `<preauth/>`
token, invite-only registration and its interplay with `allow_registration`,
contact invites giving a mutual subscription (at registration, and to an
existing account through a subscription request carrying the token), expiry,
password reset invites. The behaviour tests also pass against Prosody 0.12
(`--server=prosody`); the data-in-place tests (lilt only, need Debian's Prosody)
have one server create the invites and the other honour them, both ways."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, error_condition, q, roster_item, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from lilt_harness.inplace import in_place, prosody_missing
from lilt_harness.rawstream import RawStream

NS_REGISTER = "jabber:iq:register"
NS_IBR_FEATURE = "http://jabber.org/features/iq-register"
NS_PARS = "urn:xmpp:pars:0"
NS_INVITE = "urn:xmpp:invite"
NS_IBR_TOKEN = "urn:xmpp:ibr-token:0"
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
NS_ROSTER = "jabber:iq:roster"
NS_CLIENT = "jabber:client"
ADMIN, ALICE, BOB = (f"{u}@{DOMAIN}" for u in ("admin", "alice", "bob"))
USERS = [(u, DOMAIN, f"{u}-pw") for u in ("admin", "alice", "bob")]
MODULES = TEST_MODULES + ["invites", "invites_adhoc", "invites_register", "adhoc"]


def config(**options):
    return base_config(extra_globals={"modules_enabled": MODULES, "admins": [ADMIN], **options})


def client(server, bare: str, password: str | None = None) -> Client:
    return Client(server, bare, password or f"{bare.split('@')[0]}-pw")


async def command(c: Client, node: str) -> ET.Element:
    """Executes an ad-hoc command on the host; returns the reply."""
    return await c.iq(
        f"<iq type='set' to='{DOMAIN}' id='{{id}}'>"
        f"<command xmlns='{NS_COMMANDS}' node='{node}' action='execute'/></iq>"
    )


def form_value(reply: ET.Element, var: str) -> str | None:
    for field in reply.iter(f"{{{NS_DATA}}}field"):
        if field.get("var") == var:
            return field.findtext(f"{{{NS_DATA}}}value")
    return None


def token_of(uri: str) -> str:
    for part in uri.split("?", 1)[1].split(";"):
        if part.startswith("preauth="):
            return part[len("preauth="):]
    raise AssertionError(f"no token in {uri}")


def cli_invite(server, *extra: str) -> str:
    """`mod_invites generate DOMAIN ...` (prosodyctl's words, which lilt takes too)."""
    done = server.ctl("mod_invites", "generate", DOMAIN, *extra)
    assert done.returncode == 0, f"{done.returncode}\n{done.stdout}\n{done.stderr}"
    uris = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("xmpp:")]
    assert uris, done.stdout + done.stderr
    return uris[-1]


def stream(server) -> tuple[RawStream, ET.Element]:
    s = RawStream(server.address, server.c2s_port, DOMAIN, ca_file=server.pki.ca_file)
    s.open()
    return s, s.starttls()


def iq(s: RawStream, payload: str, ident: str, type_: str = "set") -> ET.Element:
    s.send(f"<iq type='{type_}' id='{ident}'>{payload}</iq>")
    while True:
        e = s.recv()
        if e.tag == f"{{{NS_CLIENT}}}iq" and e.get("id") == ident:
            return e


def preauth(s: RawStream, token: str, ident: str = "p1") -> ET.Element:
    return iq(s, f"<preauth xmlns='{NS_PARS}' token='{token}'/>", ident)


def register(s: RawStream, user: str, password: str, ident: str = "r1") -> ET.Element:
    return iq(
        s,
        f"<query xmlns='{NS_REGISTER}'><username>{user}</username><password>{password}</password></query>",
        ident,
    )


def register_with(server, token: str, user: str, password: str) -> ET.Element:
    """A fresh stream: `<preauth/>` with `token` (which must be accepted), then registration."""
    s, _ = stream(server)
    with s:
        reply = preauth(s, token)
        assert reply.get("type") == "result", ET.tostring(reply)
        return register(s, user, password)


async def roster(c: Client) -> ET.Element:
    return await c.iq(f"<iq type='get' id='{{id}}'><query xmlns='{NS_ROSTER}'/></iq>")


def subscription(reply: ET.Element, contact: str) -> tuple[str | None, str | None]:
    item = roster_item(reply, contact)
    return (None, None) if item is None else (item.get("subscription", "none"), item.get("ask"))


def test_account_invite_from_adhoc(start_server):
    server = start_server(config(), users=USERS)

    async def create() -> str:
        async with client(server, ADMIN) as admin:
            reply = await command(admin, "urn:xmpp:invite#create-account")
            assert reply.get("type") == "result", ET.tostring(reply)
            cmd = reply.find(f"{{{NS_COMMANDS}}}command")
            assert cmd.get("status") == "completed", ET.tostring(reply)
            assert form_value(reply, "expire"), ET.tostring(reply)
            uri = form_value(reply, "uri")
            assert uri and uri.startswith(f"xmpp:{DOMAIN}?register;preauth="), ET.tostring(reply)
        async with client(server, ALICE) as alice:
            # Not an admin: the account command is refused.
            reply = await command(alice, "urn:xmpp:invite#create-account")
            assert error_condition(reply)[1] == "forbidden", ET.tostring(reply)
        return uri

    uri = run(create())
    token = token_of(uri)
    s, features = stream(server)
    with s:
        for ns in (NS_INVITE, NS_IBR_TOKEN, NS_IBR_FEATURE):
            assert features.find(f"{{{ns}}}register") is not None, ET.tostring(features)
        # Invite-only (the default): no registration without a token.
        reply = register(s, "mallory", "pw")
        assert reply.get("type") == "error", ET.tostring(reply)
        assert "invitation only" in (reply.findtext(f".//{{urn:ietf:params:xml:ns:xmpp-stanzas}}text") or "")
        reply = preauth(s, "not-a-token")
        assert error_condition(reply) == ("cancel", "forbidden"), ET.tostring(reply)
        reply = preauth(s, token, "p2")
        assert reply.get("type") == "result", ET.tostring(reply)
        reply = register(s, "carol", "carol-pw", "r2")
        assert reply.get("type") == "result", ET.tostring(reply)
    # The token is spent.
    s, _ = stream(server)
    with s:
        assert error_condition(preauth(s, token)) == ("cancel", "forbidden")

    async def login():
        async with client(server, f"carol@{DOMAIN}") as carol:
            assert carol.bare == f"carol@{DOMAIN}"

    run(login())


def test_account_invite_from_cli(start_server):
    server = start_server(config(), users=USERS)
    uri = cli_invite(server)
    assert uri.startswith(f"xmpp:{DOMAIN}?register;preauth="), uri
    reply = register_with(server, token_of(uri), "dave", "dave-pw")
    assert reply.get("type") == "result", ET.tostring(reply)

    async def login():
        async with client(server, f"dave@{DOMAIN}"):
            pass

    run(login())


@pytest.mark.lilt_only
def test_cli_words(start_server):
    server = start_server(config(), users=USERS)
    done = server.ctl("invite", "generate", DOMAIN)
    assert done.returncode == 0 and done.stdout.startswith(f"xmpp:{DOMAIN}?register;preauth="), done
    assert server.ctl("invite", "generate", "nowhere.example").returncode == 1
    assert server.ctl("invite").returncode == 2
    assert server.ctl("invite", "generate", DOMAIN, "--reset").returncode == 2
    assert server.ctl("invite", "generate", DOMAIN, "--reset", "alice", "--admin").returncode == 2
    assert "--reset USERNAME" in server.ctl("mod_invites", "generate", "--help").stderr


def test_contact_invite_registers_mutual_contacts(start_server):
    server = start_server(config(allow_user_invites=True), users=USERS)

    async def create() -> str:
        async with client(server, ALICE) as alice:
            reply = await command(alice, "urn:xmpp:invite#invite")
            uri = form_value(reply, "uri")
            assert uri and uri.startswith(f"xmpp:{ALICE}?roster;preauth="), ET.tostring(reply)
            assert uri.endswith(";ibr=y"), uri
            return uri

    uri = run(create())
    reply = register_with(server, token_of(uri), "erin", "erin-pw")
    assert reply.get("type") == "result", ET.tostring(reply)
    erin = f"erin@{DOMAIN}"

    async def check():
        async with client(server, erin) as e:
            assert subscription(await roster(e), ALICE) == ("both", None)
        async with client(server, ALICE) as a:
            assert subscription(await roster(a), erin) == ("both", None)

    run(check())


def test_contact_invite_for_existing_account(start_server):
    # XEP-0379: bob already has an account; his subscription request carries the
    # token, alice's server approves it and asks for bob's presence in return.
    server = start_server(config(allow_user_invites=True), users=USERS)

    async def body():
        # Both online (with alice offline, Prosody's rostermanager consults bob's
        # online roster, where alice is not yet a contact, and answers no
        # `subscribed`; lilt does as Prosody).
        async with client(server, ALICE) as alice, client(server, BOB) as bob:
            await roster(alice)
            uri = form_value(await command(alice, "urn:xmpp:invite#invite"), "uri")
            token = token_of(uri)
            await roster(bob)
            bob.send("<presence/>")
            bob.send(
                f"<presence type='subscribe' to='{ALICE}'><preauth xmlns='{NS_PARS}' token='{token}'/></presence>"
            )
            await bob.expect(
                lambda e: e.tag == q("presence") and e.get("type") == "subscribed" and e.get("from") == ALICE,
                what="subscribed from alice",
            )
            await bob.expect(
                lambda e: e.tag == q("presence") and e.get("type") == "subscribe" and e.get("from") == ALICE,
                what="subscribe from alice",
            )
            bob.send(f"<presence type='subscribed' to='{ALICE}'/>")
            await bob.expect(
                lambda e: e.tag == q("iq") and subscription(e, ALICE)[0] == "both", what="push: both"
            )
            await alice.expect(
                lambda e: e.tag == q("iq") and subscription(e, BOB)[0] == "both", what="push: both"
            )
        async with client(server, ALICE) as alice:
            assert subscription(await roster(alice), BOB) == ("both", None)

    run(body())


def test_contact_invite_without_registration(start_server):
    # allow_user_invites is false: alice's contact invite is no account invite.
    server = start_server(config(), users=USERS)

    async def create() -> str:
        async with client(server, ALICE) as alice:
            uri = form_value(await command(alice, "urn:xmpp:invite#invite"), "uri")
            assert uri and not uri.endswith(";ibr=y"), uri
            return uri

    token = token_of(run(create()))
    s, _ = stream(server)
    with s:
        assert error_condition(preauth(s, token)) == ("cancel", "forbidden")


def test_contact_invites_for_admins_only(start_server):
    server = start_server(config(allow_contact_invites=False), users=USERS)

    async def body():
        async with client(server, ALICE) as alice:
            reply = await command(alice, "urn:xmpp:invite#invite")
            assert error_condition(reply)[1] == "forbidden", ET.tostring(reply)
        async with client(server, ADMIN) as admin:
            # An admin's contact invite allows registration too.
            uri = form_value(await command(admin, "urn:xmpp:invite#invite"), "uri")
            assert uri and uri.startswith(f"xmpp:{ADMIN}?roster;preauth=") and uri.endswith(";ibr=y"), uri

    run(body())


def test_expired_invite(start_server):
    server = start_server(config(invite_expiry=-10), users=USERS)
    token = token_of(cli_invite(server))
    s, _ = stream(server)
    with s:
        assert error_condition(preauth(s, token)) == ("cancel", "forbidden")
        reply = register(s, "late", "pw", "r2")
        assert reply.get("type") == "error", ET.tostring(reply)


def test_open_registration_beside_invites(start_server):
    # registration_invite_only = false with allow_registration: no token needed.
    server = start_server(
        base_config(
            extra_globals={
                "modules_enabled": MODULES + ["register"],
                "registration_invite_only": False,
                "allow_registration": True,
            }
        ),
        users=USERS,
    )
    s, _ = stream(server)
    with s:
        assert register(s, "frank", "frank-pw").get("type") == "result"


def test_no_registration_without_invite_only_or_allow_registration(start_server):
    server = start_server(
        base_config(
            extra_globals={
                "modules_enabled": MODULES + ["register"],
                "admins": [ADMIN],
                "registration_invite_only": False,
            }
        ),
        users=USERS,
    )
    s, features = stream(server)
    with s:
        assert features.find(f"{{{NS_IBR_FEATURE}}}register") is None, ET.tostring(features)
        assert register(s, "gina", "pw").get("type") == "error"


def test_password_reset_invite(start_server):
    server = start_server(config(), users=USERS)
    token = token_of(cli_invite(server, "--reset", "alice"))
    s, _ = stream(server)
    with s:
        assert preauth(s, token).get("type") == "result"
        # The invite is alice's: bob's password stays.
        assert register(s, "bob", "stolen").get("type") == "error"
        assert register(s, "alice", "new-alice-pw", "r2").get("type") == "result"

    async def login():
        async with client(server, ALICE, "new-alice-pw"):
            pass

    run(login())


# -- data in place ---------------------------------------------------------------


def write_invites(tokens: dict):
    def write(server) -> None:
        tokens["account"] = token_of(cli_invite(server))

        async def contact():
            async with client(server, ALICE) as alice:
                tokens["contact"] = token_of(form_value(await command(alice, "urn:xmpp:invite#invite"), "uri"))

        run(contact())

    return write


def read_invites(tokens: dict):
    def read(server) -> None:
        reply = register_with(server, tokens["account"], "henry", "henry-pw")
        assert reply.get("type") == "result", ET.tostring(reply)
        reply = register_with(server, tokens["contact"], "iris", "iris-pw")
        assert reply.get("type") == "result", ET.tostring(reply)
        iris = f"iris@{DOMAIN}"

        async def check():
            async with client(server, iris) as i:
                assert subscription(await roster(i), ALICE) == ("both", None)
            async with client(server, ALICE) as a:
                assert subscription(await roster(a), iris) == ("both", None)

        run(check())
        # Spent on this side: gone for both.
        s, _ = stream(server)
        with s:
            assert error_condition(preauth(s, tokens["account"])) == ("cancel", "forbidden")

    return read


@pytest.mark.lilt_only
@pytest.mark.differential
@pytest.mark.parametrize("first,second", [("prosody", "lilt"), ("lilt", "prosody")])
def test_invites_data_in_place(pki, first, second):
    reason = prosody_missing()
    if reason:
        pytest.skip(reason)
    tokens: dict = {}
    in_place(
        pki,
        first,
        second,
        config(allow_user_invites=True),
        USERS,
        write_invites(tokens),
        read_invites(tokens),
    )
