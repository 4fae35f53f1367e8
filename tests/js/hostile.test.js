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
      websocket_frame_buffer_limit: '12000',
      http_max_content_size: '100000',
      network_settings: '{ send_timeout = 1 }',
    },
  });
});
after(async () => { await lilt?.stop(); });

// The attributes of a response's <body/> (Prosody writes them in any order).
function bodyAttrs(text) {
  const tag = text.match(/<body\b[^>]*>/)?.[0] ?? '';
  return Object.fromEntries([...tag.matchAll(/([\w:]+)=['"]([^'"]*)['"]/g)].map((m) => [m[1], m[2]]));
}

function assertTerminate(text, condition, what = text) {
  const a = bodyAttrs(text);
  assert.equal(a.type, 'terminate', what);
  assert.equal(a.condition, condition, what);
}

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
  const a = bodyAttrs(r.text);
  assert.equal(a.wait, '30', 'wait is capped by bosh_max_wait');
  assert.equal(a.inactivity, '2');
  assert.equal(a.polling, '5');
  assert.equal(a.requests, '2');
  assert.equal(a.hold, '1');
  assert.equal(a.from, 'localhost');
  assert.equal(a['xmpp:version'], '1.0');
  assert.ok(a.sid && a.authid === a.sid);
  assert.match(r.text, /<stream:features/);
  for (const [body, condition] of [
    [`<body ${NS} rid='1' to='nowhere.example' wait='60'/>`, 'improper-addressing'],
    [`<body ${NS} rid='1' wait='60'/>`, 'improper-addressing'],
    [`<body ${NS} rid='1' to='localhost'/>`, 'bad-request'],
    [`<body ${NS} to='localhost' wait='60'/>`, 'bad-request'],
    [`<notbody ${NS} rid='1' to='localhost' wait='60'/>`, 'bad-request'],
  ]) {
    const e = await post(body);
    assert.equal(e.status, 200);
    assertTerminate(e.text, condition, body);
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
  assert.match(retry.text, /id=['"]while-away['"]/);
  // 2. A response the client did not receive: the same rid gets it again.
  const answered = post(`<body ${NS} sid='${sid}' rid='${++rid}'/>`);
  await sleep(200);
  sender.send($msg({ to: 'alice@localhost/poll', id: 'answered' }).c('body').t('two'));
  const first = await answered;
  assert.match(first.text, /id=['"]answered['"]/);
  const again = await post(`<body ${NS} sid='${sid}' rid='${rid}'><message xmlns='jabber:client' to='bob@localhost/sender' id='not-twice'/></body>`);
  assert.equal(again.text, first.text, 'the cached response, byte for byte');
  // The session goes on.
  const pong = await post(`<body ${NS} sid='${sid}' rid='${++rid}'><iq xmlns='jabber:client' type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq></body>`);
  assert.match(pong.text, /id=['"]p['"]/);
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
  assertTerminate(gone.text, 'item-not-found');
  const err = await iq(watcher, $iq({ type: 'get', to: 'carol@localhost/idle' }).c('ping', { xmlns: 'urn:xmpp:ping' })).catch((e) => e);
  assert.match(String(err), /service-unavailable|error/, 'the resource was unbound');
  await disconnect(watcher);
});

test('hostile BOSH requests get BOSH errors and leave other sessions alone', async () => {
  const bystander = await boshLogin('bob', 'builder', 'bystander');
  // A rid far outside the window: item-not-found (the session stays, as in Prosody).
  let { sid, rid } = await boshLogin('alice', 'wonderland', 'victim');
  const out = await post(`<body ${NS} sid='${sid}' rid='${rid + 1000}'/>`);
  assertTerminate(out.text, 'item-not-found');
  const alive = await post(`<body ${NS} sid='${sid}' rid='${++rid}'><iq xmlns='jabber:client' type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq></body>`);
  assert.match(alive.text, /id=['"]alive['"]/);
  const unknown = await post(`<body ${NS} sid='no-such-sid' rid='1'/>`);
  assertTerminate(unknown.text, 'item-not-found');
  // A body that is not well-formed: bad-request; its rid counts and the
  // session goes on (as Prosody's parser had read the body's tag).
  let victim = await boshLogin('alice', 'wonderland', 'victim');
  const malformed = await post(`<body ${NS} sid='${victim.sid}' rid='${victim.rid + 1}'><message><body>unclosed</message></body>`);
  assertTerminate(malformed.text, 'bad-request');
  const next = await post(`<body ${NS} sid='${victim.sid}' rid='${victim.rid + 2}'><iq xmlns='jabber:client' type='get' id='next' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq></body>`);
  assert.match(next.text, /id=['"]next['"]/);
  await post(`<body ${NS} sid='${victim.sid}' rid='${victim.rid + 3}' type='terminate'/>`);
  // XML outside XMPP's subset (a comment), or (lilt, which enforces
  // c2s_stanza_size_limit on BOSH where Prosody 0.12 does not) a stanza too
  // large: bad-request, and the session ends with bad-format.
  const broken = [(s, r) => `<body ${NS} sid='${s}' rid='${r}'><!-- comments are not XMPP --></body>`];
  if (lilt.server === 'lilt') {
    broken.push((s, r) => `<body ${NS} sid='${s}' rid='${r}'><message xmlns='jabber:client'><body>${'x'.repeat(30000)}</body></message></body>`);
  }
  for (const make of broken) {
    victim = await boshLogin('alice', 'wonderland', 'victim');
    const held = post(`<body ${NS} sid='${victim.sid}' rid='${victim.rid + 1}'/>`);
    await sleep(100);
    const r = await post(make(victim.sid, victim.rid + 2));
    assertTerminate(r.text, 'bad-request', make('SID', 'RID').slice(0, 80));
    const closing = (await held).text;
    assertTerminate(closing, 'remote-stream-error');
    assert.match(closing, /<bad-format/);
    const after = await post(`<body ${NS} sid='${victim.sid}' rid='${victim.rid + 3}'/>`);
    assertTerminate(after.text, 'item-not-found');
  }
  if (lilt.server === 'lilt') {
    // Over http_max_content_size: 413 (Prosody 0.12 drops the connection).
    const huge = await post(`<body ${NS} sid='${bystander.sid}' rid='${bystander.rid + 1}'>${'x'.repeat(200000)}</body>`);
    assert.equal(huge.status, 413);
  }
  // The bystander never noticed.
  const pong = await post(`<body ${NS} sid='${bystander.sid}' rid='${bystander.rid + 1}'><iq xmlns='jabber:client' type='get' id='calm' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq></body>`);
  assert.match(pong.text, /id=['"]calm['"]/);
  await post(`<body ${NS} sid='${bystander.sid}' rid='${bystander.rid + 2}' type='terminate'/>`);
  await post(`<body ${NS} sid='${sid}' rid='${rid + 1}' type='terminate'/>`);
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
  // Within the stanza size limit but over websocket_frame_buffer_limit:
  // resource-constraint.
  ws = await rawSocket();
  ws.send(open);
  ws.send(`<message xmlns='jabber:client'><body>${'x'.repeat(15000)}</body></message>`);
  await ws.closed;
  assert.ok(ws.frames.some((f) => f.includes('<resource-constraint')), ws.frames.join('\n'));
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
  // A stanza where <open/> should be: invalid-namespace, as for a wrong
  // stream header on TCP.
  ws = await rawSocket();
  ws.send("<message xmlns='jabber:client'/>");
  await ws.closed;
  assert.ok(ws.frames.some((f) => f.includes('<invalid-namespace')), ws.frames.join('\n'));
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

// Checked against Debian's Prosody 0.12 too: it kept the session for the
// whole 20 s, so this one describes lilt only.
test('a WebSocket client that never reads is dropped after send_timeout; others go on', async (t) => {
  if (lilt.server !== 'lilt') {
    t.skip('Prosody 0.12 does not drop the session within 20 s');
    return;
  }
  const sleeper = await connect(lilt.ws, 'carol@localhost/sleeper', 'singer');
  const flooder = await connect(lilt.ws, 'bob@localhost/flood', 'builder');
  // Stop reading: the kernel buffers fill, then lilt's writes stall.
  sleeper._proto.socket._socket.pause();
  // Below websocket_frame_buffer_limit, which the flooder's frames are held to.
  const chunk = 'y'.repeat(8000);
  let delivered = true;
  const end = Date.now() + 20000;
  while (delivered && Date.now() < end) {
    for (let i = 0; i < 200; i++) flooder.send($msg({ to: 'carol@localhost/sleeper', type: 'chat' }).c('body').t(chunk));
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
