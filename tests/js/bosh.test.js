// lilt's BOSH (XEP-0124/0206) with strophe.js in headless Chromium (browser
// XHR), on a page lilt itself serves (mod_http_files), and cross-origin from
// a page served elsewhere (CORS preflight).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { startLilt, workspace } from './lib/lilt.js';
import { launch, chromiumPath } from './lib/browser.js';
import { connect, disconnect, waitFor, $msg } from './lib/strophe-node.js';

const here = join(workspace, 'tests', 'js');
const pageFiles = {
  'index.html': readFileSync(join(here, 'pages', 'index.html')),
  'bosh-client.js': readFileSync(join(here, 'pages', 'bosh-client.js')),
  'strophe.umd.min.js': readFileSync(join(here, 'node_modules', 'strophe.js', 'dist', 'strophe.umd.min.js')),
};

let lilt;
let browser;
let page;
const skip = chromiumPath() ? false : 'Debian chromium is not installed (scripts/test.sh js installs it)';

before(async () => {
  lilt = await startLilt({
    users: [['alice', 'localhost', 'wonderland'], ['bob', 'localhost', 'builder']],
    hosts: { 'anon.localhost': { authentication: '"anonymous"' } },
    components: { 'conference.localhost': 'muc' },
    files: pageFiles,
  });
  if (skip) return;
  browser = await launch();
  page = await browser.newPage();
  await page.goto(`${lilt.http}/files/index.html`);
  await page.waitForFunction(() => window.xmppReady === true);
});
after(async () => {
  await browser?.close();
  await lilt?.stop();
});

const inPage = (fn, ...args) => page.evaluate(fn, ...args);

test('strophe.js in Chromium logs in with SCRAM-SHA-1 over BOSH, pings, keeps a roster', { skip }, async () => {
  const r = await inPage((url) => window.xmpp.connect('a', url, 'alice@localhost/browser', 'wonderland'), '/http-bind');
  assert.equal(r.jid, 'alice@localhost/browser');
  assert.ok(r.log.some((l) => l.startsWith('out') && l.includes('mechanism="SCRAM-SHA-1"')), r.log.join('\n'));
  assert.ok(r.log.some((l) => l.startsWith('in') && /requests=["']2["']/.test(l) && /hold=["']1["']/.test(l)), r.log.join('\n'));
  const pong = await inPage(() => window.xmpp.iq('a', ({ $iq }) => $iq({ type: 'get', to: 'localhost' }).c('ping', { xmlns: 'urn:xmpp:ping' })));
  assert.match(pong, /type="result"/);
  await inPage(() => window.xmpp.iq('a', ({ $iq }) => $iq({ type: 'set' }).c('query', { xmlns: 'jabber:iq:roster' }).c('item', { jid: 'bob@localhost', name: 'Bob' })));
  const roster = await inPage(() => window.xmpp.iq('a', ({ $iq }) => $iq({ type: 'get' }).c('query', { xmlns: 'jabber:iq:roster' })));
  assert.match(roster, /jid="bob@localhost"/);
  assert.match(roster, /name="Bob"/);
  await inPage(() => window.xmpp.disconnect('a'));
});

test('strophe.js in Chromium logs in with ANONYMOUS over BOSH', { skip }, async () => {
  const r = await inPage((url) => window.xmpp.connect('anon', url, 'anon.localhost', null), '/http-bind');
  assert.match(r.jid, /@anon\.localhost\//);
  assert.ok(r.log.some((l) => l.includes('mechanism="ANONYMOUS"')));
  await inPage(() => window.xmpp.disconnect('anon'));
});

test('messages between a BOSH client in Chromium and a WebSocket client in Node', { skip }, async () => {
  await inPage((url) => window.xmpp.connect('b', url, 'bob@localhost/browser', 'builder'), '/http-bind');
  await inPage(() => window.xmpp.send('b', ({ $pres }) => $pres()));
  const ws = await connect(lilt.ws, 'alice@localhost/node', 'wonderland');
  ws.send($msg({ to: 'bob@localhost/browser', type: 'chat', id: 'to-bosh' }).c('body').t('over the long poll'));
  const got = await inPage(() => window.xmpp.waitFor('b', ['id="to-bosh"', 'over the long poll']));
  assert.match(got, /from="alice@localhost\/node"/);
  await inPage(() => window.xmpp.send('b', ({ $msg }) => $msg({ to: 'alice@localhost/node', type: 'chat', id: 'from-bosh' }).c('body').t('back at you')));
  const back = await waitFor(ws, (s) => s.getAttribute('id') === 'from-bosh', 10000, 'reply from the BOSH client');
  assert.equal(back.getElementsByTagName('body')[0].textContent, 'back at you');
  await disconnect(ws);
  await inPage(() => window.xmpp.disconnect('b'));
});

test('MUC join over BOSH', { skip }, async (t) => {
  if (!lilt.hasModule('muc')) {
    t.skip('lilt has no muc module yet (Component "conference.localhost" "muc" is not loaded)');
    return;
  }
  await inPage((url) => window.xmpp.connect('m', url, 'alice@localhost/muc', 'wonderland'), '/http-bind');
  await inPage(() => window.xmpp.send('m', ({ $pres }) => $pres({ to: 'lounge@conference.localhost/Alice' }).c('x', { xmlns: 'http://jabber.org/protocol/muc' })));
  const self = await inPage(() => window.xmpp.waitFor('m', ['from="lounge@conference.localhost/Alice"', 'code="110"']));
  assert.ok(self);
  await inPage(() => window.xmpp.disconnect('m'));
});

test('a page from another origin uses BOSH through CORS', { skip }, async () => {
  // The page comes from a second server; every BOSH request is cross-origin
  // and strophe's text/xml content type makes Chromium send a preflight.
  const other = createServer((req, res) => {
    const name = req.url === '/' ? 'index.html' : req.url.slice(1);
    const body = pageFiles[name];
    if (!body) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': name.endsWith('.html') ? 'text/html' : 'text/javascript' }).end(body);
  });
  await new Promise((ok) => other.listen(0, '127.0.0.1', ok));
  const cross = await browser.newPage();
  try {
    await cross.goto(`http://127.0.0.1:${other.address().port}/`);
    await cross.waitForFunction(() => window.xmppReady === true);
    const r = await cross.evaluate((url) => window.xmpp.connect('x', url, 'alice@localhost/cors', 'wonderland'), lilt.bosh);
    assert.equal(r.jid, 'alice@localhost/cors');
    await cross.evaluate(() => window.xmpp.disconnect('x'));
  } finally {
    await cross.close();
    other.close();
  }
});
