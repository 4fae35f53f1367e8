// The browser side of the Jitsi end-to-end tests (meet.test.js,
// features.test.js): Debian's Chromium driven by puppeteer-core, pages on
// lilt's own HTTP origin running lib-jitsi-meet through ./page/meet.js.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import puppeteer from 'puppeteer-core';
import { chromiumPath } from '../lib/browser.js';
import { until } from '../lib/lilt.js';
import { deployments } from './fixture.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const files = {
  'index.html': ['text/html', readFileSync(join(here, 'page', 'index.html'))],
  'meet.js': ['text/javascript', readFileSync(join(here, 'page', 'meet.js'))],
  'jquery.min.js': ['text/javascript', readFileSync(require.resolve('jquery/dist/jquery.min.js'))],
  'lib-jitsi-meet.min.js': ['text/javascript',
    readFileSync(require.resolve('@lyno/lib-jitsi-meet/lib-jitsi-meet.min.js'))],
};

// Chromium resolves the fixtures' domains to lilt on loopback, so requests
// carry `Host: <domain>` as they do behind Jitsi's nginx (lilt, as Prosody,
// serves BOSH and WebSocket by HTTP host; the Debian fixture has no
// http_default_host).
// The page's origin is treated as secure (getUserMedia needs that; Jitsi
// Meet is served over https) and its requests to loopback are not blocked as
// a public page's would be.
// `extraArgs` are added to Chromium's flags.
export async function launchBrowser(server, extraArgs = []) {
  const rules = Object.values(deployments).map((d) => `MAP ${d.domain} 127.0.0.1`).join(', ');
  return puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', '--autoplay-policy=no-user-gesture-required',
      `--host-resolver-rules=${rules}`, `--unsafely-treat-insecure-origin-as-secure=${server.http}`,
      '--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests', ...extraArgs],
  });
}

// A page on lilt's own HTTP origin (so BOSH is same-origin, as behind Jitsi's
// nginx): the test's files are answered by request interception.
export async function openPage(browser, server) {
  const page = await browser.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}${m.type() === 'error' && m.location()?.url ? ` (${m.location().url})` : ''}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  await page.setRequestInterception(true);
  const prefix = `${server.http}/jitsi-e2e/`;
  page.on('request', (req) => {
    const file = req.url().startsWith(prefix) && files[req.url().slice(prefix.length)];
    if (file) req.respond({ status: 200, contentType: file[0], body: file[1] });
    else req.continue();
  });
  await page.goto(`${prefix}index.html`);
  await page.waitForFunction(() => window.JitsiMeetJS && window.meet);
  return page;
}

export const eventNames = (page) => page.evaluate(() => window.meet.names());
export async function waitEvent(page, name, ms = 20000) {
  try {
    await until(async () => (await eventNames(page)).includes(name), ms, name);
  } catch (err) {
    const events = await page.evaluate(() => JSON.stringify(window.meet.events));
    throw new Error(`${err.message}\nevents: ${events}\nconsole:\n${page.logs.slice(-40).join('\n')}`);
  }
}

// Connects a page and joins `room`; returns { page, jid, nick }.
// With `joined: false`, it returns once join() was called (a refused join).
// The page sends its fake camera and microphone unless `withTracks` is false.
export async function joinConference(browser, server, {
  transport, room, hosts, credentials, config, joined = true, withTracks = true,
}) {
  const page = await openPage(browser, server);
  const base = transport === 'websocket' ? server.ws : server.bosh;
  const jid = await page.evaluate((o) => window.meet.connect(o),
    { serviceUrl: `${base}?room=${encodeURIComponent(room)}`, hosts, credentials })
    .catch((err) => {
      throw new Error(`${err.message}\nconsole:\n${page.logs.slice(-30).join('\n')}\nlilt:\n${server.output().slice(-3000)}`);
    });
  await page.evaluate((r, c, t) => window.meet.join(r, c, t), room, config || {}, withTracks);
  if (!joined) return { page, jid };
  await waitEvent(page, 'conference.joined');
  const nick = await page.evaluate(() => window.meet.conference.myUserId());
  return { page, jid, nick };
}
