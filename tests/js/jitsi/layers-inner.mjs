// Simulcast layers and last-N in a browser call through lilt's in-process
// focus and bridge (issue 14), run inside ./netns.sh by layers.test.js.
// Pages join one room with simulcast on and send their fake cameras; the
// script reports, as one JSON line on stdout, what the receiving pages
// decoded:
//
//   node layers-inner.mjs constraints   three pages: page 1 asks for 180p of
//       page 0, page 2 for 720p; then page 1 switches to 720p. Reports the
//       heights decoded and, across the switch, how long it took and the
//       longest time page 1's decoded frame count of page 0 stood still.
//   node layers-inner.mjs lastn         six pages with last-N 2: reports which
//       remote videos each page decodes.
import { startJitsi, deployments, freePort, mediaConfig } from './fixture.mjs';
import { launchBrowser, joinConference } from './browser.mjs';
import { until } from '../lib/lilt.js';

const [mode = 'constraints'] = process.argv.slice(2);
const d = deployments.debian;
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// lib-jitsi-meet's ReceiverVideoConstraints: `height` for `sender` on stage,
// the others at thumbnail size.
const constraintsFor = (sender, height, lastN = -1) => ({
  lastN,
  defaultConstraints: { maxHeight: 180 },
  onStageEndpoints: [sender],
  constraints: { [sender]: { maxHeight: height } },
});

async function constraints(participants, result) {
  const [sender, low, high] = participants;
  const video = async (p) => (await p.page.evaluate(() => window.meet.mediaStats()))[sender.nick]?.video;
  await low.page.evaluate((c) => window.meet.conference.setReceiverConstraints(c), constraintsFor(sender.nick, 180));
  await high.page.evaluate((c) => window.meet.conference.setReceiverConstraints(c), constraintsFor(sender.nick, 720));
  // Chromium's encoder starts low and climbs as its bandwidth estimate does.
  await until(async () => (await video(low))?.frameHeight === 180 && (await video(high))?.frameHeight >= 360,
    40000, 'the two receivers decode the heights they asked for').catch(() => {});
  result.before = { low: await video(low), high: await video(high) };

  // Page 1 asks for 720p: the switch up is timed, and its decoded frame
  // count is sampled every 100 ms to find the longest stall.
  await low.page.evaluate((c) => window.meet.conference.setReceiverConstraints(c), constraintsFor(sender.nick, 720));
  const start = Date.now();
  let last = await video(low);
  let lastChange = Date.now();
  let longestStall = 0;
  let switchedAfter = null;
  while (Date.now() - start < 10000) {
    await sleep(100);
    const now = await video(low);
    if ((now?.framesDecoded ?? 0) > (last?.framesDecoded ?? 0)) lastChange = Date.now();
    longestStall = Math.max(longestStall, Date.now() - lastChange);
    if (switchedAfter === null && now?.frameHeight >= 360) switchedAfter = Date.now() - start;
    last = now;
    if (switchedAfter !== null && Date.now() - start > switchedAfter + 2000) break;
  }
  result.switch = { switchedAfter, longestStall, after: last };
}

// Which remote videos each page decodes: the frame counts rising over a
// window of four seconds (decoding is slow with six pages on two cores).
// Sampled until every page decodes exactly two, or for 60 s.
async function lastN(participants, result) {
  const decoded = async () => Promise.all(participants.map((p) => p.page.evaluate(() => window.meet.mediaStats())));
  const start = Date.now();
  result.samples = 0;
  do {
    const before = await decoded();
    await sleep(4000);
    const after = await decoded();
    result.samples += 1;
    result.remoteVideos = participants.map((p, i) => ({
      nick: p.nick,
      decoding: Object.keys(after[i]).filter((other) =>
        (after[i][other]?.video?.framesDecoded ?? 0) > (before[i][other]?.video?.framesDecoded ?? 0)),
    }));
  } while (Date.now() - start < 60000 && !result.remoteVideos.every((p) => p.decoding.length === 2));
}

async function main() {
  const server = await startJitsi('debian', [], mediaConfig(d, await freePort()));
  const result = { ok: false, mode };
  let browser;
  try {
    browser = await launchBrowser(server);
    const hosts = { domain: d.domain, muc: d.muc };
    const participants = [];
    const count = mode === 'lastn' ? 6 : 3;
    for (let i = 0; i < count; i += 1) {
      participants.push(await joinConference(browser, server, {
        transport: i % 2 ? 'bosh' : 'websocket',
        room: `layers-${mode}`,
        hosts,
        withTracks: true,
        config: { disableSimulcast: false, hiddenDomain: d.hiddenDomain, ...(mode === 'lastn' ? { channelLastN: 2 } : {}) },
      }));
    }
    if (mode === 'lastn') await lastN(participants, result);
    else await constraints(participants, result);
    result.ok = true;
    if (process.env.LILT_CALL_DEBUG) {
      result.logs = participants.map((p) => p.page.logs.slice(-60));
      result.bridgeStats = await fetch(`${server.http.replace(d.domain, '127.0.0.1')}/colibri/stats`)
        .then((r) => r.json()).catch(String);
      result.lilt = server.output().slice(-6000);
    }
  } catch (err) {
    result.error = `${err.stack || err}\nlilt:\n${server.output().slice(-6000)}`;
  } finally {
    await browser?.close().catch(() => {});
    await server.stop();
  }
  process.stdout.write(`\nCALL-RESULT ${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stdout.write(`\nCALL-RESULT ${JSON.stringify({ ok: false, error: String(err.stack || err) })}\n`);
});
