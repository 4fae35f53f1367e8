// Simulcast layers and last-N in browser calls through lilt's focus and
// bridge (issue 14): lib-jitsi-meet 2.6726.2 pages in headless Chromium with
// simulcast on, in a network namespace of their own (./netns.sh); skipped,
// saying why, without root, Chromium or ../shared.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { callProblem, runInNamespace } from './namespace.mjs';

const problem = callProblem('debian');

describe('simulcast layers chosen by the bridge per receiver', { skip: problem ? `skipping: ${problem}` : false }, () => {
  test('a page asking for 180p decodes 320x180, one asking for 720p at least 640x360; the switch up is quick and smooth', { timeout: 200000 }, async () => {
    const result = await runInNamespace('layers-inner.mjs', ['constraints']);
    assert.ok(result.ok, result.error);
    const detail = JSON.stringify(result);
    assert.equal(result.before.low?.frameHeight, 180, `180p receiver: ${detail}`);
    assert.equal(result.before.low?.frameWidth, 320, `180p receiver: ${detail}`);
    assert.ok(result.before.high?.frameHeight >= 360, `720p receiver: ${detail}`);
    assert.ok(result.before.high?.frameWidth >= 640, `720p receiver: ${detail}`);
    assert.ok(result.switch.switchedAfter !== null && result.switch.switchedAfter <= 5000, `switch within 5 s: ${detail}`);
    assert.ok(result.switch.longestStall <= 1000, `decoding never stalls for more than 1 s: ${detail}`);
  });

  test('six pages with last-N 2: each page decodes exactly two remote videos', { timeout: 200000 }, async () => {
    const result = await runInNamespace('layers-inner.mjs', ['lastn']);
    assert.ok(result.ok, result.error);
    for (const page of result.remoteVideos) {
      assert.equal(page.decoding.length, 2, `page ${page.nick} decodes ${JSON.stringify(page.decoding)}`);
    }
  });
});
