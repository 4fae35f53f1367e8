// File recordings through lilt's own recorder (issue 15), run inside the
// network namespace of ./netns.sh by record.test.js: lilt serves a Jitsi
// fixture with its focus, bridge and recorder in-process; in each of
// CONFERENCES rooms two pages with fake camera and microphone hold a call,
// the room's moderator page starts a file recording through
// lib-jitsi-meet, both pages see it on, the calls go on for a while (one
// page's camera off half of it in each room), the moderators stop them,
// the pages see them off. One lilt records every room at once. Prints
// one JSON line on stdout:
//
//   node record-inner.mjs KIND [SECONDS] [CONFERENCES]
//
// { ok, states: [[status, ...] per page], sessionIds: [per room],
//   files: [paths], error? }
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startJitsi, deployments, freePort, mediaConfig } from './fixture.mjs';
import { launchBrowser, joinConference } from './browser.mjs';
import { until } from '../lib/lilt.js';

const [kind = 'debian', seconds = '12', conferences = '1'] = process.argv.slice(2);
const d = deployments[kind];
const PASSWORD = 'record-secret';
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// Every file under `dir`, recursively.
function filesUnder(dir) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    out = statSync(path).isDirectory() ? out.concat(filesUnder(path)) : out.concat([path]);
  }
  return out;
}

async function main() {
  const users = d.member ? [[d.member[0], d.member[1], PASSWORD]] : [];
  const server = await startJitsi(kind, users,
    mediaConfig(d, await freePort(), 'jitsi_recorder = { dir = "recordings" }'));
  const result = { ok: false, states: [] };
  let browser;
  try {
    browser = await launchBrowser(server);
    const hosts = { domain: d.domain, muc: d.muc, ...(d.anonymousDomain ? { anonymousdomain: d.anonymousDomain } : {}) };
    // rooms[i] = [moderator page, other page]
    const rooms = [];
    for (let r = 0; r < Number(conferences); r += 1) {
      const room = Number(conferences) > 1 ? `record-${kind}-${r}` : `record-${kind}`;
      const pair = [];
      for (let i = 0; i < 2; i += 1) {
        const credentials = d.member && i === 0 ? { id: `${d.member[0]}@${d.member[1]}`, password: PASSWORD } : undefined;
        pair.push(await joinConference(browser, server, {
          transport: 'websocket', room, hosts, credentials, withTracks: true,
          config: { hiddenDomain: d.hiddenDomain },
        }));
      }
      rooms.push(pair);
    }
    const pages = rooms.flat();
    const sessions = (p) => p.page.evaluate(() => window.meet.events
      .filter((e) => e[0] === 'conference.recorderStateChanged').map((e) => e[1]));
    const states = async (p) => (await sessions(p)).map((s) => s && s.status);
    await sleep(3000);
    // Each room on its own clock: start, see it on in both pages, talk
    // SECONDS (the other page's camera off the second half), stop.
    const half = Number(seconds) * 500;
    const runs = await Promise.all(rooms.map(async (pair) => {
      const [moderator, other] = pair;
      // Starts asked of one recorder at the same moment can find the focus
      // still counting it busy from the previous one (it says it is idle
      // again right after accepting): a refused start is tried again, as a
      // user would, and the refusals are kept for the result.
      let started;
      let asked = Date.now();
      for (let attempt = 0; attempt < 5; attempt += 1) {
        asked = Date.now();
        started = await moderator.page.evaluate(() => window.meet.conference.startRecording({ mode: 'file' })
          .then(() => 'ok', (e) => `error: ${e && (e.outerHTML || e.message || e)}`));
        if (started === 'ok') break;
        result.refused = (result.refused || []).concat([started]);
        await sleep(1000 + 500 * attempt);
      }
      await until(async () => (await Promise.all(pair.map(states))).every((s) => s.includes('on')), 45000, 'recording on')
        .catch(() => {});
      // From asking to both pages seeing it on: the file starts in between.
      const startToOn = (Date.now() - asked) / 1000;
      // Stopped SECONDS after it was seen on, however long the pages take
      // to answer meanwhile (six pages load two cores).
      const stopAt = Date.now() + 2 * half;
      const sessionId = (await sessions(moderator)).map((s) => s && s.session).find(Boolean) || null;
      await sleep(half);
      await other.page.evaluate(() => window.meet.conference.getLocalVideoTrack()?.mute());
      await sleep(Math.max(0, stopAt - Date.now()));
      await moderator.page.evaluate((id) => window.meet.conference.stopRecording(id), sessionId).catch(() => {});
      return { started, sessionId, startToOn };
    }));
    result.started = runs.every((r) => r.started === 'ok') ? 'ok' : runs.map((r) => r.started).join('; ');
    result.sessionIds = runs.map((r) => r.sessionId);
    result.sessionId = result.sessionIds[0];
    result.startToOn = runs.map((r) => r.startToOn);
    await until(async () => (await Promise.all(pages.map(states))).every((s) => s.includes('off')), 30000, 'recording off')
      .catch(() => {});
    result.states = await Promise.all(pages.map(states));
    result.stoppedAfter = Number(seconds);
    // The recorder finishes the file after `off`.
    await sleep(3000);
    result.files = filesUnder(join(server.dir, 'recordings'));
    result.ok = true;
    if (process.env.LILT_CALL_DEBUG) {
      result.logs = await Promise.all(pages.map((p) => p.page.logs.slice(-40)));
      result.lilt = server.output().slice(-6000);
    }
  } catch (err) {
    result.error = `${err.stack || err}\nlilt:\n${server.output().slice(-6000)}`;
  } finally {
    await browser?.close().catch(() => {});
    // Keep the files for the test to check: it removes the directory.
    result.dir = server.dir;
    process.env.LILT_TEST_KEEP = '1';
    await server.stop();
  }
  process.stdout.write(`\nRECORD-RESULT ${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stdout.write(`\nRECORD-RESULT ${JSON.stringify({ ok: false, error: String(err.stack || err) })}\n`);
});
