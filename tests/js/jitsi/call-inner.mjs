// One browser call through lilt's own focus and bridge, run inside the
// network namespace of ./netns.sh by call.test.js (Chromium gathers ICE
// candidates only on a non-loopback interface; the namespace's veth has
// 10.213.0.1). lilt serves a Jitsi fixture with `jitsi_focus` and
// `jitsi_videobridge` enabled in-process; N pages with fake camera and
// microphone join one room and the script reports, as one JSON line on
// stdout, what every page received from every other page:
//
//   node call-inner.mjs KIND PAGES [simulcast|standalone]
//
// With `standalone`, the focus and the bridge are separate processes
// (`lilt focus ...`, `lilt bridge ...`) logging in over c2s with their
// accounts, as Jicofo and Videobridge do, instead of running in-process.
//
// { ok, pages: [{ nick, before: stats, after: stats }], speaker: { expected,
//   seen }, mutedSeen: { nick: audio muted? } (on the speaker's page),
//   moderatorMute: { moderator, target, beforeMute, flowing, settled, after }
//   (audio packets of the target on the moderator's page), left: { nick, tracksElsewhere },
//   error? }
// where stats is window.meet.mediaStats() (page/meet.js).
import { startJitsi, deployments, freePort, mediaConfig } from './fixture.mjs';
import { launchBrowser, joinConference } from './browser.mjs';
import { startComponent, componentUsers } from './components.mjs';
import { until } from '../lib/lilt.js';

const [kind = 'debian', count = '2', mode = ''] = process.argv.slice(2);
const d = deployments[kind];
const PASSWORD = 'call-secret';
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// `lilt focus` and `lilt bridge` as their own processes against `server`.
function startComponents(server) {
  return [
    startComponent(server, d, PASSWORD, 'bridge', ['--address', '10.213.0.1', '--http', '127.0.0.1:0']),
    startComponent(server, d, PASSWORD, 'focus'),
  ];
}

async function main() {
  const standalone = mode === 'standalone';
  const users = (d.member ? [[d.member[0], d.member[1], PASSWORD]] : [])
    .concat(standalone ? componentUsers(d, PASSWORD) : []);
  const server = await startJitsi(kind, users, standalone ? '' : mediaConfig(d, await freePort()));
  const components = standalone ? startComponents(server) : [];
  const result = { ok: false, pages: [] };
  let browser;
  try {
    browser = await launchBrowser(server);
    if (process.env.LILT_CALL_DEBUG) {
      // Keeps what the bridge channel carries, for the debug output.
      browser.on('targetcreated', async (target) => {
        const page = await target.page().catch(() => null);
        await page?.evaluateOnNewDocument(() => {
          window.colibri = [];
          const Native = window.WebSocket;
          window.WebSocket = function (url, protocols) {
            const ws = new Native(url, protocols);
            if (String(url).includes('colibri-ws')) {
              ws.addEventListener('message', (m) => window.colibri.push(`IN ${m.data}`.slice(0, 300)));
              const send = ws.send.bind(ws);
              ws.send = (d) => { window.colibri.push(`OUT ${d}`.slice(0, 300)); send(d); };
            }
            return ws;
          };
          window.WebSocket.prototype = Native.prototype;
          Object.assign(window.WebSocket, { OPEN: 1, CLOSED: 3, CONNECTING: 0, CLOSING: 2 });
        });
      });
    }
    const hosts = { domain: d.domain, muc: d.muc, ...(d.anonymousDomain ? { anonymousdomain: d.anonymousDomain } : {}) };
    const participants = [];
    for (let i = 0; i < Number(count); i += 1) {
      // On a secure domain the first participant logs in (a moderator), the others are guests.
      const credentials = d.member && i === 0 ? { id: `${d.member[0]}@${d.member[1]}`, password: PASSWORD } : undefined;
      participants.push(await joinConference(browser, server, {
        transport: i % 2 ? 'bosh' : 'websocket',
        room: `call-${kind}`,
        hosts,
        credentials,
        withTracks: true,
        config: { disableSimulcast: mode !== 'simulcast', hiddenDomain: d.hiddenDomain },
      }));
    }
    const stats = () => Promise.all(participants.map((p) => p.page.evaluate(() => window.meet.mediaStats())));
    // Every page has every other page's audio and video flowing.
    const flowing = (all) => all.every((s, i) => participants.every((other, j) => i === j
      || (s[other.nick]?.video?.framesDecoded > 0 && s[other.nick]?.audio?.packetsReceived > 0)));
    await until(async () => flowing(await stats()), 40000, 'media from every page on every page').catch(() => {});
    const before = await stats();
    await sleep(3000);
    const after = await stats();
    result.pages = participants.map((p, i) => ({ nick: p.nick, before: before[i], after: after[i] }));
    // In-process, Jicofo's REST endpoints are on lilt's HTTP server.
    if (!standalone) {
      const base = server.http.replace(d.domain, '127.0.0.1');
      const health = await fetch(`${base}/focus/about/health`).catch(() => null);
      const stats = await fetch(`${base}/focus/stats`).then((r) => r.json()).catch(() => null);
      result.focusHttp = { health: health?.status ?? null, stats };
    }

    // The dominant speaker follows the one page left unmuted: one that is
    // not the dominant speaker now, so the bridge must change its mind.
    const lastSpeaker = (p) => p.page.evaluate(() => {
      const events = window.meet.events.filter((e) => e[0] === 'conference.dominantSpeaker');
      return events.length ? events[events.length - 1][1] : null;
    });
    const current = await lastSpeaker(participants[0]);
    const speakerIndex = Math.max(0, participants.findIndex((p) => p.nick !== current));
    for (const [i, p] of participants.entries()) {
      await p.page.evaluate((m) => window.meet.setAudioMuted(m), i !== speakerIndex);
    }
    const speaker = participants[speakerIndex].nick;
    await until(async () => (await Promise.all(participants.filter((_, i) => i !== speakerIndex).map(lastSpeaker)))
      .every((s) => s === speaker), 20000, 'dominant speaker').catch(() => {});
    result.speaker = { expected: speaker, seen: await Promise.all(participants.map(lastSpeaker)) };

    // The pages that muted themselves are seen as muted by the speaker's page.
    const speakerPage = participants[speakerIndex].page;
    result.mutedSeen = await speakerPage.evaluate(() => Object.fromEntries(window.meet.conference.getParticipants()
      .map((p) => [p.getId(), p.getTracks().find((t) => t.getType() === 'audio')?.isMuted() ?? null])));

    // A moderator mutes another page (the speaker when the speaker is not
    // the moderator): that page's audio stops at the bridge, so the
    // moderator's page receives no more of its packets (a page that mutes
    // itself keeps sending silence, so only the bridge can stop them).
    const moderators = await Promise.all(participants.map((p) => p.page.evaluate(() => window.meet.conference.isModerator())));
    const moderatorIndex = moderators.indexOf(true);
    if (moderatorIndex >= 0) {
      const observer = participants[moderatorIndex];
      const target = participants[speakerIndex !== moderatorIndex ? speakerIndex : participants.findIndex((_, i) => i !== moderatorIndex)];
      const audioFrom = async () => (await observer.page.evaluate(() => window.meet.mediaStats()))[target.nick]?.audio?.packetsReceived ?? 0;
      const beforeMute = await audioFrom();
      await sleep(1000);
      const flowing = await audioFrom();
      await observer.page.evaluate((id) => window.meet.conference.muteParticipant(id, 'audio'), target.nick);
      await sleep(1500);
      const settled = await audioFrom();
      await sleep(2000);
      result.moderatorMute = { moderator: observer.nick, target: target.nick, beforeMute, flowing, settled, after: await audioFrom() };
    } else {
      result.moderatorMute = { moderator: null };
    }

    // The last page leaves: every other page drops its tracks.
    const leaving = participants[participants.length - 1];
    await leaving.page.evaluate(() => window.meet.leave());
    const remaining = participants.slice(0, -1);
    const stillThere = () => Promise.all(remaining.map((p) => p.page.evaluate((id) => {
      const participant = window.meet.conference.getParticipantById(id);
      return participant ? participant.getTracks().length : 0;
    }, leaving.nick)));
    await until(async () => (await stillThere()).every((n) => n === 0), 15000, 'tracks of the page that left').catch(() => {});
    result.left = { nick: leaving.nick, tracksElsewhere: await stillThere() };
    // Disco queries lib-jitsi-meet made that were never answered.
    result.unansweredDisco = (await Promise.all(remaining.map((p) => p.page.evaluate(() => [...window.meet.disco.values()])))).flat();
    // Errors in the pages' consoles, but for the test page's own missing
    // favicon and the library's analytics averaging a bandwidth sample
    // Chromium had not measured yet (its candidate-pair stats carry no
    // available bit rates for a while on a loaded machine; nothing the
    // server sends is involved).
    result.consoleErrors = participants.flatMap((p) => p.page.logs
      .filter((l) => l.startsWith('error:') || l.startsWith('pageerror:'))
      .filter((l) => !l.includes('/favicon.ico'))
      .filter((l) => !/AvgRTPStatsReporter.*bandwidth_(upload|download) - invalid value/.test(l)));
    result.ok = true;
    if (process.env.LILT_CALL_DEBUG) {
      result.logs = await Promise.all(participants.map((p) => p.page.logs.slice(-60)));
      result.traces = await Promise.all(participants.map((p) => p.page.evaluate(() => window.meet.trace.slice(-60))));
      result.colibri = await Promise.all(participants.map((p) => p.page.evaluate(() => window.colibri)));
      result.bridgeStats = await fetch(`${server.http.replace(d.domain, '127.0.0.1')}/colibri/stats`)
        .then((r) => r.json()).catch(String);
      result.lilt = server.output().slice(-6000);
    }
  } catch (err) {
    result.error = `${err.stack || err}\nlilt:\n${server.output().slice(-6000)}`;
    if (process.env.LILT_CALL_DEBUG) {
      const pages = await browser?.pages().catch(() => []) || [];
      result.traces = await Promise.all(pages.map((p) => p.evaluate(() => window.meet?.trace.slice(-40)).catch(() => null)));
    }
  } finally {
    await browser?.close().catch(() => {});
    for (const c of components) c.kill('SIGTERM');
    if (process.env.LILT_CALL_DEBUG) result.components = components.map((c) => c.output.slice(-3000));
    await server.stop();
  }
  process.stdout.write(`\nCALL-RESULT ${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stdout.write(`\nCALL-RESULT ${JSON.stringify({ ok: false, error: String(err.stack || err) })}\n`);
});
