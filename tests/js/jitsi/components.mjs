// lilt's focus and bridges as processes of their own (`lilt focus ...`,
// `lilt bridge ...`), logging in over c2s with their accounts as Jicofo and
// Videobridge do, for the call tests' standalone and cascade modes.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liltBinary } from '../lib/lilt.js';

// The accounts the components log in with, as [user, host, password].
export const componentUsers = (d, password) => [['focus', d.authDomain, password], ['jvb', d.authDomain, password]];

// Starts `lilt focus` (role 'focus') or `lilt bridge` (role 'bridge')
// against `server` with `extra` arguments; the child keeps its output.
export function startComponent(server, d, password, role, extra = []) {
  // Written once: a component started earlier may be reading it.
  const passwordFile = join(server.dir, 'component.password');
  if (!existsSync(passwordFile)) writeFileSync(passwordFile, `${password}\n`);
  const brewery = `jvbbrewery@${d.internalMuc}`;
  const common = ['--xmpp', `127.0.0.1:${server.c2s}`, '--password-file', passwordFile, '--insecure-tls'];
  const args = role === 'bridge'
    ? ['bridge', ...common, '--jid', `jvb@${d.authDomain}`, '--brewery', brewery, '--udp-port', '0', ...extra]
    : ['focus', ...common, '--jid', `focus@${d.authDomain}`, '--domain', d.domain, '--muc', d.muc,
      '--brewery', brewery, ...extra];
  const child = spawn(liltBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.output = '';
  child.stdout.on('data', (c) => { child.output += c; });
  child.stderr.on('data', (c) => { child.output += c; });
  return child;
}
