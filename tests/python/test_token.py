"""authentication = "token" (Jitsi's mod_auth_token) and token_verification on the
conference MUC, with tokens signed by PyJWT.

- ../shared/fixtures/jitsi-token.cfg.lua (HS256 shared secret) is served unchanged
  (Included, with test paths and ports after it): a token from the WebSocket URL logs in
  with ANONYMOUS and joins only the room its claim names; every bad token is refused
  with SASL <not-allowed/> and Jitsi's reason as text.
- RS256 with keys fetched by kid from a small key server (Python http.server on
  127.0.0.1 serving <sha256(kid)>.pem, then a JWKS document for cache_keys_url).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import socket
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

jwt = pytest.importorskip("jwt")
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from lilt_harness import paths  # noqa: E402
from lilt_harness.config import Component, ServerConfig, lua_string  # noqa: E402
from lilt_harness.httpxmpp import NS_BIND, NS_FRAMING, NS_SASL, _Bosh, _WebSocket  # noqa: E402
from lilt_harness.servers import LiltServer, make_workdir  # noqa: E402

pytestmark = pytest.mark.lilt_only

HOST = "meet.example.com"
MUC = "conference.meet.example.com"
APP_ID = "example_app_id"
SECRET = "example_app_secret_0123456789abcdef"
NS_MUC = "http://jabber.org/protocol/muc"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


# -- a WebSocket client that brings a token -------------------------------------------


class TokenSocket(_WebSocket):
    """The harness's WebSocket with a query string and extra request headers."""

    def __init__(self, port: int, domain: str, query: str = "", headers: dict | None = None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        path = "/xmpp-websocket" + (f"?{query}" if query else "")
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {domain}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n{extra}\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise AssertionError(f"WebSocket handshake: closed after {head!r}")
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    def open_stream(self, domain: str) -> ET.Element:
        self.send(f"<open xmlns='{NS_FRAMING}' to='{domain}' version='1.0'/>")
        self.stream_id = self.recv().get("id")
        return self.recv()


class Login:
    def __init__(self, ok: bool, condition: str | None, text: str | None, ws, jid: str | None):
        self.ok, self.condition, self.text, self.ws, self.jid = ok, condition, text, ws, jid

    def __repr__(self) -> str:
        return f"Login(ok={self.ok}, condition={self.condition!r}, text={self.text!r})"


def token_login(port: int, domain: str, token: str | None = None, bearer: str | None = None,
                query: str = "") -> Login:
    """ANONYMOUS over WebSocket with ?token= (or an Authorization: Bearer header)."""
    params = [query] if query else []
    if token is not None:
        params.append(f"token={token}")
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    ws = TokenSocket(port, domain, "&".join(params), headers)
    features = ws.open_stream(domain)
    mechs = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
    assert mechs == ["ANONYMOUS"], mechs
    ws.send(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'/>")
    answer = ws.recv()
    if answer.tag != f"{{{NS_SASL}}}success":
        ws.close()
        cond = next((c.tag.split("}")[1] for c in answer if c.tag != f"{{{NS_SASL}}}text"), None)
        text = answer.find(f"{{{NS_SASL}}}text")
        return Login(False, cond, text.text if text is not None else None, None, None)
    ws.open_stream(domain)
    ws.send(
        f"<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='{NS_BIND}'>"
        "<resource>web</resource></bind></iq>"
    )
    iq = ws.recv()
    jid = iq.find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
    return Login(True, None, None, ws, jid.text if jid is not None else None)


def join(login: Login, room_jid: str, nick: str = "me") -> ET.Element:
    """Sends a MUC join; returns the room's answer (self-presence or error)."""
    login.ws.send(
        f"<presence xmlns='jabber:client' to='{room_jid}/{nick}'><x xmlns='{NS_MUC}'/></presence>"
    )
    while True:
        el = login.ws.recv()
        if el.tag == "{jabber:client}presence" and el.get("from", "").startswith(room_jid):
            if el.get("type") == "error" or el.get("from") == f"{room_jid}/{nick}":
                return el


def refused_with(presence: ET.Element) -> tuple[str | None, str | None]:
    error = presence.find("{jabber:client}error")
    if error is None:
        return None, None
    cond = next((c.tag.split("}")[1] for c in error if c.tag != f"{{{NS_STANZAS}}}text"), None)
    text = error.find(f"{{{NS_STANZAS}}}text")
    return cond, text.text if text is not None else None


def claims(**over) -> dict:
    now = int(time.time())
    body = {
        "iss": APP_ID,
        "aud": APP_ID,
        "sub": HOST,
        "room": "allowed",
        "iat": now,
        "nbf": now - 10,
        "exp": now + 3600,
        "context": {"user": {"id": "u1", "name": "Alice"}, "features": {"recording": True}},
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


def hs256(body: dict, secret: str = SECRET) -> str:
    return jwt.encode(body, secret, algorithm="HS256")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict, body: dict, key: bytes) -> str:
    """A token HMAC-signed with any bytes (PyJWT refuses PEM keys as secrets)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


# -- the fixture, served unchanged ----------------------------------------------------


def http_port(server) -> int:
    deadline = time.monotonic() + 10
    while "http" not in server.listening and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.listening["http"][1]


@pytest.fixture(scope="module")
def fixture_server(tmp_path_factory):
    if not paths.shared_available():
        pytest.skip(paths.SKIP_NO_SHARED)
    from lilt_harness.certs import make_pki

    work = make_workdir("lilt-token-")
    shutil.copy(paths.FIXTURES / "jitsi-token.cfg.lua", work / "jitsi-token.cfg.lua")
    hosts = ["localhost", HOST]
    pki = make_pki(tmp_path_factory.mktemp("pki"), tuple(hosts))
    pki.install(work / "certs", hosts)
    overrides = [
        f"data_path = {lua_string(str(work / 'data'))}",
        f"pidfile = {lua_string(str(work / 'prosody.pid'))}",
        f"certificates = {lua_string(str(work / 'certs'))}",
        'interfaces = { "127.0.0.1" }',
        "c2s_ports = { 0 }",
        "c2s_direct_tls_ports = { }",
        "s2s_ports = { }",
        "component_ports = { }",
        "http_ports = { 0 }",
        "https_ports = { }",
        # The harness waits for a stream to localhost.
        'VirtualHost "localhost"',
        '    authentication = "anonymous"',
    ]
    (work / "data").mkdir()
    (work / "overrides.cfg.lua").write_text("\n".join(overrides) + "\n")
    (work / "prosody.cfg.lua").write_text(
        'Include "jitsi-token.cfg.lua"\nInclude "overrides.cfg.lua"\n'
    )
    server = LiltServer(work, pki)
    server.expect_direct_tls = False
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.cleanup()


def open_room(port: int, room: str) -> Login:
    """Plays Jicofo: the fixture loads muc_meeting_id, which holds joins until the
    focus (nickname "focus") is in the room; the focus's token allows any room."""
    focus = token_login(port, HOST, hs256(claims(room="*")))
    assert focus.ok, focus
    assert join(focus, f"{room}@{MUC}", "focus").get("type") is None
    return focus


def test_token_joins_only_its_room(fixture_server):
    port = http_port(fixture_server)
    focus = open_room(port, "allowed")
    login = token_login(port, HOST, hs256(claims()))
    assert login.ok, login
    assert login.jid and login.jid.split("@")[1] == f"{HOST}/web", login.jid
    try:
        answer = join(login, f"allowed@{MUC}")
        assert answer.get("type") is None, ET.tostring(answer)
        refused = join(login, f"other@{MUC}")
        assert refused.get("type") == "error"
        assert refused_with(refused) == ("not-allowed", "Room and token mismatched")
        # The room claim is case-insensitive (Jitsi lowercases it).
        mixed = token_login(port, HOST, hs256(claims(room="Allowed")))
        assert join(mixed, f"allowed@{MUC}", "mixed").get("type") is None
        mixed.ws.close()
    finally:
        login.ws.close()
        focus.ws.close()


def test_wildcard_room_and_bearer_header(fixture_server):
    port = http_port(fixture_server)
    focus = open_room(port, "anything")
    login = token_login(port, HOST, bearer=hs256(claims(room="*")))
    assert login.ok, login
    try:
        assert join(login, f"anything@{MUC}").get("type") is None
    finally:
        login.ws.close()
        focus.ws.close()


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


BAD_HS_TOKENS = {
    "expired": (lambda: hs256(claims(exp=int(time.time()) - 5)), "Not acceptable by exp"),
    "not yet valid": (lambda: hs256(claims(nbf=int(time.time()) + 600)), "Not acceptable by nbf"),
    "wrong issuer": (lambda: hs256(claims(iss="intruder")), "invalid 'iss' claim"),
    "no issuer": (lambda: hs256(claims(iss=None)), "'iss' claim is missing"),
    "no audience": (lambda: hs256(claims(aud=None)), "'aud' claim is missing"),
    "no room": (lambda: hs256(claims(room=None)), "'room' claim is missing"),
    "wrong signature": (lambda: hs256(claims(), "not the secret, but as long as one 0123"), "Invalid signature"),
    "RS256 against the secret": (
        lambda: jwt.encode(claims(), rsa_key(), algorithm="RS256"),
        "Invalid or incorrect alg",
    ),
    "alg none": (
        lambda: hand_signed({"alg": "none", "typ": "JWT"}, claims(), b"x"),
        "Invalid or incorrect alg",
    ),
    "not a token": (lambda: "garbage", "Invalid token"),
}


@pytest.mark.parametrize("case", BAD_HS_TOKENS)
def test_bad_tokens_are_refused(fixture_server, case):
    make, reason = BAD_HS_TOKENS[case]
    login = token_login(http_port(fixture_server), HOST, make())
    assert not login.ok, case
    assert login.condition == "not-allowed", login
    assert login.text and login.text.startswith(reason), login


def test_previd_keeps_the_username_of_a_live_session(fixture_server):
    port = http_port(fixture_server)
    first = token_login(port, HOST, hs256(claims()))
    try:
        again = token_login(port, HOST, hs256(claims()), query=f"previd={first.ws.stream_id}")
        assert again.ok and again.jid.split("@")[0] == first.jid.split("@")[0], (first.jid, again.jid)
        again.ws.close()
        other = token_login(port, HOST, hs256(claims()), query="previd=unknown")
        assert other.ok and other.jid.split("@")[0] != first.jid.split("@")[0]
        other.ws.close()
        # A bad token gets nothing, previd or not.
        bad = token_login(port, HOST, hs256(claims(iss="x")), query=f"previd={first.ws.stream_id}")
        assert bad.condition == "not-allowed"
    finally:
        first.ws.close()


def bosh_token_login(port: int, token: str) -> tuple[str | None, str | None]:
    """ANONYMOUS over BOSH with ?token= in the URL (as lib-jitsi-meet's BOSH URL);
    (None, bound JID) on success, else (condition, text)."""
    b = _Bosh(port, HOST, path=f"/http-bind?room=allowed&token={token}")
    root = b.post(to=HOST, wait="5", hold="1", ver="1.6", **{"xmpp:version": "1.0"})
    b.sid = root.get("sid")
    b.next()
    b.post(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'/>")
    answer = b.next()
    if answer.tag != f"{{{NS_SASL}}}success":
        cond = next((c.tag.split("}")[1] for c in answer if c.tag != f"{{{NS_SASL}}}text"), None)
        text = answer.find(f"{{{NS_SASL}}}text")
        return cond, text.text if text is not None else None
    b.post(to=HOST, **{"xmpp:restart": "true"})
    b.next()
    b.post(
        f"<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='{NS_BIND}'/></iq>"
    )
    jid = b.next().find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
    return None, jid.text if jid is not None else None


def test_token_over_bosh(fixture_server):
    port = http_port(fixture_server)
    cond, jid = bosh_token_login(port, hs256(claims()))
    assert cond is None and jid and jid.split("@")[1].startswith(f"{HOST}/"), (cond, jid)
    assert bosh_token_login(port, hs256(claims(exp=int(time.time()) - 1)))[0] == "not-allowed"


def test_no_token_is_refused(fixture_server):
    login = token_login(http_port(fixture_server), HOST)
    assert (login.condition, login.text) == ("not-allowed", "token required")


# -- RS256 with a key server -----------------------------------------------------------


class KeyServer:
    """Serves files from a dict on 127.0.0.1 and counts the requests per path."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, dict]] = {}
        self.hits: dict[str, int] = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                found = outer.files.get(self.path)
                if found is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                body, headers = found
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()


def kid_path(kid: str) -> str:
    return f"/asap/{hashlib.sha256(kid.encode()).hexdigest()}.pem"


@pytest.fixture()
def keys():
    server = KeyServer()
    try:
        yield server
    finally:
        server.close()


def rs_config(host_options: dict) -> ServerConfig:
    return ServerConfig(
        globals={
            "modules_enabled": ["ping", "bosh", "websocket"],
            "c2s_require_encryption": False,
            "http_ports": [0],
            "https_ports": [],
        },
        hosts={
            "localhost": {
                "authentication": "token",
                "app_id": APP_ID,
                "asap_accepted_audiences": ["jitsi"],
                **host_options,
            },
            "conference.localhost": Component(
                "muc", {"muc_room_locking": False, "modules_enabled": ["token_verification"]}
            ),
        },
    )


def test_rs256_keys_from_an_asap_key_server(start_server, keys):
    good, other = rsa_key(), rsa_key()
    keys.files[kid_path("jitsi/key1")] = (public_pem(good), {})
    server = start_server(rs_config({"asap_key_server": keys.url("/asap")}))
    port = http_port(server)
    body = claims(aud="jitsi", sub="localhost", room="rs")

    def token(key=good, kid="jitsi/key1", **over):
        return jwt.encode({**body, **over}, key, algorithm="RS256", headers={"kid": kid})

    login = token_login(port, "localhost", token())
    assert login.ok, (login, server.logs())
    try:
        assert join(login, "rs@conference.localhost").get("type") is None
        assert refused_with(join(login, "other@conference.localhost"))[0] == "not-allowed"
    finally:
        login.ws.close()
    # The key is cached: a second login does not fetch it again.
    again = token_login(port, "localhost", token())
    assert again.ok
    again.ws.close()
    assert keys.hits[kid_path("jitsi/key1")] == 1
    cases = {
        "wrong signature": (token(key=other), "Invalid signature"),
        "unknown kid": (token(kid="nope"), "could not obtain public key"),
        "no kid": (jwt.encode(body, good, algorithm="RS256"), "'kid' claim is missing"),
        "wrong audience": (token(aud="elsewhere"), "invalid 'aud' claim"),
        "expired": (token(exp=int(time.time()) - 1), "Not acceptable by exp"),
        # HMAC keyed with the server's own public key: never checked as HMAC.
        "HS256 with the public key": (
            hand_signed({"alg": "HS256", "typ": "JWT", "kid": "jitsi/key1"}, body,
                        public_pem(good)),
            "'kid' claim only support with RS family",
        ),
        "HS256 without kid": (
            hand_signed({"alg": "HS256", "typ": "JWT"}, body, public_pem(good)),
            "'kid' claim is missing",
        ),
    }
    for case, (tok, reason) in cases.items():
        refused = token_login(port, "localhost", tok)
        assert refused.condition == "not-allowed", (case, refused)
        assert refused.text and refused.text.startswith(reason), (case, refused)


def test_rs256_keys_from_a_jwks_document(start_server, keys):
    key = rsa_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "kc-1", "use": "sig", "alg": "RS256"})
    keys.files["/certs"] = (
        json.dumps({"keys": [jwk]}).encode(),
        {"Content-Type": "application/json", "Cache-Control": "max-age=300"},
    )
    server = start_server(
        rs_config({"cache_keys_url": keys.url("/certs"), "asap_key_server": True,
                   "asap_require_room_claim": False})
    )
    body = claims(aud="jitsi", sub="localhost", room=None)
    tok = jwt.encode(body, key, algorithm="RS256", headers={"kid": "kc-1"})
    login = token_login(http_port(server), "localhost", tok)
    assert login.ok, (login, server.logs())
    login.ws.close()
    assert keys.hits["/certs"] == 1
