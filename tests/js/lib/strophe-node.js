// strophe.js clients in Node (WebSocket), promise-shaped for tests.
import { Strophe, $iq, $msg, $pres } from 'strophe.js';

export { Strophe, $iq, $msg, $pres };

Strophe.setLogLevel(Strophe.LogLevel.ERROR);

// Connects and resolves once the session is ready; every received stanza is
// kept in conn.received, every sent or received frame in conn.log.
export function connect(url, jid, password, { timeout = 10000 } = {}) {
  const conn = new Strophe.Connection(url);
  conn.received = [];
  conn.log = [];
  conn.rawInput = (d) => conn.log.push(['in', d]);
  conn.rawOutput = (d) => conn.log.push(['out', d]);
  conn.addHandler((stanza) => { conn.received.push(stanza); return true; });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`connect ${jid} timed out:\n${conn.log.map((l) => l.join(' ')).join('\n')}`)), timeout);
    conn.connect(jid, password, (status, condition) => {
      if (status === Strophe.Status.CONNECTED) { clearTimeout(timer); ok(conn); }
      if ([Strophe.Status.AUTHFAIL, Strophe.Status.CONNFAIL, Strophe.Status.ERROR].includes(status)) {
        clearTimeout(timer);
        fail(new Error(`connect ${jid}: status ${status} ${condition ?? ''}`));
      }
    });
  });
}

export function iq(conn, stanza, timeout = 5000) {
  return new Promise((ok, fail) => conn.sendIQ(stanza, ok, (e) => fail(new Error(e ? Strophe.serialize(e) : 'iq timeout')), timeout));
}

// Waits for a received stanza matching predicate (also ones already received).
export function waitFor(conn, predicate, timeout = 5000, what = 'stanza') {
  return new Promise((ok, fail) => {
    const check = () => conn.received.find(predicate);
    const found = check();
    if (found) return ok(found);
    const timer = setTimeout(() => fail(new Error(`no ${what} arrived; got:\n${conn.received.map((s) => Strophe.serialize(s)).join('\n')}`)), timeout);
    const handler = conn.addHandler(() => {
      const f = check();
      if (f) { clearTimeout(timer); conn.deleteHandler(handler); ok(f); return false; }
      return true;
    });
  });
}

export function disconnect(conn) {
  return new Promise((ok) => {
    const timer = setTimeout(ok, 3000);
    conn.connect_callback = (status) => { if (status === Strophe.Status.DISCONNECTED) { clearTimeout(timer); ok(); } };
    conn.disconnect();
  });
}
