// The same test servers as lib/lilt.js, but Debian's Prosody 0.12 through
// ../shared/tools/reference-prosody (LILT_TEST_SERVER=prosody): proves the
// JavaScript tests describe Prosody's behaviour. Prosody cannot be given
// port 0, so free ports are picked first.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baseModules, baseOptions, hostSections, lua, sleep, workspace, writeFiles } from './lilt.js';

const tool = join(workspace, '..', 'shared', 'tools', 'reference-prosody');

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

export async function startProsody(options = {}) {
  if (!existsSync(tool)) throw new Error(`LILT_TEST_SERVER=prosody needs ${tool}`);
  const dir = mkdtempSync(join(tmpdir(), 'lilt-js-prosody-'));
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'data'));
  mkdirSync(join(dir, 'www'));
  writeFiles(dir, options.files);
  const [c2s, http] = [await freePort(), await freePort()];
  const global = {
    data_path: lua(join(dir, 'data')),
    pidfile: lua(join(dir, 'prosody.pid')),
    log: '{ { levels = { min = "info" }, to = "console" } }',
    c2s_ports: `{ ${c2s} }`,
    s2s_ports: '{ }',
    http_ports: `{ ${http} }`,
    ...baseOptions(dir),
    modules_enabled: `{ ${[...baseModules, ...(options.modules || [])].map(lua).join('; ')} }`,
    ...(options.global || {}),
  };
  const cfg = Object.entries(global).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n' + hostSections(options);
  writeFileSync(join(dir, 'prosody.cfg.lua'), cfg);
  for (const [user, host, password] of options.users || []) {
    execFileSync('bash', [tool, 'ctl', dir, 'register', user, host, password], { stdio: 'pipe' });
  }
  const pid = execFileSync('bash', [tool, 'start', dir]).toString().trim();
  const base = `http://127.0.0.1:${http}`;
  const end = Date.now() + 20000;
  for (;;) {
    try {
      if ((await fetch(`${base}/http-bind`)).ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > end) throw new Error(`prosody did not start:\n${readFileSync(join(dir, 'prosody.log'), 'utf8')}`);
    await sleep(100);
  }
  return {
    server: 'prosody',
    dir,
    http: base,
    bosh: `${base}/http-bind`,
    ws: `ws://127.0.0.1:${http}/xmpp-websocket`,
    listening: { c2s: { host: '127.0.0.1', port: c2s }, http: { host: '127.0.0.1', port: http } },
    output: () => readFileSync(join(dir, 'prosody.log'), 'utf8'),
    hasModule: () => true,
    async stop() {
      execFileSync('bash', [tool, 'stop', pid]);
      if (!process.env.LILT_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
    },
  };
}
