"""Unit tests of clients/python/fedagg_verify.py without a server.

* The accountant against the known-answer files tests/vectors/rdp_*.txt
  (exact decimal sums at integer orders, numerical integration at
  fractional ones, epsilon after T releases): relative 1e-9.
* The canonical encoding against tests/vectors/ledger_entry_v{1,2}.txt
  (texts, SHA-256 and Ed25519 signatures under the RFC 8032 TEST 1 key),
  and texts that are one byte off canonical.
* The chain rules on small ledgers signed here with PyNaCl: each rule
  broken once must fail naming the right entry.

Run: /usr/bin/python3 tests/ledger_verifier/unit_test.py (meson: ledger-verifier-unit).
"""

import copy
import hashlib
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("FA_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

try:
    import nacl.signing
    import numpy as np

    import fedagg_verify as fv  # needs numpy, scipy and nacl
except ImportError as exc:  # fail, do not skip
    print("ledger-verifier-unit: %s (apt-get install python3-nacl python3-numpy python3-scipy)" % exc)
    sys.exit(1)

VECTORS = os.path.join(ROOT, "tests", "vectors")
RFC8032_PK = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
REL = 1e-9


def vector_rows(name):
    with open(os.path.join(VECTORS, name)) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                yield [float(x) for x in line.split()]


def vector_entries(name):
    with open(os.path.join(VECTORS, name)) as f:
        lines = [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#")]
    return [lines[i : i + 3] for i in range(0, len(lines), 3)]


def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b))


class Accountant(unittest.TestCase):
    def test_orders(self):
        self.assertEqual(len(fv.ORDERS), 156)
        self.assertEqual(fv.ORDERS[0], 1.1)
        self.assertEqual(fv.ORDERS[98], 10.9)
        self.assertEqual(fv.ORDERS[99], 11.0)
        self.assertEqual(fv.ORDERS[151], 63.0)
        self.assertEqual(fv.ORDERS[-4:], (128.0, 256.0, 512.0, 1024.0))

    def check_file(self, name):
        n = 0
        for q, s, a, want in vector_rows(name):
            got = fv.rdp_sgm_order(q, s, a)
            self.assertLessEqual(rel(got, want), REL, "%s: q %r sigma %r alpha %r: %r, want %r" % (name, q, s, a, got, want))
            n += 1
        self.assertGreater(n, 100)

    def test_integer_orders(self):
        self.check_file("rdp_integer.txt")

    def test_fractional_orders(self):
        self.check_file("rdp_fractional.txt")

    def test_no_sampling_closed_form(self):
        for a in fv.ORDERS:
            self.assertEqual(fv.rdp_sgm_order(1.0, 2.0, a), a / 8.0)

    def test_epsilon(self):
        for q, s, t, delta, want_eps, want_order in vector_rows("rdp_epsilon.txt"):
            eps, order = fv.rdp_epsilon(fv.rdp_sgm(q, s) * t, delta)
            self.assertLessEqual(rel(eps, want_eps), REL, (q, s, t, delta, eps, want_eps))
            self.assertEqual(order, want_order)

    def test_nothing_spent(self):
        self.assertEqual(fv.rdp_epsilon(np.zeros(156), 1e-5), (0.0, 0.0))

    def test_domain(self):
        for q, s in ((0.0, 1.0), (1.5, 1.0), (0.5, 0.29), (0.5, 100.5), (float("nan"), 1.0)):
            with self.assertRaises(ValueError):
                fv.rdp_sgm_order(q, s, 2.0)

    def test_monotone(self):
        # More noise never costs more; more sampling never costs less.
        a = fv.rdp_sgm(0.1, 1.0)
        self.assertTrue(np.all(fv.rdp_sgm(0.1, 1.5) <= a))
        self.assertTrue(np.all(fv.rdp_sgm(0.2, 1.0) >= a))


class Canonical(unittest.TestCase):
    def test_vectors(self):
        pk = bytes.fromhex(RFC8032_PK)
        for name in ("ledger_entry_v1.txt", "ledger_entry_v2.txt"):
            for text, digest, sig in vector_entries(name):
                e, canonical = fv.parse_entry(text)
                self.assertEqual(canonical, text.encode("ascii"))
                self.assertEqual(hashlib.sha256(canonical).hexdigest(), digest)
                nacl.signing.VerifyKey(pk).verify(bytes.fromhex(digest), bytes.fromhex(sig))
                # The API's rendering: the same entry as a JSON object.
                e2, again = fv.parse_entry(json.loads(text))
                self.assertEqual(again, canonical)

    def test_v2_chain_verifies(self):
        rows = [
            fv.Row({"seq": i + 1, "entry": t, "hash": h, "signature": s}, i)
            for i, (t, h, s) in enumerate(vector_entries("ledger_entry_v2.txt"))
        ]
        rep = fv.verify_ledger(rows, bytes.fromhex(RFC8032_PK))
        self.assertEqual((rep["entries"], rep["releases"], rep["budget_entries"]), (2, 1, 1))
        self.assertEqual(rep["budget_changes"][0]["to"], [60.0, 1e-6, fv.ACCOUNTANT])
        self.assertEqual(rep["delta"], 1e-6)

    def test_not_canonical(self):
        text = vector_entries("ledger_entry_v2.txt")[0][0]
        bad = [
            text.replace('"seq":1,', '"seq": 1,'),  # whitespace
            text.replace('"clip_norm":1,', '"clip_norm":1.0,'),  # not %.17g
            text.replace('"seq":1,', '"seq":01,'),  # not JSON
            text.replace("d3920c62", "D3920C62"),  # upper-case hex
            text[:-1] + ',"extra":1}',  # extra key
            text.replace('"kind":"release","round_id":1', '"round_id":1,"kind":"release"'),  # key order
            text.replace('"trust_policy":"none"', '"trust_policy":"None"'),  # name outside the set
            text.replace('"accountant":"rdp-sgm-v1"', '"accountant":"rdp-sgm-v2"'),
            text.replace('"cumulative_rdp":[0.13750000000000001,', '"cumulative_rdp":[NaN,'),
            text.replace('"cumulative_rdp":[0.13750000000000001,', '"cumulative_rdp":['),  # 155 values
            text.replace('"cumulative_rdp":[0.13750000000000001,', '"cumulative_rdp":[-0.0,'),
            text.replace('"seq":1,', '"seq":1,"seq":1,'),  # duplicate key
            text + "\n",
        ]
        for b in bad:
            self.assertNotEqual(b, text)
            with self.assertRaises(ValueError, msg=b[:120]):
                fv.parse_entry(b)

    def test_public_key_forms(self):
        raw = bytes.fromhex(RFC8032_PK)
        import base64

        self.assertEqual(fv.read_public_key(RFC8032_PK), raw)
        self.assertEqual(fv.read_public_key(base64.b64encode(raw).decode()), raw)
        with tempfile.NamedTemporaryFile("w", suffix=".pk", delete=False) as f:
            f.write(RFC8032_PK + "\n")
        try:
            self.assertEqual(fv.read_public_key(f.name), raw)
        finally:
            os.unlink(f.name)
        with self.assertRaises(fv.InputError):
            fv.read_public_key("not a key")


# ----------------------------------------------------------- synthetic chains

MECH = {
    "clip_norm": 1.0,
    "noise_multiplier": 1.0,
    "sampling_rate": 0.5,
    "cohort_size": 10,
    "denominator": 10.0,
    "denominator_rule": "min_cohort",
    "weight_bound": 1.0,
    "noise_method": "gauss-sum4-boxmuller-chacha20",
    "seeded": False,
    "trust_policy": "none",
}


PLD_H = 2.0**-14  # the grid of the stated PLD epsilons: finer than the verifier's


def build_chain(specs, sk, tweak=None):
    """Signed rows for specs [(kind, round_id, epsilon_max, delta), ...] in v2
    (rdp), or [(kind, round_id, epsilon_max, delta, accountant), ...] in v3,
    each entry computed honestly with the verifier's accountant (a PLD
    epsilon as the upper end of a bracket on a fine grid), so only what
    `tweak(i, entry)` changes is wrong."""
    rows, prev, acc, version = [], fv.ZERO_HEX, np.zeros(156), 0
    pld = fv.PldBracket(PLD_H, 1e-14)
    for i, spec in enumerate(specs):
        kind, rid, eps_max, delta = spec[:4]
        accountant = spec[4] if len(spec) > 4 else None
        rdp = fv.rdp_sgm(MECH["sampling_rate"], MECH["noise_multiplier"])
        if kind == "release":
            version += 1
            acc = acc + rdp
            pld.compose(MECH["sampling_rate"], MECH["noise_multiplier"])
        eps, order = fv.rdp_epsilon(acc, delta)
        if accountant == fv.ACCOUNTANT_PLD:
            eps = pld.epsilon(delta)[1]
        e = {
            "format": fv.FORMAT_V2 if accountant is None else fv.FORMAT_V3,
            "seq": i + 1,
            "kind": kind,
            "round_id": rid,
            "model_version": version if kind == "release" else 0,
            "snapshot_sha256": hashlib.sha256(b"v%d" % version).hexdigest() if kind == "release" else fv.ZERO_HEX,
            "created_at": 1700000000 + i,
            "mechanism": dict(MECH),
            "budget": {"epsilon_max": eps_max, "delta": delta},
            "accountant": fv.ACCOUNTANT,
            "round_rdp": list(rdp) if kind == "release" else [0.0] * 156,
            "cumulative_rdp": list(acc),
            "epsilon": eps,
            "order": order,
            "prev_hash": prev,
        }
        if accountant is not None:
            e["accountant"] = accountant
            for k in ("round_rdp", "cumulative_rdp", "order"):
                del e[k]
        if tweak is not None:
            tweak(i, e)
        text = fv.encode_entry(e)
        digest = hashlib.sha256(text).hexdigest()
        sig = sk.sign(bytes.fromhex(digest)).signature.hex()
        rows.append({"seq": i + 1, "entry": text.decode(), "hash": digest, "signature": sig})
        prev = digest
    return rows


class ChainCase(unittest.TestCase):
    """Verifies rows signed with self.sk (set by the subclass)."""

    def verify(self, rows, **kw):
        return fv.verify_ledger([fv.Row(r, i) for i, r in enumerate(rows)], self.pk, **kw)

    def assertFails(self, rows, seq, words, **kw):
        with self.assertRaises(fv.Discrepancy) as cm:
            self.verify(rows, **kw)
        self.assertEqual(cm.exception.seq, seq, str(cm.exception))
        self.assertIn(words, str(cm.exception))


class Chain(ChainCase):
    @classmethod
    def setUpClass(cls):
        cls.sk = nacl.signing.SigningKey(b"\x01" * 32)
        cls.pk = bytes(cls.sk.verify_key)
        # epsilon after k releases at q 0.5, sigma 1, delta 1e-5
        cls.eps = [fv.rdp_epsilon(fv.rdp_sgm(0.5, 1.0) * k, 1e-5)[0] for k in range(5)]

    def specs(self):
        cap = (self.eps[2] + self.eps[3]) / 2  # room for 2 releases, not 3
        return [
            ("release", 1, cap, 1e-5),
            ("abandonment", 2, cap, 1e-5),
            ("release", 3, cap, 1e-5),
            ("refusal", 4, cap, 1e-5),
            ("budget", 0, 100.0, 1e-6),
            ("release", 5, 100.0, 1e-6),
        ]

    def test_clean(self):
        rep = self.verify(build_chain(self.specs(), self.sk))
        self.assertEqual(
            (rep["entries"], rep["releases"], rep["refusals"], rep["abandonments"], rep["budget_entries"]),
            (6, 3, 1, 1, 1),
        )
        self.assertEqual(rep["budget_changes"][0]["seq"], 5)

    def test_budget_changed_without_entry(self):
        specs = self.specs()
        specs[4] = ("abandonment", 5, 100.0, 1e-6)  # a raised budget with no budget entry
        specs[5] = ("release", 6, 100.0, 1e-6)
        self.assertFails(build_chain(specs, self.sk), 5, "budget changed without a budget entry")

    def test_release_over_budget(self):
        specs = [("release", r, (self.eps[1] + self.eps[2]) / 2, 1e-5) for r in (1, 2)]
        self.assertFails(build_chain(specs, self.sk), 2, "over its budget")

    def test_refusal_that_fit(self):
        specs = self.specs()[:4]
        specs[3] = ("refusal", 4, 100.0, 1e-5)
        specs = [(k, r, 100.0, d) for k, r, _, d in specs]
        self.assertFails(build_chain(specs, self.sk), 4, "refused a release that fit")

    def test_version_skipped(self):
        def tweak(i, e):
            if i == 2:
                e["model_version"] = 3

        self.assertFails(build_chain(self.specs(), self.sk, tweak), 3, "release produces version 3, expected 2")

    def test_round_repeated(self):
        specs = self.specs()
        specs[2] = ("release", 2, specs[2][2], 1e-5)
        self.assertFails(build_chain(specs, self.sk), 3, "round id 2 does not follow round id 2")

    def test_understated_epsilon_signed(self):
        def tweak(i, e):
            if i == 2:
                e["epsilon"] *= 0.99

        self.assertFails(build_chain(self.specs(), self.sk, tweak), 3, "epsilon is")

    def test_understated_rdp_signed(self):
        def tweak(i, e):
            if i == 2:
                e["round_rdp"] = [x * 0.5 for x in e["round_rdp"]]
                e["cumulative_rdp"] = [x - y for x, y in zip(e["cumulative_rdp"], e["round_rdp"])]

        self.assertFails(build_chain(self.specs(), self.sk, tweak), 3, "round rdp at order")

    def test_stated_order_wrong(self):
        def tweak(i, e):
            if i == 0:
                e["order"] = 2.0

        self.assertFails(build_chain(self.specs(), self.sk, tweak), 1, "does not attain")

    def test_v1_after_v2(self):
        rows = build_chain(self.specs()[:2], self.sk)
        rows_v1 = build_chain(
            self.specs()[:2], self.sk,
            lambda i, e: (e.update(format=fv.FORMAT_V1), e.pop("snapshot_sha256")) if i == 1 else None,
        )
        self.assertEqual(rows[0], rows_v1[0])
        self.assertFails(rows_v1, 2, "a v1 entry follows a v2 entry")

    def test_reordered_dropped_unsigned(self):
        rows = build_chain(self.specs(), self.sk)
        self.assertFails(rows[:2] + rows[3:], 3, "missing")
        self.assertFails([rows[0], rows[2], rows[1]] + rows[3:], 2, "missing")
        self.assertFails(rows[:2] + rows[1:], 2, "out of order or duplicated")
        renumbered = [rows[0], dict(rows[2], seq=2), dict(rows[1], seq=3)] + rows[3:]
        self.assertFails(renumbered, 2, "seq column disagrees")
        other = nacl.signing.SigningKey(b"\x02" * 32)
        self.assertFails(build_chain(self.specs(), other), 1, "bad signature")
        edited = copy.deepcopy(rows)
        edited[1]["entry"] = edited[1]["entry"].replace('"cohort_size":10', '"cohort_size":11')
        self.assertFails(edited, 2, "hash mismatch")

    def test_prev_hash_relinked(self):
        # Entry 2 removed and the rest re-signed by the key holder: the chain
        # is consistent again, but seq and round numbering give it away.
        specs = self.specs()
        rows = build_chain(specs[:1] + specs[2:], self.sk, lambda i, e: e.update(seq=i + 1 if i == 0 else i + 2))
        self.assertFails([dict(r, seq=json.loads(r["entry"])["seq"]) for r in rows], 2, "missing")

    def test_snapshots_and_expectations(self):
        rows = build_chain(self.specs(), self.sk)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.safetensors")
            with open(path, "wb") as f:
                f.write(b"v2")  # the test chain's "snapshot" of version 2 is sha256(b"v2")
            rep = self.verify(rows, snapshots=[path])
            self.assertEqual(rep["snapshots"][0]["version"], 2)
            with open(path, "wb") as f:
                f.write(b"v4")
            self.assertFails(rows, 7, "is named by no release entry", snapshots=[path])
        self.assertFails(rows, 7, "no release entry produces version 4", expect_versions=[4])
        self.assertFails(rows, 7, "entry 9 was seen before", min_seq=9)
        self.verify(rows, known_heads=[rows[2]["hash"]], min_seq=6, expect_versions=[3])
        self.assertFails(rows[:3], 4, "no entry has the hash", known_heads=[rows[5]["hash"]])

    def test_command_line(self):
        seeded = build_chain(self.specs(), self.sk, lambda i, e: e["mechanism"].update(seeded=True))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ledger.json")
            with open(path, "w") as f:
                json.dump({"entries": seeded}, f)
            key = self.pk.hex()
            with open(os.devnull, "w") as null:
                old, sys.stdout = sys.stdout, null
                try:
                    self.assertEqual(fv.main([path, "--public-key", key]), 0)
                    self.assertEqual(fv.main([path, "--public-key", key, "--require-private"]), 1)
                    self.assertEqual(fv.main([path, "--public-key", "00" * 32]), 1)  # wrong key
                    self.assertEqual(fv.main([os.path.join(d, "absent.json"), "--public-key", key]), 2)
                finally:
                    sys.stdout = old
            rep = self.verify(seeded)
            self.assertEqual(rep["seeded_releases"], 3)

    def test_show_json_export_is_refused(self):
        row = {"seq": 1, "kind": "release", "hash": "00" * 32, "signature": "00" * 64}
        self.assertFails([row], 1, "no entry text")


class Pld(unittest.TestCase):
    """The verifier's own PLD bracket against values computed another way."""

    @staticmethod
    def analytic_gaussian(s, delta):
        # Balle & Wang 2018, Thm. 8: the Gaussian mechanism with sensitivity 1
        # and noise s is (eps, delta)-DP iff
        #   Phi(1/(2s) - eps s) - e^eps Phi(-1/(2s) - eps s) <= delta.
        from scipy.optimize import brentq
        from scipy.stats import norm

        f = lambda e: norm.cdf(0.5 / s - e * s) - np.exp(e) * norm.cdf(-0.5 / s - e * s) - delta
        return 0.0 if f(0.0) <= 0 else brentq(f, 0.0, 200.0, xtol=1e-14, rtol=1e-14)

    def test_no_sampling_closed_form(self):
        # q = 1: T releases at sigma compose to one Gaussian at sigma / sqrt(T).
        for s, t, delta in ((0.5, 1, 1e-5), (1.0, 10, 1e-5), (2.0, 10, 1e-9), (5.0, 30, 1e-3)):
            want = self.analytic_gaussian(s / np.sqrt(t), delta)
            b = fv.PldBracket(fv.pld_grid(t, want, [(1.0, s)]))
            for _ in range(t):
                b.compose(1.0, s)
            lo, hi = b.epsilon(delta)
            self.assertLessEqual(lo, want * (1 + 1e-9), (s, t, delta))
            self.assertGreaterEqual(hi, want * (1 - 1e-9), (s, t, delta))
            self.assertLess(hi - lo, 0.006 * want + 1e-9, (s, t, delta, lo, hi))

    def test_sampled_against_reference_and_rdp(self):
        # q 0.01, sigma 1.1, 100 releases, delta 1e-5: Google's dp_accounting
        # PLD states 0.550 (three digits); RDP states 0.956.
        b = fv.PldBracket(fv.pld_grid(100, 0.55, [(0.01, 1.1)]), 1e-14)
        for _ in range(100):
            b.compose(0.01, 1.1)
        lo, hi = b.epsilon(1e-5)
        self.assertLessEqual(lo, 0.5505)
        self.assertGreaterEqual(hi, 0.5495)
        self.assertLess(hi - lo, 0.005 * hi)
        rdp = fv.rdp_epsilon(fv.rdp_sgm(0.01, 1.1) * 100, 1e-5)[0]
        self.assertLess(hi, rdp)
        self.assertLess(abs(rdp - 0.956), 0.001)

    def test_monotone(self):
        def bracket(q, s, t):
            b = fv.PldBracket(2.0**-10)
            for _ in range(t):
                b.compose(q, s)
            return b.epsilon(1e-5)

        base = bracket(0.2, 1.0, 5)
        self.assertLessEqual(bracket(0.2, 1.5, 5)[1], base[0])  # more noise
        self.assertGreaterEqual(bracket(0.4, 1.0, 5)[0], base[1])  # more sampling
        self.assertGreaterEqual(bracket(0.2, 1.0, 6)[0], base[1])  # one more release

    def test_epsilon_of_discrete_distribution(self):
        # Two atoms: delta(eps) = 0.5 (1 - e^(eps - 1)) for eps < 1.
        d = (0, np.array([0.5, 0.5]), 0.0)
        eps = fv._pld_epsilon(d, 1.0, 0.1)
        self.assertAlmostEqual(0.5 * -np.expm1(eps - 1.0), 0.1, places=12)
        self.assertEqual(fv._pld_epsilon((0, np.array([1.0]), 0.2), 1.0, 0.1), float("inf"))
        self.assertEqual(fv._pld_epsilon(d, 1.0, 0.5), 0.0)


class ChainV3(ChainCase):
    """v3 chains: the accountant in force, PLD epsilons, mixed histories."""

    @classmethod
    def setUpClass(cls):
        cls.sk = nacl.signing.SigningKey(b"\x03" * 32)
        cls.pk = bytes(cls.sk.verify_key)
        b = fv.PldBracket(PLD_H, 1e-14)
        cls.eps = [0.0]
        for _ in range(4):
            b.compose(MECH["sampling_rate"], MECH["noise_multiplier"])
            cls.eps.append(b.epsilon(1e-5)[1])

    def specs(self):
        cap = (self.eps[2] + self.eps[3]) / 2  # room for 2 releases, not 3
        P = fv.ACCOUNTANT_PLD
        return [
            ("release", 1, cap, 1e-5, P),
            ("abandonment", 2, cap, 1e-5, P),
            ("release", 3, cap, 1e-5, P),
            ("refusal", 4, cap, 1e-5, P),
            ("budget", 0, 100.0, 1e-6, P),
            ("release", 5, 100.0, 1e-6, P),
        ]

    def test_clean(self):
        rep = self.verify(build_chain(self.specs(), self.sk))
        self.assertEqual((rep["entries"], rep["releases"], rep["refusals"]), (6, 3, 1))
        self.assertEqual(rep["accountant"], fv.ACCOUNTANT_PLD)
        lo, hi = rep["epsilon_bracket"]
        self.assertTrue(lo <= rep["epsilon"] <= 1.01 * hi, rep)

    def test_rdp_in_v3(self):
        specs = [s[:4] + (fv.ACCOUNTANT,) for s in self.specs()]
        cap = (self.rdp(2) + self.rdp(3)) / 2
        specs = [(k, r, cap if e != 100.0 else e, d, a) for k, r, e, d, a in specs]
        rep = self.verify(build_chain(specs, self.sk))
        self.assertEqual((rep["accountant"], rep["epsilon_bracket"]), (fv.ACCOUNTANT, None))

        def tweak(i, e):
            if i == 2:
                e["epsilon"] *= 0.99

        self.assertFails(build_chain(specs, self.sk, tweak), 3, "epsilon is")

    @staticmethod
    def rdp(k):
        return fv.rdp_epsilon(fv.rdp_sgm(MECH["sampling_rate"], MECH["noise_multiplier"]) * k, 1e-5)[0]

    def test_mixed_history(self):
        # v2 under rdp, then a budget entry moves to pld: the PLD is composed
        # over every release since the start, the v2 ones included.
        specs = [
            ("release", 1, 50.0, 1e-5),
            ("release", 2, 50.0, 1e-5),
            ("budget", 0, 50.0, 1e-5, fv.ACCOUNTANT_PLD),
            ("release", 3, 50.0, 1e-5, fv.ACCOUNTANT_PLD),
        ]
        rep = self.verify(build_chain(specs, self.sk))
        self.assertEqual(rep["budget_changes"][0]["to"], [50.0, 1e-5, fv.ACCOUNTANT_PLD])
        self.assertLess(abs(rep["epsilon"] / self.eps[3] - 1), 1e-12)
        self.assertLess(rep["epsilon"], self.rdp(3))
        # back to v2 after v3
        back = build_chain(specs + [("release", 4, 50.0, 1e-5)], self.sk)
        self.assertFails(back, 5, "a v2 entry follows a v3 entry")

    def test_accountant_changed_without_budget_entry(self):
        specs = self.specs()
        specs[2] = ("release", 3, specs[2][2], 1e-5, fv.ACCOUNTANT)
        self.assertFails(build_chain(specs, self.sk), 3, "accountant changed without a budget entry")

    def test_understated_and_overstated(self):
        for factor, words in ((0.98, "below the true epsilon"), (1.03, "more than 1% above")):
            def tweak(i, e):
                if i == 2:
                    e["epsilon"] *= factor

            self.assertFails(build_chain(self.specs(), self.sk, tweak), 3, words)

    def test_release_over_budget(self):
        cap = (self.eps[1] + self.eps[2]) / 2
        specs = [("release", r, cap, 1e-5, fv.ACCOUNTANT_PLD) for r in (1, 2)]
        self.assertFails(build_chain(specs, self.sk), 2, "over its budget")

    def test_refusal_that_fit(self):
        specs = [(k, r, 100.0, d, a) for k, r, _, d, a in self.specs()[:4]]
        self.assertFails(build_chain(specs, self.sk), 4, "refused a release that fit")

    def test_rdp_fields_refused_in_v3(self):
        text = build_chain(self.specs()[:1], self.sk)[0]["entry"]
        with self.assertRaises(ValueError):
            fv.parse_entry(text.replace('"accountant":"pld-sgm-v1"', '"accountant":"pld-sgm-v2"'))
        with self.assertRaises(ValueError):
            fv.parse_entry(text.replace('"epsilon":', '"order":0,"epsilon":'))
        v2 = build_chain([("release", 1, 50.0, 1e-5)], self.sk)[0]["entry"]
        with self.assertRaises(ValueError):  # pld needs v3
            fv.parse_entry(v2.replace('"accountant":"rdp-sgm-v1"', '"accountant":"pld-sgm-v1"'))


if __name__ == "__main__":
    unittest.main(verbosity=2)
