// BOSH and WebSocket at the protocol level: retransmission by rid after a
// dropped long poll, inactivity expiry, and hostile input (out-of-window rids,
// unknown sids, oversized and malformed bodies and frames, a client that never
// reads): each gets its BOSH/WebSocket error and other sessions go on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startLilt, sleep, until } from './lib/lilt.js';
import { connect, disconnect, iq, $iq, $msg } from './lib/strophe-node.js';

const NS = "xmlns='http://jabber.org/protocol/httpbind'";
let lilt;

before(async () => {
  lilt = await startLilt({
    users: [['alice', 'localhost', 'wonderland'], ['bob', 'localhost', 'builder'], ['carol', 'localhost', 'singer']],
    global: {
      bosh_max_inactivity: '2',
      bosh_max_wait: '30',
      c2s_stanza_size_limit: '20000',
      http_max_content_size: '100000',
      network_settings: '{ send_timeout = 1 }',
    },
  });
});
after(async () => { await lilt?.stop(); });

async function post(body, options = {}) {
  const r = await fetch(lilt.bosh, { method: 'POST', body, headers: { 'content-type': 'text/xml; charset=utf-8' }, ...options });
  return { status: r.status, text: await r.text(), headers: r.headers };
}

// A logged-in, bound BOSH session; returns { sid, rid } with rid the last used.
async function boshLogin(user, password, resource) {
  let rid = 1000 + Math.floor(Math.random() * 100000);
  const created = await post(`<body ${NS} rid='${rid}' to='localhost' wait='30' hold='1' ver='1.6' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>`);
  const sid = created.text.match(/sid='([^']+)'/)[1];
  const auth = Buffer.from(`\0${user}\0${password}`).toString('base64');
  const ok = await post(`<body ${NS} sid='${sid}' rid='${++rid}'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${auth}</auth></body>`);
  assert.match(ok.text, /<success/);
  const restart = await post(`<body ${NS} sid='${sid}' rid='${++rid}' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'/>`);
  assert.match(restart.text, /<bind/);
  const bound = await post(`<body ${NS} sid='${sid}' rid='${++rid}'><iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq></body>`);
  assert.match(bound.text, new RegExp(`${user}@localhost/${resource}`));
  return { sid, rid };
}

test('session creation as Prosody answers it', async () => {
  const r = await post(`<body ${NS} rid='1' to='localhost' wait='600' hold='1' ver='1.6'/>`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/xml; charset=utf-8');
  assert.match(r.text, /wait='30'/, 'wait is capped by bosh_max_wait');
  assert.match(r.text, /inactivity='2' polling='5'/);
  assert.match(r.text, /requests='2' hold='1'/);
  assert.match(r.text, /<stream:features>/);
  for (const [body, condition] of [
    [`<body ${NS} rid='1' to='nowhere.example' wait='60'/>`, 'improper-addressing'],
    [`<body ${NS} rid='1' wait='60'/>`, 'improper-addressing'],
    [`<body ${NS} rid='1' to='localhost'/>`, 'bad-request'],
    [`<body ${NS} to='localhost' wait='60'/>`, 'bad-request'],
    [`<notbody ${NS} rid='1' to='localhost' wait='60'/>`, 'bad-request'],
  ]) {
    const e = await post(body);
    assert.equal(e.status, 200);
    assert.match(e.text, new RegExp(`type='terminate'.*condition='${condition}'`), body);
  }
  const page = await fetch(lilt.bosh);
  assert.match(await page.text(), /It works/);
  const pre = await fetch(lilt.bosh, { method: 'OPTIONS', headers: { origin: 'https://meet.example', 'access-control-request-method': 'POST' } });
  assert.equal(pre.status, 200);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'https://meet.example');
  assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
  assert.equal(pre.headers.get('access-control-allow-headers'), 'Content-Type');
});

test('a BOSH session survives a dropped long poll (retransmission by rid)', async () => {
  let { sid, rid } = await boshLogin('alice', 'wonderland', 'poll');
  const sender = await connect(lilt.ws, 'bob@localhost/sender', 'builder');
  // 1. A long poll whose connection drops before anything is said.
  const dropped = new AbortController();
  const lost = post(`<body ${NS} sid='${sid}' rid='${++rid}'/>`, { signal: dropped.signal }).catch((e) => e);
  await sleep(200);
  dropped.abort();
  await lost;
  sender.send($msg({ to: 'alice@localhost/poll', id: 'while-away' }).c('body').t('one'));
  await sleep(200);
  // The client sends the same rid again: it gets what was waiting.
  const retry = await post(`<body ${NS} sid='${sid}' rid='${rid}'/>`);
  assert.match(retry.text, /id='while-away'/);
  // 2. A response the client did not receive: the same rid gets it again.
  const answered = post(`<body ${NS} sid='${sid}' rid='${++rid}'/>`);
  await sleep(200);
  sender.send($msg({ to: 'alice@localhost/poll', id: 'answered' }).c('body').t('two'));
  const first = await answered;
  assert.match(first.text, /id='answered'/);
  const again = await post(`<body ${NS} sid='${sid}' rid='${rid}'><message xmlns='jabber:client' to='bob@localhost/sender' id='not-twice'/></body>`);
  assert.equal(again.text, first.text, 'the cached response, byte for byte');
  // The session goes on.
  const pong = await post(`<body ${NS} sid='${sid}' rid='${++rid}'><iq xmlns='jabber:client' type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq></body>`);
  assert.match(pong.text, /id='p'/);
  await sleep(200);
  assert.ok(!sender.received.some((s) => s.getAttribute('id') === 'not-twice'), 'stanzas of a repeated rid are not processed again');
  await post(`<body ${NS} sid='${sid}' rid='${++rid}' type='terminate'/>`);
  await disconnect(sender);
});

test('an idle BOSH session expires after inactivity', async () => {
  let { sid, rid } = await boshLogin('carol', 'singer', 'idle');
  const watcher = await connect(lilt.ws, 'bob@localhost/watch', 'builder');
  // Bound: an IQ to the full JID is delivered (to nobody answering) ...
  await sleep(2600);
  // ... after inactivity (2 s) the session is gone.
  const gone = await post(`<body ${NS} sid='${sid}' rid='${++rid}'/>`);
  assert.match(gone.text, /condition='item-not-found'/);
  const err = await iq(watcher, $iq({ type: 'get', to: 'carol@localhost/idle' }).c('ping', { xmlns: 'urn:xmpp:ping' })).catch((e) => e);
  assert.match(String(err), /service-unavailable|error/, 'the resource was unbound');
  await disconnect(watcher);
});

test('hostile BOSH requests get BOSH errors and leave other sessions alone', async () => {
  let { sid, rid } = await boshLogin('alice', 'wonderland', 'victim');
  const other = await boshLogin('bob', 'builder', 'bystander');
  const out = await post(`<body ${NS} sid='${sid}' rid='${rid + 1000}'/>`);
  assert.match(out.text, /type='terminate'.*condition='item-not-found'/);
  const unknown = await post(`<body ${NS} sid='no-such-sid' rid='1'/>`);
  assert.equal(unknown.text, `<body ${NS} type='terminate' condition='item-not-found'/>`);
  const malformed = await post(`<body ${NS} sid='${other.sid}' rid='${other.rid + 1}'><message><body>unclosed</message></body>`);
  assert.match(malformed.text, /condition='bad-request'/);
  const tooBig = await post(`<body ${NS} sid='${other.sid}' rid='${other.rid + 1}'><message xmlns='jabber:client'><body>${'x'.repeat(30000)}</body></message></body>`);
  assert.match(tooBig.text, /condition='bad-request'/);
  const huge = await post(`<body ${NS} sid='${other.sid}' rid='${other.rid + 1}'>${'x'.repeat(200000)}</body>`);
  assert.equal(huge.status, 413);
  const dtd = await post(`<!DOCTYPE body [<!ENTITY a 'aaaa'>]><body ${NS} sid='${other.sid}' rid='${other.rid + 1}'>&a;</body>`);
  assert.match(dtd.text, /condition='bad-request'/);
  // Both sessions still work.
  for (const s of [{ sid, rid }, other]) {
    const pong = await post(`<body ${NS} sid='${s.sid}' rid='${s.rid + 1}'><iq xmlns='jabber:client' type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq></body>`);
    assert.match(pong.text, /id='alive'/);
    await post(`<body ${NS} sid='${s.sid}' rid='${s.rid + 2}' type='terminate'/>`);
  }
});

// A raw WebSocket speaking RFC 7395, collecting text frames.
function rawSocket() {
  const ws = new WebSocket(lilt.ws, ['xmpp']);
  ws.frames = [];
  ws.on('message', (d) => ws.frames.push(d.toString()));
  ws.closed = new Promise((ok) => ws.on('close', (code, reason) => ok({ code, reason: reason.toString() })));
  ws.on('error', () => {});
  return new Promise((ok, fail) => { ws.on('open', () => ok(ws)); ws.on('unexpected-response', () => fail(new Error('refused'))); });
}

test('hostile WebSocket frames get Prosody\'s close codes and stream errors', async () => {
  const bystander = await connect(lilt.ws, 'bob@localhost/calm', 'builder');
  const open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
  // Too large for c2s_stanza_size_limit: a policy-violation stream error.
  let ws = await rawSocket();
  ws.send(open);
  ws.send(`<message xmlns='jabber:client'><body>${'x'.repeat(30000)}</body></message>`);
  let closed = await ws.closed;
  assert.equal(closed.code, 1000);
  assert.ok(ws.frames.some((f) => f.includes('<policy-violation')), ws.frames.join('\n'));
  assert.ok(ws.frames.at(-1).startsWith('<close'), 'the stream is closed with <close/>');
  // Binary frames: 1003.
  ws = await rawSocket();
  ws.send(Buffer.from('<open/>'), { binary: true });
  assert.equal((await ws.closed).code, 1003);
  // Text that is not XML: 1007.
  ws = await rawSocket();
  ws.send('hello');
  assert.equal((await ws.closed).code, 1007);
  // Malformed XML inside the stream: a not-well-formed stream error.
  ws = await rawSocket();
  ws.send(open);
  ws.send('<message><body>unclosed</message>');
  closed = await ws.closed;
  assert.ok(ws.frames.some((f) => f.includes('<not-well-formed')), ws.frames.join('\n'));
  // A stanza before <open/>.
  ws = await rawSocket();
  ws.send("<message xmlns='jabber:client'/>");
  await ws.closed;
  assert.ok(ws.frames.some((f) => f.includes('<not-well-formed')), ws.frames.join('\n'));
  // Pings are answered.
  ws = await rawSocket();
  const pong = new Promise((ok) => ws.on('pong', (d) => ok(d.toString())));
  ws.ping('are you there');
  assert.equal(await pong, 'are you there');
  ws.close();
  // The bystander never noticed.
  const r = await iq(bystander, $iq({ type: 'get', to: 'localhost' }).c('ping', { xmlns: 'urn:xmpp:ping' }));
  assert.equal(r.getAttribute('type'), 'result');
  await disconnect(bystander);
});

test('a WebSocket client that never reads is dropped after send_timeout; others go on', async () => {
  const sleeper = await connect(lilt.ws, 'carol@localhost/sleeper', 'singer');
  const flooder = await connect(lilt.ws, 'bob@localhost/flood', 'builder');
  // Stop reading: the kernel buffers fill, then lilt's writes stall.
  sleeper._proto.socket._socket.pause();
  const chunk = 'y'.repeat(16000);
  let delivered = true;
  const end = Date.now() + 20000;
  while (delivered && Date.now() < end) {
    for (let i = 0; i < 100; i++) flooder.send($msg({ to: 'carol@localhost/sleeper', type: 'chat' }).c('body').t(chunk));
    await sleep(300);
    // Once the session is gone, an IQ to its full JID is answered with an error.
    const answer = await iq(flooder, $iq({ type: 'get', to: 'carol@localhost/sleeper' }).c('ping', { xmlns: 'urn:xmpp:ping' }), 500).catch((e) => String(e));
    delivered = !/service-unavailable/.test(String(answer));
  }
  assert.equal(delivered, false, 'the non-reading session was dropped');
  const r = await iq(flooder, $iq({ type: 'get', to: 'localhost' }).c('ping', { xmlns: 'urn:xmpp:ping' }));
  assert.equal(r.getAttribute('type'), 'result');
  await disconnect(flooder);
  sleeper._proto.socket._socket.destroy();
  sleeper.reset();
});
