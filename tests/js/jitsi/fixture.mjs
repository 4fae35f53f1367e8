// The Jitsi Meet deployments of ../shared/fixtures served by the lilt binary
// for the end-to-end test: a fixture is copied unchanged into a fresh
// directory next to a prosody.cfg.lua that Includes it and then
// overrides.cfg.lua (loopback, ports 0, paths inside the directory, logging
// to the console, each `ssl` host's key and certificate made here with
// openssl), the way tests/python/lilt_harness/jitsi.py lays the docker
// fixture out. Accounts are made with `lilt register`, as prosodyctl would.
import { spawn, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { liltBinary, workspace, lua } from '../lib/lilt.js';

export const sharedFixtures = join(workspace, '..', 'shared', 'fixtures');

// What each fixture names: its domains, where the focus and the bridges live.
export const deployments = {
  debian: {
    fixture: 'jitsi-debian',
    domain: 'meet.example.com',
    muc: 'conference.meet.example.com',
    internalMuc: 'internal.auth.meet.example.com',
    authDomain: 'auth.meet.example.com',
    sslHosts: ['meet.example.com'],
    // The recorder of the Debian packages logs in on recorder.<domain>.
    recorder: ['recorder', 'recorder.meet.example.com'],
    hiddenDomain: 'recorder.meet.example.com',
  },
  docker: {
    fixture: 'jitsi-docker',
    domain: 'meet.jitsi',
    muc: 'muc.meet.jitsi',
    internalMuc: 'internal-muc.meet.jitsi',
    authDomain: 'auth.meet.jitsi',
    anonymousDomain: 'guest.meet.jitsi',
    sslHosts: ['meet.jitsi', 'auth.meet.jitsi'],
    recorder: ['recorder', 'hidden.meet.jitsi'],
    hiddenDomain: 'hidden.meet.jitsi',
    // meet.jitsi itself needs an account: the one who starts conferences.
    member: ['moderator', 'meet.jitsi'],
  },
};

export function fixtureAvailable(kind) {
  return existsSync(join(sharedFixtures, deployments[kind].fixture, 'prosody.cfg.lua'));
}

function makeCertificate(dir, hosts) {
  const key = join(dir, 'test.key');
  const crt = join(dir, 'test.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', crt, '-days', '2', '-subj', `/CN=${hosts[0]}`,
    '-addext', `subjectAltName=${hosts.map((h) => `DNS:${h}`).join(',')}`], { stdio: 'pipe' });
  for (const host of hosts) {
    copyFileSync(key, join(dir, `${host}.key`));
    copyFileSync(crt, join(dir, `${host}.crt`));
  }
}

// Starts lilt on a copy of the fixture; `users` are [user, host, password].
// `extra` is Lua added to the overrides' global section (e.g. the media options).
export async function startJitsi(kind, users, extra = '') {
  const d = deployments[kind];
  const dir = mkdtempSync(join(tmpdir(), `lilt-jitsi-${kind}-`));
  cpSync(join(sharedFixtures, d.fixture), join(dir, d.fixture), { recursive: true });
  for (const sub of ['data', 'certs']) mkdirSync(join(dir, sub));
  makeCertificate(join(dir, 'certs'), [...new Set([d.domain, ...d.sslHosts, d.authDomain])]);
  const settings = {
    data_path: lua(join(dir, 'data')),
    pidfile: lua(join(dir, 'server.pid')),
    certificates: lua(join(dir, 'certs')),
    interfaces: '{ "127.0.0.1" }',
    http_interfaces: '{ "127.0.0.1" }',
    c2s_ports: '{ 0 }',
    c2s_direct_tls_ports: '{ }',
    http_ports: '{ 0 }',
    https_ports: '{ }',
    component_ports: '{ }',
    s2s_ports: '{ }',
    log: '{ { levels = { min = "warn" }, to = "console" } }',
  };
  let overrides = '-- test overrides: Included last, so each of these wins\n';
  overrides += Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
  // Global options: before the first VirtualHost line below.
  overrides += extra;
  for (const host of d.sslHosts) {
    overrides += `VirtualHost ${lua(host)}\n    ssl = { key = ${lua(join(dir, 'certs', `${host}.key`))}; `
      + `certificate = ${lua(join(dir, 'certs', `${host}.crt`))} }\n`;
  }
  writeFileSync(join(dir, 'overrides.cfg.lua'), overrides);
  const config = join(dir, 'prosody.cfg.lua');
  writeFileSync(config, `Include ${lua(`${d.fixture}/prosody.cfg.lua`)}\nInclude "overrides.cfg.lua"\n`);
  const bin = liltBinary();
  for (const [user, host, password] of users) {
    execFileSync(bin, ['--config', config, 'register', user, host, password], { stdio: 'pipe' });
  }
  const child = spawn(bin, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const listening = {};
  child.stderr.on('data', (chunk) => { output += chunk; });
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`lilt did not start:\n${output}`)), 20000);
    child.on('exit', (code) => fail(new Error(`lilt exited with ${code}:\n${output}`)));
    child.stdout.on('data', (chunk) => {
      output += chunk;
      for (const m of output.matchAll(/lilt: listening (\S+) on (\S+):(\d+)/g)) {
        if (!listening[m[1]]) listening[m[1]] = Number(m[3]);
      }
      if (/lilt: serving/.test(output) && listening.http) {
        clearTimeout(timer);
        ok();
      }
    });
  });
  // Addressed by the domain, as behind Jitsi's nginx: the browser and
  // emulated.mjs resolve it to 127.0.0.1.
  const http = `http://${d.domain}:${listening.http}`;
  return {
    ...d,
    kind,
    dir,
    config,
    http,
    c2s: listening.c2s,
    bosh: `${http}/http-bind`,
    ws: `ws://${d.domain}:${listening.http}/xmpp-websocket`,
    output: () => output,
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

// lilt's media half, in-process: the focus and the bridge log in as Jicofo
// and Videobridge would (focus@auth.D, jvb@auth.D) and find each other in
// the fixture's brewery; the bridge offers the namespace's veth address and
// its channel (colibri-ws) is served by lilt's own HTTP server, on a port
// chosen here so that the advertised URL can name it.
export async function freePort() {
  const probe = createServer();
  await new Promise((ok) => probe.listen(0, '127.0.0.1', ok));
  const { port } = probe.address();
  await new Promise((ok) => probe.close(ok));
  return port;
}
export const mediaConfig = (d, httpPort, extra = '') => `
http_ports = { ${httpPort} }
jitsi_focus = { }
jitsi_videobridge = { addresses = { "10.213.0.1" }; udp_port = 0; http = false;
  ws_url_base = "ws://127.0.0.1:${httpPort}/colibri-ws" }
${extra}
`;

