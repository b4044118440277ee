// The audit page: fetches the ledger, the signed head, the ledger key and the
// server's budget answer from the server that serves the page, checks them
// with verify.js, and shows the verdict, a summary, a plot of epsilon
// against the budget, the table of entries, and a download of the ledger.
//
// The outcome is also left on <body> for scripts: data-state="done",
// data-verdict="ok" | "fail" | "error", and data-value on the numbers.

import { bytesToHex, keyId, parsePublicKey, verifyHead, verifyLedger } from "./verify.js";

const PIN_STORAGE = "fedagg.audit.publicKey";
const PAGE_LIMIT = 10000;
const TABLE_MAX = 2000;
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const api = (path) => new URL(`../api/privacy/${path}`, location.href);

async function getJson(url) {
  let resp;
  try {
    resp = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (exc) {
    throw new Error(`GET ${url.pathname}: ${exc.message}`);
  }
  let body = null;
  try {
    body = await resp.json();
  } catch (_) {
    body = null;
  }
  if (!resp.ok) {
    const why = body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${resp.status}`;
    throw new Error(`GET ${url.pathname} answered ${resp.status} (${why})`);
  }
  if (body === null) throw new Error(`GET ${url.pathname} did not answer JSON`);
  return body;
}

// Every entry, following "next" until it is null.
async function loadLedger(progress) {
  const rows = [];
  let after = 0;
  for (;;) {
    const url = api("ledger");
    url.search = `?after=${after}&limit=${PAGE_LIMIT}`;
    const doc = await getJson(url);
    if (!doc || !Array.isArray(doc.entries)) throw new Error(`GET ${url.pathname} holds no entries array`);
    rows.push(...doc.entries);
    progress(`Loading the ledger: ${rows.length} entries`);
    if (doc.next === null || doc.next === undefined) return rows;
    if (!Number.isInteger(doc.next) || doc.next <= after) throw new Error(`the ledger's "next" ${doc.next} does not move forward`);
    after = doc.next;
  }
}

// Settles a promise into {value} or {error}.
const settle = (p) => p.then((value) => ({ value }), (error) => ({ error }));

function setVerdict(state, text, detail = "") {
  const v = $("verdict");
  v.className = `verdict ${state}`;
  v.textContent = text;
  if (detail) {
    const d = document.createElement("span");
    d.className = "detail";
    d.textContent = detail;
    v.append(d);
  }
  if (state !== "pending") document.body.dataset.verdict = state;
}

function setText(id, text, value) {
  const el = $(id);
  el.textContent = text;
  if (value !== undefined) el.dataset.value = String(value);
}

const fmt = (x, digits = 6) => (typeof x === "number" && Number.isFinite(x) ? Number(x.toPrecision(digits)).toString() : "–");
const utc = (t) => (Number.isInteger(t) && t > 0 ? new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "") : "–");

function pinnedKey() {
  const fromUrl = new URLSearchParams(location.search).get("key");
  if (fromUrl) return { text: fromUrl, source: "pinned in the page address" };
  let stored = null;
  try {
    stored = localStorage.getItem(PIN_STORAGE);
  } catch (_) {
    stored = null;
  }
  return stored ? { text: stored, source: "pinned in this browser" } : null;
}

function renderPlot(parsed) {
  const box = $("plot");
  box.replaceChildren();
  if (parsed.length === 0) {
    box.textContent = "No entries yet.";
    return;
  }
  const W = 900;
  const H = 300;
  const m = { l: 64, r: 16, t: 44, b: 40 };
  const n = parsed.length;
  const top = Math.max(...parsed.map((e) => Math.max(e.epsilon, e.budget.epsilon_max))) * 1.08 || 1;
  const x = (i) => m.l + (n === 1 ? 0.5 : i / (n - 1)) * (W - m.l - m.r);
  const y = (v) => H - m.b - (v / top) * (H - m.t - m.b);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.append(el);
    return el;
  };
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const v = top * f;
    add("line", { class: "grid", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) });
    add("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v, 3));
  }
  add("line", { class: "axis", x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b });
  add("line", { class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: H - m.b });
  add("text", { x: m.l, y: H - m.b + 16, "text-anchor": "middle" }, String(parsed[0].seq));
  add("text", { x: x(n - 1), y: H - m.b + 16, "text-anchor": "middle" }, String(parsed[n - 1].seq));
  add("text", { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle" }, "ledger entry");
  add("text", { x: 14, y: (m.t + H - m.b) / 2, transform: `rotate(-90 14 ${(m.t + H - m.b) / 2})`, "text-anchor": "middle" }, "ε");
  const step = (values) => values.map((v, i) => `${i === 0 ? "M" : "L"}${x(i)},${y(v)}` + (i + 1 < n ? ` L${x(i + 1)},${y(v)}` : "")).join(" ");
  add("path", { class: "budget", d: step(parsed.map((e) => e.budget.epsilon_max)) });
  add("path", { class: "eps", d: step(parsed.map((e) => e.epsilon)) });
  if (n <= 1000) {
    parsed.forEach((e, i) => {
      if (e.kind === "release") add("circle", { class: "release", cx: x(i), cy: y(e.epsilon), r: 2.5 });
      if (e.kind === "refusal") {
        const cx = x(i);
        const cy = y(e.epsilon);
        add("path", { class: "refusal", d: `M${cx - 4},${cy - 4} L${cx + 4},${cy + 4} M${cx - 4},${cy + 4} L${cx + 4},${cy - 4}` });
      }
    });
  }
  add("line", { class: "eps", x1: m.l, x2: m.l + 24, y1: 12, y2: 12 });
  add("text", { x: m.l + 30, y: 16 }, "ε spent after each entry (dots: releases, ×: refusals)");
  add("line", { class: "budget", x1: m.l, x2: m.l + 24, y1: 30, y2: 30 });
  add("text", { x: m.l + 30, y: 34 }, "budget ε in force");
  box.append(svg);
}

function renderTable(parsed, error) {
  const body = $("entries").tBodies[0];
  body.replaceChildren();
  const first = Math.max(0, parsed.length - TABLE_MAX);
  $("table-note").textContent =
    first > 0 ? `The newest ${TABLE_MAX} of ${parsed.length} verified entries; the download holds all of them.` : "";
  const frag = document.createDocumentFragment();
  for (let i = first; i < parsed.length; i++) {
    const e = parsed[i];
    const m = e.mechanism || {};
    const tr = document.createElement("tr");
    tr.className = e.kind;
    tr.dataset.seq = String(e.seq);
    const cells = [
      [e.seq],
      [e.kind, "kind"],
      [e.kind === "budget" ? "–" : e.round_id],
      [e.model_version || "–"],
      [utc(e.created_at)],
      [fmt(e.epsilon)],
      [fmt(e.budget.epsilon_max)],
      [fmt(e.budget.delta, 3)],
      [e.accountant, "acct"],
      [fmt(m.clip_norm)],
      [fmt(m.noise_multiplier)],
      [fmt(m.sampling_rate)],
      [`${fmt(m.denominator)} (${m.denominator_rule})`, "text"],
      [m.trust_policy, "text"],
      [m.seeded ? `${m.noise_method}, seeded` : m.noise_method, "text"],
      [e.snapshot_sha256 && /[^0]/.test(e.snapshot_sha256) ? `${e.snapshot_sha256.slice(0, 16)}…` : "–", "text"],
      ["✓", "ok"],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.textContent = String(text ?? "–");
      if (cls) td.className = cls;
      tr.append(td);
    }
    if (e.snapshot_sha256) tr.cells[15].title = e.snapshot_sha256;
    frag.append(tr);
  }
  if (error) {
    const tr = document.createElement("tr");
    tr.className = "bad";
    tr.dataset.seq = String(error.seq);
    const td = document.createElement("td");
    td.colSpan = 17;
    td.textContent = `Entry ${error.seq}: ${error.reason}. Entries after it are not shown: nothing after a broken link can be trusted.`;
    tr.append(td);
    frag.append(tr);
  }
  body.append(frag);
}

function offerDownload(rows, head) {
  const button = $("download");
  button.disabled = false;
  button.onclick = () => {
    const doc = { entries: rows };
    if (head) doc.head = head;
    const blob = new Blob([JSON.stringify(doc, null, 1) + "\n"], { type: "application/json" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `fedagg-ledger-${rows.length}.json`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  };
}

async function audit() {
  document.body.dataset.state = "loading";
  delete document.body.dataset.verdict;
  setVerdict("pending", "Loading the ledger…");
  // The signed head first, then the ledger: an honest ledger is then at
  // least as long as the head (rounds may close meanwhile).
  const [keyRes, headRes] = await Promise.all([settle(getJson(api("key"))), settle(getJson(api("ledger/head")))]);
  const ledgerRes = await settle(loadLedger((msg) => setVerdict("pending", msg)));
  const budgetRes = await settle(getJson(api("budget")));

  const served = keyRes.value ? parsePublicKey(keyRes.value.publicKey) : null;
  setText("served-key", served ? bytesToHex(served) : `unavailable (${keyRes.error ? keyRes.error.message : "not a key"})`);
  setText("served-key-id", served ? await keyId(served) : "–");
  const pin = pinnedKey();
  let pk = served;
  let source = "(the key this server serves)";
  if (pin) {
    pk = parsePublicKey(pin.text);
    if (!pk) {
      setVerdict("error", "Could not verify: the pinned key is neither 64 hex digits nor base64 of 32 bytes.", pin.text);
      document.body.dataset.state = "done";
      return;
    }
    source = `(${pin.source}` + (served && bytesToHex(served) !== bytesToHex(pk) ? "; the server serves another key)" : ")");
  }
  setText("used-key", pk ? bytesToHex(pk) : "none");
  $("used-key-source").textContent = pk ? source : "";
  if (ledgerRes.error) {
    setVerdict("error", "Could not verify: the ledger could not be loaded.", ledgerRes.error.message);
    document.body.dataset.state = "done";
    return;
  }
  const rows = ledgerRes.value;
  offerDownload(rows, headRes.value);
  if (!pk) {
    setVerdict("error", "Could not verify: no public key (pin one above).", keyRes.error ? keyRes.error.message : "");
    document.body.dataset.state = "done";
    return;
  }

  let report;
  let head = null;
  try {
    report = await verifyLedger(rows, pk, (i, n) => setVerdict("pending", `Checking entry ${i} of ${n}…`));
    if (headRes.value) head = await verifyHead(headRes.value, pk, report);
  } catch (exc) {
    setVerdict("error", "Could not verify.", exc.message);
    document.body.dataset.state = "done";
    return;
  }

  const id = await keyId(pk);
  setText("sum-epsilon", fmt(report.epsilon, 9), report.epsilon);
  setText("sum-epsilon-max", fmt(report.epsilonMax, 9), report.epsilonMax ?? "");
  setText("sum-delta", fmt(report.delta, 3), report.delta ?? "");
  setText("sum-accountant", report.accountant ?? "–");
  setText("sum-entries", String(report.entries), report.entries);
  setText("sum-releases", String(report.releases), report.releases);
  setText("sum-refusals", String(report.refusals), report.refusals);
  setText("sum-abandonments", String(report.abandonments), report.abandonments);
  setText("sum-budget-entries", String(report.budgetEntries), report.budgetEntries);
  setText("sum-seeded", String(report.seededReleases), report.seededReleases);
  setText("sum-head", report.head);
  setText(
    "sum-signed-head",
    head
      ? head.ok
        ? `entry ${head.seq}, signed ${utc(head.signedAt)}: verified`
        : `does not hold: ${head.reason}`
      : `unavailable (${headRes.error.message})`,
  );
  const b = budgetRes.value;
  let serverNote = budgetRes.error ? `unavailable (${budgetRes.error.message})` : "";
  let serverDisagrees = false;
  if (b) {
    serverNote = `ε ${fmt(b.epsilonSpent, 9)} of ${fmt(b.epsilonMax, 9)} after ${b.entries} entries`;
    // Compared only when both describe the same ledger (a round may close between the requests).
    if (report.ok && b.entries === report.entries && b.epsilonSpent !== report.epsilon) {
      serverDisagrees = true;
      serverNote += `: disagrees with the signed ledger (${report.epsilon})`;
    }
  }
  setText("sum-server", serverNote);
  renderPlot(report.parsed);
  renderTable(report.parsed, report.error);

  if (!report.ok) {
    setVerdict(
      "fail",
      `Failed: entry ${report.error.seq}: ${report.error.reason}.`,
      `${report.entries === 1 ? "1 entry holds" : `${report.entries} entries hold`} before it, checked against key ${id}.`,
    );
  } else if (head && !head.ok) {
    setVerdict("fail", `Failed: ${head.reason}.`, `The ${report.entries} entries served hold, checked against key ${id}.`);
  } else if (serverDisagrees) {
    setVerdict("fail", "Failed: the server's budget answer disagrees with its signed ledger.", serverNote);
  } else {
    const what = report.entries === 1 ? "1 entry" : `${report.entries} entries`;
    setVerdict(
      "ok",
      `Verified: ${what}, every hash and signature holds, the chain is unbroken.`,
      `ε ${fmt(report.epsilon, 9)} spent of ${fmt(report.epsilonMax, 9)} at δ ${fmt(report.delta, 3)} over ` +
        `${report.releases} releases; signed by key ${id} ${source}` +
        (head ? "; the signed head matches." : `; the signed head is unavailable (${headRes.error.message}).`),
    );
  }
  document.body.dataset.state = "done";
}

$("pin-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("pin").value.trim();
  if (!parsePublicKey(text)) {
    setVerdict("error", "That is not a public key: 64 hex digits or base64 of 32 bytes.", text);
    return;
  }
  try {
    localStorage.setItem(PIN_STORAGE, text);
  } catch (_) {
    // storage refused: the URL parameter still works
  }
  audit();
});
$("unpin").addEventListener("click", () => {
  try {
    localStorage.removeItem(PIN_STORAGE);
  } catch (_) {
    // nothing stored
  }
  audit();
});

audit().catch((exc) => {
  setVerdict("error", "Could not verify.", exc.message);
  document.body.dataset.state = "done";
});
