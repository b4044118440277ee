#!/usr/bin/python3
"""Regenerates the privacy known-answer vectors in this directory.

Every number here comes from a method independent of src/privacy:

  rdp_integer.txt     exact binomial sum of Mironov-Talwar-Zhang (2019) A_alpha
                      in Python decimal arithmetic at 100 significant digits
  rdp_fractional.txt  numerical integration of the defining integral
                      A_alpha = E_{z~N(0,s^2)}[(1 - q + q exp((2z-1)/(2 s^2)))^alpha]
                      (trapezoid rule on a fine uniform grid, numpy float64)
  rdp_epsilon.txt     the two above at all 156 orders, composed over T rounds and
                      converted with eps = rdp + log((a-1)/a) - (log(delta) + log(a))/(a-1)
  crypto_kat.txt      SHA-256, Ed25519, X25519 and ChaCha20 from python3-cryptography
                      (OpenSSL) and hashlib, checked against FIPS 180-4, RFC 8032
                      Sec. 7.1 and RFC 7748 Sec. 6.1
  noise_seeded.txt    the documented noise construction re-implemented here with
                      python3-cryptography's ChaCha20 and libm's log, cos and sin
  ledger_entry_v1.txt the documented canonical encoding re-implemented here,
  ledger_entry_v2.txt hashed with hashlib and signed with python3-cryptography

Run with Debian's interpreter (it has numpy and cryptography):
    /usr/bin/python3 tests/vectors/gen_vectors.py
"""

import hashlib
import math
import os
import struct
from decimal import Decimal, localcontext

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

HERE = os.path.dirname(os.path.abspath(__file__))

ORDERS = [(11 + i) / 10.0 for i in range(99)] + [float(a) for a in range(11, 64)] + [
    128.0, 256.0, 512.0, 1024.0]


def write(name, header, lines):
    with open(os.path.join(HERE, name), "w") as f:
        for h in header:
            f.write("# " + h + "\n" if h else "#\n")
        for line in lines:
            f.write(line + "\n")


def g17(x):
    return "%.17g" % x


# --------------------------------------------------------------- integer orders

def rdp_integer(q, sigma, alpha):
    """RDP at integer alpha: log(A)/(alpha-1), A summed exactly (MTZ 2019 Sec. 3.3)."""
    with localcontext() as ctx:
        ctx.prec = 100
        ctx.Emax = 999999999
        ctx.Emin = -999999999
        dq, ds = Decimal(q), Decimal(sigma)  # exact binary values of the doubles
        one = Decimal(1)
        a = Decimal(0)
        for k in range(alpha + 1):
            a += (Decimal(math.comb(alpha, k)) * (one - dq) ** (alpha - k) * dq ** k *
                  (Decimal(k * k - k) / (2 * ds * ds)).exp())
        return float(a.ln() / (alpha - 1))


# ------------------------------------------------------------ fractional orders

def log_h(x, alpha):
    """log((1+x)^alpha - 1 - alpha x) for x > -1 (>= 0 by Bernoulli's inequality)."""
    out = np.empty_like(x)
    small = np.abs(x) < 1e-3
    xs = x[small]
    # (1+x)^a - 1 - a x = sum_{k>=2} C(a,k) x^k
    acc = np.zeros_like(xs)
    c = alpha
    for k in range(2, 12):
        c = c * (alpha - k + 1) / k
        acc += c * xs ** k
    out[small] = np.log(acc)
    big = ~small
    xb = x[big]
    la = alpha * np.log1p(xb)
    mid = la < 600
    res = np.empty_like(xb)
    res[mid] = np.log(np.expm1(la[mid]) - alpha * xb[mid])
    lh = la[~mid]
    res[~mid] = lh + np.log1p(-(1 + alpha * xb[~mid]) * np.exp(-lh))
    out[big] = res
    return out


def rdp_fractional(q, sigma, alpha, n=400001):
    """RDP at any alpha by integrating A - 1 = E[(1 + qY)^a - 1 - a q Y], Y = L - 1, E[Y] = 0."""
    lo, hi = -40.0 * sigma - 1.0, alpha + 40.0 * sigma + 1.0
    z = np.linspace(lo, hi, n)
    t = (2 * z - 1) / (2 * sigma * sigma)
    with np.errstate(over="ignore"):
        y = np.where(t < 700, np.expm1(t), np.inf)
        x = q * y
    log_phi = -z * z / (2 * sigma * sigma) - math.log(sigma * math.sqrt(2 * math.pi))
    lg = np.empty_like(z)
    fin = np.isfinite(x)
    lg[fin] = log_h(x[fin], alpha)
    # where exp(t) overflows, (1+x)^a dominates: log = a (log q + t)
    lg[~fin] = alpha * (math.log(q) + t[~fin])
    lf = log_phi + lg
    m = np.max(lf)
    w = np.exp(lf - m)
    integral = np.trapz(w, z)
    log_a_minus_1 = m + math.log(integral)
    log_a = np.logaddexp(0.0, log_a_minus_1)
    return float(log_a / (alpha - 1))


def rdp_q1(sigma, alpha):
    return alpha / (2 * sigma * sigma)


def rdp_vector(q, sigma):
    out = []
    for a in ORDERS:
        if q == 1.0:
            out.append(rdp_q1(sigma, a))
        elif a == int(a):
            out.append(rdp_integer(q, sigma, int(a)))
        else:
            out.append(rdp_fractional(q, sigma, a))
    return out


def epsilon(rdp, delta):
    best, order = math.inf, 0.0
    for r, a in zip(rdp, ORDERS):
        e = r + math.log1p(-1.0 / a) - (math.log(delta) + math.log(a)) / (a - 1)
        if e < best:
            best, order = e, a
    return max(best, 0.0), order


# ---------------------------------------------------------------------- crypto

def chacha20_stream(key, nbytes):
    # 16-byte nonce = 32-bit LE counter || 96-bit nonce; all zero is the
    # 64-bit-counter, zero-nonce stream of DJB's ChaCha20 for < 2^32 blocks.
    enc = Cipher(algorithms.ChaCha20(key, b"\0" * 16), mode=None).encryptor()
    return enc.update(b"\0" * nbytes)


def noise_groups(seed, groups):
    stream = chacha20_stream(seed, groups * 8192)
    out = []
    for g in range(groups):
        words = struct.unpack("<1024Q", stream[g * 8192:(g + 1) * 8192])
        y = [0.0] * 256
        for p in range(4):
            for i in range(128):
                w1, w2 = words[p * 256 + 2 * i], words[p * 256 + 2 * i + 1]
                u = 1.0 - (w1 >> 12) * 2.0 ** -52
                v = (w2 >> 12) * 2.0 ** -52
                r = math.sqrt(-2.0 * math.log(u))
                y[2 * i] += r * math.cos(2 * math.pi * v)
                y[2 * i + 1] += r * math.sin(2 * math.pi * v)
        out.extend(v / 2.0 for v in y)
    return out


# ---------------------------------------------------------------------- ledger

def canonical(e):
    def d(x):
        return "%.17g" % x

    m = e["mechanism"]
    fmt = e.get("format", 1)
    parts = [
        '{"format":"fedagg-ledger-v%d"' % fmt,
        '"seq":%d' % e["seq"],
        '"kind":"%s"' % e["kind"],
        '"round_id":%d' % e["round_id"],
        '"model_version":%d' % e["model_version"],
    ]
    if fmt >= 2:  # v2: the snapshot digest right after model_version
        parts.append('"snapshot_sha256":"%s"' % e["snapshot_sha256"].hex())
    parts += [
        '"created_at":%d' % e["created_at"],
        '"mechanism":{"clip_norm":%s' % d(m["clip_norm"]),
        '"noise_multiplier":%s' % d(m["noise_multiplier"]),
        '"sampling_rate":%s' % d(m["sampling_rate"]),
        '"cohort_size":%d' % m["cohort_size"],
        '"denominator":%s' % d(m["denominator"]),
        '"denominator_rule":"%s"' % m["denominator_rule"],
        '"weight_bound":%s' % d(m["weight_bound"]),
        '"noise_method":"%s"' % m["noise_method"],
        '"seeded":%s' % ("true" if m["seeded"] else "false"),
        '"trust_policy":"%s"}' % m["trust_policy"],
        '"budget":{"epsilon_max":%s' % d(e["epsilon_max"]),
        '"delta":%s}' % d(e["delta"]),
        '"accountant":"rdp-sgm-v1"',
        '"round_rdp":[%s]' % ",".join(d(x) for x in e["round_rdp"]),
        '"cumulative_rdp":[%s]' % ",".join(d(x) for x in e["cumulative_rdp"]),
        '"epsilon":%s' % d(e["epsilon"]),
        '"order":%s' % d(e["order"]),
        '"prev_hash":"%s"}' % e["prev_hash"].hex(),
    ]
    return ",".join(parts)


def main():
    # RDP at integer orders: exact sums.
    lines = []
    for q in (1e-6, 1e-3, 0.01, 0.1, 0.5, 0.9):
        for sigma in (0.3, 0.7, 1.1, 3.0, 10.0, 100.0):
            for a in (2, 3, 7, 10, 32, 63, 256, 1024):
                lines.append("%s %s %d %s" % (g17(q), g17(sigma), a, g17(rdp_integer(q, sigma, a))))
    write("rdp_integer.txt",
          ["RDP of one release of the Poisson-sampled Gaussian mechanism at integer orders.",
           "Method: A = sum_k C(a,k) (1-q)^(a-k) q^k exp((k^2-k)/(2 s^2)) (Mironov, Talwar,",
           "Zhang 2019, Sec. 3.3) summed exactly in Python decimal at 100 digits from the",
           "binary values of q and s; rdp = ln(A)/(a-1). Generator: gen_vectors.py.",
           "columns: q sigma alpha rdp"], lines)

    # RDP at fractional orders: numerical integration.
    lines = []
    for q in (1e-6, 1e-3, 0.01, 0.1, 0.25, 0.5, 0.9):
        for sigma in (0.3, 0.7, 1.1, 3.0, 10.0, 100.0):
            for a in (1.1, 1.5, 2.5, 4.3, 7.7, 10.9):
                lines.append("%s %s %s %s" % (g17(q), g17(sigma), g17(a),
                                              g17(rdp_fractional(q, sigma, a))))
    write("rdp_fractional.txt",
          ["RDP of one release of the Poisson-sampled Gaussian mechanism at fractional orders.",
           "Method: numerical integration of the defining integral (Mironov, Talwar, Zhang",
           "2019, Sec. 3) A - 1 = E_{z~N(0,s^2)}[(1+qY)^a - 1 - a q Y], Y = exp((2z-1)/(2s^2)) - 1,",
           "in log space by the trapezoid rule on 400001 points over [-40s-1, a+40s+1]",
           "(numpy float64; exponentially convergent for this analytic integrand).",
           "Generator: gen_vectors.py. columns: q sigma alpha rdp"], lines)

    # Epsilon after T rounds.
    lines = []
    for q, sigma, rounds, delta in ((0.01, 1.1, 10000, 1e-5), (256.0 / 60000.0, 1.1, 14062, 1e-5),
                                    (1.0, 1.0, 1, 1e-5), (0.1, 3.0, 500, 1e-6)):
        rdp = rdp_vector(q, sigma)
        eps, order = epsilon([rounds * r for r in rdp], delta)
        lines.append("%s %s %d %s %s %s" % (g17(q), g17(sigma), rounds, g17(delta), g17(eps),
                                            g17(order)))
    write("rdp_epsilon.txt",
          ["(epsilon, delta) after T identical releases of the sampled Gaussian mechanism.",
           "Method: RDP at the 156 fixed orders from the two methods above (closed form",
           "a/(2 s^2) when q = 1), multiplied by T, converted with",
           "eps = min_a rdp(a) + log((a-1)/a) - (log(delta) + log(a))/(a-1)",
           "(Balle et al. 2020 Thm. 21; Canonne, Kamath, Steinke 2020 Prop. 12).",
           "Row 2 is DP-SGD on MNIST as usually quoted (batch 256 of 60000, 60 epochs).",
           "Generator: gen_vectors.py. columns: q sigma rounds delta epsilon order"], lines)

    # Crypto known answers.
    lines = []
    for msg in (b"", b"abc", b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"):
        lines.append("sha256 %s %s" % (msg.hex() or "-", hashlib.sha256(msg).hexdigest()))
    # FIPS 180-4 examples (via NIST's published values)
    assert lines[1].endswith("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    rfc8032 = [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", ""),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "72"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7", "af82"),
    ]
    for seed_hex, msg_hex in rfc8032:
        sk = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
        pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        sig = sk.sign(bytes.fromhex(msg_hex))
        lines.append("ed25519 %s %s %s %s" % (seed_hex, pk.hex(), msg_hex or "-", sig.hex()))
        if seed_hex == rfc8032[0][0]:  # RFC 8032 Sec. 7.1 TEST 1, as published
            assert pk.hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
            assert sig.hex() == ("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                                 "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    for sk_hex in ("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
                   "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"):
        sk = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(sk_hex))
        pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        lines.append("x25519 %s %s" % (sk_hex, pk.hex()))
    # RFC 7748 Sec. 6.1, as published
    assert lines[-2].endswith("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert lines[-1].endswith("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    key = bytes(range(32))
    lines.append("chacha20 %s %s" % (key.hex(), chacha20_stream(key, 192).hex()))
    write("crypto_kat.txt",
          ["Known answers for privacy/crypto. Computed with hashlib and python3-cryptography",
           "(OpenSSL); the first rows of each kind equal FIPS 180-4 (SHA-256 of '' and 'abc'),",
           "RFC 8032 Sec. 7.1 TEST 1-3 (Ed25519) and RFC 7748 Sec. 6.1 (X25519 public keys).",
           "chacha20: the first 192 keystream bytes, zero nonce, block counter from 0.",
           "rows: sha256 <msg hex|-> <digest>",
           "      ed25519 <seed> <public key> <msg hex|-> <signature>",
           "      x25519 <secret> <public key>",
           "      chacha20 <key> <keystream>",
           "Generator: gen_vectors.py."], lines)

    # Seeded noise: the first two groups (512 samples).
    seed = bytes(range(32))
    z = noise_groups(seed, 2)
    write("noise_seeded.txt",
          ["N(0,1) samples of the seeded noise sampler, seed = 00 01 02 ... 1f.",
           "Method: the construction of docs/privacy.md re-implemented in Python: ChaCha20",
           "keystream (python3-cryptography), u = 1 - (w1>>12) 2^-52, v = (w2>>12) 2^-52,",
           "Box-Muller with libm log/cos/sin, four passes per group of 256, sum / 2.",
           "Agreement with the C kernels is to ~1e-14 (libm vs the module's own ln/sincos).",
           "Generator: gen_vectors.py. One sample per line, groups 0 and 1 in order."],
          [g17(v) for v in z])

    ledger_vectors(ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(rfc8032[0][0])))


def ledger_vectors(sk):
    """ledger_entry_v1.txt and ledger_entry_v2.txt, signed with sk (RFC 8032 TEST 1)."""
    # Ledger entry: a release at q = 1, sigma = 2 (closed-form RDP a/8).
    round_rdp = [a / (2 * 2.0 * 2.0) for a in ORDERS]
    eps, order = epsilon(round_rdp, 1e-5)
    entry = {
        "seq": 1, "kind": "release", "round_id": 7, "model_version": 3, "created_at": 1700000000,
        "mechanism": {"clip_norm": 1.0, "noise_multiplier": 2.0, "sampling_rate": 1.0,
                      "cohort_size": 100, "denominator": 100.0,
                      "denominator_rule": "max(cohort,min_cohort)", "weight_bound": 1.0,
                      "noise_method": "gauss-sum4-boxmuller-chacha20", "seeded": False,
                      "trust_policy": "none"},
        "epsilon_max": 50.0, "delta": 1e-5, "round_rdp": round_rdp, "cumulative_rdp": round_rdp,
        "epsilon": eps, "order": order, "prev_hash": bytes(32),
    }
    text = canonical(entry)
    digest = hashlib.sha256(text.encode()).digest()
    write("ledger_entry_v1.txt",
          ["A ledger entry in the v1 canonical encoding (docs/privacy.md), its SHA-256 and",
           "its Ed25519 signature (the signed message is the 32-byte hash) under the RFC 8032",
           "TEST 1 key. Method: the encoding re-implemented in Python from the documentation,",
           "hashlib, python3-cryptography. The entry: seq 1, release of round 7 producing",
           "version 3 at 1700000000, S = 1, sigma = 2, q = 1, cohort 100, denominator 100",
           "(max(cohort,min_cohort)), budget (50, 1e-5), RDP a/8 at every order.",
           "Generator: gen_vectors.py. Lines: text, sha256 hex, signature hex."],
          [text, digest.hex(), sk.sign(digest).hex()])

    # v2: the same release naming its snapshot, then a budget event.
    release = dict(entry, format=2, round_id=1, model_version=1,
                   snapshot_sha256=hashlib.sha256(b"fedagg snapshot 1").digest())
    text1 = canonical(release)
    hash1 = hashlib.sha256(text1.encode()).digest()
    eps2, order2 = epsilon(round_rdp, 1e-6)
    budget = dict(release, seq=2, kind="budget", round_id=0, model_version=0,
                  snapshot_sha256=bytes(32), created_at=1700000600,
                  mechanism=dict(entry["mechanism"], cohort_size=0),
                  epsilon_max=60.0, delta=1e-6, round_rdp=[0.0] * len(ORDERS),
                  epsilon=eps2, order=order2, prev_hash=hash1)
    text2 = canonical(budget)
    hash2 = hashlib.sha256(text2.encode()).digest()
    write("ledger_entry_v2.txt",
          ["Two ledger entries in the v2 canonical encoding (docs/privacy.md), each with its",
           "SHA-256 and Ed25519 signature (the signed message is the 32-byte hash) under the",
           "RFC 8032 TEST 1 key. Method: the encoding re-implemented in Python from the",
           "documentation, hashlib, python3-cryptography. Entry 1: the release of",
           "ledger_entry_v1.txt as round 1 producing version 1, snapshot_sha256 =",
           "SHA-256(\"fedagg snapshot 1\"). Entry 2: a budget event at 1700000600 (round 0,",
           "cohort 0) changing the budget to (60, 1e-6), epsilon restated at delta 1e-6.",
           "Generator: gen_vectors.py. Lines: text, sha256 hex, signature hex; twice."],
          [text1, hash1.hex(), sk.sign(hash1).hex(), text2, hash2.hex(), sk.sign(hash2).hex()])

if __name__ == "__main__":
    main()
