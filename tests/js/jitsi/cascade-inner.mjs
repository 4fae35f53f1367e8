// One browser call spread over two bridges (issue 22), run inside the
// network namespace of ./netns.sh with a second address (10.213.0.2) by
// cascade.test.js: lilt serves the Debian fixture; `lilt focus` with the
// split strategy and two `lilt bridge` processes (relay ids jvb-a and
// jvb-b, one address each) log in over c2s; four pages join one room, two
// on each bridge, the bridges relayed to each other by the focus. Then
// bridge jvb-b is killed: its pages must be re-invited on jvb-a.
//
//   node cascade-inner.mjs
//
// Prints one JSON line: { ok, split: { nick: bridge address }, before,
// after (window.meet.mediaStats() of every page, 3 s apart, with both
// bridges), moved: { nick: bridge address } after the kill, movedMs (from
// the kill to every page decoding every other page again), timeline (ms
// from the kill to the focus losing the bridge and to every page's ICE
// pair being on jvb-a), afterKill:
// { before, after }, focus: the focus's /stats after the move, error? }.
import { startJitsi, deployments, freePort } from './fixture.mjs';
import { launchBrowser, joinConference } from './browser.mjs';
import { startComponent, componentUsers } from './components.mjs';
import { until } from '../lib/lilt.js';

const d = deployments.debian;
const PASSWORD = 'cascade-secret';
const PAGES = 4;
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function main() {
  const server = await startJitsi('debian', componentUsers(d, PASSWORD));
  const focusPort = await freePort();
  const bridge = (name, address) => startComponent(server, d, PASSWORD, 'bridge',
    ['--address', address, '--http', '127.0.0.1:0', '--relay-id', name, '--nick', name]);
  const bridges = { 'jvb-a': bridge('jvb-a', '10.213.0.1'), 'jvb-b': bridge('jvb-b', '10.213.0.2') };
  const focus = startComponent(server, d, PASSWORD, 'focus',
    ['--bridge-selection', 'split', '--http', `127.0.0.1:${focusPort}`]);
  const focusStats = () => fetch(`http://127.0.0.1:${focusPort}/stats`).then((r) => r.json()).catch(() => null);
  const result = { ok: false };
  let browser;
  try {
    await until(async () => (await focusStats())?.bridge_selector?.operational_bridge_count === 2,
      20000, 'both bridges in the focus\'s brewery');
    browser = await launchBrowser(server);
    const participants = [];
    for (let i = 0; i < PAGES; i += 1) {
      participants.push(await joinConference(browser, server, {
        transport: i % 2 ? 'bosh' : 'websocket',
        room: 'cascade',
        hosts: { domain: d.domain, muc: d.muc },
        withTracks: true,
        config: { disableSimulcast: true, hiddenDomain: d.hiddenDomain },
      }));
    }
    const stats = () => Promise.all(participants.map((p) => p.page.evaluate(() => window.meet.mediaStats())));
    const flowing = (all) => all.every((s, i) => participants.every((other, j) => i === j
      || (s[other.nick]?.video?.framesDecoded > 0 && s[other.nick]?.audio?.packetsReceived > 0)));
    const addresses = async () => Object.fromEntries(await Promise.all(participants.map(async (p) => [
      p.nick, await p.page.evaluate(() => window.meet.bridgeAddress())])));
    await until(async () => flowing(await stats()), 60000, 'media from every page on every page').catch(() => {});
    result.split = await addresses();
    result.before = await stats();
    await sleep(3000);
    result.after = await stats();

    // jvb-b dies: its pages are moved to jvb-a and decode everything again.
    const killedAt = Date.now();
    bridges['jvb-b'].kill('SIGKILL');
    const onA = (all) => Object.values(all).every((a) => a === '10.213.0.1');
    const since = () => Date.now() - killedAt;
    result.timeline = {};
    await until(async () => {
      if (!result.timeline.bridgeGone && (await focusStats())?.bridge_selector?.bridge_count === 1) {
        result.timeline.bridgeGone = since();
      }
      const all = await addresses();
      if (!result.timeline.connected && onA(all)) result.timeline.connected = since();
      return onA(all) && flowing(await stats());
    }, 60000, 'pages moved to jvb-a').catch(() => {});
    result.movedMs = since();
    result.moved = await addresses();
    // Frames decoded rise after the move (not only counted before it).
    const afterKillBefore = await stats();
    await sleep(3000);
    result.afterKill = { before: afterKillBefore, after: await stats() };
    result.focus = await focusStats();
    result.nicks = participants.map((p) => p.nick);
    result.ok = true;
  } catch (err) {
    result.error = `${err.stack || err}\nlilt:\n${server.output().slice(-4000)}`;
  } finally {
    await browser?.close().catch(() => {});
    for (const c of [focus, ...Object.values(bridges)]) c.kill('SIGTERM');
    if (!result.ok || process.env.LILT_CALL_DEBUG) {
      result.components = Object.fromEntries([['focus', focus], ...Object.entries(bridges)]
        .map(([n, c]) => [n, c.output.slice(-3000)]));
    }
    await server.stop();
  }
  process.stdout.write(`\nCALL-RESULT ${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stdout.write(`\nCALL-RESULT ${JSON.stringify({ ok: false, error: String(err.stack || err) })}\n`);
});
