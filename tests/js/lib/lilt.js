// Starts the lilt binary on loopback with a throw-away prosody.cfg.lua, for
// whole-server tests with real JavaScript clients. Every port is 0 (the
// kernel picks); the ports lilt took are read from its
// "lilt: listening KIND on ADDR" lines. With LILT_TEST_SERVER=prosody the
// same tests run against Debian's Prosody 0.12 instead (lib/prosody.js), to
// check the tests themselves.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const workspace = resolve(here, '..', '..', '..');

export function liltBinary() {
  const bin = process.env.LILT_BIN || join(process.env.CARGO_TARGET_DIR || join(workspace, 'target'), 'debug', 'lilt');
  if (!existsSync(bin)) throw new Error(`no lilt binary at ${bin} (cargo build -p lilt)`);
  return bin;
}

export const lua = (v) => (typeof v === 'string' ? JSON.stringify(v) : String(v));

// The modules every test server loads, and the options both servers get.
export const baseModules = ['saslauth', 'roster', 'disco', 'ping', 'bosh', 'websocket', 'http_files'];
export function baseOptions(dir) {
  return {
    interfaces: '{ "127.0.0.1" }',
    http_interfaces: '{ "127.0.0.1" }',
    https_ports: '{ }',
    c2s_require_encryption: 'false',
    allow_unencrypted_plain_auth: 'true',
    consider_bosh_secure: 'true',
    consider_websocket_secure: 'true',
    authentication: '"internal_hashed"',
    http_files_dir: lua(join(dir, 'www')),
    http_default_host: '"localhost"',
  };
}

// The VirtualHost and Component sections.
export function hostSections(options) {
  let cfg = '';
  const hosts = { localhost: {}, ...(options.hosts || {}) };
  for (const [name, opts] of Object.entries(hosts)) {
    cfg += `\nVirtualHost ${lua(name)}\n`;
    for (const [k, v] of Object.entries(opts)) cfg += `    ${k} = ${v}\n`;
  }
  for (const [name, module] of Object.entries(options.components || {})) {
    cfg += `\nComponent ${lua(name)} ${lua(module)}\n`;
  }
  return cfg;
}

export function writeFiles(dir, files) {
  for (const [name, content] of Object.entries(files || {})) {
    mkdirSync(dirname(join(dir, 'www', name)), { recursive: true });
    writeFileSync(join(dir, 'www', name), content);
  }
}

// options: { global: {name: luaSource}, modules: [...], hosts: {name: {option: luaSource}},
//            components: {name: module}, users: [[user, host, password]], files: {relpath: content} }
export async function startLilt(options = {}) {
  if (process.env.LILT_TEST_SERVER === 'prosody') {
    const { startProsody } = await import('./prosody.js');
    return startProsody(options);
  }
  const dir = mkdtempSync(join(tmpdir(), 'lilt-js-'));
  mkdirSync(join(dir, 'data'));
  mkdirSync(join(dir, 'www'));
  writeFiles(dir, options.files);
  const modules = [...baseModules, ...(options.modules || [])];
  const global = {
    data_path: lua(join(dir, 'data')),
    c2s_ports: '{ 0 }',
    http_ports: '{ 0 }',
    ...baseOptions(dir),
    modules_enabled: `{ ${modules.map(lua).join('; ')} }`,
    ...(options.global || {}),
  };
  const cfg = Object.entries(global).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n' + hostSections(options);
  const config = join(dir, 'prosody.cfg.lua');
  writeFileSync(config, cfg);
  const bin = liltBinary();
  for (const [user, host, password] of options.users || []) {
    execFileSync(bin, ['--config', config, 'register', user, host, password], { stdio: 'pipe' });
  }
  const child = spawn(bin, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const listening = {};
  child.stderr.on('data', (d) => { output += d; });
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`lilt did not start:\n${output}`)), 20000);
    child.on('exit', (code) => fail(new Error(`lilt exited with ${code}:\n${output}`)));
    child.stdout.on('data', (d) => {
      output += d;
      for (const m of output.matchAll(/lilt: listening (\S+) on (\S+):(\d+)/g)) {
        if (!listening[m[1]]) listening[m[1]] = { host: m[2], port: Number(m[3]) };
      }
      if (/lilt: serving/.test(output) && listening.http) {
        clearTimeout(timer);
        ok();
      }
    });
  });
  const http = `http://127.0.0.1:${listening.http.port}`;
  return {
    pid: child.pid,
    dir,
    config,
    listening,
    http,
    bosh: `${http}/http-bind`,
    ws: `ws://127.0.0.1:${listening.http.port}/xmpp-websocket`,
    output: () => output,
    server: 'lilt',
    // Does lilt have this module (no "not available" warning)?
    hasModule: (name) => !output.includes(`module "${name}" is not available`),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((ok) => child.on('exit', ok));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((ok) => setTimeout(ok, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      if (!process.env.LILT_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// Resolves when predicate() is true, polling; rejects after ms.
export async function until(predicate, ms = 5000, what = 'condition') {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await predicate()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}
