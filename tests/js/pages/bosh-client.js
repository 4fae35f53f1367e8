// Runs in Chromium, on a page lilt serves: strophe.js over BOSH (browser XHR),
// with small promise-shaped helpers the tests call through puppeteer.
// The UMD build puts the Strophe namespace on window (and the builders
// beside it, depending on the version).
const Strophe = window.Strophe.Strophe || window.Strophe;
const $iq = window.Strophe.$iq || window.$iq;
const $msg = window.Strophe.$msg || window.$msg;
const $pres = window.Strophe.$pres || window.$pres;
Strophe.setLogLevel(Strophe.LogLevel.ERROR);

window.xmpp = {
  conns: {},
  connect(name, url, jid, password) {
    const conn = new Strophe.Connection(url);
    conn.received = [];
    conn.log = [];
    conn.rawInput = (d) => conn.log.push('in ' + d);
    conn.rawOutput = (d) => conn.log.push('out ' + d);
    conn.addHandler((s) => { conn.received.push(s); return true; });
    window.xmpp.conns[name] = conn;
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error('connect timed out: ' + conn.log.join('\n'))), 15000);
      conn.connect(jid, password, (status, cond) => {
        if (status === Strophe.Status.CONNECTED) { clearTimeout(timer); ok({ jid: conn.jid, log: conn.log.slice() }); }
        if ([Strophe.Status.AUTHFAIL, Strophe.Status.CONNFAIL, Strophe.Status.ERROR].includes(status)) {
          clearTimeout(timer); fail(new Error('status ' + status + ' ' + (cond || '')));
        }
      });
    });
  },
  iq(name, build) {
    const conn = window.xmpp.conns[name];
    const stanza = build({ $iq, $msg, $pres });
    return new Promise((ok, fail) => conn.sendIQ(stanza, (r) => ok(Strophe.serialize(r)), (e) => fail(new Error(e ? Strophe.serialize(e) : 'timeout')), 10000));
  },
  send(name, build) {
    window.xmpp.conns[name].send(build({ $iq, $msg, $pres }));
  },
  // Waits for a received stanza whose serialisation contains every needle.
  waitFor(name, needles, timeout = 10000) {
    const conn = window.xmpp.conns[name];
    const match = () => conn.received.map((s) => Strophe.serialize(s)).find((x) => needles.every((n) => x.includes(n)));
    return new Promise((ok, fail) => {
      const end = Date.now() + timeout;
      const poll = () => {
        const found = match();
        if (found) return ok(found);
        if (Date.now() > end) return fail(new Error('no stanza with ' + needles.join(', ') + '; got:\n' + conn.received.map((s) => Strophe.serialize(s)).join('\n')));
        setTimeout(poll, 20);
      };
      poll();
    });
  },
  disconnect(name) {
    const conn = window.xmpp.conns[name];
    return new Promise((ok) => {
      const timer = setTimeout(ok, 5000);
      conn.connect_callback = (status) => { if (status === Strophe.Status.DISCONNECTED) { clearTimeout(timer); ok(); } };
      conn.disconnect();
    });
  },
};
window.xmppReady = true;
