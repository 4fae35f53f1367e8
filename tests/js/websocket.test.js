// lilt's WebSocket (RFC 7395) with real clients: strophe.js and @xmpp/client in Node.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startLilt } from './lib/lilt.js';
import { connect, disconnect, iq, waitFor, Strophe, $iq, $msg, $pres } from './lib/strophe-node.js';
import { client as xmppClient, xml } from '@xmpp/client';
import WebSocket from 'ws';

let lilt;
before(async () => {
  lilt = await startLilt({
    users: [['alice', 'localhost', 'wonderland'], ['bob', 'localhost', 'builder']],
    hosts: { 'anon.localhost': { authentication: '"anonymous"' } },
    components: { 'conference.localhost': 'muc' },
  });
});
after(async () => { await lilt?.stop(); });

test('strophe.js logs in with SCRAM-SHA-1 over WebSocket', async () => {
  const c = await connect(lilt.ws, 'alice@localhost/strophe', 'wonderland');
  assert.equal(c.jid, 'alice@localhost/strophe');
  assert.ok(c.log.some(([dir, d]) => dir === 'out' && d.includes('mechanism="SCRAM-SHA-1"')), 'SCRAM-SHA-1 used');
  assert.ok(c.log.some(([dir, d]) => dir === 'in' && d.startsWith('<open') && d.includes('urn:ietf:params:xml:ns:xmpp-framing')));
  const pong = await iq(c, $iq({ type: 'get', to: 'localhost' }).c('ping', { xmlns: 'urn:xmpp:ping' }));
  assert.equal(pong.getAttribute('type'), 'result');
  await disconnect(c);
});

test('a wrong password is refused', async () => {
  await assert.rejects(connect(lilt.ws, 'alice@localhost', 'wrong'), /status 4/);
});

test('strophe.js logs in with ANONYMOUS over WebSocket', async () => {
  const a = await connect(lilt.ws, 'anon.localhost', null);
  const b = await connect(lilt.ws, 'anon.localhost', null);
  assert.match(a.jid, /^[^@]+@anon\.localhost\/.+/);
  assert.notEqual(Strophe.getBareJidFromJid(a.jid), Strophe.getBareJidFromJid(b.jid));
  assert.ok(a.log.some(([dir, d]) => dir === 'out' && d.includes('mechanism="ANONYMOUS"')));
  await disconnect(a);
  await disconnect(b);
});

test('roster over WebSocket', async () => {
  const c = await connect(lilt.ws, 'alice@localhost/roster', 'wonderland');
  await iq(c, $iq({ type: 'set' }).c('query', { xmlns: 'jabber:iq:roster' }).c('item', { jid: 'bob@localhost', name: 'Bob' }).c('group').t('Builders'));
  const roster = await iq(c, $iq({ type: 'get' }).c('query', { xmlns: 'jabber:iq:roster' }));
  const items = [...roster.getElementsByTagName('item')];
  const bob = items.find((i) => i.getAttribute('jid') === 'bob@localhost');
  assert.ok(bob, Strophe.serialize(roster));
  assert.equal(bob.getAttribute('name'), 'Bob');
  await iq(c, $iq({ type: 'set' }).c('query', { xmlns: 'jabber:iq:roster' }).c('item', { jid: 'bob@localhost', subscription: 'remove' }));
  await disconnect(c);
});

test('messages between two strophe.js clients over WebSocket', async () => {
  const a = await connect(lilt.ws, 'alice@localhost/ws', 'wonderland');
  const b = await connect(lilt.ws, 'bob@localhost/ws', 'builder');
  b.send($pres());
  a.send($msg({ to: 'bob@localhost/ws', type: 'chat', id: 'm1' }).c('body').t('hello <bob> & "friends"'));
  const got = await waitFor(b, (s) => s.nodeName === 'message' && s.getAttribute('id') === 'm1', 5000, 'message m1');
  assert.equal(got.getElementsByTagName('body')[0].textContent, 'hello <bob> & "friends"');
  assert.equal(got.getAttribute('from'), 'alice@localhost/ws');
  await disconnect(a);
  await disconnect(b);
});

test('MUC join over WebSocket', async (t) => {
  if (!lilt.hasModule('muc')) {
    t.skip('lilt has no muc module yet (Component "conference.localhost" "muc" is not loaded)');
    return;
  }
  const c = await connect(lilt.ws, 'alice@localhost/muc', 'wonderland');
  c.send($pres({ to: 'lounge@conference.localhost/Alice' }).c('x', { xmlns: 'http://jabber.org/protocol/muc' }));
  const self = await waitFor(c, (s) => s.nodeName === 'presence' && s.getAttribute('from') === 'lounge@conference.localhost/Alice'
    && [...s.getElementsByTagName('status')].some((st) => st.getAttribute('code') === '110'), 5000, 'MUC self-presence');
  assert.ok(self);
  await disconnect(c);
});

test('@xmpp/client logs in over WebSocket and exchanges a message', async () => {
  const received = [];
  // PLAIN: see the SCRAM test below for why.
  const client = xmppClient({
    service: lilt.ws,
    domain: 'localhost',
    resource: 'xmppjs',
    credentials: (authenticate, mechanisms) => {
      assert.ok(mechanisms.includes('PLAIN'), mechanisms.join(' '));
      return authenticate({ username: 'bob', password: 'builder' }, 'PLAIN');
    },
  });
  client.on('error', () => {});
  client.on('stanza', (s) => received.push(s));
  const address = await client.start();
  assert.equal(address.toString(), 'bob@localhost/xmppjs');
  await client.send(xml('presence'));
  const a = await connect(lilt.ws, 'alice@localhost/to-xmppjs', 'wonderland');
  a.send($msg({ to: 'bob@localhost/xmppjs', id: 'x1', type: 'chat' }).c('body').t('hi xmpp.js'));
  const end = Date.now() + 10000;
  while (!received.some((s) => s.is('message') && s.attrs.id === 'x1') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  const msg = received.find((s) => s.is('message') && s.attrs.id === 'x1');
  assert.ok(msg, `message arrived at @xmpp/client; got ${received.map(String).join('\n')}`);
  assert.equal(msg.getChildText('body'), 'hi xmpp.js');
  const pong = await client.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  assert.equal(pong.attrs.type, 'result');
  await client.stop();
  await disconnect(a);
});

// @xmpp/client's SCRAM parser (sasl-scram-sha-1) splits the server-first
// message at commas outside double quotes, so a server nonce holding '"'
// (printable, allowed by RFC 5802) breaks its login ("Wrong nonce in
// client-final-message"). lilt's server nonces hold no quote or backslash
// (auth/src/sasl/scram.rs), as Prosody's UUID nonces never do.
test('@xmpp/client logs in with SCRAM-SHA-1 twenty times', async () => {
  for (let i = 0; i < 20; i++) {
    const client = xmppClient({ service: lilt.ws, domain: 'localhost', resource: `scram${i}`, username: 'bob', password: 'builder' });
    client.on('error', () => {});
    await client.start();
    await client.stop();
  }
});

test('a WebSocket without the xmpp subprotocol is refused with 501', async () => {
  const status = await new Promise((ok) => {
    const ws = new WebSocket(lilt.ws, ['chat']);
    ws.on('unexpected-response', (_req, res) => ok(res.statusCode));
    ws.on('open', () => ok('opened'));
    ws.on('error', () => {});
  });
  assert.equal(status, 501);
  const plain = await new Promise((ok) => {
    const ws = new WebSocket(lilt.ws);
    ws.on('unexpected-response', (_req, res) => ok(res.statusCode));
    ws.on('open', () => ok('opened'));
    ws.on('error', () => {});
  });
  assert.equal(plain, 501);
  // A plain GET is the endpoint's page.
  const page = await fetch(lilt.ws.replace('ws:', 'http:'));
  assert.equal(page.status, 200);
  assert.match(await page.text(), /It works/);
});
