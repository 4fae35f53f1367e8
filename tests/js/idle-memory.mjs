// How much memory an idle BOSH or WebSocket session costs lilt: opens N
// sessions of each kind (SASL ANONYMOUS, stream restart, resource bound;
// BOSH clients keep their long poll open, as a real idle client does), then
// reads the growth of lilt's resident memory (VmRSS) per session.
//
//   node idle-memory.mjs [N]        (default 1000; needs ulimit -n > 2N + 100)
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { Agent, request } from 'node:http';
import { startLilt, sleep } from './lib/lilt.js';

const N = Number(process.argv[2] || 1000);
const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

const rss = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) * 1024;
const mib = (b) => (b / 1048576).toFixed(1);

const lilt = await startLilt({
  hosts: { 'anon.localhost': { authentication: '"anonymous"' } },
  global: { bosh_max_inactivity: '600', bosh_max_wait: '120', c2s_timeout: '600', network_settings: '{ read_timeout = 3600 }' },
});

async function wsSession() {
  const ws = new WebSocket(lilt.ws, ['xmpp']);
  const queue = [];
  let wake = null;
  ws.on('message', (d) => { queue.push(d.toString()); wake?.(); });
  await new Promise((ok, fail) => { ws.on('open', ok); ws.on('error', fail); });
  const until = async (needle) => {
    for (;;) {
      const i = queue.findIndex((f) => f.includes(needle));
      if (i >= 0) return queue.splice(0, i + 1);
      await new Promise((ok) => { wake = ok; });
    }
  };
  const open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='anon.localhost' version='1.0'/>";
  ws.send(open);
  await until('</stream:features>');
  ws.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>");
  await until('<success');
  ws.send(open);
  await until('</stream:features>');
  ws.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
  await until("id='b'");
  return ws;
}

const NS = "xmlns='http://jabber.org/protocol/httpbind'";
const post = (body) => new Promise((ok, fail) => {
  const req = request(lilt.bosh, { method: 'POST', agent, headers: { 'content-type': 'text/xml; charset=utf-8' } }, (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (d) => { text += d; });
    res.on('end', () => ok(text));
  });
  req.on('error', fail);
  req.end(body);
});
async function boshSession() {
  let rid = Math.floor(Math.random() * 1e9);
  const created = await post(`<body ${NS} rid='${rid}' to='anon.localhost' wait='120' hold='1' ver='1.6' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>`);
  const sid = created.match(/sid='([^']+)'/)[1];
  await post(`<body ${NS} sid='${sid}' rid='${++rid}'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/></body>`);
  await post(`<body ${NS} sid='${sid}' rid='${++rid}' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'/>`);
  await post(`<body ${NS} sid='${sid}' rid='${++rid}'><iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq></body>`);
  // The idle client's long poll, renewed when answered.
  const poll = () => post(`<body ${NS} sid='${sid}' rid='${++rid}'/>`).then(poll, () => {});
  poll();
  return sid;
}

async function measure(kind, open) {
  await sleep(500);
  const before = rss(lilt.pid);
  const t0 = Date.now();
  const held = [];
  for (let i = 0; i < N; i += 50) {
    held.push(...await Promise.all(Array.from({ length: Math.min(50, N - i) }, open)));
  }
  await sleep(1500);
  const after = rss(lilt.pid);
  console.log(`${kind}: ${N} idle sessions in ${((Date.now() - t0) / 1000).toFixed(1)} s; lilt RSS ${mib(before)} -> ${mib(after)} MiB; ${((after - before) / N / 1024).toFixed(1)} KiB per session`);
  return held;
}

console.log(`lilt pid ${lilt.pid}, RSS at start ${mib(rss(lilt.pid))} MiB`);
const sockets = await measure('WebSocket', wsSession);
await measure('BOSH', boshSession);
for (const ws of sockets) ws.terminate();
await lilt.stop();
process.exit(0);
