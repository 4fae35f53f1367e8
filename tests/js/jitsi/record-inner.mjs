// A file recording through lilt's own recorder (issue 15), run inside the
// network namespace of ./netns.sh by record.test.js: lilt serves a Jitsi
// fixture with its focus, bridge and recorder in-process; two pages with
// fake camera and microphone hold a call, the moderator page starts a file
// recording through lib-jitsi-meet, both pages see it on, the call goes on
// for a while (one page's camera off half of it), the moderator stops it,
// both pages see it off. Prints one JSON line on stdout:
//
//   node record-inner.mjs KIND [SECONDS]
//
// { ok, states: [[status, ...] per page], sessionId, files: [paths], error? }
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startJitsi, deployments, freePort, mediaConfig } from './fixture.mjs';
import { launchBrowser, joinConference } from './browser.mjs';
import { until } from '../lib/lilt.js';

const [kind = 'debian', seconds = '12'] = process.argv.slice(2);
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
    const pages = [];
    for (let i = 0; i < 2; i += 1) {
      const credentials = d.member && i === 0 ? { id: `${d.member[0]}@${d.member[1]}`, password: PASSWORD } : undefined;
      pages.push(await joinConference(browser, server, {
        transport: 'websocket', room: `record-${kind}`, hosts, credentials, withTracks: true,
        config: { hiddenDomain: d.hiddenDomain },
      }));
    }
    const sessions = (p) => p.page.evaluate(() => window.meet.events
      .filter((e) => e[0] === 'conference.recorderStateChanged').map((e) => e[1]));
    const states = async (p) => (await sessions(p)).map((s) => s && s.status);
    const moderator = pages[0];
    await sleep(3000);
    result.started = await moderator.page.evaluate(() => window.meet.conference.startRecording({ mode: 'file' })
      .then(() => 'ok', (e) => `error: ${e && (e.message || e)}`));
    await until(async () => (await Promise.all(pages.map(states))).every((s) => s.includes('on')), 30000, 'recording on')
      .catch(() => {});
    const sessionId = (await sessions(moderator)).map((s) => s && s.session).find(Boolean) || null;
    result.sessionId = sessionId;
    const half = Number(seconds) * 500;
    await sleep(half);
    await pages[1].page.evaluate(() => window.meet.conference.getLocalVideoTrack()?.mute());
    await sleep(half);
    await moderator.page.evaluate((id) => window.meet.conference.stopRecording(id), sessionId).catch(() => {});
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
