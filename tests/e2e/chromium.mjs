// Debian's headless Chromium for the browser tests, through playwright-core:
// a fresh profile per run (launchPersistentContext passes it as
// --user-data-dir), no network chatter, no GPU. The caller closes the
// context and removes the profile (close()).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

/** {context, close}: a browser context at executablePath with extra launch options. */
export async function launch(executablePath, options = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'fa-chromium-'));
  let context = null;
  const close = async () => {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: FLAGS,
      timeout: 60000,
      ...options,
    });
  } catch (e) {
    await close();
    throw e;
  }
  return { context, close };
}
