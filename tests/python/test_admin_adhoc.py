"""admin_adhoc: the XEP-0133 service administration commands of Prosody 0.12's
mod_admin_adhoc, which lilt has natively (`modules/src/admin_adhoc/`). Every test
also runs against Debian's Prosody 0.12 with its own module (`--server=prosody`),
so the two are compared on the same nodes, names, forms and notes: the command
list for an admin and a non-admin, "Get List of Online Users" in two steps, adding
a user then logging in as it, changing a password (the user's sessions end),
deleting users, ending a session (the client is disconnected), a user's roster and
statistics, the module commands (list, unload, load), shutting down (the
announcement, then the process ends).

`test_lua_modules.py::test_admin_adhoc` covers Debian's Lua file run by lilt.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET

from lilt_harness.client import Client, error_condition, run
from lilt_harness.config import DOMAIN, TEST_MODULES, base_config
from lilt_harness.servers import ServerError

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_ROSTER = "jabber:iq:roster"
ADMIN = "http://jabber.org/protocol/admin"
ALICE, BOB, CAROL, BOSS = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol", "boss"))
USERS = [(u, DOMAIN, f"{u}-pw") for u in ("alice", "bob", "carol", "boss")]

# Prosody 0.12's mod_admin_adhoc: node -> name.
COMMANDS = {
    f"{ADMIN}#add-user": "Add User",
    f"{ADMIN}#change-user-password": "Change User Password",
    "http://prosody.im/protocol/config#reload": "Reload configuration",
    f"{ADMIN}#delete-user": "Delete User",
    f"{ADMIN}#end-user-session": "End User Session",
    f"{ADMIN}#get-user-roster": "Get User Roster",
    f"{ADMIN}#user-stats": "Get User Statistics",
    f"{ADMIN}#get-online-users-list": "Get List of Online Users",
    "http://prosody.im/protocol/s2s#list": "List S2S connections",
    "http://prosody.im/protocol/modules#list": "List loaded modules",
    "http://prosody.im/protocol/modules#load": "Load module",
    "http://prosody.im/protocol/modules#global-load": "Globally load module",
    "http://prosody.im/protocol/modules#reload": "Reload modules",
    "http://prosody.im/protocol/modules#global-reload": "Globally reload module",
    f"{ADMIN}#shutdown": "Shut Down Service",
    "http://prosody.im/protocol/modules#unload": "Unload modules",
    "http://prosody.im/protocol/modules#global-unload": "Globally unload module",
    "http://prosody.im/protocol/hosts#activate": "Activate host",
    "http://prosody.im/protocol/hosts#deactivate": "Deactivate host",
}


def config():
    return base_config(
        extra_globals={
            "modules_enabled": TEST_MODULES + ["adhoc", "admin_adhoc"],
            "admins": [BOSS],
        }
    )


def client(server, bare: str, password: str | None = None) -> Client:
    return Client(server, bare, password or f"{bare.split('@')[0]}-pw")


def form_values(x: ET.Element) -> dict[str, list[str]]:
    return {
        f.get("var"): [v.text or "" for v in f.findall(f"{{{NS_DATA}}}value")]
        for f in x.findall(f"{{{NS_DATA}}}field")
    }


def notes(cmd: ET.Element) -> dict[str, str]:
    return {n.get("type"): n.text or "" for n in cmd.findall(f"{{{NS_COMMANDS}}}note")}


async def start(c: Client, node: str) -> tuple[str, ET.Element]:
    """Executes `node`: the session id and the form offered."""
    reply = await c.iq(
        f"<iq type='set' id='{{id}}' to='{DOMAIN}'>"
        f"<command xmlns='{NS_COMMANDS}' node='{node}' action='execute'/></iq>"
    )
    cmd = reply.find(f"{{{NS_COMMANDS}}}command")
    assert cmd is not None and cmd.get("status") == "executing", ET.tostring(reply)
    form = cmd.find(f"{{{NS_DATA}}}x")
    assert form is not None and form.get("type") == "form", ET.tostring(reply)
    return cmd.get("sessionid"), form


async def submit(c: Client, node: str, session: str, fields: dict[str, list[str] | str]) -> ET.Element:
    """Submits the form of `session`: the completed `<command/>`."""
    xml = "".join(
        f"<field var='{k}'>"
        + "".join(f"<value>{v}</value>" for v in ([vs] if isinstance(vs, str) else vs))
        + "</field>"
        for k, vs in fields.items()
    )
    reply = await c.iq(
        f"<iq type='set' id='{{id}}' to='{DOMAIN}'>"
        f"<command xmlns='{NS_COMMANDS}' node='{node}' sessionid='{session}'>"
        f"<x xmlns='{NS_DATA}' type='submit'>{xml}</x></command></iq>"
    )
    cmd = reply.find(f"{{{NS_COMMANDS}}}command")
    assert cmd is not None and cmd.get("status") == "completed", ET.tostring(reply)
    return cmd


async def run_command(c: Client, node: str, fields: dict[str, list[str] | str]) -> ET.Element:
    session, _form = await start(c, node)
    return await submit(c, node, session, fields)


async def listed(c: Client) -> dict[str, str]:
    items = await c.iq(
        f"<iq type='get' id='{{id}}' to='{DOMAIN}'>"
        f"<query xmlns='{NS_DISCO_ITEMS}' node='{NS_COMMANDS}'/></iq>"
    )
    return {i.get("node"): i.get("name") for i in items.iter(f"{{{NS_DISCO_ITEMS}}}item")}


GLOBAL_ADMIN_ONLY = {
    "http://prosody.im/protocol/config#reload",
    "http://prosody.im/protocol/modules#global-load",
    "http://prosody.im/protocol/modules#global-reload",
    "http://prosody.im/protocol/modules#global-unload",
    f"{ADMIN}#shutdown",
    "http://prosody.im/protocol/hosts#activate",
    "http://prosody.im/protocol/hosts#deactivate",
}


def test_commands_listed_to_admins_only(start_server):
    """A global admin sees Prosody 0.12's 19 commands by node and name; an admin
    of the host only (its `admins`) all but the global_admin ones; a user none of
    them, and is refused with `forbidden`."""
    cfg = config()
    server = start_server(
        base_config(
            extra_globals={"modules_enabled": cfg.globals["modules_enabled"], "admins": [BOSS]},
            extra_host={"admins": [BOB]},
        ),
        users=USERS,
    )

    async def body():
        async with client(server, ALICE) as a, client(server, BOSS) as boss, client(server, BOB) as b:
            mine = await listed(boss)
            assert {n: mine.get(n) for n in COMMANDS} == COMMANDS, mine
            host_admin = await listed(b)
            assert set(host_admin) & set(COMMANDS) == set(COMMANDS) - GLOBAL_ADMIN_ONLY, host_admin
            theirs = await listed(a)
            assert not set(theirs) & set(COMMANDS), theirs
            a.send(
                f"<iq type='set' id='refused' to='{DOMAIN}'>"
                f"<command xmlns='{NS_COMMANDS}' node='{ADMIN}#add-user' action='execute'/></iq>"
            )
            refused = await a.expect(lambda e: e.get("id") == "refused", what="the refusal")
            assert error_condition(refused) == ("auth", "forbidden"), ET.tostring(refused)

    run(body())


def test_online_users_in_two_steps(start_server):
    """"Get List of Online Users": the form (title, instructions, max_items
    options), then the online accounts, with each resource's line when
    `details` is set."""
    server = start_server(config(), users=USERS)
    node = f"{ADMIN}#get-online-users-list"

    async def body():
        async with client(server, ALICE) as a, client(server, BOSS) as boss:
            session, form = await start(boss, node)
            assert form.findtext(f"{{{NS_DATA}}}title") == "Getting List of Online Users"
            assert form.findtext(f"{{{NS_DATA}}}instructions") == "How many users should be returned at most?"
            max_items = [f for f in form.findall(f"{{{NS_DATA}}}field") if f.get("var") == "max_items"][0]
            options = [o.findtext(f"{{{NS_DATA}}}value") for o in max_items.findall(f"{{{NS_DATA}}}option")]
            assert options == ["25", "50", "75", "100", "150", "200", "all"], ET.tostring(form)

            cmd = await submit(boss, node, session, {"FORM_TYPE": ADMIN, "max_items": "all"})
            result = cmd.find(f"{{{NS_DATA}}}x")
            assert result is not None and result.get("type") == "result", ET.tostring(cmd)
            assert set(form_values(result)["onlineuserjids"]) == {ALICE, BOSS}, ET.tostring(result)

            cmd = await run_command(
                boss, node, {"FORM_TYPE": ADMIN, "max_items": "all", "details": "1"}
            )
            lines = form_values(cmd.find(f"{{{NS_DATA}}}x"))["onlineuserjids"]
            resource = a.xmpp.boundjid.resource
            assert ALICE in lines, lines
            detail = lines[lines.index(ALICE) + 1]
            assert detail.startswith(f" - {resource}: ") and detail.endswith("IP: [127.0.0.1]"), lines

            cmd = await run_command(boss, node, {"FORM_TYPE": ADMIN, "max_items": "25"})
            assert len(form_values(cmd.find(f"{{{NS_DATA}}}x"))["onlineuserjids"]) == 2

    run(body())


def test_add_user_then_log_in(start_server):
    """"Add User" creates an account one can log in to; an existing account, a
    password mismatch and another host are refused with Prosody's notes."""
    server = start_server(config(), users=USERS)
    node = f"{ADMIN}#add-user"
    dave = f"dave@{DOMAIN}"

    async def body():
        async with client(server, BOSS) as boss:
            session, form = await start(boss, node)
            assert form.findtext(f"{{{NS_DATA}}}title") == "Adding a User"
            assert form.findtext(f"{{{NS_DATA}}}instructions") == "Fill out this form to add a user."
            cmd = await submit(
                boss, node, session,
                {"FORM_TYPE": ADMIN, "accountjid": dave, "password": "s3cret", "password-verify": "s3cret"},
            )
            assert notes(cmd) == {"info": "Account successfully created"}, ET.tostring(cmd)

            cmd = await run_command(
                boss, node,
                {"FORM_TYPE": ADMIN, "accountjid": dave, "password": "x", "password-verify": "x"},
            )
            assert notes(cmd) == {"error": "Account already exists"}, ET.tostring(cmd)
            cmd = await run_command(
                boss, node,
                {"FORM_TYPE": ADMIN, "accountjid": f"erin@{DOMAIN}", "password": "a", "password-verify": "b"},
            )
            assert notes(cmd) == {"error": "Invalid data.\nPassword mismatch, or empty username"}
            cmd = await run_command(
                boss, node,
                {"FORM_TYPE": ADMIN, "accountjid": "erin@elsewhere.example", "password": "a", "password-verify": "a"},
            )
            assert notes(cmd) == {
                "error": f"Trying to add a user on elsewhere.example but command was sent to {DOMAIN}"
            }
            cmd = await run_command(boss, node, {"FORM_TYPE": ADMIN})
            assert notes(cmd) == {"error": "accountjid: Required value missing"}, ET.tostring(cmd)

        d = client(server, dave, "s3cret")
        result = await d.login()
        assert result.ok, result
        await d.close()

    run(body())


def test_change_password_ends_sessions(start_server):
    """"Change User Password": the new password works, the old one no longer
    does, and the user's sessions are closed (`reset`); an unknown user gets
    "User does not exist"."""
    server = start_server(config(), users=USERS)
    node = f"{ADMIN}#change-user-password"

    async def body():
        async with client(server, ALICE) as a, client(server, BOSS) as boss:
            session, form = await start(boss, node)
            assert form.findtext(f"{{{NS_DATA}}}title") == "Changing a User Password"
            cmd = await submit(boss, node, session, {"FORM_TYPE": ADMIN, "accountjid": ALICE, "password": "n3w"})
            assert notes(cmd) == {"info": "Password successfully changed"}, ET.tostring(cmd)
            await asyncio.wait_for(a.closed.wait(), 10)
            assert "reset" in a.stream_errors, a.stream_errors
            cmd = await run_command(
                boss, node, {"FORM_TYPE": ADMIN, "accountjid": f"nobody@{DOMAIN}", "password": "x"}
            )
            assert notes(cmd) == {"error": "User does not exist"}, ET.tostring(cmd)

        old = await client(server, ALICE).login()
        assert not old.ok, old
        new = client(server, ALICE, "n3w")
        assert (await new.login()).ok
        await new.close()

    run(body())


def test_delete_users(start_server):
    """"Delete User": the accounts deleted and those that could not be, in one
    note; a deleted user's session ends and it can no longer log in."""
    server = start_server(config(), users=USERS)
    node = f"{ADMIN}#delete-user"

    async def body():
        async with client(server, CAROL) as c, client(server, BOSS) as boss:
            session, form = await start(boss, node)
            assert form.findtext(f"{{{NS_DATA}}}title") == "Deleting a User"
            cmd = await submit(
                boss, node, session, {"FORM_TYPE": ADMIN, "accountjids": [CAROL, f"nobody@{DOMAIN}"]}
            )
            assert notes(cmd) == {
                "info": "The following accounts were successfully deleted:\n"
                f"{CAROL}\nThe following accounts could not be deleted:\nnobody@{DOMAIN}"
            }, ET.tostring(cmd)
            await asyncio.wait_for(c.closed.wait(), 10)
            assert "not-authorized" in c.stream_errors, c.stream_errors

        again = await client(server, CAROL).login()
        assert not again.ok, again

    run(body())


def test_end_user_session(start_server):
    """"End User Session" disconnects the user's client; an account that does
    not exist is reported as not disconnected."""
    server = start_server(config(), users=USERS)
    node = f"{ADMIN}#end-user-session"

    async def body():
        async with client(server, BOB) as b, client(server, BOSS) as boss:
            session, form = await start(boss, node)
            assert form.findtext(f"{{{NS_DATA}}}title") == "Ending a User Session"
            cmd = await submit(boss, node, session, {"FORM_TYPE": ADMIN, "accountjids": [BOB]})
            assert notes(cmd) == {
                "info": f"The following accounts were successfully disconnected:\n{BOB}\n"
            }, ET.tostring(cmd)
            await asyncio.wait_for(b.closed.wait(), 10)
            cmd = await run_command(boss, node, {"FORM_TYPE": ADMIN, "accountjids": [f"nobody@{DOMAIN}"]})
            assert notes(cmd) == {
                "info": f"The following accounts could not be disconnected:\nnobody@{DOMAIN}"
            }, ET.tostring(cmd)

    run(body())


def test_user_roster_and_stats(start_server):
    """"Get User Roster": a result form naming the account with the roster as
    XML text, and the `<query/>` itself inside the form; "Get User Statistics":
    roster size, online resources and their IP addresses."""
    server = start_server(config(), users=USERS)

    async def body():
        async with client(server, ALICE) as a, client(server, BOSS) as boss:
            added = await a.iq(
                f"<iq type='set' id='{{id}}'><query xmlns='{NS_ROSTER}'>"
                f"<item jid='{BOB}' name='Friend'><group>Friends</group></item></query></iq>"
            )
            assert added.get("type") == "result", ET.tostring(added)
            cmd = await run_command(boss, f"{ADMIN}#get-user-roster", {"FORM_TYPE": ADMIN, "accountjid": ALICE})
            x = cmd.find(f"{{{NS_DATA}}}x")
            assert x is not None and x.get("type") == "result", ET.tostring(cmd)
            values = form_values(x)
            assert values["accountjid"] == [ALICE], values
            assert any(BOB in line for line in values["roster"]), values
            query = x.find(f"{{{NS_ROSTER}}}query")
            assert query is not None, ET.tostring(x)
            items = {i.get("jid"): i for i in query.findall(f"{{{NS_ROSTER}}}item")}
            assert set(items) == {BOB}, ET.tostring(query)
            assert items[BOB].get("subscription") == "none" and items[BOB].get("name") == "Friend"
            assert [g.text for g in items[BOB].findall(f"{{{NS_ROSTER}}}group")] == ["Friends"]

            cmd = await run_command(boss, f"{ADMIN}#user-stats", {"FORM_TYPE": ADMIN, "accountjid": ALICE})
            values = form_values(cmd.find(f"{{{NS_DATA}}}x"))
            assert values["rostersize"] == ["1"], values
            assert values["onlineresources"] == [a.xmpp.boundjid.resource], values
            assert values["ipaddresses"] == ["127.0.0.1"], values

            cmd = await run_command(boss, f"{ADMIN}#user-stats", {"FORM_TYPE": ADMIN, "accountjid": f"nobody@{DOMAIN}"})
            assert notes(cmd) == {"error": "User does not exist"}, ET.tostring(cmd)

    run(body())


def test_module_commands(start_server):
    """"List loaded modules" names the host's modules; "Unload modules" takes
    `ping` away (a ping is then unanswered by it) and "Load module" brings it
    back, with Prosody's notes; reload, global load and global unload answer as
Prosody's for modules loaded, already loaded and not loaded."""
    server = start_server(config(), users=USERS)
    modules = "http://prosody.im/protocol/modules"
    ping = f"<iq type='get' id='{{id}}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>"

    async def body():
        async with client(server, BOSS) as boss:
            reply = await boss.iq(
                f"<iq type='set' id='{{id}}' to='{DOMAIN}'>"
                f"<command xmlns='{NS_COMMANDS}' node='{modules}#list' action='execute'/></iq>"
            )
            cmd = reply.find(f"{{{NS_COMMANDS}}}command")
            assert cmd is not None and cmd.get("status") == "completed", ET.tostring(reply)
            x = cmd.find(f"{{{NS_DATA}}}x")
            assert x.findtext(f"{{{NS_DATA}}}title") == "List of loaded modules"
            loaded = form_values(x)["modules"]
            assert {"adhoc", "admin_adhoc", "ping", "roster"} <= set(loaded), loaded
            assert loaded == sorted(loaded), loaded

            session, form = await start(boss, f"{modules}#unload")
            field = [f for f in form.findall(f"{{{NS_DATA}}}field") if f.get("var") == "modules"][0]
            offered = [o.findtext(f"{{{NS_DATA}}}value") for o in field.findall(f"{{{NS_DATA}}}option")]
            assert "ping" in offered, ET.tostring(form)
            cmd = await submit(boss, f"{modules}#unload", session, {"FORM_TYPE": f"{modules}#unload", "modules": ["ping"]})
            assert notes(cmd) == {
                "info": f"The following modules were successfully unloaded on host {DOMAIN}:\nping"
            }, ET.tostring(cmd)
            assert (await boss.iq(ping)).get("type") == "error"

            cmd = await run_command(boss, f"{modules}#load", {"FORM_TYPE": f"{modules}#load", "module": "ping"})
            assert notes(cmd) == {
                "info": f'Module "ping" successfully loaded on host "{DOMAIN}".'
            }, ET.tostring(cmd)
            assert (await boss.iq(ping)).get("type") == "result"
            cmd = await run_command(boss, f"{modules}#load", {"FORM_TYPE": f"{modules}#load", "module": "ping"})
            assert notes(cmd) == {"info": "Module already loaded"}, ET.tostring(cmd)

            cmd = await run_command(boss, f"{modules}#reload", {"modules": ["ping", "no_such_module"]})
            assert notes(cmd) == {
                "info": f"The following modules were successfully reloaded on host {DOMAIN}:\nping\n"
                f"Failed to reload the following modules on host {DOMAIN}:\n"
                "no_such_module(Error: module-not-loaded)"
            }, ET.tostring(cmd)
            cmd = await run_command(boss, f"{modules}#global-load", {"module": "time"})
            assert notes(cmd) == {
                "info": f"Failed to load the module time onto the hosts:\n{DOMAIN} (Error: module-already-loaded)"
            }, ET.tostring(cmd)
            cmd = await run_command(boss, f"{modules}#global-unload", {"module": "no_such_module"})
            assert notes(cmd) == {"info": "Module no_such_module not loaded on any host."}, ET.tostring(cmd)

    run(body())


def test_shut_down_service(start_server, server_kind):
    """"Shut Down Service" (global admins): the announcement reaches online users
    as a headline "Server is shutting down", the note says it is about to, and
    the server process ends after the chosen delay (5 seconds). That last part is
    lilt's only: Debian's Prosody 0.12.3 fails to shut down from the command's
    timer ("Error in timer: util/async.lua:9: Not running in an async context")
    and keeps running."""
    server = start_server(config(), users=USERS)
    node = f"{ADMIN}#shutdown"

    async def body():
        async with client(server, ALICE) as a, client(server, BOSS) as boss:
            # Available, so that a headline to the bare JID reaches the client.
            a.send("<presence/>")
            await a.iq(f"<iq type='get' id='{{id}}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
            session, form = await start(boss, node)
            assert form.findtext(f"{{{NS_DATA}}}title") == "Shutting Down the Service"
            delay = [f for f in form.findall(f"{{{NS_DATA}}}field") if f.get("var") == "delay"][0]
            options = {o.get("label"): o.findtext(f"{{{NS_DATA}}}value") for o in delay.findall(f"{{{NS_DATA}}}option")}
            assert options["5 seconds"] == "5" and options["2 minutes"] == "120", ET.tostring(delay)
            assert delay.findtext(f"{{{NS_DATA}}}value") == "5", ET.tostring(delay)
            cmd = await submit(
                boss, node, session, {"FORM_TYPE": ADMIN, "delay": "5", "announcement": ["Back soon"]}
            )
            assert notes(cmd) == {"info": "Server is about to shut down"}, ET.tostring(cmd)
            message = await a.expect(
                lambda e: e.tag == "{jabber:client}message" and e.get("type") == "headline",
                what="the announcement",
            )
            assert message.get("from") == DOMAIN, ET.tostring(message)
            assert message.findtext("{jabber:client}body") == "Back soon", ET.tostring(message)
            assert message.findtext("{jabber:client}subject") == "Server is shutting down"
            if server_kind == "lilt":
                await asyncio.wait_for(a.closed.wait(), 60)
                assert "system-shutdown" in a.stream_errors, a.stream_errors

    run(body())
    if server_kind != "lilt":
        return
    deadline = time.monotonic() + 60
    while True:
        try:
            server.check_alive()
        except ServerError:
            break
        assert time.monotonic() < deadline, "the server did not exit"
        time.sleep(0.2)


def test_config_reload(start_server):
    """"Reload configuration" (global admins) reloads the config file and says
    so; the server keeps running and answering."""
    server = start_server(config(), users=USERS)

    async def body():
        async with client(server, BOSS) as boss:
            reply = await boss.iq(
                f"<iq type='set' id='{{id}}' to='{DOMAIN}'><command xmlns='{NS_COMMANDS}' "
                "node='http://prosody.im/protocol/config#reload' action='execute'/></iq>"
            )
            cmd = reply.find(f"{{{NS_COMMANDS}}}command")
            assert cmd is not None and cmd.get("status") == "completed", ET.tostring(reply)
            assert notes(cmd) == {
                "info": "Configuration reloaded (modules may need to be reloaded for this to have an effect)"
            }, ET.tostring(cmd)
            assert (await listed(boss)).get(f"{ADMIN}#add-user") == "Add User"
            server.check_alive()

    run(body())
