// Drives the privacy audit page (/privacy/, served by fedagg itself) in
// Debian's headless Chromium through playwright-core, against a server that
// has run a few rounds:
//   1. the page loads, verifies the chain and every signature with the
//      browser's WebCrypto, says "Verified", and shows the same number of
//      releases, refusals, abandonments and the same epsilon as the server's
//      budget answer and as the ledger itself; the plot and the table are
//      there; the download holds the whole ledger (saved for the
//      independent verifier, which the calling script runs on it);
//   2. the ledger served with one tampered entry is flagged at that entry:
//      a changed noise multiplier (hash mismatch), the same change with the
//      hash recomputed (bad signature), an entry dropped (missing), two
//      entries swapped (out of order);
//   3. a pinned key that is not the server's fails at the first entry, and
//      the right key pinned (hex) verifies.
//
// Usage: node audit.mjs --server URL --key HEX --out DIR [--chromium PATH]
// Exits 1 with a message on any failure; the browser is always closed.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { launch } from './chromium.mjs';

const { values: args } = parseArgs({
  options: {
    server: { type: 'string' },
    key: { type: 'string' },
    out: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function getJson(path) {
  const r = await fetch(`${args.server}${path}`, { signal: AbortSignal.timeout(20000) });
  check(r.ok, `GET ${path} answered ${r.status}`);
  return r.json();
}

async function ledgerRows() {
  const rows = [];
  let after = 0;
  for (;;) {
    const doc = await getJson(`/api/privacy/ledger?after=${after}&limit=10000`);
    rows.push(...doc.entries);
    if (doc.next === null) return rows;
    after = doc.next;
  }
}

// Opens the page (path relative to the server), waits for its verdict and
// returns what it shows.
async function audit(page, path) {
  await page.goto(`${args.server}${path}`, { timeout: 30000 });
  await page.waitForSelector('body[data-state="done"]', { timeout: 60000 });
  return page.evaluate(() => {
    const v = (id) => document.getElementById(id).dataset.value;
    return {
      verdict: document.body.dataset.verdict,
      text: document.getElementById('verdict').textContent,
      epsilon: v('sum-epsilon'),
      entries: v('sum-entries'),
      releases: v('sum-releases'),
      refusals: v('sum-refusals'),
      abandonments: v('sum-abandonments'),
      rows: document.querySelectorAll('#entries tbody tr:not(.bad)').length,
      releaseRows: document.querySelectorAll('#entries tbody tr.release').length,
      badRow: document.querySelector('#entries tbody tr.bad')?.dataset.seq ?? null,
      plotPaths: document.querySelectorAll('#plot svg path.eps, #plot svg path.budget').length,
      plotDots: document.querySelectorAll('#plot svg circle.release').length,
    };
  });
}

// Serves /api/privacy/ledger through edit(rows) for the pages opened while it is installed.
async function tamper(page, edit) {
  await page.route('**/api/privacy/ledger?*', async (route) => {
    const resp = await route.fetch();
    const doc = await resp.json();
    doc.entries = edit(doc.entries);
    await route.fulfill({ response: resp, json: doc });
  });
}

const sha256 = (s) => createHash('sha256').update(s).digest('hex');

async function main() {
  check(args.server && args.key && args.out, 'usage: node audit.mjs --server URL --key HEX --out DIR');
  const rows = await ledgerRows();
  const budget = await getJson('/api/privacy/budget');
  const key = await getJson('/api/privacy/key');
  check(key.publicKey === args.key, `GET /api/privacy/key serves ${key.publicKey}, the key directory holds ${args.key}`);
  check(key.algorithm === 'ed25519' && /^[0-9a-f]{16}$/.test(key.keyId), `GET /api/privacy/key: ${JSON.stringify(key)}`);
  const releases = rows.filter((r) => r.kind === 'release').length;
  check(releases >= 2 && budget.releases === releases, `the server run should have >= 2 releases (ledger ${releases}, budget ${budget.releases})`);
  const last = JSON.parse(rows[rows.length - 1].text);
  console.log(`ledger: ${rows.length} entries, ${releases} releases, ${budget.refusals} refusals, epsilon ${last.epsilon}`);

  const browser = await launch(args.chromium, { acceptDownloads: true });
  const { context } = browser;
  try {
    let page = context.pages()[0] ?? (await context.newPage());
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));

    // 1. the clean ledger
    const shown = await audit(page, '/privacy/');
    console.log(`clean: ${shown.text}`);
    check(errors.length === 0, `the page reported errors: ${errors.join('; ')}`);
    check(shown.verdict === 'ok', `the page did not verify the clean ledger: ${shown.text}`);
    check(Number(shown.entries) === rows.length, `the page shows ${shown.entries} entries, the ledger has ${rows.length}`);
    check(Number(shown.releases) === releases, `the page shows ${shown.releases} releases, the ledger has ${releases}`);
    check(Number(shown.refusals) === budget.refusals, `the page shows ${shown.refusals} refusals, the server ${budget.refusals}`);
    check(Number(shown.abandonments) === budget.abandonments, `the page shows ${shown.abandonments} abandonments, the server ${budget.abandonments}`);
    check(Number(shown.epsilon) === budget.epsilonSpent && Number(shown.epsilon) === last.epsilon,
      `the page shows epsilon ${shown.epsilon}, the server ${budget.epsilonSpent}, the last entry ${last.epsilon}`);
    check(shown.rows === rows.length && shown.releaseRows === releases, `the table has ${shown.rows} rows (${shown.releaseRows} releases)`);
    check(shown.plotPaths === 2 && shown.plotDots === releases, `the plot has ${shown.plotPaths} lines and ${shown.plotDots} release dots`);
    await page.screenshot({ path: join(args.out, 'audit.png'), fullPage: true });
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    await download.saveAs(join(args.out, 'downloaded-ledger.json'));
    console.log(`download: ${download.suggestedFilename()}`);

    // The bare folder name redirects to the page.
    const redirect = await fetch(`${args.server}/privacy`, { redirect: 'manual' });
    check(redirect.status === 308 && redirect.headers.get('location') === '/privacy/', `GET /privacy answered ${redirect.status}`);
    const html = await fetch(`${args.server}/privacy/`);
    check(/default-src 'none'/.test(html.headers.get('content-security-policy') ?? ''), 'the page has no content security policy');

    // 2. one tampered entry at a time: the page must name it
    const k = rows.findIndex((r) => r.kind === 'release' && r.seq > 1);
    check(k > 0, 'no release after the first entry to tamper with');
    const seq = rows[k].seq;
    const bump = (r) => {
      const text = r.text.replace(/"noise_multiplier":([0-9.e+-]+)/, (_, x) => `"noise_multiplier":${Number(x) * 0.5}`);
      check(text !== r.text, 'no noise multiplier in the entry text');
      return { ...r, text, entry: JSON.parse(text) };
    };
    const cases = [
      ['changed sigma', (rs) => rs.map((r, i) => (i === k ? bump(r) : r)), seq, /hash mismatch/],
      ['changed sigma, hash recomputed', (rs) => rs.map((r, i) => (i === k ? ((t) => ({ ...t, hash: sha256(t.text) }))(bump(r)) : r)), seq, /bad signature/],
      ['dropped entry', (rs) => rs.filter((_, i) => i !== k), seq, /missing/],
      ['swapped entries', (rs) => {
        const j = k + 1 < rs.length ? k + 1 : k - 1;
        return rs.map((r, i) => (i === k ? rs[j] : i === j ? rs[k] : r));
      }, null, /out of order|missing/],
    ];
    for (const [name, edit, atSeq, reason] of cases) {
      await page.close();
      page = await context.newPage();
      await tamper(page, edit);
      const t = await audit(page, '/privacy/');
      console.log(`${name}: ${t.text}`);
      check(t.verdict === 'fail', `${name}: the page did not flag the ledger: ${t.text}`);
      check(reason.test(t.text), `${name}: the page's reason is not ${reason}: ${t.text}`);
      if (atSeq !== null) check(t.badRow === String(atSeq) && t.text.includes(`entry ${atSeq}:`), `${name}: flagged at ${t.badRow}, tampered ${atSeq}`);
      check(Number(t.entries) < rows.length, `${name}: the page counts ${t.entries} verified entries`);
    }

    // 3. pinned keys
    await page.close();
    page = await context.newPage();
    const other = 'ab'.repeat(32) === args.key ? 'cd'.repeat(32) : 'ab'.repeat(32);
    const wrong = await audit(page, `/privacy/?key=${other}`);
    console.log(`other key pinned: ${wrong.text}`);
    check(wrong.verdict === 'fail' || wrong.verdict === 'error', `a ledger checked against another key passed: ${wrong.text}`);
    check(wrong.verdict === 'error' || /entry 1: bad signature/.test(wrong.text), `another key: ${wrong.text}`);
    const right = await audit(page, `/privacy/?key=${args.key}`);
    check(right.verdict === 'ok' && /pinned/.test(await page.textContent('#used-key-source')), `the right key pinned: ${right.text}`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(`audit page: ${e.message}`);
  process.exit(1);
});
