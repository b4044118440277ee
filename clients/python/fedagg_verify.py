#!/usr/bin/env python3
"""Independent verifier of the fedagg epsilon ledger, for auditors.

Reads the ledger from a running server (``GET <base>/api/privacy/ledger``)
or from a JSON export, and checks it without any of fedagg's C code:

* each entry's text is in the canonical encoding of docs/privacy.md (v1, v2
  or v3): parsed with ``json``, re-encoded here with the canonical rules (fixed
  key order, no whitespace, doubles as ``%.17g``, integers in decimal, names
  in ``[a-z0-9_.,()+-]``, digests as 64 lower-case hex digits) and required
  to be byte-identical;
* ``hash == SHA-256(text)`` (hashlib) and the Ed25519 signature of the 32-byte
  hash verifies under a public key pinned on the command line (PyNaCl);
* the chain: seq runs 1..n, prev_hash links each entry to the one before,
  formats only move forward (v1, v2, v3);
* the budget in force (epsilon_max, delta, accountant) is set by the first
  entry and changes only through ``budget`` entries; every release kept epsilon <= epsilon_max and every
  refusal would have exceeded it; releases produce versions 1, 2, 3, ...;
  round ids strictly increase;
* the accountant is re-run here, in Python, from the recorded (q, sigma) of
  every release alone: the RDP of the Poisson-sampled Gaussian mechanism
  (Mironov, Talwar, Zhang 2019) at the 156 orders of the accountant
  ``rdp-sgm-v1``, composed by addition and converted to (epsilon, delta)
  with the conversion of Balle et al. 2020 / Canonne, Kamath, Steinke 2020.
  No stored RDP value or epsilon is trusted: each is compared with the
  recomputed one (relative 1e-6). Entries of the accountant ``pld-sgm-v1``
  are checked against this tool's own privacy-loss-distribution bracket
  [lo, hi] of the true epsilon: lo <= stated <= 1.01 hi;
* optionally, that snapshots in hand (``--snapshot``) are named by a release
  entry and that the ledger is not shorter than what the auditor has already
  seen (``--expect-version``, ``--min-seq``, ``--known-head``).

Exit status: 0 the ledger verifies, 1 a discrepancy (one line naming the
entry, e.g. ``ledger entry 17: hash mismatch``), 2 bad usage or unreadable
input. Run with ``--help`` for the options; clients/python/README.md says
what a passing run proves and what it does not.

Needs Python 3, numpy, scipy and PyNaCl (Debian: python3-numpy,
python3-scipy, python3-nacl).
"""

import argparse
import base64
import binascii
import hashlib
import json
import math
import os
import re
import struct
import sys
import urllib.error
import urllib.request

import numpy as np
from scipy import special

__all__ = [
    "ORDERS",
    "Discrepancy",
    "rdp_sgm_order",
    "rdp_sgm",
    "rdp_epsilon",
    "parse_entry",
    "encode_entry",
    "load_ledger",
    "verify_ledger",
    "read_public_key",
]

# ----------------------------------------------------------------- constants

FORMAT_V1 = "fedagg-ledger-v1"
FORMAT_V2 = "fedagg-ledger-v2"
FORMAT_V3 = "fedagg-ledger-v3"
FORMATS = (FORMAT_V1, FORMAT_V2, FORMAT_V3)  # in the order a chain may move through them
ACCOUNTANT = "rdp-sgm-v1"  # the accountant of every v1 and v2 entry
ACCOUNTANT_PLD = "pld-sgm-v1"
ACCOUNTANTS = (ACCOUNTANT, ACCOUNTANT_PLD)
KINDS = ("release", "refusal", "abandonment", "budget")
TEXT_MAX = 16384  # bytes of one canonical entry (docs/privacy.md)
ZERO_HEX = "0" * 64

# The orders of the accountant "rdp-sgm-v1" (docs/privacy.md, src/privacy/rdp.c):
# 1.1, 1.2, ..., 10.9 (each the double nearest (11 + i) / 10), 11, ..., 63,
# 128, 256, 512, 1024.
ORDERS = tuple(
    [(11 + i) / 10 for i in range(99)]
    + [float(a) for a in range(11, 64)]
    + [128.0, 256.0, 512.0, 1024.0]
)
assert len(ORDERS) == 156

SIGMA_MIN, SIGMA_MAX = 0.3, 100.0  # the accountant's validated domain
Q_MIN = 1e-6

# Agreement required between a stored number and its recomputation. The two
# accountants (C and this one) agree to ~1e-12; 1e-6 leaves room for that and
# still catches a 1% (or 0.001%) understatement.
REL_TOL = 1e-6

NAME_RE = re.compile(r"[a-z0-9_.,()+-]{1,47}\Z")
HEX64_RE = re.compile(r"[0-9a-f]{64}\Z")
HEX128_RE = re.compile(r"[0-9a-f]{128}\Z")


class Discrepancy(Exception):
    """The ledger does not verify; seq names the entry (0: none in particular)."""

    def __init__(self, seq, reason):
        super().__init__("ledger entry %d: %s" % (seq, reason) if seq else reason)
        self.seq = seq
        self.reason = reason


class InputError(Exception):
    """The input cannot be read (exit 2)."""


# ================================================================ accountant
#
# References:
#  [M17]   I. Mironov. Renyi Differential Privacy. CSF 2017.
#  [MTZ19] I. Mironov, K. Talwar, L. Zhang. Renyi Differential Privacy of the
#          Sampled Gaussian Mechanism. arXiv:1908.10530, 2019.
#  [BBG20] B. Balle, G. Barthe, M. Gaboardi, J. Hsu, T. Sato. Hypothesis
#          Testing Interpretations and Renyi Differential Privacy. AISTATS 2020.
#  [CKS20] C. Canonne, G. Kamath, T. Steinke. The Discrete Gaussian for
#          Differential Privacy. NeurIPS 2020.
#
# [MTZ19] Sec. 3: with mu0 = N(0, s^2), mu1 = N(1, s^2) and
# L(z) = mu1(z)/mu0(z) = exp((2z - 1) / (2 s^2)), one release at sampling rate
# q has RDP at order a of log(A_a) / (a - 1), where
#     A_a = E_{z ~ mu0}[(1 - q + q L(z))^a].
# Useful identities: mu0(z) L(z)^k = exp((k^2 - k) / (2 s^2)) N(k, s^2)(z), so
#     E_{mu0}[L^k ; z < z0] = exp(c(k)) Phi((z0 - k) / s),
#     E_{mu0}[L^k ; z > z0] = exp(c(k)) Phi((k - z0) / s),
# with c(k) = (k^2 - k) / (2 s^2) and Phi the standard normal CDF.


def _check_domain(q, sigma):
    if not (isinstance(q, float) and math.isfinite(q) and Q_MIN <= q <= 1.0):
        raise ValueError("sampling rate %r is outside [%g, 1]" % (q, Q_MIN))
    if not (isinstance(sigma, float) and math.isfinite(sigma) and SIGMA_MIN <= sigma <= SIGMA_MAX):
        raise ValueError("noise multiplier %r is outside [%g, %g]" % (sigma, SIGMA_MIN, SIGMA_MAX))


def _log_int_a(q, sigma, a):
    """log A_a for an integer order a >= 2 and q < 1 ([MTZ19] Sec. 3.3).

    Binomial expansion of (1 - q + q L)^a and the identity above:
        A_a = sum_{k=0}^{a} C(a,k) (1-q)^(a-k) q^k exp(c(k)).
    The weights C(a,k) (1-q)^(a-k) q^k sum to 1, so
        A_a - 1 = sum_{k=2}^{a} C(a,k) (1-q)^(a-k) q^k expm1(c(k))
    (c(0) = c(1) = 0), a sum of positive terms, summed here in log space.
    Forming A_a - 1 directly keeps its relative precision when it is tiny
    (small q, large sigma), where log(A_a) computed from A_a would not.
    """
    k = np.arange(2, a + 1, dtype=np.float64)
    log_binom = special.gammaln(a + 1.0) - special.gammaln(k + 1.0) - special.gammaln(a - k + 1.0)
    c = (k * k - k) / (2.0 * sigma * sigma)
    # log(expm1(c)) without overflow: c + log1p(-exp(-c)) for large c
    log_expm1_c = np.where(
        c > 30.0,
        c + np.log1p(-np.exp(-np.minimum(c, 700.0))),
        np.log(np.expm1(np.minimum(c, 30.0))),
    )
    terms = log_binom + k * math.log(q) + (a - k) * math.log1p(-q) + log_expm1_c
    log_a_minus_1 = special.logsumexp(terms)
    return float(np.logaddexp(0.0, log_a_minus_1))


class _ScaledSum:
    """A signed sum of terms exp(l) kept as total * exp(scale), in float64."""

    def __init__(self):
        self.scale = None
        self.total = 0.0

    def rescale(self, scale):
        if self.scale is None:
            self.scale = scale
        elif scale > self.scale:
            self.total *= math.exp(self.scale - scale)
            self.scale = scale


_FRAC_CHUNK0 = 256
_FRAC_CHUNK_MAX = 1 << 16
_FRAC_MAX_TERMS = 20_000_000
_FRAC_TOL = 1e-15
_MINUS_ONE_BELOW = 0.25  # q below which the A - 1 form is summed


def _log_frac_a(q, sigma, a):
    """log A_a for a fractional order a > 1 and q < 1 ([MTZ19] Sec. 3.3).

    Split the expectation at z0 = s^2 log(1/q - 1) + 1/2, where q L = 1 - q.
    Below z0, q L < 1 - q and (1 - q + q L)^a = sum_k C(a,k) (1-q)^(a-k) (q L)^k;
    above it, (1 - q + q L)^a = sum_k C(a,k) (q L)^(a-k) (1-q)^k. With the
    identities above (j = a - k):
        A1 = sum_k C(a,k) (1-q)^(a-k) q^k exp(c(k)) Phi((z0 - k) / s)
        A2 = sum_k C(a,k) (1-q)^k q^(a-k) exp(c(j)) Phi((j - z0) / s)
    and A_a = A1 + A2. For non-integer a, C(a,k) > 0 for k <= ceil(a) and
    alternates in sign after that; the terms are added with those signs
    (adding their magnitudes would overstate A_a several-fold). Past ceil(a)
    the magnitudes decrease (like k^-(a+2) once k is past z0), so the series
    alternate: the sum is stopped right after a term with a positive
    coefficient once the largest piece of that term is below 1e-15 of the
    sum, so the part left out is below that too and, where the remainder
    starts with a negative term, the truncated sum is an upper bound.

    For q < 1/4, where A_a - 1 can be tiny, the sum is taken in the A - 1
    form: sum_k C(a,k) (1-q)^(a-k) q^k = 1 (binomial series, q < 1/2), so
        A1 - 1 = sum_k C(a,k) (1-q)^(a-k) q^k [exp(c(k)) Phi((z0-k)/s) - 1]
    with each bracket formed as expm1(c(k) + log Phi(...)) without
    cancellation.
    """
    lq, l1q = math.log(q), math.log1p(-q)
    two_s2 = 2.0 * sigma * sigma
    z0 = sigma * sigma * (l1q - lq) + 0.5
    minus_one = q < _MINUS_ONE_BELOW
    kmin = math.ceil(a) + 1
    log_gamma_a1 = special.gammaln(a + 1.0)
    acc = _ScaledSum()
    k0, chunk = 0, _FRAC_CHUNK0
    while k0 < _FRAC_MAX_TERMS:
        k = np.arange(k0, k0 + chunk, dtype=np.float64)
        j = a - k
        log_binom = log_gamma_a1 - special.gammaln(k + 1.0) - special.gammaln(j + 1.0)
        csign = special.gammasgn(j + 1.0)  # sign of C(a, k) = sign of Gamma(a - k + 1)
        lb1 = log_binom + k * lq + j * l1q
        lb2 = log_binom + k * l1q + j * lq
        e1 = (k * k - k) / two_s2 + special.log_ndtr((z0 - k) / sigma)
        e2 = (j * j - j) / two_s2 + special.log_ndtr((j - z0) / sigma)
        pieces_log = [lb2 + e2]
        pieces_sign = [csign]
        if minus_one:
            bracket = np.expm1(np.minimum(e1, 700.0))
            with np.errstate(divide="ignore"):
                log_br = np.where(e1 > 700.0, e1, np.log(np.abs(bracket)))
            pieces_log.append(lb1 + log_br)
            pieces_sign.append(csign * np.sign(bracket))
            bound = np.maximum(np.maximum(lb1 + e1, lb1), lb2 + e2)  # largest piece of term k
        else:
            pieces_log.append(lb1 + e1)
            pieces_sign.append(csign)
            bound = np.maximum(lb1 + e1, lb2 + e2)
        top = max(float(np.max(p)) for p in pieces_log)
        acc.rescale(top)
        values = sum(s * np.exp(p - acc.scale) for s, p in zip(pieces_sign, pieces_log))
        partial = acc.total + np.cumsum(values)
        # Stop after term k: k >= kmin, C(a, k) > 0, and term k below tol of the sum.
        with np.errstate(divide="ignore", invalid="ignore"):
            log_partial = np.log(partial) + acc.scale
        ok = (k >= kmin) & (csign > 0) & (partial > 0) & (bound < log_partial + math.log(_FRAC_TOL))
        hits = np.flatnonzero(ok)
        if hits.size:
            stop = int(hits[0])
            total = acc.total + math.fsum(values[: stop + 1].tolist())
            log_sum = math.log(total) + acc.scale
            if minus_one:
                return float(np.logaddexp(0.0, log_sum))
            return log_sum
        acc.total += math.fsum(values.tolist())
        k0 += chunk
        chunk = min(chunk * 2, _FRAC_CHUNK_MAX)
    raise ArithmeticError("rdp series did not converge (q=%r, sigma=%r, alpha=%r)" % (q, sigma, a))


_INTEGRAL_BELOW = 1e-2  # log A under which the integral replaces the plain series


def _frac_a_minus_1_integral(q, sigma, a):
    """A_a - 1 from the defining integral ([MTZ19] Sec. 3), for fractional a.

    With Y = L - 1 (E_{mu0}[Y] = 0) and f(x) = (1 + x)^a - 1 - a x >= 0,
        A_a - 1 = E_{z ~ mu0}[f(q Y(z))],
    an integral of a non-negative function, so nothing cancels. f is formed
    from its binomial series sum_{k>=2} C(a,k) x^k for |x| < 1/2 and directly
    otherwise. The integrand is analytic in a strip around the real axis (the
    nearest branch point of (1 + qY)^a is at |Im z| = pi sigma^2) and decays
    like a Gaussian of width sigma, so the trapezoid rule converges
    geometrically in sigma/h: with h = sigma/40 over [-40 sigma - 1,
    a + 40 sigma + 1] it is accurate to rounding. Used where A_a - 1 is small and q >= 1/4: there
    the plain series sums terms of size ~1 to a total within 1e-2 of 1 and
    its rounding (~1e-16 absolute) would dominate the result.
    """
    h = sigma / 40.0
    z = np.arange(-40.0 * sigma - 1.0, a + 40.0 * sigma + 1.0 + h, h)
    t = (2.0 * z - 1.0) / (2.0 * sigma * sigma)
    x = q * np.expm1(t)  # q Y, in (-q, inf)
    small = np.abs(x) < 0.5
    xs = np.where(small, x, 0.0)
    f_small = np.zeros_like(x)
    coef, power = a, xs.copy()  # C(a, 1), x^1
    for k in range(2, 80):
        coef *= (a - k + 1.0) / k
        power = power * xs
        f_small += coef * power
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log_big = a * np.log1p(np.where(small, 0.0, x))  # log (1 + x)^a
        x_big = np.where(small, 0.0, x)
        f_big = np.expm1(np.minimum(log_big, 700.0)) - a * x_big
        log_f = np.where(
            small,
            np.log(np.maximum(f_small, 1e-300)),
            np.where(log_big > 700.0, log_big, np.log(f_big)),  # past 700, f = (1+x)^a to rounding
        )
    log_pdf = -0.5 * (z / sigma) ** 2 - math.log(sigma * math.sqrt(2.0 * math.pi))
    log_g = log_f + log_pdf
    top = float(np.max(log_g))
    return math.fsum(np.exp(log_g - top).tolist()) * h * math.exp(top)


def rdp_sgm_order(q, sigma, alpha):
    """RDP at order alpha > 1 of one release of the Poisson-sampled Gaussian
    mechanism with sampling rate q and noise multiplier sigma ([MTZ19])."""
    q, sigma, alpha = float(q), float(sigma), float(alpha)
    _check_domain(q, sigma)
    if not (math.isfinite(alpha) and 1.0 < alpha <= 10000.0):
        raise ValueError("order %r is outside (1, 10000]" % alpha)
    if q == 1.0:
        return alpha / (2.0 * sigma * sigma)  # the Gaussian mechanism, [M17] Prop. 7
    if alpha == math.floor(alpha):
        log_a = _log_int_a(q, sigma, int(alpha))
    else:
        log_a = _log_frac_a(q, sigma, alpha)
        if q >= _MINUS_ONE_BELOW and log_a < _INTEGRAL_BELOW:
            log_a = math.log1p(_frac_a_minus_1_integral(q, sigma, alpha))
    rdp = log_a / (alpha - 1.0)
    if not (math.isfinite(rdp) and rdp >= 0.0):
        raise ArithmeticError("rdp at order %r is %r (q=%r, sigma=%r)" % (alpha, rdp, q, sigma))
    return rdp


_RDP_CACHE = {}


def rdp_sgm(q, sigma):
    """RDP of one release at each of ORDERS, as a numpy array (memoised)."""
    key = (float(q), float(sigma))
    if key not in _RDP_CACHE:
        if len(_RDP_CACHE) > 64:
            _RDP_CACHE.clear()
        _RDP_CACHE[key] = np.array([rdp_sgm_order(key[0], key[1], a) for a in ORDERS])
    return _RDP_CACHE[key]


def rdp_epsilon_all(rdp, delta):
    """Epsilon at delta from the RDP at each order ([BBG20] Thm. 21, [CKS20] Prop. 12):
    eps(a) = rdp(a) + log((a - 1)/a) - (log(delta) + log(a)) / (a - 1)."""
    a = np.array(ORDERS)
    rdp = np.asarray(rdp, dtype=np.float64)
    return rdp + np.log1p(-1.0 / a) - (math.log(delta) + np.log(a)) / (a - 1.0)


def rdp_epsilon(rdp, delta):
    """(epsilon, order): the smallest epsilon over the orders at delta, and
    the order attaining it; (0.0, 0.0) when nothing was spent."""
    rdp = np.asarray(rdp, dtype=np.float64)
    if not (0.0 < delta < 1.0):
        raise ValueError("delta %r is outside (0, 1)" % delta)
    if rdp.shape != (len(ORDERS),) or not np.all(np.isfinite(rdp)) or np.any(rdp < 0):
        raise ValueError("rdp vector is malformed")
    if not np.any(rdp > 0):
        return 0.0, 0.0
    eps = rdp_epsilon_all(rdp, delta)
    i = int(np.argmin(eps))
    return max(float(eps[i]), 0.0), ORDERS[i]


# ===================================================== the PLD accountant
#
# The accountant "pld-sgm-v1" of the server states an upper bound on the true
# epsilon of the composition, at most 1% above it. Its exact bits come from
# its own discretisation, which is not reproduced here: this tool computes a
# rigorous bracket [eps_lo, eps_hi] of the true epsilon with its own
# privacy-loss-distribution code and requires eps_lo <= stated <= 1.01 eps_hi.
#
# References:
#  [KJH20]  A. Koskela, J. Jalko, A. Honkela. Computing Tight Differential
#           Privacy Guarantees Using FFT. AISTATS 2020.
#  [MM18]   S. Meiser, E. Mohammadi. Tight on Budget? Tight Bounds for r-Fold
#           Approximate Differential Privacy. CCS 2018 (privacy buckets).
#  [ZDW22]  Y. Zhu, J. Dong, Y.-X. Wang. Optimal Accounting of Differential
#           Privacy via Characteristic Function. AISTATS 2022, Thm. 11.
#
# One release at (q, sigma), sensitivity 1, add/remove adjacency has the
# dominating pairs ([ZDW22]) A = (1-q) N(0, s^2) + q N(1, s^2) and
# B = N(0, s^2): "remove" is the loss L = log(A/B)(x) for x ~ A, "add" is
# log(B/A)(x) for x ~ B, both monotone in x with
#     L(x) = log(1 - q + q exp(t)),  t = (2x - 1) / (2 s^2).
# A direction is held as masses p[i] at losses (off + i) h plus a mass at
# +infinity. Rounding every bucket (l_{k-1}, l_k] of the loss down to l_{k-1}
# gives a distribution dominated by the true one (each composed delta(eps) is
# a lower bound), rounding it up to l_k one that dominates it (an upper
# bound) ([MM18], [KJH20]); mass cut from the tails is dropped in the first
# and moved to +infinity (upper tail) or to the lowest kept loss (lower tail)
# in the second. Composition convolves the distributions, and
#     delta(eps) = p_inf + sum_{l_i > eps} p_i (1 - exp(eps - l_i)),
# epsilon being the smallest eps >= 0 with delta(eps) <= delta, the larger
# of the two directions'.

_PLD_X_SIGMAS = 12.0  # x beyond 12 sigma of either mean: ~1.8e-33 per tail
# Mass cut per side from one release and after each convolution (eta): moved
# to +infinity in the upper bound (it adds to delta), dropped in the lower
# one. Either way the bound stays a bound; the verifier sets eta so that all
# the cuts together move delta by at most 1e-4 of the smallest delta stated.
_PLD_TRIM = 1e-16
_PLD_RELEASE_POINTS = 1 << 19  # grid points of one release, before trimming
_PLD_MAX_POINTS = 1 << 23


def _ndtr(z):
    return special.ndtr(z)


def _x_of_loss(q, sigma, l):
    """x with L(x) = l (remove direction); -inf where l <= log(1 - q)."""
    l = np.asarray(l, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = (np.expm1(l) + q) / q
        t = np.where(inner > 0, np.log(np.where(inner > 0, inner, 1.0)), -np.inf)
    return sigma * sigma * t + 0.5


def _loss_of_x(q, sigma, x):
    t = (2.0 * x - 1.0) / (2.0 * sigma * sigma)
    if q == 1.0:
        return t
    return float(np.logaddexp(math.log1p(-q), math.log(q) + t))


def _loss_range(q, sigma, direction):
    """The losses of x within 12 sigma of either mean."""
    la = _loss_of_x(q, sigma, -_PLD_X_SIGMAS * sigma)
    lb = _loss_of_x(q, sigma, 1.0 + _PLD_X_SIGMAS * sigma)
    return (la, lb) if direction == "remove" else (-lb, -la)


def _release_points(q, sigma, h):
    return max(
        (hi - lo) / h + 2 for lo, hi in (_loss_range(q, sigma, d) for d in ("remove", "add"))
    )


def _release_pld(q, sigma, h, direction, upper):
    """(off, p, pinf) of one release on grid h, rounded down (upper=False) or up."""
    s = sigma
    lmin, lmax = _loss_range(q, s, direction)
    k0, k1 = int(math.floor(lmin / h)), int(math.ceil(lmax / h))
    if k1 - k0 + 1 > _PLD_MAX_POINTS:
        raise ArithmeticError("grid %g is too fine for q %g, sigma %g" % (h, q, s))
    ks = np.arange(k0, k1 + 1, dtype=np.float64)
    grid = ks * h
    if direction == "remove":
        # P(L <= l) = F_A(x(l)), with x ~ A = (1-q) N(0, s^2) + q N(1, s^2)
        xs = _x_of_loss(q, s, grid)
        cdf = (1.0 - q) * _ndtr(xs / s) + q * _ndtr((xs - 1.0) / s)
        sf = (1.0 - q) * _ndtr(-xs / s) + q * _ndtr((1.0 - xs) / s)
    else:
        # the add loss is -L(x) with x ~ B = N(0, s^2): P(-L <= l) = P(x >= x(-l))
        xs = _x_of_loss(q, s, -grid)
        cdf = _ndtr(-xs / s)
        sf = _ndtr(xs / s)
    # Bucket masses (l_{k-1}, l_k], each from the more precise side.
    lo_side = np.diff(cdf)
    hi_side = -np.diff(sf)
    mid = cdf[1:] < 0.5
    mass = np.maximum(np.where(mid, lo_side, hi_side), 0.0)
    below, above = max(float(cdf[0]), 0.0), max(float(sf[-1]), 0.0)
    if upper:
        p = mass.copy()  # bucket (l_{k-1}, l_k] at l_k: indices k0+1..k1
        p[0] += below  # everything at or below l_k0 moves up to l_{k0+1}
        return k0 + 1, p, above
    return k0, mass, 0.0  # at l_{k-1}: indices k0..k1-1; the tails are dropped


def _trim(off, p, pinf, upper, eta=_PLD_TRIM):
    """Cuts up to eta of mass from each end: in the upper bound the low end
    moves up onto the first point kept and the high end to +infinity."""
    if not p.sum() > 0:
        return off, np.array([0.0]), pinf
    c = np.cumsum(p)
    i0 = int(np.searchsorted(c, eta, side="right"))
    r = np.cumsum(p[::-1])
    j = int(np.searchsorted(r, eta, side="right"))
    i1 = len(p) - j
    if i0 >= i1:
        return off, p, pinf
    kept = p[i0:i1].copy()
    if upper:
        kept[0] += float(c[i0 - 1]) if i0 > 0 else 0.0
        pinf += float(r[j - 1]) if j > 0 else 0.0
    return off + i0, kept, pinf


def _convolve(a, b, upper, eta=_PLD_TRIM):
    from scipy.signal import fftconvolve

    (oa, pa, ia), (ob, pb, ib) = a, b
    if min(len(pa), len(pb)) < 64:
        p = np.convolve(pa, pb)
    else:
        # FFT round-off (~1e-16 of the total) can go negative; it stays far
        # below the masses that decide epsilon at delta >= 1e-9.
        p = np.maximum(fftconvolve(pa, pb), 0.0)
    if len(p) > _PLD_MAX_POINTS:
        raise ArithmeticError("the composition outgrew %d grid points" % _PLD_MAX_POINTS)
    pinf = 1.0 - (1.0 - ia) * (1.0 - ib)
    return _trim(oa + ob, p, pinf, upper, eta)


def _pld_epsilon(d, h, delta):
    """The smallest eps >= 0 with delta(eps) <= delta, exactly for the
    discrete distribution d: between two adjacent losses the set {l > eps}
    is fixed and delta(eps) = pinf + S1 - exp(eps) S2, S1 and S2 the sums of
    p and p exp(-l) over it, which is solved for eps in closed form."""
    off, p, pinf = d
    if pinf > delta:
        return math.inf
    l = (off + np.arange(len(p))) * h
    pos = l > 0.0  # eps >= 0: losses <= 0 never count
    lp, pp = l[pos], p[pos]
    if lp.size == 0:
        return 0.0
    s1 = np.append(np.cumsum(pp[::-1])[::-1], 0.0)  # s1[k] = sum_{j >= k}
    s2 = np.append(np.cumsum((pp * np.exp(-lp))[::-1])[::-1], 0.0)
    if pinf + s1[0] - s2[0] <= delta:
        return 0.0
    # at eps = lp[k] the losses above are j >= k+1
    at = pinf + s1[1:] - np.exp(lp) * s2[1:]
    k = int(np.argmax(at <= delta))  # at[-1] = pinf <= delta: one exists
    lo = lp[k - 1] if k > 0 else 0.0
    eps = math.log((pinf + s1[k] - delta) / s2[k]) if s2[k] > 0 else lp[k]
    return float(min(max(eps, lo), lp[k]))


class PldBracket:
    """A running composition of releases, as a lower and an upper PLD per
    direction on one grid h; epsilon(delta) -> (eps_lo, eps_hi)."""

    def __init__(self, h, eta=_PLD_TRIM):
        self.h = h
        self.eta = eta
        one = (0, np.array([1.0]), 0.0)
        self.d = {(dr, up): one for dr in ("remove", "add") for up in (False, True)}
        self.releases = 0
        self._memo = {}

    def copy(self):
        c = PldBracket(self.h, self.eta)
        c.d = dict(self.d)
        c.releases = self.releases
        c._memo = self._memo
        return c

    def compose(self, q, sigma):
        _check_domain(q, sigma)
        for key in self.d:
            mk = (q, sigma, key)
            if mk not in self._memo:
                self._memo[mk] = _trim(
                    *_release_pld(q, sigma, self.h, key[0], key[1]), key[1], self.eta
                )
            self.d[key] = _convolve(self.d[key], self._memo[mk], key[1], self.eta)
        self.releases += 1

    def epsilon(self, delta):
        if self.releases == 0:
            return 0.0, 0.0
        lo = max(_pld_epsilon(self.d[(dr, False)], self.h, delta) for dr in ("remove", "add"))
        hi = max(_pld_epsilon(self.d[(dr, True)], self.h, delta) for dr in ("remove", "add"))
        return lo, hi


def pld_grid(releases, epsilon_scale, mechanisms=()):
    """A grid spacing for a bracket over `releases` releases whose epsilon is
    about epsilon_scale: rounding moves each release's loss by at most h,
    so the bracket is about releases * h wide; aim at 0.4% of epsilon_scale.
    A power of two in [2^-24, 2^-4], coarsened until each of the mechanisms
    (q, sigma) fits in _PLD_RELEASE_POINTS grid points."""
    target = 0.004 * max(epsilon_scale, 0.02) / max(releases, 1)
    k = max(-24, min(-4, math.floor(math.log2(target))))
    while k < -4 and any(_release_points(q, s, 2.0**k) > _PLD_RELEASE_POINTS for q, s in mechanisms):
        k += 1
    return 2.0**k


# ========================================================= canonical encoding

# (key, type) in canonical order. Types: i int, d double, s name, k kind,
# b bool, h digest, v rdp vector, f format, a accountant, {..} object.
MECH_FIELDS = (
    ("clip_norm", "d"),
    ("noise_multiplier", "d"),
    ("sampling_rate", "d"),
    ("cohort_size", "i"),
    ("denominator", "d"),
    ("denominator_rule", "s"),
    ("weight_bound", "d"),
    ("noise_method", "s"),
    ("seeded", "b"),
    ("trust_policy", "s"),
)
BUDGET_FIELDS = (("epsilon_max", "d"), ("delta", "d"))


def _fields(fmt):
    head = [("format", "f"), ("seq", "i"), ("kind", "k"), ("round_id", "i"), ("model_version", "i")]
    if fmt in (FORMAT_V2, FORMAT_V3):
        head.append(("snapshot_sha256", "h"))
    head += [
        ("created_at", "i"),
        ("mechanism", MECH_FIELDS),
        ("budget", BUDGET_FIELDS),
        ("accountant", "a"),
    ]
    if fmt == FORMAT_V3:
        # v3 records the mechanism and the accountant's name, not its state.
        return tuple(head + [("epsilon", "d"), ("prev_hash", "h")])
    return tuple(
        head
        + [
            ("round_rdp", "v"),
            ("cumulative_rdp", "v"),
            ("epsilon", "d"),
            ("order", "d"),
            ("prev_hash", "h"),
        ]
    )


def _fmt_double(x):
    return "%.17g" % x  # C printf("%.17g") in the C locale: same digits, 2-digit exponent


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError("duplicate key %r" % k)
        out[k] = v
    return out


def _reject_constant(name):
    raise ValueError("%s is not allowed" % name)


def _shape(obj, fields, where):
    """Checks obj has exactly `fields`, in order, with the right JSON types;
    returns {key: value} with doubles as float."""
    if not isinstance(obj, dict):
        raise ValueError("%s is not an object" % where)
    keys = list(obj.keys())
    want = [k for k, _ in fields]
    if keys != want:
        raise ValueError(
            "%s has keys %s, expected %s" % (where, ",".join(keys), ",".join(want))
        )
    out = {}
    for key, typ in fields:
        v = obj[key]
        name = where + "." + key if where != "entry" else key
        if isinstance(typ, tuple):
            out[key] = _shape(v, typ, name)
        elif typ == "i":
            if type(v) is not int or v < 0:
                raise ValueError("%s is not a non-negative integer" % name)
            out[key] = v
        elif typ == "d":
            if type(v) not in (int, float):
                raise ValueError("%s is not a number" % name)
            x = float(v)
            if not math.isfinite(x) or math.copysign(1.0, x) < 0 and x == 0:
                raise ValueError("%s is not a finite double" % name)
            out[key] = x
        elif typ == "s":
            if not isinstance(v, str) or not NAME_RE.match(v):
                raise ValueError("%s is not a name of 1-47 characters in [a-z0-9_.,()+-]" % name)
            out[key] = v
        elif typ == "k":
            if v not in KINDS:
                raise ValueError("kind %r is unknown" % (v,))
            out[key] = v
        elif typ == "b":
            if type(v) is not bool:
                raise ValueError("%s is not true or false" % name)
            out[key] = v
        elif typ == "h":
            if not isinstance(v, str) or not HEX64_RE.match(v):
                raise ValueError("%s is not 64 lower-case hex digits" % name)
            out[key] = v
        elif typ == "v":
            if not isinstance(v, list) or len(v) != len(ORDERS):
                raise ValueError("%s does not hold exactly %d values" % (name, len(ORDERS)))
            vec = []
            for x in v:
                if type(x) not in (int, float) or not math.isfinite(float(x)):
                    raise ValueError("%s holds a value that is not a finite number" % name)
                vec.append(float(x))
            out[key] = vec
        elif typ == "f":
            out[key] = v
        elif typ == "a":
            allowed = ACCOUNTANTS if obj.get("format") == FORMAT_V3 else (ACCOUNTANT,)
            if v not in allowed:
                raise ValueError("accountant %r is not %s" % (v, " or ".join(allowed)))
            out[key] = v
    return out


def _encode_value(v, typ):
    if isinstance(typ, tuple):
        return "{" + ",".join('"%s":%s' % (k, _encode_value(v[k], t)) for k, t in typ) + "}"
    if typ == "i":
        return "%d" % v
    if typ == "d":
        return _fmt_double(v)
    if typ == "b":
        return "true" if v else "false"
    if typ == "v":
        return "[" + ",".join(_fmt_double(x) for x in v) + "]"
    return '"%s"' % v  # names, kinds, digests, format, accountant: never need escaping


def encode_entry(e):
    """The canonical text (bytes) of a parsed entry, in the entry's own format."""
    return _encode_value(e, _fields(e["format"])).encode("ascii")


def _domain(e):
    """The domain rules of docs/privacy.md ("Domain rules")."""
    m, b = e["mechanism"], e["budget"]
    kind, v2 = e["kind"], e["format"] in (FORMAT_V2, FORMAT_V3)
    v3 = e["format"] == FORMAT_V3
    if e["seq"] < 1:
        raise ValueError("seq %d is not positive" % e["seq"])
    if not v2 and kind == "budget":
        raise ValueError("a budget entry needs format v2")
    if (kind == "release") != (e["model_version"] > 0):
        raise ValueError("a release produces a model version and nothing else does")
    if v2:
        if (kind == "release") == (e["snapshot_sha256"] == ZERO_HEX):
            raise ValueError("a release names its snapshot digest and nothing else does")
        if (e["round_id"] != 0) if kind == "budget" else (e["round_id"] < 1):
            raise ValueError("a budget entry has no round and every other entry has one")
    if not m["clip_norm"] > 0:
        raise ValueError("clip norm %r is not positive" % m["clip_norm"])
    _check_domain(m["sampling_rate"], m["noise_multiplier"])
    if not m["denominator"] > 0:
        raise ValueError("denominator %r is not positive" % m["denominator"])
    if not 0 < m["weight_bound"] <= 1:
        raise ValueError("weight bound %r is outside (0, 1]" % m["weight_bound"])
    if not b["epsilon_max"] > 0:
        raise ValueError("budget epsilon %r is not positive" % b["epsilon_max"])
    if not 0 < b["delta"] < 1:
        raise ValueError("delta %r is outside (0, 1)" % b["delta"])
    if e["epsilon"] < 0:
        raise ValueError("epsilon %r is negative" % e["epsilon"])
    if v3:
        return
    for name in ("round_rdp", "cumulative_rdp"):
        if any(x < 0 or (x == 0 and math.copysign(1.0, x) < 0) for x in e[name]):
            raise ValueError("%s holds a negative value" % name)
    if kind != "release" and any(x != 0 for x in e["round_rdp"]):
        raise ValueError("a %s spends no privacy but has round rdp" % kind)
    if not (e["order"] == 0 and math.copysign(1.0, e["order"]) > 0) and e["order"] not in ORDERS:
        raise ValueError("order %r is not one of the accountant's" % e["order"])


def parse_entry(entry):
    """Parses one entry, given as its text (str or bytes) or as the JSON object
    the API renders it as, strictly.

    For text: the parse, the shape and the domain are checked and the text
    must be byte for byte the canonical encoding of what was read. For an
    object (the API re-renders the stored text through a JSON library, so the
    original bytes are not there): the same shape and domain, and the
    canonical text is rebuilt from it; the SHA-256 check then decides whether
    that is the text that was signed. Returns (entry dict, canonical bytes).
    Raises ValueError.
    """
    text = None
    if isinstance(entry, (bytes, str)):
        text = entry.encode("utf-8") if isinstance(entry, str) else entry
        if len(text) > TEXT_MAX:
            raise ValueError("entry is longer than %d bytes" % TEXT_MAX)
        try:
            obj = json.loads(
                text.decode("ascii"),
                object_pairs_hook=_no_duplicates,
                parse_constant=_reject_constant,
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError("entry is not JSON text: %s" % exc) from None
    else:
        obj = entry
    if not isinstance(obj, dict) or obj.get("format") not in FORMATS:
        raise ValueError("entry format is not one of %s" % ", ".join(FORMATS))
    e = _shape(obj, _fields(obj["format"]), "entry")
    _domain(e)
    canonical = encode_entry(e)
    if text is not None and canonical != text:
        at = next(
            (i for i, (x, y) in enumerate(zip(canonical, text)) if x != y),
            min(len(canonical), len(text)),
        )
        raise ValueError("entry is not in canonical form (first difference at byte %d)" % at)
    return e, canonical


# ==================================================================== input


def _row_get(row, *names):
    for n in names:
        if n in row:
            return row[n]
    return None


class Row:
    """One ledger row as exported: the entry (text or object) and the columns."""

    def __init__(self, raw, index):
        if not isinstance(raw, dict):
            raise InputError("ledger row %d is not a JSON object" % (index + 1))
        self.raw = raw
        self.seq = _row_get(raw, "seq")
        self.kind = _row_get(raw, "kind")
        self.round_id = _row_get(raw, "roundId", "round_id")
        self.model_version = _row_get(raw, "modelVersion", "model_version")
        self.cumulative_epsilon = _row_get(raw, "cumulativeEpsilon", "cumulative_epsilon")
        self.prev_hash = _row_get(raw, "prevHash", "prev_hash")
        self.hash = _row_get(raw, "hash")
        self.signature = _row_get(raw, "signature")
        self.entry = _row_get(raw, "entry", "text")
        if type(self.seq) is not int:
            raise InputError("ledger row %d has no integer seq" % (index + 1))


def _fetch(url, timeout):
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise InputError("GET %s: %s" % (url, exc)) from None


def ledger_url(base):
    base = base.rstrip("/")
    return base if base.endswith("/api/privacy/ledger") else base + "/api/privacy/ledger"


def _parse_doc(data, what):
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except ValueError as exc:
        raise InputError("%s is not JSON: %s" % (what, exc)) from None


def _load_pages(url, timeout):
    """Every page of GET /api/privacy/ledger, following "next" until null."""
    items, after, pages = [], 0, 0
    while True:
        page_url = "%s?after=%d&limit=10000" % (url, after)
        doc = _parse_doc(_fetch(page_url, timeout), page_url)
        if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
            raise InputError("%s holds no {\"entries\": [...]}" % page_url)
        items += doc["entries"]
        nxt = doc.get("next")
        pages += 1
        if nxt is None:
            break
        if type(nxt) is not int or nxt <= after:
            raise InputError("%s: \"next\" %r does not move forward" % (page_url, nxt))
        after = nxt
    return [Row(r, i) for i, r in enumerate(items)], url


def load_ledger(source, timeout=60.0):
    """Rows from a URL (http[s]://host:port, or the full ledger URL) or from a
    JSON file: {"entries": [...]} (GET /api/privacy/ledger) or a bare array
    of rows (fedagg ledger show --json or export, or a SQL export with the entry text).
    Returns (rows, description)."""
    if re.match(r"https?://", source):
        return _load_pages(ledger_url(source), timeout)
    else:
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise InputError("cannot read %s: %s" % (source, exc.strerror)) from None
        what = source
    doc = _parse_doc(data, what)
    if isinstance(doc, dict) and isinstance(doc.get("entries"), list):
        items = doc["entries"]
    elif isinstance(doc, list):
        items = doc
    else:
        raise InputError(
            "%s holds neither {\"entries\": [...]} nor an array of ledger rows" % what
        )
    return [Row(r, i) for i, r in enumerate(items)], what


# =================================================================== keys


def read_public_key(spec):
    """32-byte Ed25519 public key from hex (64 digits), base64 (44 chars), or a
    file holding either (sign.pk as `fedagg keygen` writes it: hex + newline)."""
    def decode(s):
        s = s.strip()
        if re.fullmatch(r"[0-9a-fA-F]{64}", s):
            return bytes.fromhex(s)
        try:
            raw = base64.b64decode(s, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == 32:
            return raw
        return None

    key = decode(spec)
    if key is None and os.path.exists(spec):
        try:
            with open(spec, "r", encoding="ascii") as f:
                key = decode(f.read())
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError("cannot read public key %s: %s" % (spec, exc)) from None
        if key is None:
            raise InputError("%s does not hold a 32-byte Ed25519 public key (hex or base64)" % spec)
    if key is None:
        raise InputError(
            "--public-key %r is neither 64 hex digits, base64 of 32 bytes, nor a file" % spec
        )
    return key


def _verifier(pk):
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    vk = VerifyKey(pk)

    def check(message, signature):
        try:
            vk.verify(message, signature)
            return True
        except (BadSignatureError, ValueError):
            return False

    return check


# ================================================================ snapshots


def snapshot_info(path):
    """sha256 hex of the file and the model_version its safetensors metadata
    claims (None when it does not parse: the digest is what counts)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError("cannot read snapshot %s: %s" % (path, exc.strerror)) from None
    version = None
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
        v = header.get("__metadata__", {}).get("model_version")
        version = int(v) if v is not None and str(v).isdigit() else None
    except (struct.error, ValueError, AttributeError, UnicodeDecodeError):
        version = None
    return hashlib.sha256(data).hexdigest(), version


# ============================================================= verification


def _close(a, b, tol=REL_TOL):
    return abs(a - b) <= tol * max(abs(a), abs(b))


def _vec_mismatch(stored, computed, tol=REL_TOL):
    """Index of the first order where stored and computed disagree, or None."""
    stored, computed = np.asarray(stored), np.asarray(computed)
    bad = np.abs(stored - computed) > tol * np.maximum(np.abs(stored), np.abs(computed))
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else None


PLD_SLACK = 1.01  # the server's PLD epsilon is at most 1% above the true one


def _parse_rows(rows):
    """parse_entry of each row's entry: (entry, text), or the ValueError."""
    out = []
    for row in rows:
        try:
            out.append(parse_entry(row.entry))
        except ValueError as exc:
            out.append(exc)
    return out


def _pld_shape(parsed):
    """(h, eta) for one bracket over the whole ledger: the grid from the
    number of releases, the largest epsilon stated and every mechanism met;
    the cut so that all of them together move delta by at most 1e-4 of the
    smallest delta stated. Entries that do not parse are left to the main pass."""
    releases, scale, deltas, mechs = 0, 0.0, [], set()
    for p in parsed:
        if isinstance(p, ValueError):
            continue
        e = p[0]
        if e["kind"] in ("release", "refusal"):
            mechs.add((e["mechanism"]["sampling_rate"], e["mechanism"]["noise_multiplier"]))
        releases += e["kind"] == "release"
        if e["accountant"] == ACCOUNTANT_PLD:
            scale = max(scale, e["epsilon"])
            deltas.append(e["budget"]["delta"])
    n = max(releases + 1, 1)
    eta = max(1e-300, 1e-4 * min(deltas, default=1e-5) / (8.0 * n))
    return pld_grid(n, scale, sorted(mechs)), eta


def verify_ledger(
    rows, public_key, snapshots=(), expect_versions=(), min_seq=0, known_heads=()
):
    """Verifies the rows (in the order given) and returns the report dict;
    raises Discrepancy at the first entry that does not hold."""
    check_sig = _verifier(public_key)
    report = {
        "entries": 0,
        "releases": 0,
        "refusals": 0,
        "abandonments": 0,
        "budget_entries": 0,
        "budget_changes": [],
        "seeded_releases": 0,
        "epsilon": 0.0,
        "delta": None,
        "order": 0.0,
        "epsilon_max": None,
        "accountant": None,
        "epsilon_bracket": None,
        "head": ZERO_HEX,
        "versions": {},  # model version -> (seq, snapshot_sha256 or None for v1)
        "snapshots": [],
    }
    prev = ZERO_HEX
    acc = np.zeros(len(ORDERS))  # cumulative RDP re-derived from the releases alone
    rdp_memo = {}
    rel = []  # (q, sigma) of every release so far
    parsed = _parse_rows(rows)
    pld, pld_shape = None, _pld_shape(parsed)
    budget = None  # (epsilon_max, delta, accountant) in force
    releases = 0
    last_round = 0
    last_format = 0
    hashes = set()

    def round_rdp_of(q, sigma):
        if (q, sigma) not in rdp_memo:
            rdp_memo[(q, sigma)] = rdp_sgm(q, sigma)
        return rdp_memo[(q, sigma)]

    for i, row in enumerate(rows):
        want = i + 1
        seq = row.seq
        if seq > want:
            raise Discrepancy(want, "missing (the next entry in the export is %d)" % seq)
        if seq < want:
            raise Discrepancy(seq, "out of order or duplicated (expected entry %d)" % want)

        def fail(reason):
            raise Discrepancy(seq, reason)

        # --- the text, its hash and its signature
        if row.entry is None:
            fail(
                "the export holds no entry text, so its hash cannot be checked; verify "
                "GET /api/privacy/ledger, fedagg ledger show --json or an export that carries "
                "each entry's text"
            )
        if not isinstance(row.hash, str) or not HEX64_RE.match(row.hash):
            fail("hash is not 64 lower-case hex digits")
        if not isinstance(row.signature, str) or not HEX128_RE.match(row.signature):
            fail("signature is not 128 lower-case hex digits")
        if isinstance(parsed[i], ValueError):
            # A text that is not canonical cannot be what was signed; name the
            # hash first when it does not even match, as the C verifier does.
            if isinstance(row.entry, (str, bytes)):
                raw = row.entry.encode("utf-8") if isinstance(row.entry, str) else row.entry
                if hashlib.sha256(raw).hexdigest() != row.hash:
                    fail("hash mismatch")
            fail("entry does not parse: %s" % parsed[i])
        e, text = parsed[i]
        if hashlib.sha256(text).hexdigest() != row.hash:
            fail("hash mismatch")
        if not check_sig(bytes.fromhex(row.hash), bytes.fromhex(row.signature)):
            fail("bad signature")

        # --- the columns the export repeats must agree with the signed text
        if e["seq"] != seq:
            fail("seq column disagrees with the entry (entry says %d)" % e["seq"])
        columns = (
            ("kind", row.kind),
            ("round_id", row.round_id),
            ("model_version", row.model_version),
        )
        for col, val in columns:
            if val is not None and val != e[col]:
                fail("%s column disagrees with the entry" % col)
        if row.cumulative_epsilon is not None:
            if type(row.cumulative_epsilon) not in (int, float) or not _close(
                float(row.cumulative_epsilon), e["epsilon"], 1e-9
            ):
                fail(
                    "cumulative epsilon column %r disagrees with the entry (%r)"
                    % (row.cumulative_epsilon, e["epsilon"])
                )
        if row.prev_hash is not None and row.prev_hash != e["prev_hash"]:
            fail("prev_hash column disagrees with the entry")

        # --- the chain
        if e["prev_hash"] != prev:
            fail(
                "prev_hash of the first entry is not zero"
                if seq == 1
                else "prev_hash does not link to the previous entry"
            )
        # Formats only move forward (v1 -> v2 -> v3): falling back would skip
        # what a newer format binds (snapshot digest, budget events, accountant).
        fmt = FORMATS.index(e["format"]) + 1
        if fmt < last_format:
            fail("a v%d entry follows a v%d entry" % (fmt, last_format))
        v2 = fmt >= 2

        # The budget in force: epsilon_max, delta and the accountant; set by
        # the first entry, changed only by budget entries (v1: by any entry).
        kind, mech, b = e["kind"], e["mechanism"], e["budget"]
        stated = (b["epsilon_max"], b["delta"], e["accountant"])
        if budget is None or kind == "budget" or not v2:
            if budget is not None and stated != budget:
                report["budget_changes"].append(
                    {
                        "seq": seq,
                        "from": list(budget),
                        "to": list(stated),
                        "budget_entry": kind == "budget",
                    }
                )
            budget = stated
        elif stated[:2] != budget[:2]:
            fail(
                "budget changed without a budget entry (entry states epsilon_max %r at "
                "delta %r, in force %r at %r)" % (stated[:2] + budget[:2])
            )
        elif stated[2] != budget[2]:
            fail(
                "accountant changed without a budget entry (%s, in force %s)"
                % (stated[2], budget[2])
            )

        if kind == "release" and e["model_version"] != releases + 1:
            fail("release produces version %d, expected %d" % (e["model_version"], releases + 1))
        if kind != "budget" and e["round_id"] <= last_round:
            fail("round id %d does not follow round id %d" % (e["round_id"], last_round))

        # --- the accountant, from the recorded mechanism alone
        q, sigma, delta = mech["sampling_rate"], mech["noise_multiplier"], b["delta"]
        eps_max = b["epsilon_max"]
        round_rdp = None
        nxt = acc
        bracket = None
        try:
            if kind in ("release", "refusal"):
                round_rdp = round_rdp_of(q, sigma)
            if kind == "release":
                nxt = acc + round_rdp
                rel.append((q, sigma))
            if e["accountant"] == ACCOUNTANT_PLD:
                if pld is None:
                    pld = PldBracket(*pld_shape)
                while pld.releases < len(rel):
                    pld.compose(*rel[pld.releases])
                bracket = pld.epsilon(delta)
        except (ValueError, ArithmeticError) as exc:
            fail("accountant: %s" % exc)
        if kind == "release" and fmt < 3:
            at = _vec_mismatch(e["round_rdp"], round_rdp)
            if at is not None:
                fail(
                    "round rdp at order %g is %.17g, recomputed %.17g (q %.17g, sigma %.17g)"
                    % (ORDERS[at], e["round_rdp"][at], round_rdp[at], q, sigma)
                )
        if fmt < 3:
            at = _vec_mismatch(e["cumulative_rdp"], nxt)
            if at is not None:
                fail(
                    "cumulative rdp at order %g is %.17g, recomputed %.17g"
                    % (ORDERS[at], e["cumulative_rdp"][at], nxt[at])
                )
        order = 0.0
        if bracket is None:
            eps, order = rdp_epsilon(nxt, delta)
            if not _close(e["epsilon"], eps):
                off = 100.0 * (e["epsilon"] - eps) / eps if eps else float("inf")
                fail(
                    "epsilon is %.17g, recomputed %.17g at delta %g (off by %+.3g%%)"
                    % (e["epsilon"], eps, delta, off)
                )
        else:
            # The server's PLD epsilon is an upper bound within 1% of the true
            # one, which lies in [lo, hi].
            lo, hi = bracket
            eps = e["epsilon"]
            if eps < lo * (1.0 - 1e-9) - 1e-12:
                fail(
                    "epsilon is %.17g, below the true epsilon, which is at least %.17g at delta %g "
                    "(pld, %d releases)" % (eps, lo, delta, len(rel))
                )
            if eps > PLD_SLACK * hi * (1.0 + 1e-9) + 1e-12:
                fail(
                    "epsilon is %.17g, more than 1%% above the true epsilon, which is at most "
                    "%.17g at delta %g (pld, %d releases)" % (eps, hi, delta, len(rel))
                )
        # v1/v2: the stated order must attain the minimum (the two accountants
        # may pick either of two orders whose epsilons tie within rounding).
        if fmt >= 3:
            pass
        elif order == 0.0:  # nothing spent yet
            if e["order"] != 0.0:
                fail("order is %g, but nothing was spent (order 0)" % e["order"])
        elif e["order"] == 0.0 or not _close(
            max(float(rdp_epsilon_all(nxt, delta)[ORDERS.index(e["order"])]), 0.0), eps
        ):
            fail(
                "order %g does not attain the smallest epsilon (order %g does)"
                % (e["order"], order)
            )
        floor = bracket[0] if bracket is not None else eps
        if kind == "release" and max(floor, e["epsilon"]) > eps_max * (1.0 + REL_TOL):
            fail(
                "release brings epsilon to %.9g, over its budget of %.9g"
                % (max(floor, e["epsilon"]), eps_max)
            )
        if kind == "refusal":
            if bracket is None:
                would, _ = rdp_epsilon(nxt + round_rdp, delta)
            else:
                trial = pld.copy()
                try:
                    trial.compose(q, sigma)
                except (ValueError, ArithmeticError) as exc:
                    fail("accountant: %s" % exc)
                would = PLD_SLACK * trial.epsilon(delta)[1]
            if would <= eps_max * (1.0 - REL_TOL):
                fail(
                    "refused a release that fit the budget (epsilon would be at most %.9g <= %.9g)"
                    % (would, eps_max)
                )

        # --- this entry holds
        prev = row.hash
        hashes.add(row.hash)
        acc = nxt
        last_format = fmt
        if kind != "budget":
            last_round = e["round_id"]
        if kind == "release":
            releases += 1
            report["releases"] += 1
            report["seeded_releases"] += bool(mech["seeded"])
            report["versions"][e["model_version"]] = (seq, e["snapshot_sha256"] if v2 else None)
        elif kind == "refusal":
            report["refusals"] += 1
        elif kind == "abandonment":
            report["abandonments"] += 1
        else:
            report["budget_entries"] += 1
        report.update(
            entries=seq,
            epsilon=eps,
            stated_epsilon=e["epsilon"],
            delta=delta,
            order=order,
            accountant=e["accountant"],
            epsilon_bracket=list(bracket) if bracket is not None else None,
            epsilon_max=budget[0],
            head=row.hash,
        )

    # --- what the auditor holds: the ledger must be at least that long
    n = report["entries"]
    last_version = releases
    by_digest = {d: (v, s) for v, (s, d) in report["versions"].items() if d is not None}
    for path in snapshots:
        digest, claimed = snapshot_info(path)
        if digest in by_digest:
            v, s = by_digest[digest]
            report["snapshots"].append({"path": path, "sha256": digest, "version": v, "seq": s})
            continue
        claim = " (its metadata says version %d)" % claimed if claimed is not None else ""
        if len(by_digest) < len(report["versions"]):
            claim += " (v1 release entries name no snapshot digest)"
        raise Discrepancy(
            n + 1,
            "missing: snapshot %s%s, sha256 %s, is named by no release entry; the ledger ends at "
            "entry %d with version %d (its tail was cut off, or the snapshot is not this server's)"
            % (path, claim, digest, n, last_version),
        )
    for v in expect_versions:
        if v >= 1 and v not in report["versions"]:
            raise Discrepancy(
                n + 1,
                "missing: no release entry produces version %d; the ledger ends at entry %d "
                "with version %d" % (v, n, last_version),
            )
    if min_seq and n < min_seq:
        raise Discrepancy(
            n + 1, "missing: the ledger ends at entry %d, but entry %d was seen before" % (n, min_seq)
        )
    for h in known_heads:
        if h.lower() not in hashes:
            raise Discrepancy(
                n + 1,
                "missing: no entry has the hash %s seen before (the ledger has %d entries)" % (h, n),
            )
    return report


# ===================================================================== main


def _print_report(rep, source):
    r = repr  # the shortest text that reads back as the same double
    n = rep["entries"]
    if n == 0:
        print("ledger ok: 0 entries (%s)" % source)
    else:
        def pl(k, one, many):
            return "%d %s" % (k, one if k == 1 else many)

        if rep["epsilon_bracket"] is not None:
            how = "%s; true epsilon in [%.9g, %.9g]" % ((rep["accountant"],) + tuple(rep["epsilon_bracket"]))
        else:
            how = "%s, order %s" % (rep["accountant"], r(rep["order"]))
        print(
            "ledger ok: %d entries (%s, %s, %s, %s), epsilon %s at delta %s (%s), head %s"
            % (
                n,
                pl(rep["releases"], "release", "releases"),
                pl(rep["refusals"], "refusal", "refusals"),
                pl(rep["abandonments"], "abandonment", "abandonments"),
                pl(rep["budget_entries"], "budget change", "budget changes"),
                r(rep["epsilon"]),
                r(rep["delta"]),
                how,
                rep["head"],
            )
        )
        for c in rep["budget_changes"]:
            print(
                "budget changed at entry %d: epsilon_max %s -> %s, delta %s -> %s, accountant %s -> %s%s"
                % (c["seq"], r(c["from"][0]), r(c["to"][0]), r(c["from"][1]), r(c["to"][1]),
                   c["from"][2], c["to"][2],
                   "" if c["budget_entry"] else " (v1 entry, no budget event)")
            )
        print("budget in force: epsilon_max %s at delta %s, accountant %s"
              % (r(rep["epsilon_max"]), r(rep["delta"]), rep["accountant"]))
        print("model versions released: %d (1..%d)" % (rep["releases"], rep["releases"]))
    print("seeded releases: %d" % rep["seeded_releases"])
    if rep["seeded_releases"]:
        print("NOT PRIVATE: %d release%s used seeded (deterministic) noise" % (
            rep["seeded_releases"], "" if rep["seeded_releases"] == 1 else "s"))
    for s in rep["snapshots"]:
        print(
            "snapshot %s: version %d, release entry %d, sha256 %s"
            % (s["path"], s["version"], s["seq"], s["sha256"])
        )


def _json_report(rep, source, error=None):
    out = {"ok": error is None, "source": source}
    if error is not None:
        out["error"] = {"seq": error.seq, "reason": error.reason, "line": str(error)}
    if rep is not None:
        out.update({k: v for k, v in rep.items() if k != "versions"})
        out["versions"] = {
            str(v): {"seq": s, "snapshot_sha256": d} for v, (s, d) in rep["versions"].items()
        }
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="fedagg_verify.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Verify a fedagg epsilon ledger independently of the server's code: canonical\n"
            "encoding, SHA-256, Ed25519 signatures against a pinned key, the hash chain,\n"
            "the budget in force and every budget decision, and the cumulative epsilon\n"
            "re-derived from the recorded mechanisms with this tool's own accountants:\n"
            "RDP (Mironov, Talwar, Zhang 2019; orders and conversion of rdp-sgm-v1) and a\n"
            "privacy-loss-distribution bracket of the true epsilon (pld-sgm-v1)."
        ),
        epilog=(
            "SOURCE is a server base URL (http://host:port; GET /api/privacy/ledger is read)\n"
            "or a JSON file: the body of GET /api/privacy/ledger, or an array of rows each\n"
            "carrying the entry text (\"entry\"), \"hash\" and \"signature\" (hex).\n"
            "`fedagg ledger show --json` and `fedagg ledger export` write such rows.\n"
            "\n"
            "exit status: 0 verified, 1 a discrepancy (one line: \"ledger entry N: reason\"),\n"
            "2 bad usage or unreadable input.\n"
            "\n"
            "example:\n"
            "  fedagg_verify.py http://fedagg:8080 --public-key keys/sign.pk \\\n"
            "      --snapshot model-12.safetensors --known-head 3f1c...e9"
        ),
    )
    ap.add_argument("source", metavar="SOURCE", help="server URL or JSON export of the ledger")
    ap.add_argument(
        "--public-key", required=True, metavar="KEY",
        help="the pinned Ed25519 ledger key: 64 hex digits, base64, or a file such as sign.pk",
    )
    ap.add_argument(
        "--snapshot", action="append", default=[], metavar="FILE",
        help="a safetensors snapshot downloaded from the server: its SHA-256 must be the "
        "snapshot_sha256 of a (v2) release entry (repeatable)",
    )
    ap.add_argument(
        "--expect-version", action="append", type=int, default=[], metavar="V",
        help="model version V is known to be published: its release entry must be present "
        "(repeatable)",
    )
    ap.add_argument(
        "--min-seq", type=int, default=0, metavar="N", help="the ledger must have at least N entries"
    )
    ap.add_argument(
        "--known-head", action="append", default=[], metavar="HASH",
        help="an entry hash seen before (e.g. an earlier run's head): it must still be in the "
        "chain (repeatable)",
    )
    ap.add_argument(
        "--require-private", action="store_true", help="exit 1 when a release used seeded noise"
    )
    ap.add_argument(
        "--json", action="store_true", help="print the report (or the failure) as one JSON object"
    )
    ap.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="HTTP timeout in seconds (default 60)"
    )
    args = ap.parse_args(argv)

    for h in args.known_head:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", h):
            ap.error("--known-head %r is not 64 hex digits" % h)
    try:
        pk = read_public_key(args.public_key)
        rows, source = load_ledger(args.source, args.timeout)
        rep = verify_ledger(
            rows, pk, args.snapshot, args.expect_version, args.min_seq, args.known_head
        )
    except InputError as exc:
        print("fedagg_verify: %s" % exc, file=sys.stderr)
        return 2
    except Discrepancy as exc:
        if args.json:
            print(json.dumps(_json_report(None, args.source, exc)))
        else:
            print(str(exc))
        return 1
    if args.json:
        print(json.dumps(_json_report(rep, source)))
    else:
        _print_report(rep, source)
    return 1 if args.require_private and rep["seeded_releases"] else 0


if __name__ == "__main__":
    sys.exit(main())
