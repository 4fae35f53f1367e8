"""A minimal blocking XMPP stream opener, for what a full client library hides.

It opens a c2s stream, reads `<stream:features/>`, can do STARTTLS, and sends and reads
top-level elements. The tests use it to see exactly what a server offers (SASL
mechanisms before and after TLS, `<required/>`) and the harness uses it to know a
server is ready to serve a host.
"""

from __future__ import annotations

import socket
import ssl
import time
import xml.etree.ElementTree as ET
from pathlib import Path

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


class StreamClosed(Exception):
    """The peer closed the stream or the connection before the expected element."""


class RawStream:
    def __init__(
        self,
        address: str,
        port: int,
        domain: str,
        *,
        ca_file: Path | None = None,
        direct_tls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.domain = domain
        self.timeout = timeout
        self.ca_file = ca_file
        self.sock: socket.socket = socket.create_connection((address, port), timeout=timeout)
        self.tls = False
        if direct_tls:
            self._wrap_tls()
        self._reset_parser()
        self.stream_attrs: dict[str, str] = {}

    # -- plumbing -------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        return ctx

    def _wrap_tls(self) -> None:
        self.sock = self._tls_context().wrap_socket(self.sock, server_hostname=self.domain)
        self.tls = True

    def _reset_parser(self) -> None:
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.pending: list[ET.Element] = []
        self.closed = False

    def _pump(self, deadline: float) -> None:
        """Read once from the socket and turn parser events into complete elements."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete element from the server in time")
        self.sock.settimeout(remaining)
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            raise StreamClosed("connection closed by the server")
        self.parser.feed(data)
        for event, elem in self.parser.read_events():
            if event == "start":
                if self.depth == 0:
                    self.stream_attrs = dict(elem.attrib)
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.pending.append(elem)
                elif self.depth == 0:
                    self.closed = True

    # -- API ------------------------------------------------------------------------

    def send(self, data: str) -> None:
        self.sock.sendall(data.encode("utf-8"))

    def recv(self, timeout: float | None = None) -> ET.Element:
        """The next top-level element (child of <stream:stream>)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.pending:
            if self.closed:
                raise StreamClosed("stream closed by the server")
            self._pump(deadline)
        return self.pending.pop(0)

    def open(self) -> ET.Element:
        """Send the stream header and return the <stream:features/> element."""
        self.send(
            "<?xml version='1.0'?>"
            f"<stream:stream to='{self.domain}' version='1.0' xml:lang='en' "
            f"xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>"
        )
        first = self.recv()
        if first.tag != f"{{{NS_STREAM}}}features":
            raise StreamClosed(f"expected stream features, got {ET.tostring(first)!r}")
        return first

    def starttls(self) -> ET.Element:
        """Negotiate STARTTLS on an open stream; returns the features after TLS."""
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        answer = self.recv()
        if answer.tag != f"{{{NS_TLS}}}proceed":
            raise StreamClosed(f"STARTTLS refused: {ET.tostring(answer)!r}")
        self._wrap_tls()
        self._reset_parser()
        return self.open()

    def restart(self) -> ET.Element:
        """Open a new stream on the same connection (after SASL success)."""
        self._reset_parser()
        return self.open()

    def close(self) -> None:
        try:
            if not self.closed:
                self.send("</stream:stream>")
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mechanisms(features: ET.Element) -> list[str]:
    """The SASL mechanisms offered in a features element (empty when none)."""
    mechs = features.find(f"{{{NS_SASL}}}mechanisms")
    if mechs is None:
        return []
    return [(m.text or "").strip() for m in mechs.findall(f"{{{NS_SASL}}}mechanism")]


def starttls_offer(features: ET.Element) -> tuple[bool, bool]:
    """(offered, required) for STARTTLS in a features element."""
    tls = features.find(f"{{{NS_TLS}}}starttls")
    if tls is None:
        return (False, False)
    return (True, tls.find(f"{{{NS_TLS}}}required") is not None)
