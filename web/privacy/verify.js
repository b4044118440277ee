// Checks a fedagg privacy ledger with the browser's own cryptography
// (WebCrypto SHA-256 and Ed25519): each entry's text hashes to its hash, the
// hash is signed by the pinned ledger key, entries are numbered 1..N without
// gaps, each links to the previous one's hash, the columns the API repeats
// agree with the signed text, and the bookkeeping rules that need no
// accountant hold (model versions 1, 2, 3, ... at the releases; round ids
// increasing; the budget and the accountant change only at budget entries;
// no release above its budget). The epsilon values are the server's signed
// statements: recomputing them from the recorded mechanisms is the
// independent verifier's job (clients/python/fedagg_verify.py).
//
// No DOM here: the page (audit.js) and tests in Node import this module.

export const ZERO_HASH = "0".repeat(64);
const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;
const KINDS = new Set(["release", "refusal", "abandonment", "budget"]);
const FORMATS = ["fedagg-ledger-v1", "fedagg-ledger-v2", "fedagg-ledger-v3"];
const REL_TOL = 1e-9;
const HEAD_FORMAT = "fedagg-ledger-head-v1";

export class LedgerError extends Error {
  constructor(seq, reason) {
    super(`entry ${seq}: ${reason}`);
    this.seq = seq;
    this.reason = reason;
  }
}

export function hexToBytes(hex) {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new Error("not hex");
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

// A 32-byte Ed25519 public key from 64 hex digits or base64 of 32 bytes; null otherwise.
export function parsePublicKey(text) {
  const s = String(text || "").trim();
  if (/^[0-9a-fA-F]{64}$/.test(s)) return hexToBytes(s.toLowerCase());
  try {
    const raw = Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
    if (raw.length === 32) return raw;
  } catch (_) {
    // not base64
  }
  return null;
}

export async function sha256Hex(bytes) {
  return bytesToHex(await crypto.subtle.digest("SHA-256", bytes));
}

export async function keyId(pkBytes) {
  return (await sha256Hex(pkBytes)).slice(0, 16);
}

// An Ed25519 verifier for a 32-byte public key; throws when the browser's
// WebCrypto has no Ed25519 (the verdict is then "could not verify").
export async function ed25519Verifier(pkBytes) {
  let key;
  try {
    key = await crypto.subtle.importKey("raw", pkBytes, { name: "Ed25519" }, false, ["verify"]);
  } catch (exc) {
    throw new Error(`this browser's WebCrypto cannot verify Ed25519 signatures (${exc.message})`);
  }
  return (message, signature) => crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}

function close(a, b, tol = REL_TOL) {
  return Math.abs(a - b) <= tol * Math.max(Math.abs(a), Math.abs(b));
}

function sameJson(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && sameJson(a[k], b[k]));
}

const utf8 = new TextEncoder();

// Verifies rows (the API's ledger entries, in order) against the Ed25519
// public key pkBytes. Returns a report; report.ok is false and report.error
// names the first entry that does not hold (later entries are not checked:
// nothing after a broken link can be trusted). onProgress(i, n) is called
// now and then.
export async function verifyLedger(rows, pkBytes, onProgress = null) {
  const verify = await ed25519Verifier(pkBytes);
  const report = {
    ok: true,
    error: null,
    entries: 0,
    releases: 0,
    refusals: 0,
    abandonments: 0,
    budgetEntries: 0,
    seededReleases: 0,
    epsilon: 0,
    epsilonMax: null,
    delta: null,
    accountant: null,
    head: ZERO_HASH,
    parsed: [], // the signed text of each verified entry, parsed
    hashes: [], // the hash of each verified entry
  };
  let prev = ZERO_HASH;
  let lastFormat = 0;
  let lastRound = 0;
  let budget = null; // [epsilon_max, delta, accountant] in force
  try {
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      const want = i + 1;
      const seq = row && row.seq;
      if (!Number.isInteger(seq)) throw new LedgerError(want, "has no integer seq");
      if (seq > want) throw new LedgerError(want, `missing (the next entry served is ${seq})`);
      if (seq < want) throw new LedgerError(seq, `out of order or duplicated (expected entry ${want})`);
      const fail = (reason) => {
        throw new LedgerError(seq, reason);
      };

      // --- the text, its hash and its signature
      if (typeof row.text !== "string") fail("has no signed text");
      if (typeof row.hash !== "string" || !HEX64.test(row.hash)) fail("hash is not 64 lower-case hex digits");
      if (typeof row.signature !== "string" || !HEX128.test(row.signature)) {
        fail("signature is not 128 lower-case hex digits");
      }
      const text = utf8.encode(row.text);
      if ((await sha256Hex(text)) !== row.hash) fail("hash mismatch");
      if (!(await verify(hexToBytes(row.hash), hexToBytes(row.signature)))) fail("bad signature");
      let e;
      try {
        e = JSON.parse(row.text);
      } catch (exc) {
        fail(`signed text is not JSON (${exc.message})`);
      }
      if (e === null || typeof e !== "object" || !FORMATS.includes(e.format)) fail("unknown entry format");

      // --- the columns the API repeats must agree with the signed text
      if (e.seq !== seq) fail(`seq column disagrees with the entry (entry says ${e.seq})`);
      const cols = [
        ["kind", row.kind, e.kind],
        ["round_id", row.roundId, e.round_id],
        ["model_version", row.modelVersion, e.model_version],
        ["prev_hash", row.prevHash, e.prev_hash],
      ];
      for (const [name, col, val] of cols) {
        if (col !== undefined && col !== val) fail(`${name} column disagrees with the entry`);
      }
      if (row.cumulativeEpsilon !== undefined && !close(row.cumulativeEpsilon, e.epsilon)) {
        fail(`cumulative epsilon column ${row.cumulativeEpsilon} disagrees with the entry (${e.epsilon})`);
      }
      if (row.entry !== undefined && !sameJson(row.entry, e)) fail("the entry object disagrees with its signed text");

      // --- the chain
      if (e.prev_hash !== prev) {
        fail(seq === 1 ? "prev_hash of the first entry is not zero" : "prev_hash does not link to the previous entry");
      }
      const fmt = FORMATS.indexOf(e.format) + 1;
      if (fmt < lastFormat) fail(`a v${fmt} entry follows a v${lastFormat} entry`);

      // --- bookkeeping that needs no accountant
      const kind = e.kind;
      if (!KINDS.has(kind)) fail(`kind ${JSON.stringify(kind)} is unknown`);
      const b = e.budget || {};
      const stated = [b.epsilon_max, b.delta, e.accountant];
      if (budget === null || kind === "budget" || fmt < 2) {
        budget = stated;
      } else if (stated[0] !== budget[0] || stated[1] !== budget[1]) {
        fail("budget changed without a budget entry");
      } else if (stated[2] !== budget[2]) {
        fail(`accountant changed without a budget entry (${stated[2]}, in force ${budget[2]})`);
      }
      if (kind === "release" && e.model_version !== report.releases + 1) {
        fail(`release produces version ${e.model_version}, expected ${report.releases + 1}`);
      }
      if (kind !== "release" && e.model_version !== 0) fail("only a release produces a model version");
      if (kind !== "budget" && !(e.round_id > lastRound)) {
        fail(`round id ${e.round_id} does not follow round id ${lastRound}`);
      }
      if (typeof e.epsilon !== "number" || !(e.epsilon >= 0)) fail("epsilon is not a non-negative number");
      if (kind === "release" && e.epsilon > budget[0] * (1 + REL_TOL)) {
        fail(`release brings epsilon to ${e.epsilon}, over its budget of ${budget[0]}`);
      }

      // --- this entry holds
      prev = row.hash;
      lastFormat = fmt;
      if (kind !== "budget") lastRound = e.round_id;
      if (kind === "release") {
        report.releases++;
        if (e.mechanism && e.mechanism.seeded) report.seededReleases++;
      } else if (kind === "refusal") report.refusals++;
      else if (kind === "abandonment") report.abandonments++;
      else report.budgetEntries++;
      report.entries = seq;
      report.epsilon = e.epsilon;
      report.epsilonMax = budget[0];
      report.delta = budget[1];
      report.accountant = budget[2];
      report.head = row.hash;
      report.parsed.push(e);
      report.hashes.push(row.hash);
      if (onProgress && (i % 256 === 255 || i === rows.length - 1)) onProgress(i + 1, rows.length);
    }
  } catch (exc) {
    if (!(exc instanceof LedgerError)) throw exc;
    report.ok = false;
    report.error = exc;
  }
  return report;
}

// Checks a signed head statement (GET /api/privacy/ledger/head) against the
// key and the verified ledger: its signature, its format, and that the
// ledger served holds the entry it names. Returns {ok, reason, seq, signedAt}.
export async function verifyHead(head, pkBytes, report) {
  const verify = await ed25519Verifier(pkBytes);
  const bad = (reason) => ({ ok: false, reason, seq: null, signedAt: null });
  if (!head || typeof head.statement !== "string" || typeof head.signature !== "string" || !HEX128.test(head.signature)) {
    return bad("the head answer has no statement and signature");
  }
  const digest = hexToBytes(await sha256Hex(utf8.encode(head.statement)));
  if (!(await verify(digest, hexToBytes(head.signature)))) return bad("the head statement's signature does not verify");
  let st;
  try {
    st = JSON.parse(head.statement);
  } catch (_) {
    return bad("the head statement is not JSON");
  }
  if (st.format !== HEAD_FORMAT || !Number.isInteger(st.seq) || typeof st.hash !== "string") {
    return bad("the head statement is not a fedagg-ledger-head-v1 statement");
  }
  const out = { ok: true, reason: null, seq: st.seq, signedAt: st.signed_at };
  if (st.seq > report.entries) {
    return { ...out, ok: false, reason: `the signed head names entry ${st.seq}, but the ledger served ends at entry ${report.entries}` };
  }
  const hash = st.seq === 0 ? ZERO_HASH : report.hashes[st.seq - 1];
  if (hash !== st.hash) {
    return { ...out, ok: false, reason: `the signed head names hash ${st.hash} for entry ${st.seq}, the ledger has ${hash}` };
  }
  return out;
}
