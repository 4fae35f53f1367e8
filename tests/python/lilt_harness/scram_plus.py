"""SCRAM-*-PLUS with `tls-exporter` channel binding (RFC 5802, RFC 9266), for what slixmpp
cannot do on this Python: its `ssl` module has no keying-material exporter, pyOpenSSL does.

`ExporterStream` is a RawStream whose TLS is pyOpenSSL's, so the binding data
(`EXPORTER-Channel-Binding`, 32 bytes, no context) can be read after the handshake.
`scram_login` runs one SASL exchange on it and returns the server's answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import select
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from OpenSSL import SSL

from .rawstream import NS_SASL, RawStream, StreamClosed

EXPORTER_LABEL = b"EXPORTER-Channel-Binding"


class ExporterStream(RawStream):
    """A RawStream with pyOpenSSL TLS (STARTTLS or direct), exposing tls-exporter."""

    def _wrap_tls(self) -> None:
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        if self.ca_file:
            ctx.load_verify_locations(str(self.ca_file))
        ctx.set_verify(SSL.VERIFY_PEER, lambda _conn, _cert, _errno, _depth, ok: bool(ok))
        conn = SSL.Connection(ctx, self.sock)
        conn.set_tlsext_host_name(self.domain.encode("idna"))
        conn.set_connect_state()
        self.plain_sock = self.sock
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                self._wait(deadline, read=True)
            except SSL.WantWriteError:
                self._wait(deadline, read=False)
        self.sock = conn  # type: ignore[assignment]
        self.tls = True

    def _wait(self, deadline: float, *, read: bool) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("TLS peer did not answer in time")
        sock = self.plain_sock
        ready = select.select([sock] if read else [], [] if read else [sock], [], left)
        if not (ready[0] or ready[1]):
            raise TimeoutError("TLS peer did not answer in time")

    def _pump(self, deadline: float) -> None:
        if not self.tls:
            return super()._pump(deadline)
        conn: SSL.Connection = self.sock  # type: ignore[assignment]
        while True:
            try:
                data = conn.recv(65536)
                break
            except SSL.WantReadError:
                self._wait(deadline, read=True)
            except SSL.ZeroReturnError:
                data = b""
                break
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
        return None

    def send(self, data: str) -> None:
        if not self.tls:
            return super().send(data)
        conn: SSL.Connection = self.sock  # type: ignore[assignment]
        payload = data.encode("utf-8")
        deadline = time.monotonic() + self.timeout
        while payload:
            try:
                sent = conn.send(payload)
                payload = payload[sent:]
            except SSL.WantWriteError:
                self._wait(deadline, read=False)
            except SSL.WantReadError:
                self._wait(deadline, read=True)
        return None

    def tls_exporter(self) -> bytes:
        conn: SSL.Connection = self.sock  # type: ignore[assignment]
        return conn.export_keying_material(EXPORTER_LABEL, 32, None)

    def tls_version(self) -> str:
        conn: SSL.Connection = self.sock  # type: ignore[assignment]
        return conn.get_protocol_version_name()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


@dataclass
class ScramOutcome:
    ok: bool
    condition: str | None
    server_signature_ok: bool = False


def scram_login(
    stream: RawStream,
    mechanism: str,
    username: str,
    password: str,
    *,
    gs2_flag: str,
    binding: bytes = b"",
) -> ScramOutcome:
    """One SCRAM exchange. gs2_flag: "p=tls-exporter", "y" or "n"; binding: the data
    sent in c= after the GS2 header (the tls-exporter value for "p=tls-exporter")."""
    hash_name = mechanism.removeprefix("SCRAM-").removesuffix("-PLUS").replace("-", "").lower()
    digest = getattr(hashlib, hash_name)
    gs2_header = f"{gs2_flag},,"
    client_nonce = secrets.token_urlsafe(18)
    first_bare = f"n={_saslname(username)},r={client_nonce}"
    stream.send(
        f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>"
        f"{_b64((gs2_header + first_bare).encode())}</auth>"
    )
    answer = stream.recv()
    if answer.tag != f"{{{NS_SASL}}}challenge":
        return _failure(answer)
    server_first = base64.b64decode(answer.text or "").decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    if not fields["r"].startswith(client_nonce):
        raise AssertionError(f"server nonce does not extend ours: {server_first}")
    salt = base64.b64decode(fields["s"])
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    stored_key = digest(client_key).digest()
    channel = _b64(gs2_header.encode() + binding)
    final_no_proof = f"c={channel},r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{final_no_proof}".encode()
    signature = hmac.new(stored_key, auth_message, digest).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    stream.send(
        f"<response xmlns='{NS_SASL}'>{_b64(f'{final_no_proof},p={_b64(proof)}'.encode())}</response>"
    )
    answer = stream.recv()
    if answer.tag != f"{{{NS_SASL}}}success":
        return _failure(answer)
    server_key = hmac.new(salted, b"Server Key", digest).digest()
    expected = _b64(hmac.new(server_key, auth_message, digest).digest())
    final = base64.b64decode(answer.text or "").decode()
    return ScramOutcome(ok=True, condition=None, server_signature_ok=final == f"v={expected}")


def _failure(answer: ET.Element) -> ScramOutcome:
    if answer.tag != f"{{{NS_SASL}}}failure":
        raise AssertionError(f"unexpected SASL answer {ET.tostring(answer)!r}")
    conditions = [child.tag.split("}", 1)[1] for child in answer if not child.tag.endswith("}text")]
    return ScramOutcome(ok=False, condition=conditions[0] if conditions else None)
