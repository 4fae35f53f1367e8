// File recordings through lilt's own recorder (issue 15): lilt's focus,
// bridge and recorder in-process, two pages of @lyno/lib-jitsi-meet 2.6726.2
// in a call, the moderator page starts and stops a file recording through
// the library; the pages see it pending, on, then off; the WebM is read by
// ffprobe/ffmpeg (Debian's ffmpeg). Then three such calls at once, each
// recorded by the same lilt. Runs in a network namespace of its own
// (./netns.sh, as call.test.js); skipped, saying why, without root,
// Chromium, ffmpeg or ../shared.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromiumPath } from '../lib/browser.js';
import { fixtureAvailable, deployments } from './fixture.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const SECONDS = 20;

function problem(kind) {
  if (!fixtureAvailable(kind)) return `../shared not found (needs ../shared/fixtures/${deployments[kind].fixture})`;
  if (!chromiumPath()) return 'Debian chromium is not installed (scripts/test.sh js installs it)';
  try {
    execFileSync('ffprobe', ['-version'], { stdio: 'pipe' });
  } catch {
    return 'ffprobe is not installed (scripts/test.sh installs ffmpeg)';
  }
  if (process.getuid?.() !== 0) return 'not root: cannot create a network namespace';
  try {
    execFileSync(join(here, 'netns.sh'), ['true'], { stdio: 'pipe' });
  } catch (err) {
    return `cannot create a network namespace: ${String(err.stderr || err).trim()}`;
  }
  return null;
}

function record(kind, conferences = 1) {
  return new Promise((ok, fail) => {
    const child = spawn(join(here, 'netns.sh'),
      [process.execPath, join(here, 'record-inner.mjs'), kind, String(SECONDS), String(conferences)],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { err += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 150000 + 60000 * conferences);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('RECORD-RESULT '));
      if (!line) return fail(new Error(`record-inner exited ${code} without a result:\n${out.slice(-3000)}\n${err.slice(-3000)}`));
      ok(JSON.parse(line.slice('RECORD-RESULT '.length)));
    });
  });
}

// One recording's WebM: a video and an audio track, SECONDS ± 1 long (up
// to `lead` s more when the pages saw it on that late after asking), no
// decoding error over the whole file, audible mixed audio.
function checkWebm(file, lead = 0) {
  const probe = execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration:stream=codec_type',
    '-of', 'json', file]).toString();
  const info = JSON.parse(probe);
  const kinds = info.streams.map((s) => s.codec_type).sort();
  assert.deepEqual(kinds, ['audio', 'video'], probe);
  const duration = Number(info.format.duration);
  assert.ok(duration >= SECONDS - 1 && duration <= SECONDS + lead + 1,
    `${file}: duration ${duration} s, expected ${SECONDS} (+ ${lead}) ± 1`);
  // ffmpeg reports on stderr. Its null output rounds frame times to the
  // frame rate it guessed (~20 fps here), so two camera frames 49 ms
  // apart can land on one tick: "non monotonically increasing dts to
  // muxer" is that timing note, not a decoding error (the container's
  // times do increase), and is left out with ffmpeg's "Last message
  // repeated N times" after it; any other line fails.
  const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' });
  assert.equal(decode.status, 0, decode.stderr);
  const errors = decode.stderr.split('\n')
    .filter((l) => l && !l.includes('non monotonically increasing dts to muxer')
      && !/^\s*Last message repeated \d+ times$/.test(l));
  assert.deepEqual(errors, [], 'no decoding errors');
  const loudness = spawnSync('ffmpeg', ['-i', file, '-af', 'volumedetect', '-vn', '-f', 'null', '-'], { encoding: 'utf8' });
  const mean = Number((loudness.stderr.match(/mean_volume: (-?[\d.]+) dB/) || [])[1]);
  assert.ok(mean > -60, `the mixed audio is above silence: mean ${mean} dB`);
}

const skip = (kind) => { const p = problem(kind); return p ? `skipping: ${p}` : false; };

describe('a file recording through lilt\'s recorder', { skip: skip('debian') }, () => {
  test(`two pages, ${SECONDS} s with one camera off half of it: the pages see on and off; the WebM plays`, { timeout: 200000 }, async () => {
    const result = await record('debian');
    try {
      assert.ok(result.ok, result.error);
      assert.equal(result.started, 'ok');
      for (const states of result.states) {
        assert.ok(states.indexOf('on') >= 0 && states.lastIndexOf('off') > states.indexOf('on'), `on then off: ${states}`);
      }
      const webm = result.files.filter((f) => f.endsWith('.webm'));
      assert.equal(webm.length, 1, `one WebM: ${result.files}`);
      assert.ok(result.files.some((f) => f.endsWith('metadata.json')), `metadata.json: ${result.files}`);
      checkWebm(webm[0]);
    } finally {
      if (result.dir) rmSync(result.dir, { recursive: true, force: true });
    }
  });

  test(`three conferences of two pages recorded at once by one lilt, ${SECONDS} s each: every WebM plays`, { timeout: 400000 }, async () => {
    const result = await record('debian', 3);
    try {
      assert.ok(result.ok, result.error);
      assert.equal(result.started, 'ok', `refused first: ${result.refused}`);
      assert.equal(result.states.length, 6);
      for (const states of result.states) {
        assert.ok(states.indexOf('on') >= 0 && states.lastIndexOf('off') > states.indexOf('on'), `on then off: ${states}`);
      }
      assert.equal(new Set(result.sessionIds).size, 3, `three sessions: ${result.sessionIds}`);
      const webm = result.files.filter((f) => f.endsWith('.webm'));
      assert.equal(webm.length, 3, `three WebMs: ${result.files}`);
      assert.equal(result.files.filter((f) => f.endsWith('metadata.json')).length, 3, `metadata.json: ${result.files}`);
      for (let r = 0; r < 3; r += 1) {
        assert.ok(webm.some((f) => f.includes(`record_debian_${r}_`)), `room ${r}'s file: ${webm}`);
      }
      for (let r = 0; r < 3; r += 1) {
        const file = webm.find((f) => f.includes(`record_debian_${r}_`));
        checkWebm(file, result.startToOn[r]);
      }
    } finally {
      if (result.dir) rmSync(result.dir, { recursive: true, force: true });
    }
  });
});
