// Headless Debian Chromium driven by puppeteer-core, with the flags this
// machine's closed network needs (no background connections).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

export function chromiumPath() {
  for (const p of [process.env.CHROMIUM_BIN, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean)) {
    if (existsSync(p)) return p;
  }
  return null;
}

export async function launch() {
  const executablePath = chromiumPath();
  if (!executablePath) return null;
  const userDataDir = mkdtempSync(join(tmpdir(), 'lilt-chromium-'));
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    userDataDir,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const close = browser.close.bind(browser);
  browser.close = async () => { await close(); rmSync(userDataDir, { recursive: true, force: true }); };
  return browser;
}
