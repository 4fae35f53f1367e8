"""Logging in over BOSH (XEP-0124/0206) and WebSocket (RFC 7395) with SASL PLAIN.

slixmpp speaks neither, so this is a small blocking client of each, written from the
specifications: open the session, read the features, `<auth mechanism="PLAIN"/>`,
restart, bind. `bosh_login` / `ws_login` return a `LoginResult` as the TCP client does
(`mechanisms` offered, the SASL failure condition, the bound JID).
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NS_BOSH = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAM = "http://etherx.jabber.org/streams"


@dataclass
class HttpLogin:
    ok: bool
    mechanisms: list[str] = field(default_factory=list)
    condition: str | None = None
    jid: str | None = None


def _plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def _mechanisms(features: ET.Element | None) -> list[str]:
    if features is None:
        return []
    return [m.text or "" for m in features.iter(f"{{{NS_SASL}}}mechanism")]


def _bind_iq() -> str:
    return (
        f"<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='{NS_BIND}'>"
        "<resource>http</resource></bind></iq>"
    )


def _bound_jid(iq: ET.Element) -> str | None:
    jid = iq.find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
    return jid.text if jid is not None else None


# -- BOSH ------------------------------------------------------------------------------


class _Bosh:
    def __init__(self, port: int, domain: str, path: str = "/http-bind") -> None:
        self.port, self.domain, self.path = port, domain, path
        self.rid = 4000
        self.sid: str | None = None
        self.pending: list[ET.Element] = []

    def post(self, payload: str = "", **attrs: str) -> ET.Element:
        self.rid += 1
        extra = "".join(f" {k}='{v}'" for k, v in attrs.items())
        sid = f" sid='{self.sid}'" if self.sid else ""
        body = (
            f"<body rid='{self.rid}'{sid} xmlns='{NS_BOSH}' xmlns:xmpp='{NS_XBOSH}'{extra}>"
            f"{payload}</body>"
        )
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            # The Host header picks the VirtualHost serving BOSH, as in Prosody.
            headers = {"Content-Type": "text/xml", "Host": self.domain}
            conn.request("POST", self.path, body.encode(), headers)
            reply = conn.getresponse()
            data = reply.read()
        finally:
            conn.close()
        if reply.status != 200:
            raise AssertionError(f"BOSH answered HTTP {reply.status}: {data!r}")
        root = ET.fromstring(data)
        self.pending.extend(list(root))
        return root

    def next(self) -> ET.Element:
        """The next element the server sends (polling with empty bodies)."""
        for _ in range(10):
            if self.pending:
                return self.pending.pop(0)
            root = self.post()
            if root.get("type") == "terminate":
                raise AssertionError(f"BOSH session terminated: {ET.tostring(root)!r}")
        raise AssertionError("BOSH: nothing arrived")


def bosh_login(port: int, domain: str, user: str, password: str) -> HttpLogin:
    b = _Bosh(port, domain)
    root = b.post(
        to=domain, wait="5", hold="1", ver="1.6", **{"xmpp:version": "1.0", "xml:lang": "en"}
    )
    b.sid = root.get("sid")
    features = b.next()
    mechanisms = _mechanisms(features)
    if "PLAIN" not in mechanisms:
        return HttpLogin(False, mechanisms, "PLAIN not offered")
    b.post(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{_plain(user, password)}</auth>")
    answer = b.next()
    if answer.tag != f"{{{NS_SASL}}}success":
        cond = next((c.tag.split("}")[1] for c in answer if c.tag != f"{{{NS_SASL}}}text"), None)
        return HttpLogin(False, mechanisms, cond)
    b.post(to=domain, **{"xmpp:restart": "true"})
    b.next()  # stream features with bind
    b.post(_bind_iq())
    return HttpLogin(True, mechanisms, None, _bound_jid(b.next()))


# -- WebSocket -------------------------------------------------------------------------


class _WebSocket:
    def __init__(self, port: int, domain: str, path: str = "/xmpp-websocket") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {domain}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise AssertionError(f"WebSocket handshake: connection closed after {head!r}")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"WebSocket handshake refused: {head!r}")

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise AssertionError("WebSocket closed")
            out += chunk
        return out

    def send(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        elif len(data) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(data))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def recv(self) -> ET.Element:
        while True:
            b0, b1 = self._read(2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(length)
            opcode = b0 & 0x0F
            if opcode == 0x1:
                return ET.fromstring(payload)
            if opcode == 0x8:
                raise AssertionError(f"WebSocket closed by the server: {payload!r}")
            # pings and pongs are not expected from the server in these short sessions

    def close(self) -> None:
        self.sock.close()


def _ws_open(ws: _WebSocket, domain: str) -> ET.Element:
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{domain}' version='1.0'/>")
    ws.recv()  # <open/>
    return ws.recv()  # <stream:features/>


def ws_login(port: int, domain: str, user: str, password: str) -> HttpLogin:
    ws = _WebSocket(port, domain)
    try:
        mechanisms = _mechanisms(_ws_open(ws, domain))
        if "PLAIN" not in mechanisms:
            return HttpLogin(False, mechanisms, "PLAIN not offered")
        ws.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{_plain(user, password)}</auth>")
        answer = ws.recv()
        if answer.tag != f"{{{NS_SASL}}}success":
            cond = next(
                (c.tag.split("}")[1] for c in answer if c.tag != f"{{{NS_SASL}}}text"), None
            )
            return HttpLogin(False, mechanisms, cond)
        _ws_open(ws, domain)
        ws.send(_bind_iq())
        return HttpLogin(True, mechanisms, None, _bound_jid(ws.recv()))
    finally:
        ws.close()
