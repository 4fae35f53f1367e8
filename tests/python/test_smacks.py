"""XEP-0198 stream management (`smacks`) as Prosody 0.12's mod_smacks: enabling, acks
with the per-host `smacks_max_unacked_stanzas`, resumption after a dropped connection
(over TCP and WebSocket), `<failed/>` for unknown and expired ids (with the `h` kept for
`smacks_max_old_sessions` old sessions), and what happens when hibernation times out
(the unavailable presence, unacknowledged messages to offline storage).

The clients are small blocking streams written here (slixmpp's XEP-0198 plugin hides
the acks and the dropped connection this file is about), so every element is seen."""

from __future__ import annotations

import base64
import time
import xml.etree.ElementTree as ET

import pytest

from lilt_harness.config import DOMAIN, TEST_MODULES, ServerConfig
from lilt_harness.httpxmpp import NS_FRAMING, _Bosh, _WebSocket
from lilt_harness.rawstream import NS_CLIENT, NS_SASL, RawStream

NS_SM = "urn:xmpp:sm:3"
NS_SM2 = "urn:xmpp:sm:2"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DELAY = "urn:xmpp:delay"
NS_PING = "urn:xmpp:ping"
STANZAS = {f"{{{NS_CLIENT}}}{name}" for name in ("message", "presence", "iq")}
USERS = [("alice", DOMAIN, "alice-pw"), ("bob", DOMAIN, "bob-pw")]
PASSWORDS = {u: p for u, _, p in USERS}


def smacks_config(*, http: bool = False, **host_options) -> ServerConfig:
    """The Jitsi fixture's smacks options on the host, memory `smacks_h` store."""
    modules = [*TEST_MODULES, "smacks"] + (["websocket", "bosh"] if http else [])
    host = {
        "smacks_max_unacked_stanzas": 5,
        "smacks_hibernation_time": 60,
        "smacks_max_old_sessions": 1,
        **host_options,
    }
    globals_ = {
        "admins": [],
        "modules_enabled": modules,
        "authentication": "internal_hashed",
        "c2s_require_encryption": True,
        "storage": {"smacks_h": "memory"},
        "default_storage": "internal",
    }
    if http:
        globals_.update({"http_ports": [0], "https_ports": [], "consider_websocket_secure": True})
    return ServerConfig(globals=globals_, hosts={DOMAIN: host})


def local(tag: str) -> str:
    return tag.split("}")[-1]


class Sm:
    """One client stream over TCP (STARTTLS) or WebSocket, logged in with PLAIN."""

    def __init__(self, server, user: str, *, websocket: bool = False) -> None:
        self.user = user
        self.handled = 0  # stanzas received since <enable/> (our h)
        self.counting = False
        self.backlog: list[ET.Element] = []
        if websocket:
            self.ws = _WebSocket(http_port(server), DOMAIN)
            self.raw = None
            self._ws_open()
        else:
            self.ws = None
            self.raw = RawStream(
                server.address, server.c2s_port, DOMAIN, ca_file=server.pki.ca_file
            )
            self.raw.open()
            self.raw.starttls()
        token = base64.b64encode(f"\0{user}\0{PASSWORDS[user]}".encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        assert local(self.recv().tag) == "success"
        self.features = self._ws_open() if websocket else self.raw.restart()
        self.jid: str | None = None

    def _ws_open(self) -> ET.Element:
        self.ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>")
        self.ws.recv()
        return self.ws.recv()

    def send(self, xml: str) -> None:
        (self.ws or self.raw).send(xml)

    def recv(self, timeout: float = 10.0) -> ET.Element:
        if self.backlog:
            return self.backlog.pop(0)
        if self.ws is not None:
            self.ws.sock.settimeout(timeout)
            element = self.ws.recv()
        else:
            element = self.raw.recv(timeout)
        if self.counting and element.tag in STANZAS:
            self.handled += 1
        return element

    def expect(self, predicate, what: str, timeout: float = 10.0) -> ET.Element:
        """The next element matching; others are kept for later."""
        skipped = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.user}: no {what}; skipped {skipped_xml(skipped)}")
                element = self.recv(left)
                if predicate(element):
                    return element
                skipped.append(element)
        finally:
            self.backlog = skipped + self.backlog

    def expect_none(self, predicate, what: str, within: float = 1.5) -> None:
        try:
            got = self.expect(predicate, what, within)
        except (AssertionError, TimeoutError, OSError):
            return
        raise AssertionError(f"{self.user}: unexpected {what}: {ET.tostring(got)!r}")

    def bind(self, resource: str = "sm") -> str:
        self.send(
            f"<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{resource}</resource>"
            "</bind></iq>"
        )
        iq = self.expect(lambda e: e.get("id") == "bind", "bind result")
        self.jid = iq.find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid").text
        return self.jid

    def enable(self, resume: bool = True) -> ET.Element:
        self.send(f"<enable xmlns='{NS_SM}'" + (" resume='true'" if resume else "") + "/>")
        answer = self.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "enable answer")
        if local(answer.tag) == "enabled":
            self.counting = True
        return answer

    def ping(self, ident: str) -> None:
        self.send(f"<iq type='get' id='{ident}' to='{DOMAIN}'><ping xmlns='{NS_PING}'/></iq>")
        self.expect(lambda e: e.get("id") == ident, f"ping result {ident}")

    def drop(self) -> None:
        """The connection dies: no stream close."""
        (self.ws or self.raw).sock.close()

    def close(self) -> None:
        try:
            if self.ws is not None:
                self.ws.send(f"<close xmlns='{NS_FRAMING}'/>")
                self.ws.close()
            else:
                self.raw.close()
        except OSError:
            pass


def skipped_xml(elements) -> str:
    return " ".join(ET.tostring(e, encoding="unicode")[:200] for e in elements) or "nothing"


def is_sm(name: str):
    return lambda e: e.tag == f"{{{NS_SM}}}{name}"


def is_message(body: str):
    return lambda e: local(e.tag) == "message" and e.findtext(f"{{{NS_CLIENT}}}body") == body


def http_port(server) -> int:
    deadline = time.monotonic() + 10
    while "http" not in server.listening and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.listening["http"][1]


def message(to: str, body: str) -> str:
    return f"<message to='{to}' type='chat' id='{body}'><body>{body}</body></message>"


def condition(failed: ET.Element) -> str | None:
    return next((local(c.tag) for c in failed if c.tag.startswith(f"{{{NS_STANZAS}}}")), None)


@pytest.fixture
def server(start_server):
    return start_server(smacks_config(), users=USERS)


# -- enabling and acks ------------------------------------------------------------------


def test_features_enable_rules_and_acks(server):
    alice = Sm(server, "alice")
    try:
        offered = {c.tag for c in alice.features}
        assert f"{{{NS_SM}}}sm" in offered and f"{{{NS_SM2}}}sm" in offered
        # Before bind: unexpected-request.
        failed = alice.enable()
        assert local(failed.tag) == "failed" and condition(failed) == "unexpected-request"
        alice.bind()
        enabled = alice.enable()
        assert local(enabled.tag) == "enabled"
        assert enabled.get("resume") == "true" and enabled.get("id")
        assert enabled.get("max") == "60"
        # Twice: unexpected-request.
        again = alice.enable()
        assert local(again.tag) == "failed" and condition(again) == "unexpected-request"
        # Our h counts what we sent after <enable/>.
        alice.send(f"<r xmlns='{NS_SM}'/>")
        assert alice.expect(is_sm("a"), "<a/>").get("h") == "0"
        alice.ping("p1")
        alice.send(f"<r xmlns='{NS_SM}'/>")
        assert alice.expect(is_sm("a"), "<a/>").get("h") == "1"
        # The server asks once more than smacks_max_unacked_stanzas (5) wait: the ping
        # result was 1, four more messages make 5, the fifth message makes 6.
        bob = Sm(server, "bob")
        bob.bind("b")
        for n in range(4):
            bob.send(message(alice.jid, f"m{n}"))
            alice.expect(is_message(f"m{n}"), f"m{n}")
        alice.expect_none(is_sm("r"), "<r/> with 5 unacked", within=1.0)
        bob.send(message(alice.jid, "m4"))
        alice.expect(is_message("m4"), "m4")
        alice.expect(is_sm("r"), "<r/> after the 6th unacked stanza")
        alice.send(f"<a xmlns='{NS_SM}' h='6'/>")
        # Acking more than was sent closes the stream.
        alice.send(f"<a xmlns='{NS_SM}' h='60'/>")
        error = alice.expect(lambda e: local(e.tag) == "error", "stream error")
        assert error.find("{urn:ietf:params:xml:ns:xmpp-streams}undefined-condition") is not None
        bob.close()
    finally:
        alice.close()


def test_r_before_enable_is_unsupported(server):
    alice = Sm(server, "alice")
    try:
        alice.bind()
        alice.send(f"<r xmlns='{NS_SM}'/>")
        error = alice.expect(lambda e: local(e.tag) == "error", "stream error")
        assert error.find("{urn:ietf:params:xml:ns:xmpp-streams}unsupported-stanza-type") is not None
    finally:
        alice.close()


def test_not_offered_without_the_module(start_server):
    config = smacks_config()
    config.globals["modules_enabled"] = list(TEST_MODULES)
    server = start_server(config, users=USERS)
    alice = Sm(server, "alice")
    try:
        assert not [c for c in alice.features if c.tag.endswith("}sm")]
    finally:
        alice.close()


# -- resumption -------------------------------------------------------------------------


def resume_after_drop(server, websocket: bool) -> None:
    alice = Sm(server, "alice", websocket=websocket)
    alice.bind()
    previd = alice.enable().get("id")
    bob = Sm(server, "bob")
    bob.bind("b")
    try:
        bob.send(message(alice.jid, "before"))
        alice.expect(is_message("before"), "before")
        handled = alice.handled
        alice.drop()
        time.sleep(0.5)
        bob.send(message(alice.jid, "during-1"))
        bob.send(message(alice.jid, "during-2"))
        # The session is still bound: bob's messages are not bounced.
        bob.expect_none(lambda e: e.get("type") == "error", "error bounce", within=1.0)

        again = Sm(server, "alice", websocket=websocket)
        assert f"{{{NS_SM}}}sm" in {c.tag for c in again.features}
        again.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='{handled}'/>")
        resumed = again.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "resumed")
        assert local(resumed.tag) == "resumed", ET.tostring(resumed)
        assert resumed.get("previd") == previd
        again.counting = True
        first = again.expect(is_message("during-1"), "during-1 after resume")
        again.expect(is_message("during-2"), "during-2 after resume")
        assert first.find(f"{{{NS_DELAY}}}delay") is not None, "kept copies are stamped"
        again.expect(is_sm("r"), "<r/> after resumption")
        # The same session: bound to the same JID, and it keeps working.
        bob.send(message(alice.jid, "after"))
        again.expect(is_message("after"), "after")
        again.ping("p-after")
        again.close()
    finally:
        bob.close()


def test_resume_after_dropped_tcp_connection(server):
    resume_after_drop(server, websocket=False)


@pytest.mark.lilt_only  # the harness gives Prosody no HTTP port
def test_resume_after_dropped_websocket(start_server):
    resume_after_drop(start_server(smacks_config(http=True), users=USERS), websocket=True)


def test_resume_unknown_id_fails(server):
    alice = Sm(server, "alice")
    try:
        alice.send(f"<resume xmlns='{NS_SM}' previd='no-such-id' h='0'/>")
        failed = alice.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "failed")
        assert local(failed.tag) == "failed" and condition(failed) == "item-not-found"
        assert failed.get("h") is None
        # The stream goes on: bind works after a failed resumption.
        alice.bind()
    finally:
        alice.close()


def test_resume_of_another_users_session_fails(server):
    alice = Sm(server, "alice")
    alice.bind()
    previd = alice.enable().get("id")
    alice.drop()
    bob = Sm(server, "bob")
    try:
        bob.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        failed = bob.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "failed")
        assert local(failed.tag) == "failed" and condition(failed) == "item-not-found"
    finally:
        bob.close()


def test_resume_while_old_connection_is_still_up(server):
    alice = Sm(server, "alice")
    alice.bind()
    previd = alice.enable().get("id")
    bob = Sm(server, "bob")
    bob.bind("b")
    try:
        bob.send(message(alice.jid, "seen"))
        alice.expect(is_message("seen"), "seen")
        bob.send(message(alice.jid, "unseen"))
        time.sleep(0.3)
        # The client gave up on the old connection without the server noticing.
        again = Sm(server, "alice")
        again.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='1'/>")
        resumed = again.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "resumed")
        assert local(resumed.tag) == "resumed", ET.tostring(resumed)
        again.expect(is_message("unseen"), "unseen after resume")
        bob.send(message(alice.jid, "later"))
        again.expect(is_message("later"), "later")
        again.close()
    finally:
        bob.close()
        alice.close()


# -- hibernation ends ---------------------------------------------------------------------


def test_hibernation_timeout(start_server):
    server = start_server(smacks_config(smacks_hibernation_time=2), users=USERS)
    bob = Sm(server, "bob")
    bob.bind("b")
    alice = Sm(server, "alice")
    alice.bind()
    previd = alice.enable().get("id")
    try:
        # Directed presence: bob hears when alice's session is gone.
        alice.send(f"<presence to='{bob.jid}'/>")
        bob.expect(lambda e: local(e.tag) == "presence" and e.get("type") is None, "presence")
        alice.send(f"<r xmlns='{NS_SM}'/>")
        alice.expect(is_sm("a"), "<a/>")
        alice.drop()
        time.sleep(0.3)
        bob.send(message(f"alice@{DOMAIN}", "while-hibernating"))
        # Still available while hibernating.
        bob.expect_none(
            lambda e: local(e.tag) == "presence" and e.get("type") == "unavailable",
            "unavailable while hibernating",
            within=1.0,
        )
        bob.expect(
            lambda e: local(e.tag) == "presence" and e.get("type") == "unavailable",
            "unavailable after the hibernation time",
            timeout=10,
        )
        # Too late to resume: failed, with the h the session had (1: the presence).
        late = Sm(server, "alice")
        late.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        failed = late.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "failed")
        assert local(failed.tag) == "failed" and condition(failed) == "item-not-found"
        assert failed.get("h") == "1", ET.tostring(failed)
        # The unacknowledged message went to offline storage.
        late.bind()
        late.send("<presence/>")
        late.expect(is_message("while-hibernating"), "the message, from offline storage")
        late.close()
    finally:
        bob.close()


def test_old_session_counters_kept_for_max_old_sessions(start_server):
    server = start_server(smacks_config(smacks_hibernation_time=1), users=USERS)
    ids = []
    for n in range(2):
        alice = Sm(server, "alice")
        alice.bind(f"r{n}")
        ids.append(alice.enable().get("id"))
        for _ in range(n + 1):
            alice.ping(f"p{n}")
        alice.drop()
        time.sleep(3.5)  # expires (1 s, seen by a watchdog ticking each second)
    # Enabling again keeps smacks_max_old_sessions (1) counters: the newest.
    alice = Sm(server, "alice")
    alice.bind("r2")
    alice.enable()
    alice.close()
    check = Sm(server, "alice")
    try:
        check.send(f"<resume xmlns='{NS_SM}' previd='{ids[0]}' h='0'/>")
        first = check.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "failed")
        assert condition(first) == "item-not-found" and first.get("h") is None
        check.send(f"<resume xmlns='{NS_SM}' previd='{ids[1]}' h='0'/>")
        second = check.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "failed")
        assert condition(second) == "item-not-found" and second.get("h") == "2"
        # Answered once, then forgotten.
        check.send(f"<resume xmlns='{NS_SM}' previd='{ids[1]}' h='0'/>")
        third = check.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "failed")
        assert third.get("h") is None
    finally:
        check.close()


def test_clean_close_is_not_resumable(server):
    alice = Sm(server, "alice")
    alice.bind()
    previd = alice.enable().get("id")
    alice.ping("p")
    alice.send("</stream:stream>")
    last = alice.expect(is_sm("a"), "the last <a/> before the stream closes")
    assert last.get("h") == "1"
    alice.close()
    again = Sm(server, "alice")
    try:
        again.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        failed = again.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "failed")
        assert condition(failed) == "item-not-found"
    finally:
        again.close()


# -- BOSH, timers, takeovers, replacement (issue 6) ---------------------------------------


@pytest.mark.lilt_only  # the harness knows lilt's HTTP port only
def test_bosh_offers_sm_and_an_inactive_session_hibernates(start_server):
    """Prosody offers <sm/> on BOSH too; a BOSH client gone silent for
    bosh_max_inactivity hibernates like a dropped TCP connection, and is resumed over
    TCP here."""
    cfg = smacks_config(http=True)
    cfg.globals.update({"bosh_max_inactivity": 2, "consider_bosh_secure": True})
    server = start_server(cfg, users=USERS)
    b = _Bosh(http_port(server), DOMAIN)
    root = b.post(to=DOMAIN, wait="1", hold="1", ver="1.6", **{"xmpp:version": "1.0"})
    b.sid = root.get("sid")
    b.next()
    token = base64.b64encode(b"\0alice\0alice-pw").decode()
    b.post(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
    assert local(b.next().tag) == "success"
    b.post(to=DOMAIN, **{"xmpp:restart": "true"})
    features = b.next()
    assert features.find(f"{{{NS_SM}}}sm") is not None, ET.tostring(features)
    b.post(f"<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>web</resource></bind></iq>")
    jid = b.next().find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid").text
    b.post(f"<enable xmlns='{NS_SM}' resume='true'/>")
    enabled = b.next()
    assert local(enabled.tag) == "enabled", ET.tostring(enabled)
    previd = enabled.get("id")
    bob = Sm(server, "bob")
    bob.bind("b")
    try:
        # No more requests: the BOSH session expires after 2 s and hibernates.
        time.sleep(3.5)
        bob.send(message(jid, "while-asleep"))
        again = Sm(server, "alice")
        again.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        resumed = again.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "resumed")
        assert local(resumed.tag) == "resumed", ET.tostring(resumed)
        again.expect(is_message("while-asleep"), "the message sent while hibernating")
        again.close()
    finally:
        bob.close()


def test_read_timeout_forces_r_then_hibernates(start_server):
    """network_settings.read_timeout: with smacks the server asks <r/> instead of a
    whitespace keepalive; no answer by the next timeout means a dead connection,
    whose session hibernates (Prosody's c2s-read-timeout handler)."""
    cfg = smacks_config()
    cfg.globals["network_settings"] = {"read_timeout": 1}
    server = start_server(cfg, users=USERS)
    alice = Sm(server, "alice")
    alice.bind()
    previd = alice.enable().get("id")
    try:
        alice.expect(is_sm("r"), "the forced <r/>", timeout=3)
        # Not answered: the server gives the connection up.
        deadline = time.monotonic() + 4
        gone = False
        while time.monotonic() < deadline and not gone:
            try:
                alice.recv(0.5)
            except (TimeoutError, OSError):
                continue
            except Exception:  # the harness's EOF
                gone = True
        assert gone, "the connection is still up"
        again = Sm(server, "alice")
        again.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        resumed = again.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "resumed")
        assert local(resumed.tag) == "resumed", ET.tostring(resumed)
        again.close()
    finally:
        alice.close()


def test_takeover_handles_stanzas_sent_with_the_resume(server):
    """The client sends <resume/> and a stanza in one go while its old connection is
    still up: the stanza is the resumed session's (not refused as unbound)."""
    alice = Sm(server, "alice")
    alice.bind()
    previd = alice.enable().get("id")
    try:
        again = Sm(server, "alice")
        again.send(
            f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>"
            f"<iq type='get' id='early' to='{DOMAIN}'><ping xmlns='{NS_PING}'/></iq>"
        )
        resumed = again.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "resumed")
        assert local(resumed.tag) == "resumed", ET.tostring(resumed)
        result = again.expect(lambda e: e.get("id") == "early", "the early ping's answer")
        assert result.get("type") == "result", ET.tostring(result)
        again.close()
    finally:
        alice.close()


def test_bind_replaces_a_hibernating_session_at_once(server):
    """A new bind of the resource of a hibernating session ends it there and then:
    its id is not resumable even a moment later."""
    alice = Sm(server, "alice")
    alice.bind("same")
    previd = alice.enable().get("id")
    alice.drop()
    time.sleep(0.3)
    other = Sm(server, "alice")
    other.bind("same")
    third = Sm(server, "alice")
    try:
        third.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        failed = third.expect(lambda e: e.tag.startswith(f"{{{NS_SM}}}"), "failed")
        assert local(failed.tag) == "failed" and condition(failed) == "item-not-found"
    finally:
        third.close()
        other.close()
