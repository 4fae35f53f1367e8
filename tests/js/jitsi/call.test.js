// Browser calls with media through lilt alone: lilt's focus and bridge
// (in-process, issues 12 and 13), lib-jitsi-meet 2.6726.2 in headless
// Chromium with fake camera and microphone, on the Debian and docker Jitsi
// fixtures. Each call runs in a network namespace of its own (./netns.sh:
// Chromium ignores loopback for WebRTC), so it needs root and unshare; it
// is skipped, saying why, without them.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { callProblem, runInNamespace } from './namespace.mjs';

const skipFor = (kind) => { const p = callProblem(kind); return p ? `skipping: ${p}` : false; };
const call = (kind, pages, mode = '') => runInNamespace('call-inner.mjs', [kind, pages, mode]);

// Every page decoded more of every other page's video, and received more of
// its audio, over the three seconds between the two samples.
function assertMediaFlows(result) {
  assert.ok(result.ok, result.error);
  const nicks = result.pages.map((p) => p.nick);
  for (const page of result.pages) {
    for (const other of nicks.filter((n) => n !== page.nick)) {
      const [b, a] = [page.before[other], page.after[other]];
      const detail = `page ${page.nick} from ${other}: before ${JSON.stringify(b)} after ${JSON.stringify(a)}`;
      assert.ok(a?.video && a.video.framesDecoded > (b?.video?.framesDecoded ?? 0), `video frames decoded rise, ${detail}`);
      assert.ok(a?.audio && a.audio.packetsReceived > (b?.audio?.packetsReceived ?? 0), `audio packets rise, ${detail}`);
    }
  }
}

// In-process, the focus's /about/health and /stats are on lilt's HTTP server.
function assertFocusHttp(result) {
  assert.equal(result.focusHttp?.health, 200, JSON.stringify(result.focusHttp));
  assert.equal(result.focusHttp.stats.conferences, 1, JSON.stringify(result.focusHttp));
  assert.equal(result.focusHttp.stats.participants, result.pages.length, JSON.stringify(result.focusHttp));
}

function assertDominantSpeaker(result) {
  const { expected, seen } = result.speaker;
  result.pages.forEach((page, i) => {
    if (page.nick !== expected) assert.equal(seen[i], expected, `page ${page.nick} sees the unmuted page as dominant speaker`);
  });
}

// The pages that muted themselves are seen muted; a moderator's mute of
// another page stops its audio at the bridge; the page that left is gone.
function assertMuteAndLeave(result) {
  const { expected } = result.speaker;
  for (const [nick, muted] of Object.entries(result.mutedSeen)) {
    assert.equal(muted, nick !== expected, `audio of ${nick} seen muted: ${muted}`);
  }
  const m = result.moderatorMute;
  assert.ok(m.moderator, 'a page is a moderator');
  assert.ok(m.flowing > m.beforeMute, `the target's audio flowed before the mute: ${JSON.stringify(m)}`);
  assert.equal(m.after, m.settled, `no audio of the target after the moderator's mute: ${JSON.stringify(m)}`);
  assert.ok(result.left.tracksElsewhere.every((n) => n === 0), `tracks of ${result.left.nick} dropped: ${result.left.tracksElsewhere}`);
  assert.deepEqual(result.consoleErrors, [], 'no errors in the pages\' consoles');
  assert.deepEqual(result.unansweredDisco, [], 'every disco query lib-jitsi-meet made was answered');
}

for (const kind of ['debian', 'docker']) {
  describe(`a call through lilt's focus and bridge, ${kind} fixture`, { skip: skipFor(kind) }, () => {
    test('two pages see and hear each other; the dominant speaker follows the unmuted page; mute, moderator mute, leave', { timeout: 200000 }, async () => {
      const result = await call(kind, 2);
      assertMediaFlows(result);
      assertFocusHttp(result);
      assertDominantSpeaker(result);
      assertMuteAndLeave(result);
    });
    if (kind === 'debian') {
      test('two pages with the focus and the bridge as processes of their own (lilt focus, lilt bridge over c2s)', { timeout: 200000 }, async () => {
        const result = await call(kind, 2, 'standalone');
        assertMediaFlows(result);
        assertDominantSpeaker(result);
        assertMuteAndLeave(result);
      });
      for (const pages of [3, 6]) {
        test(`${pages} pages with simulcast on`, { timeout: 200000 }, async () => {
          const result = await call(kind, pages, 'simulcast');
          assertMediaFlows(result);
          assertDominantSpeaker(result);
          assertMuteAndLeave(result);
        });
      }
    }
  });
}
