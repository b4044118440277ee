// Compares the logits of one model version computed three ways: TF.js
// (tfjs.json), the C forward pass (c.json) and the PyTorch serving tier
// (py.json), pairwise within a tolerance: |x - y| <= TOL * max(1, |x|, |y|),
// absolute for logits up to 1 and relative above (an ALS score of a few
// hundred differs by a float32 ulp of 3e-5 when the sums run in another order).
// Usage: node compare.mjs DIR [TOL]. Exits 1 on a mismatch.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const tol = Number(process.argv[3] ?? 1e-5);
const load = (name) => JSON.parse(readFileSync(join(dir, name), 'utf8'));
const sets = { tfjs: load('tfjs.json'), c: load('c.json'), torch: load('py.json') };
const failures = [];

const versions = new Set(Object.values(sets).map((s) => s.version));
if (versions.size !== 1) failures.push(`versions differ: ${JSON.stringify(Object.fromEntries(Object.entries(sets).map(([k, s]) => [k, s.version])))}`);

const names = Object.keys(sets);
for (let a = 0; a < names.length; a++) {
  for (let b = a + 1; b < names.length; b++) {
    const x = sets[names[a]].scores;
    const y = sets[names[b]].scores;
    let worst = 0;
    let worstScaled = 0;
    let count = 0;
    if (x.length !== y.length || x.length === 0) {
      failures.push(`${names[a]} has ${x.length} users, ${names[b]} ${y.length}`);
      continue;
    }
    for (let u = 0; u < x.length; u++) {
      if (x[u].length !== y[u].length) failures.push(`user ${u}: ${x[u].length} vs ${y[u].length} scores`);
      for (let i = 0; i < Math.min(x[u].length, y[u].length); i++) {
        const d = Math.abs(x[u][i] - y[u][i]);
        const scaled = d / Math.max(1, Math.abs(x[u][i]), Math.abs(y[u][i]));
        worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
        worstScaled = Number.isNaN(scaled) ? Infinity : Math.max(worstScaled, scaled);
        count++;
      }
    }
    const ok = worstScaled <= tol;
    console.log(`${`${names[a]} vs ${names[b]}`.padEnd(14)} ${count} logits, max abs diff ${worst.toExponential(2)}, scaled ${worstScaled.toExponential(2)} ${ok ? 'ok' : 'MISMATCH'}`);
    if (!ok) failures.push(`${names[a]} vs ${names[b]}: max diff ${worstScaled} (abs ${worst}) > ${tol} x max(1, |score|)`);
  }
}
if (failures.length > 0) {
  console.error('compare: ' + failures.join('\ncompare: '));
  process.exit(1);
}
console.log(`scores of version ${[...versions][0]} agree within ${tol}`);
