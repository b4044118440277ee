"""ledger-verifier: clients/python/fedagg_verify.py against a real server's ledger.

A fresh database in the throwaway cluster of FA_TEST_PG, fresh keys, and
`fedagg serve` with rounds of 1.5 s and a minimum cohort of 1. The ledger is
written by the server itself:

  phase 1  budget (8, 1e-5), the RDP accountant, q 1, sigma 1: `fedagg
           simulate` over HTTP releases versions 1 and 2; the third release
           would exceed the budget and is refused; the next round, idle, is
           abandoned;
  phase 2  restarted with budget (30, 1e-5), the PLD accountant, Poisson
           sampling q 0.5 and sigma 1.3: the server writes a budget entry
           (budget and accountant), then simulate releases more versions; the
           verifier composes its own PLD over every release, phase 1's
           included, and brackets the server's epsilon.

Then, while the server runs, the ledger is read through GET
/api/privacy/ledger (live, and saved to a file) with the newest safetensors
snapshot, and after it stops `fedagg ledger verify` reads the database and
psql exports the stored rows (the exact signed texts). The clean ledger must
pass from all three sources, with the epsilon of GET /api/privacy/budget
(full precision, the server's own audit) within 1e-6 relative and the one
`fedagg ledger verify` prints (6 digits) equal at its precision. Tampered copies of
the saved ledger must each fail with one line naming the right entry:
changed sigma (as stored, and re-signed by the key holder), dropped entry,
reordered entries, truncated tail against the newer snapshot, re-signed with
another key, epsilon understated by 1% (as stored, re-signed, and in the
unsigned column only).

Needs FA_TEST_PG (scripts/test.sh), FEDAGG_BIN, PG_BINDIR (meson), and
python3 with numpy, scipy and nacl. LV_KEEP=1 keeps the work directory.
"""

import copy
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("FA_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
VERIFY = os.path.join(ROOT, "clients", "python", "fedagg_verify.py")
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
NAME = "ledger-verifier"
T0 = time.time()


def log(msg):
    print("[%5.1f s] %s" % (time.time() - T0, msg), flush=True)


def fail(msg):
    print("%s: FAIL: %s" % (NAME, msg), flush=True)
    raise SystemExit(1)


try:
    import nacl.signing

    import fedagg_verify as fv  # needs numpy, scipy and nacl
except ImportError as exc:
    fail("%s (apt-get install python3-nacl python3-numpy python3-scipy)" % exc)

PG = os.environ.get("FA_TEST_PG", "")
BIN = os.environ.get("FEDAGG_BIN", "")
if not PG:
    fail("FA_TEST_PG is not set: run through scripts/test.sh")
if not (BIN and os.access(BIN, os.X_OK)):
    fail("FEDAGG_BIN is not set or not executable")
PSQL = os.path.join(os.environ.get("PG_BINDIR", ""), "psql")
if not os.access(PSQL, os.X_OK):
    PSQL = shutil.which("psql") or fail("psql not found")


# The export an auditor with read access to the database takes (README).
SQL_EXPORT = (
    "SELECT json_agg(json_build_object('seq', seq, 'kind', kind, 'round_id', round_id,"
    " 'model_version', model_version, 'cumulative_epsilon', cumulative_epsilon, 'entry', entry,"
    " 'prev_hash', encode(prev_hash, 'hex'), 'hash', encode(hash, 'hex'),"
    " 'signature', encode(signature, 'hex')) ORDER BY seq) FROM privacy_ledger"
)


class Env:
    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="fa-ledger-verifier.")
        self.dbname = None
        self.server = None
        self.url = None

    def run(self, argv, timeout=60, check=True, **kw):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
        if check and r.returncode != 0:
            fail("%s exited %d:\n%s%s" % (" ".join(argv[:3]), r.returncode, r.stdout, r.stderr))
        return r

    def create_db(self):
        self.dbname = "fa_lv_%d_%s" % (os.getpid(), os.urandom(4).hex())
        self.run([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", PG, "-c", "CREATE DATABASE %s" % self.dbname])
        self.db = "%s dbname=%s" % (PG, self.dbname)
        self.run([BIN, "migrate", "--database-url", self.db])
        self.keys = os.path.join(self.work, "keys")
        self.run([BIN, "keygen", "--out", self.keys])

    def start(self, **cfg):
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.db, FEDAGG_KEY_DIR=self.keys, FEDAGG_PORT="0", FEDAGG_LOG_LEVEL="warn",
            FEDAGG_MIN_COHORT="1", FEDAGG_NUM_ITEMS="120", FEDAGG_ROUND_DEADLINE_S="1.5",
        )
        env.update({"FEDAGG_" + k.upper(): str(v) for k, v in cfg.items()})
        errlog = open(os.path.join(self.work, "server.log"), "a")
        self.server = subprocess.Popen([BIN, "serve"], stdout=subprocess.PIPE, stderr=errlog, env=env, text=True)
        errlog.close()
        deadline, buf = time.time() + 60, ""
        while time.time() < deadline:
            ready, _, _ = select.select([self.server.stdout], [], [], 0.5)
            if ready:
                line = self.server.stdout.readline()
                if not line:
                    break
                m = re.search(r"listening on (http://\S+)", line)
                if m:
                    self.url = m.group(1)
                    return
                buf += line
            elif self.server.poll() is not None:
                break
        fail("fedagg serve did not start: %s (see %s/server.log)" % (buf, self.work))

    def stop(self):
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        if self.server is not None:
            self.server.stdout.close()
        self.server = None

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return r.read()

    def simulate(self, *args):
        return self.run(
            [BIN, "simulate", "--server", self.url, "--synthetic", "--users", "6", "--items", "120",
             "--positives", "5", "--eval-users", "2", "--parallel", "2", "--seed", "7"] + list(args),
            timeout=120, check=False,
        )

    def cleanup(self, ok):
        self.stop()
        if self.dbname:
            subprocess.run([PSQL, "-X", "-q", PG, "-c", "DROP DATABASE IF EXISTS %s" % self.dbname],
                           capture_output=True, timeout=60)
        if os.environ.get("LV_KEEP") == "1" or not ok:
            print("%s: work directory kept: %s" % (NAME, self.work))
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def verify(source, *args):
    """Runs the verifier; returns (exit status, stdout)."""
    r = subprocess.run([sys.executable, VERIFY, source] + list(args), capture_output=True, text=True, timeout=120)
    if r.returncode not in (0, 1):
        fail("fedagg_verify.py exited %d: %s%s" % (r.returncode, r.stdout, r.stderr))
    return r.returncode, r.stdout


# ------------------------------------------------------------ tampering


def resign(doc, start, sk):
    """The key holder rewrites the chain from index `start` on: each entry
    (as edited) gets its canonical text re-derived, hashed, signed, and the
    next entry re-linked, exactly as the server would have written them."""
    rows = doc["entries"]
    prev = rows[start - 1]["hash"] if start > 0 else fv.ZERO_HEX
    for r in rows[start:]:
        r["entry"]["prev_hash"] = prev
        r["prevHash"] = prev
        _, text = fv.parse_entry(r["entry"])
        r["hash"] = hashlib.sha256(text).hexdigest()
        r["signature"] = sk.sign(bytes.fromhex(r["hash"])).signature.hex()
        r["cumulativeEpsilon"] = r["entry"]["epsilon"]
        prev = r["hash"]
    return doc


def main(env):
    env.create_db()
    pk_file = os.path.join(env.keys, "sign.pk")
    with open(os.path.join(env.keys, "sign.sk")) as f:
        sk = nacl.signing.SigningKey(bytes.fromhex(f.read().strip()))

    # Phase 1: two releases, then a refusal (budget 8: 4.73, 7.08, 8.9 > 8).
    env.start(epsilon_max=8, noise_multiplier=1.0, sampling_rate=1.0, accountant="rdp")
    log("phase 1: fedagg serve at %s" % env.url)
    r = env.simulate("--rounds", "3", "--cohort", "2")
    if r.returncode == 0 or "refused" not in r.stderr:
        fail("phase 1: expected round 3 to be refused; simulate said:\n%s%s" % (r.stdout, r.stderr))
    # The next round gets no update and is abandoned at its deadline.
    until = time.time() + 15
    while not any(e["kind"] == "abandonment" for e in json.loads(env.get("/api/privacy/ledger"))["entries"]):
        if time.time() > until:
            fail("phase 1: no round was abandoned within 15 s")
        time.sleep(0.3)
    env.stop()

    # Phase 2: a raised budget (a budget entry), sampled releases.
    env.start(epsilon_max=30, noise_multiplier=1.3, sampling_rate=0.5, accountant="pld")
    log("phase 2: fedagg serve at %s" % env.url)
    r = env.simulate("--rounds", "2", "--cohort", "6")
    if r.returncode != 0:
        fail("phase 2: simulate failed:\n%s%s" % (r.stdout, r.stderr))
    latest = json.loads(env.get("/api/federated/model/latest"))
    v_last = latest["version"]
    if v_last < 3:
        fail("phase 2 published no version (latest is %d): %s" % (v_last, r.stderr))

    # What an auditor downloads: the ledger, the newest snapshot, the budget.
    ledger_bytes = env.get("/api/privacy/ledger")
    ledger_file = os.path.join(env.work, "ledger.json")
    with open(ledger_file, "wb") as f:
        f.write(ledger_bytes)
    snap = os.path.join(env.work, "v%d.safetensors" % v_last)
    with open(snap, "wb") as f:
        f.write(env.get("/api/federated/model/%d.safetensors" % v_last))
    budget = json.loads(env.get("/api/privacy/budget"))
    doc = json.loads(ledger_bytes)
    rows = doc["entries"]
    kinds = [r["kind"] for r in rows]
    log("ledger: %d entries %s, version %d" % (len(rows), {k: kinds.count(k) for k in set(kinds)}, v_last))
    for k in ("release", "refusal", "abandonment", "budget"):
        if k not in kinds:
            fail("the server's ledger has no %s entry: %s" % (k, kinds))
    accts = [(r["entry"]["format"], r["entry"]["accountant"]) for r in rows]
    if accts[0] != (fv.FORMAT_V3, fv.ACCOUNTANT) or accts[-1] != (fv.FORMAT_V3, fv.ACCOUNTANT_PLD):
        fail("expected v3 entries under rdp, then under pld: %s" % accts)

    # The live URL and the saved file both verify.
    rc, out = verify(env.url, "--public-key", pk_file)
    if rc != 0:
        fail("the live ledger does not verify: %s" % out)
    t = time.time()
    rc, out = verify(ledger_file, "--public-key", pk_file, "--snapshot", snap, "--expect-version", str(v_last),
                     "--min-seq", str(len(rows)), "--known-head", rows[-1]["hash"], "--json")
    rep = json.loads(out)
    if rc != 0 or not rep["ok"]:
        fail("the clean ledger does not verify: %s" % out)
    log("clean ledger verified in %.2f s: epsilon %r at delta %r" % (time.time() - t, rep["epsilon"], rep["delta"]))
    if rep["releases"] != v_last or rep["snapshots"][0]["version"] != v_last:
        fail("report disagrees with the server: %s" % out)
    lo, hi = rep["epsilon_bracket"]
    log("the server's PLD epsilon %r lies in the verifier's bracket [%r, %r] (x1.01)" % (rep["epsilon"], lo, hi))
    if not fv._close(rep["epsilon"], budget["epsilonSpent"]):
        fail("epsilon %r differs from GET /api/privacy/budget's %r" % (rep["epsilon"], budget["epsilonSpent"]))
    if not fv._close(rep["epsilon"], rows[-1]["entry"]["epsilon"]):
        fail("epsilon %r differs from the last entry's %r" % (rep["epsilon"], rows[-1]["entry"]["epsilon"]))
    env.stop()

    r = env.run([BIN, "ledger", "verify", "--database-url", env.db, "--key-dir", env.keys])
    m = re.search(r"epsilon ([0-9.e+-]+) at delta ([0-9.e+-]+)", r.stdout)
    if not m or float(m.group(1)) != float("%.6g" % rep["epsilon"]) or float(m.group(2)) != rep["delta"]:
        fail("fedagg ledger verify says %r, this verifier %r at %r" % (r.stdout, rep["epsilon"], rep["delta"]))
    log("fedagg ledger verify agrees: %s" % r.stdout.splitlines()[0])

    # The stored bytes themselves, exported with SQL (README): each text must
    # be canonical byte for byte, not only re-encodable.
    sql_file = os.path.join(env.work, "ledger-sql.json")
    r = env.run([PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", env.db, "-c", SQL_EXPORT])
    with open(sql_file, "w") as f:
        f.write(r.stdout)
    rc, out = verify(sql_file, "--public-key", pk_file, "--snapshot", snap, "--json")
    sql_rep = json.loads(out)
    if rc != 0 or sql_rep["epsilon"] != rep["epsilon"] or sql_rep["entries"] < len(rows):
        fail("the SQL export does not verify like the API's: %s" % out)
    log("SQL export (%d entries) verified" % sql_rep["entries"])

    # Tampered copies: each must fail, naming the entry.
    rel = [i for i, r in enumerate(rows) if r["kind"] == "release"]
    k = rel[1]  # the second release (version 2), with entries after it
    seq = rows[k]["seq"]
    cases = []

    d = copy.deepcopy(doc)
    d["entries"][k]["entry"]["mechanism"]["noise_multiplier"] = 1.5
    cases.append(("changed sigma", d, [], seq, "hash mismatch"))

    d = copy.deepcopy(doc)
    d["entries"][k]["entry"]["mechanism"]["noise_multiplier"] = 1.5
    cases.append(("changed sigma, re-signed by the key holder", resign(d, k, sk), [], seq, "epsilon is"))

    d = copy.deepcopy(doc)
    del d["entries"][k]
    cases.append(("dropped entry", d, [], seq, "missing"))

    d = copy.deepcopy(doc)
    d["entries"][k], d["entries"][k + 1] = d["entries"][k + 1], d["entries"][k]
    cases.append(("reordered entries", d, [], seq, "missing"))

    d = copy.deepcopy(doc)
    d["entries"][k], d["entries"][k + 1] = d["entries"][k + 1], d["entries"][k]
    d["entries"][k]["seq"], d["entries"][k + 1]["seq"] = seq, seq + 1
    cases.append(("reordered entries, seq columns renumbered", d, [], seq, "seq column disagrees"))

    d = copy.deepcopy(doc)
    cut = rel[-1]
    d["entries"] = d["entries"][:cut]
    cases.append(("truncated tail against a later snapshot", d, ["--snapshot", snap], cut + 1,
                  "is named by no release entry"))
    cases.append(("truncated tail against the version in hand", d, ["--expect-version", str(v_last)], cut + 1,
                  "no release entry produces version %d" % v_last))

    other = nacl.signing.SigningKey.generate()
    cases.append(("re-signed with another key", resign(copy.deepcopy(doc), 0, other), [], 1, "bad signature"))

    d = copy.deepcopy(doc)
    d["entries"][k]["entry"]["epsilon"] *= 0.99
    d["entries"][k]["cumulativeEpsilon"] *= 0.99
    cases.append(("epsilon understated by 1%", d, [], seq, "hash mismatch"))

    d = copy.deepcopy(doc)
    d["entries"][-1]["entry"]["epsilon"] *= 0.99
    cases.append(("epsilon understated by 1%, re-signed", resign(d, len(rows) - 1, sk), [], rows[-1]["seq"],
                  "epsilon is"))

    d = copy.deepcopy(doc)
    d["entries"][-1]["cumulativeEpsilon"] *= 0.99
    cases.append(("epsilon column understated by 1%", d, [], rows[-1]["seq"], "cumulative epsilon column"))

    for name, d, extra, want_seq, words in cases:
        path = os.path.join(env.work, "tampered.json")
        with open(path, "w") as f:
            json.dump(d, f)
        rc, out = verify(path, "--public-key", pk_file, *extra)
        lines = out.strip().splitlines()
        want = "ledger entry %d: " % want_seq
        if rc != 1 or len(lines) != 1 or not lines[0].startswith(want) or words not in lines[0]:
            fail("%s: expected exit 1 and one line '%s...%s...', got %d: %s" % (name, want, words, rc, out))
        log("%-45s -> %s" % (name, lines[0][:110]))


if __name__ == "__main__":
    env = Env()
    ok = False
    try:
        main(env)
        ok = True
        log("%s passed" % NAME)
    finally:
        env.cleanup(ok)
