// Running a browser-call script inside the network namespace of ./netns.sh
// (Chromium gathers no ICE candidates on loopback), for the call, layer and
// recording tests: whether it can be done here, and the script's result.
import { execFileSync, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromiumPath } from '../lib/browser.js';
import { fixtureAvailable, deployments } from './fixture.mjs';

const here = dirname(fileURLToPath(import.meta.url));

// Why a browser call on the `kind` fixture cannot run here, or null.
export function callProblem(kind) {
  if (!fixtureAvailable(kind)) return `../shared not found (needs ../shared/fixtures/${deployments[kind].fixture})`;
  if (!chromiumPath()) return 'Debian chromium is not installed (scripts/test.sh js installs it)';
  if (process.getuid?.() !== 0) return 'not root: cannot create a network namespace';
  try {
    execFileSync(join(here, 'netns.sh'), ['true'], { stdio: 'pipe' });
  } catch (err) {
    return `cannot create a network namespace with a veth pair: ${String(err.stderr || err).trim()}`;
  }
  return null;
}

// `node SCRIPT ARGS...` inside the namespace; resolves with the JSON on its
// stdout line starting with `MARKER `, rejects with its output without one.
// `env` is added to the script's environment (e.g. LILT_NETNS_ADDRESSES).
export function runInNamespace(script, args, marker = 'CALL-RESULT', timeoutMs = 180000, env = {}) {
  return new Promise((ok, fail) => {
    const child = spawn(join(here, 'netns.sh'), [process.execPath, join(here, script), ...args.map(String)],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { err += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith(`${marker} `));
      if (!line) return fail(new Error(`${script} exited ${code} without a result:\n${out.slice(-3000)}\n${err.slice(-3000)}`));
      ok(JSON.parse(line.slice(marker.length + 1)));
    });
  });
}
