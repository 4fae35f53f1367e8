"""Multi-user chat (XEP-0045) helpers for the whole-server MUC tests.

A `Component "conference.localhost" "muc"` next to the usual hosts, clients with
slixmpp's XEP-0045 plugin registered, and the small steps every MUC test repeats:
joining (collecting what the room sends, in order), leaving, configuring, reading the
`muc#user` payload of a presence.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable
from xml.sax.saxutils import escape, quoteattr

from .client import Client, error_condition, q
from .config import ANON_DOMAIN, DOMAIN, Component, ServerConfig, base_config
from .servers import Server

MUC_HOST = f"conference.{DOMAIN}"

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = f"{NS_MUC}#user"
NS_MUC_ADMIN = f"{NS_MUC}#admin"
NS_MUC_OWNER = f"{NS_MUC}#owner"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DATA = "jabber:x:data"
NS_DELAY = "urn:xmpp:delay"
NS_PING = "urn:xmpp:ping"
NS_VERSION = "jabber:iq:version"
NS_SID = "urn:xmpp:sid:0"

ROOMCONFIG = f"{NS_MUC}#roomconfig"
VERSION_NAME = "lilt-muc-test"
ROOMINFO = f"{NS_MUC}#roominfo"

# Status codes of XEP-0045 the tests look for.
SELF = 110
NON_ANONYMOUS = 100
CREATED = 201
NICK_CHANGED = 303
KICKED = 307
BANNED = 301
NICK_ASSIGNED = 210


def muc_config(
    component: dict[str, Any] | None = None, *, extra_globals: dict[str, Any] | None = None
) -> ServerConfig:
    """The base test config (plus the anonymous host, for crowds of throw-away clients)
    and `Component "conference.localhost" "muc"` with `component` as its options."""
    config = base_config(anonymous_host=True, extra_globals=extra_globals)
    config.hosts[MUC_HOST] = Component("muc", dict(component or {}))
    return config


class MucClient(Client):
    """A Client with slixmpp's MUC, disco, forms, ping and version plugins."""

    def __init__(self, server: Server, jid: str, password: str = "", **kwargs) -> None:
        super().__init__(server, jid, password, **kwargs)
        for plugin in ("xep_0030", "xep_0004", "xep_0045", "xep_0199"):
            self.xmpp.register_plugin(plugin)
        self.xmpp.register_plugin("xep_0092", {"name": VERSION_NAME, "version": "1.0"})

    async def available(self) -> None:
        """Send initial presence and make sure the server has it (an IQ round trip on
        the same stream): messages to the bare JID reach available resources only."""
        self.send("<presence/>")
        reply = await self.iq(
            f"<iq type='get' id='{{id}}' to='{DOMAIN}'><ping xmlns='{NS_PING}'/></iq>"
        )
        assert reply.get("type") == "result", "ping to the server failed"

    @property
    def muc(self):
        return self.xmpp.plugin["xep_0045"]


def anonymous(server: Server) -> MucClient:
    """A client on the anonymous host (no account to register)."""
    return MucClient(server, ANON_DOMAIN, mechanism="ANONYMOUS")


# The accounts MUC tests register (user, host, password).
MUC_USERS = [(name, DOMAIN, f"{name}-pw") for name in ("alice", "bob", "carol", "dave", "eve")]


def user(server: Server, name: str, resource: str = "muc") -> MucClient:
    return MucClient(server, f"{name}@{DOMAIN}/{resource}", f"{name}-pw")


@asynccontextmanager
async def online(server: Server, *names: str) -> AsyncIterator[list[MucClient]]:
    """Log the named users in (concurrently); close them all afterwards."""
    clients = [user(server, name) for name in names]
    try:
        await asyncio.gather(*(c.connect() for c in clients))
        await asyncio.gather(*(c.available() for c in clients))
        yield clients
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


# -- reading the muc#user payload ------------------------------------------------------


def muc_x(stanza: ET.Element) -> ET.Element | None:
    return stanza.find(q("x", NS_MUC_USER))


def status_codes(stanza: ET.Element) -> set[int]:
    x = muc_x(stanza)
    if x is None:
        return set()
    return {int(s.get("code", "0")) for s in x.findall(q("status", NS_MUC_USER))}


def item(stanza: ET.Element) -> dict[str, str]:
    """The attributes of the muc#user <item/> (affiliation, role, jid, nick)."""
    x = muc_x(stanza)
    found = x.find(q("item", NS_MUC_USER)) if x is not None else None
    return dict(found.attrib) if found is not None else {}


def item_reason(stanza: ET.Element) -> str | None:
    x = muc_x(stanza)
    found = x.find(q("item", NS_MUC_USER)) if x is not None else None
    if found is None:
        return None
    return found.findtext(q("reason", NS_MUC_USER))


def nick_of(jid: str) -> str:
    return jid.split("/", 1)[1] if "/" in jid else ""


def bare_of(jid: str) -> str:
    return jid.split("/", 1)[0]


def occupant_presence(
    from_: str | None = None,
    *,
    room: str | None = None,
    type_: str | None = None,
    codes: set[int] = frozenset(),
    role: str | None = None,
    affiliation: str | None = None,
) -> Callable[[ET.Element], bool]:
    """A presence from an occupant (exact `from_`, or anyone in `room`) carrying the
    muc#user payload; `type_="any"` also matches unavailable/error; `codes` must all be there."""

    def match(e: ET.Element) -> bool:
        if e.tag != q("presence"):
            return False
        sender = e.get("from", "")
        if from_ is not None and sender != from_:
            return False
        if room is not None and bare_of(sender) != room:
            return False
        if type_ != "any" and e.get("type") != type_:
            return False
        if e.get("type") != "error" and muc_x(e) is None:
            return False
        if not codes <= status_codes(e):
            return False
        it = item(e)
        if role is not None and it.get("role") != role:
            return False
        if affiliation is not None and it.get("affiliation") != affiliation:
            return False
        return True

    return match


def groupchat(
    room: str, body: str | None = None, from_: str | None = None
) -> Callable[[ET.Element], bool]:
    def match(e: ET.Element) -> bool:
        if e.tag != q("message") or e.get("type") != "groupchat":
            return False
        sender = e.get("from", "")
        if bare_of(sender) != room or (from_ is not None and sender != from_):
            return False
        if body is not None and e.findtext(q("body")) != body:
            return False
        return True

    return match


def is_subject(room: str) -> Callable[[ET.Element], bool]:
    def match(e: ET.Element) -> bool:
        return (
            e.tag == q("message")
            and e.get("type") == "groupchat"
            and bare_of(e.get("from", "")) == room
            and e.find(q("subject")) is not None
            and e.find(q("body")) is None
        )

    return match


# -- joining and leaving ------------------------------------------------------------


@dataclass
class Joined:
    """What the room sent a joining client, in arrival order."""

    self_presence: ET.Element
    occupants: list[ET.Element] = field(default_factory=list)
    history: list[ET.Element] = field(default_factory=list)
    subject: ET.Element | None = None
    order: list[ET.Element] = field(default_factory=list)

    @property
    def codes(self) -> set[int]:
        return status_codes(self.self_presence)

    @property
    def nick(self) -> str:
        return nick_of(self.self_presence.get("from", ""))


class JoinRefused(AssertionError):
    def __init__(self, stanza: ET.Element) -> None:
        self.stanza = stanza
        self.error_type, self.condition = error_condition(stanza)
        super().__init__(f"join refused: {self.error_type}/{self.condition}")


def join_stanza(
    room: str,
    nick: str,
    *,
    password: str | None = None,
    history: dict[str, Any] | None = None,
    muc: bool = True,
    extra: str = "",
) -> str:
    inner = ""
    if password is not None:
        inner += f"<password>{escape(password)}</password>"
    if history is not None:
        attrs = " ".join(f"{k}={quoteattr(str(v))}" for k, v in history.items())
        inner += f"<history {attrs}/>"
    x = f"<x xmlns='{NS_MUC}'>{inner}</x>" if muc else ""
    return f"<presence to={quoteattr(f'{room}/{nick}')}>{x}{extra}</presence>"


async def join(
    client: Client,
    room: str,
    nick: str,
    *,
    password: str | None = None,
    history: dict[str, Any] | None = None,
    subject: bool = True,
    timeout: float = 10.0,
) -> Joined:
    """Send a join and gather what comes back until the self-presence (status 110) and,
    when `subject`, the subject message that ends the join. Raises JoinRefused on an error
    presence."""
    start = len(client.received)
    client.send(join_stanza(room, nick, password=password, history=history))
    own = await client.expect(
        lambda e: e.tag == q("presence")
        and bare_of(e.get("from", "")) == room
        and (e.get("type") == "error" or SELF in status_codes(e)),
        timeout,
        what=f"self-presence from {room} for {nick}",
    )
    if own.get("type") == "error":
        raise JoinRefused(own)
    joined = Joined(self_presence=own)
    if subject:
        joined.subject = await client.expect(is_subject(room), timeout, what="subject")
    end = _index(client, joined.subject if subject else own)
    own_at = _index(client, own)
    for index in range(start, end + 1):
        e = client.received[index]
        if bare_of(e.get("from", "")) != room:
            continue
        # What the join brought is seen here; later expect() calls look at newer stanzas.
        client._consumed.add(index)
        joined.order.append(e)
        if e.tag == q("presence") and e.get("type") is None and index < own_at:
            joined.occupants.append(e)
        elif e.tag == q("message") and e.find(q("delay", NS_DELAY)) is not None:
            joined.history.append(e)
    return joined


def _index(client: Client, stanza: ET.Element) -> int:
    for index, e in enumerate(client.received):
        if e is stanza:
            return index
    raise ValueError("stanza not recorded by this client")


async def join_refused(client: Client, room: str, nick: str, **kwargs) -> JoinRefused:
    """Join expecting an error presence; returns it."""
    try:
        joined = await join(client, room, nick, subject=False, **kwargs)
    except JoinRefused as refused:
        return refused
    raise AssertionError(f"join of {room}/{nick} was accepted: {ET.tostring(joined.self_presence)}")


async def leave(client: Client, room: str, nick: str, status: str | None = None) -> ET.Element:
    """Send unavailable and wait for the room's own unavailable (110)."""
    inner = f"<status>{escape(status)}</status>" if status else ""
    client.send(f"<presence type='unavailable' to={quoteattr(f'{room}/{nick}')}>{inner}</presence>")
    return await client.expect(
        occupant_presence(f"{room}/{nick}", type_="unavailable", codes={SELF}),
        what=f"own unavailable from {room}/{nick}",
    )


# -- owner and admin IQs ------------------------------------------------------------


def form_xml(fields: dict[str, Any], form_type: str = ROOMCONFIG, type_: str = "submit") -> str:
    """A jabber:x:data form; list values become several <value/>, bools 1/0."""
    parts = [f"<field var='FORM_TYPE' type='hidden'><value>{escape(form_type)}</value></field>"]
    for var, value in fields.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        rendered = "".join(
            f"<value>{escape(('1' if v else '0') if isinstance(v, bool) else str(v))}</value>"
            for v in values
        )
        parts.append(f"<field var={quoteattr(var)}>{rendered}</field>")
    return f"<x xmlns='{NS_DATA}' type='{type_}'>{''.join(parts)}</x>"


async def send_iq(client: Client, type_: str, to: str, payload: str) -> ET.Element:
    """An IQ with literal XML `payload`; returns the result or error for it."""
    return await client.iq(
        f"<iq type='{type_}' id='{{id}}' to={_braces(quoteattr(to))}>{_braces(payload)}</iq>"
    )


async def owner_set(client: Client, room: str, payload: str) -> ET.Element:
    return await send_iq(client, "set", room, f"<query xmlns='{NS_MUC_OWNER}'>{payload}</query>")


async def submit_config(client: Client, room: str, fields: dict[str, Any]) -> ET.Element:
    return await owner_set(client, room, form_xml(fields))


async def instant(client: Client, room: str) -> None:
    """Accept the default configuration (an instant room): an empty submitted form."""
    reply = await owner_set(client, room, f"<x xmlns='{NS_DATA}' type='submit'/>")
    assert reply.get("type") == "result", f"instant room refused: {error_condition(reply)}"


async def get_config(client: Client, room: str) -> dict[str, list[str]]:
    """The owner config form as {var: [values]}; fails unless the reply is a result."""
    reply = await send_iq(client, "get", room, f"<query xmlns='{NS_MUC_OWNER}'/>")
    assert reply.get("type") == "result", f"config get refused: {error_condition(reply)}"
    return form_values(reply)


def form_values(stanza: ET.Element) -> dict[str, list[str]]:
    """Every data form field in the stanza (any depth), {var: [values]}."""
    values: dict[str, list[str]] = {}
    for form in stanza.iter(q("x", NS_DATA)):
        for f in form.findall(q("field", NS_DATA)):
            var = f.get("var")
            if var:
                values[var] = [v.text or "" for v in f.findall(q("value", NS_DATA))]
    return values


def form_field_types(stanza: ET.Element) -> dict[str, str]:
    types: dict[str, str] = {}
    for form in stanza.iter(q("x", NS_DATA)):
        for f in form.findall(q("field", NS_DATA)):
            if f.get("var"):
                types[f.get("var")] = f.get("type", "")
    return types


async def create_room(
    client: Client,
    room: str,
    nick: str,
    config: dict[str, Any] | None = None,
) -> Joined:
    """Create a room (201), then unlock it: an instant room, or `config` submitted."""
    joined = await join(client, room, nick)
    assert CREATED in joined.codes, f"{room} was not created by this join: {joined.codes}"
    if config:
        reply = await submit_config(client, room, config)
        assert reply.get("type") == "result", f"config refused: {error_condition(reply)}"
    else:
        await instant(client, room)
    return joined


async def admin_set(client: Client, room: str, **attrs: str) -> ET.Element:
    """One muc#admin item set (role or affiliation, by nick or jid; `reason` as a child)."""
    reason = attrs.pop("reason", None)
    attr = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
    inner = f"<reason>{escape(reason)}</reason>" if reason else ""
    return await send_iq(
        client, "set", room, f"<query xmlns='{NS_MUC_ADMIN}'><item {attr}>{inner}</item></query>"
    )


async def admin_list(client: Client, room: str, **attrs: str) -> list[dict[str, str]]:
    """A muc#admin list (by affiliation or role): the items' attributes."""
    attr = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
    reply = await send_iq(
        client, "get", room, f"<query xmlns='{NS_MUC_ADMIN}'><item {attr}/></query>"
    )
    assert reply.get("type") == "result", f"admin list refused: {error_condition(reply)}"
    query = reply.find(q("query", NS_MUC_ADMIN))
    assert query is not None
    return [dict(i.attrib) for i in query.findall(q("item", NS_MUC_ADMIN))]


def _braces(text: str) -> str:
    """Escape str.format braces in literal XML that goes into Client.iq's template."""
    return text.replace("{", "{{").replace("}", "}}")


async def disco_info(client: Client, to: str, node: str | None = None) -> ET.Element:
    node_attr = f" node={quoteattr(node)}" if node else ""
    return await send_iq(client, "get", to, f"<query xmlns='{NS_DISCO_INFO}'{node_attr}/>")


async def disco_items(client: Client, to: str) -> ET.Element:
    return await send_iq(client, "get", to, f"<query xmlns='{NS_DISCO_ITEMS}'/>")


def features(info: ET.Element) -> set[str]:
    query = info.find(q("query", NS_DISCO_INFO))
    if query is None:
        return set()
    return {f.get("var", "") for f in query.findall(q("feature", NS_DISCO_INFO))}


def identities(info: ET.Element) -> list[dict[str, str]]:
    query = info.find(q("query", NS_DISCO_INFO))
    if query is None:
        return []
    return [dict(i.attrib) for i in query.findall(q("identity", NS_DISCO_INFO))]


async def settle(seconds: float = 0.3) -> None:
    """Let in-flight stanzas arrive before checking that nothing else did."""
    await asyncio.sleep(seconds)
