// Drives the browser example (clients/tfjs/examples/browser) in Debian's
// headless Chromium through playwright-core: the page runs one round of the
// TF.js device client against fedagg (through the example server's /api
// proxy), and the page itself must report an accepted update. Then the
// server must have published the version that update produced.
//
// Usage: node browser.mjs --page URL --api URL --out DIR [--chromium /usr/bin/chromium]
// Exits 1 with a message on any failure; the browser is always closed.
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { launch } from './chromium.mjs';

const { values: args } = parseArgs({
  options: {
    page: { type: 'string' },
    api: { type: 'string' },
    out: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    'timeout-s': { type: 'string', default: '150' },
  },
});
const TIMEOUT_MS = Number(args['timeout-s']) * 1000;

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function latestVersion() {
  const r = await fetch(`${args.api}/api/federated/model/latest`, { signal: AbortSignal.timeout(10000) });
  return (await r.json()).version;
}

async function main() {
  check(args.page && args.api && args.out, 'usage: node browser.mjs --page URL --api URL --out DIR');
  const t0 = performance.now();
  const secs = () => ((performance.now() - t0) / 1000).toFixed(1) + ' s';
  const before = await latestVersion();
  const browser = await launch(args.chromium);
  const { context } = browser;
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const errors = [];
    page.on('console', (m) => console.log(`  page: ${m.text()}`));
    page.on('pageerror', (e) => errors.push(e.message));
    // A check-in at a round's deadline is answered 503 while the round
    // closes; the client drops that answer's body and retries (docs/api.md),
    // which Chromium reports as an aborted request: not a failure.
    const unavailable = new Set();
    page.on('response', (r) => r.status() === 503 && unavailable.add(r.request()));
    page.on('requestfailed', (r) => {
      if (!unavailable.has(r)) errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
    });
    await page.goto(args.page, { timeout: 30000 });
    console.log(`browser: ${context.browser()?.version() ?? 'chromium'} loaded ${args.page} (${secs()})`);
    await page.waitForFunction(() => window.fedaggResult !== undefined, null, { timeout: TIMEOUT_MS, polling: 200 });
    const result = await page.evaluate(() => window.fedaggResult);
    const shown = await page.textContent('#status');
    await page.screenshot({ path: join(args.out, 'page.png'), fullPage: true });
    check(errors.length === 0, `the page reported errors: ${errors.join('; ')}`);
    check(result.ok === true, `the page failed: ${JSON.stringify(result)}`);
    check(result.selected === true, 'the page was not selected for the round');
    check(typeof result.receipt === 'string' && result.receipt.length > 0 && result.duplicate === false,
      `no fresh receipt: ${JSON.stringify(result)}`);
    check(result.modelVersion === before, `the page trained on version ${result.modelVersion}, the server was at ${before}`);
    check(shown === 'update accepted', `the page shows "${shown}"`);
    const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('fedagg.userVec') ?? 'null'));
    check(Array.isArray(stored) && stored.length === 64, 'the trained user vector was not kept in the browser');
    console.log(`browser: update accepted in round ${result.roundId}, receipt ${result.receipt}, backend ${result.backend} (${secs()})`);
  } finally {
    await browser.close();
  }
  // With a minimum cohort of 1 the round releases the update at its deadline
  // (5 s at most from now): a new version appears.
  const until = performance.now() + 60000;
  let v = await latestVersion();
  while (v <= before && performance.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    v = await latestVersion();
  }
  check(v === before + 1, `the server did not publish version ${before + 1} (latest ${v})`);
  console.log(`browser: server published version ${v} from the browser's update (${secs()})`);
}

main().catch((e) => {
  console.error(`browser: ${e.stack ?? e}`);
  process.exit(1);
});
