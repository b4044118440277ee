#!/usr/bin/python3
"""Regenerates tests/vectors/pld_reference.txt: reference epsilons of the
Poisson-subsampled Gaussian mechanism under add/remove adjacency, computed
independently of src/privacy/pld.c.

Pairs (sensitivity 1): A = (1-q) N(0, s^2) + q N(1, s^2), B = N(0, s^2).
"remove" is the privacy loss L = log(A/B) under A, "add" is log(B/A) under B;
the composed mechanism is (eps, delta)-DP iff delta_T(eps) <= delta for both
directions, delta_T(eps) = E[(1 - exp(eps - L_1 - ... - L_T))_+] with the L_i
independent copies (the T-fold convolution of the PLD).

Methods:
  T = 1   exact: delta(eps) in closed form through the crossing point of the
          monotone loss, e.g. for remove with x* = s^2 log((e^eps - 1 + q)/q) + 1/2,
          delta = (1-q) Phi(-x*/s) + q Phi(-(x*-1)/s) - e^eps Phi(-x*/s),
          in mpmath at 40 digits; eps by bisection to 1e-15. eps_lo = eps_hi.
  T > 1   a rigorous bracket from one fine grid h (much finer than the C code's):
          rounding every loss down to the grid gives L' <= L pointwise, so the
          composed delta' <= delta and its eps is a lower bound (eps_lo);
          rounding up instead is the same distribution shifted by h per round,
          whose eps, eps_lo + T h, is an upper bound (eps_hi). The T-fold
          convolution is an FFT of length <= 2^27 raised to the T-th power by
          repeated squaring per frequency (numpy float64), on a window outside
          which a Chernoff bound leaves < 1e-25 of the mass per side.
  rdp     the RDP accountant re-implemented in gen_vectors.py (exact decimal sums
          and numerical integration at the 156 orders, Balle et al. 2020 Thm. 21
          conversion): for the test that PLD <= RDP.

The generator checks itself: for q = 1 the bracket must contain the Gaussian
mechanism's exact epsilon (Balle and Wang 2018, Thm. 8), and for T = 1 the
fine-grid bracket must contain the closed form.

Run with Debian's interpreter (python3-numpy, python3-scipy, python3-mpmath):
    /usr/bin/python3 tests/vectors/gen_pld_vectors.py
It takes about an hour and up to ~6 GB of memory.
"""

import math
import os
import sys

import numpy as np
from mpmath import mp, mpf
from scipy import special

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_vectors import epsilon as rdp_epsilon  # noqa: E402
from gen_vectors import rdp_vector  # noqa: E402

# (q, sigma, rounds, delta): the corners and the middle of sigma in [0.5, 20],
# q in [1e-3, 1), rounds in [1, 10^4], delta in [1e-9, 1e-3].
CASES = [
    (0.01, 1.1, 100, 1e-5),  # the team's dp_accounting point: 0.550 (RDP 0.956)
    (0.01, 1.1, 10000, 1e-5),
    (0.001, 20.0, 10000, 1e-9),
    (0.001, 20.0, 1, 1e-9),
    (0.001, 0.5, 10000, 1e-9),
    (0.001, 0.5, 1, 1e-5),
    (0.001, 2.0, 10000, 1e-5),
    (0.003, 1.5, 3000, 1e-7),
    (0.01, 0.8, 1000, 1e-9),
    (0.01, 5.0, 10000, 1e-3),
    (0.02, 0.5, 10, 1e-3),
    (0.05, 1.0, 1000, 1e-6),
    (0.1, 1.1, 1, 1e-5),
    (0.1, 2.0, 1000, 1e-9),
    (0.1, 5.0, 10000, 1e-3),
    (0.2, 10.0, 10000, 1e-9),
    (0.5, 0.5, 1, 1e-9),
    (0.5, 0.5, 100, 1e-5),
    (0.5, 20.0, 1, 1e-3),
    (0.9, 1.0, 10, 1e-5),
    (0.99, 3.0, 300, 1e-7),
]

TAIL = 1e-25          # mass left outside the FFT window per side (Chernoff)
MAX_FFT = 1 << 27     # FFT length (4-5 GB of memory at the largest)
X_SIGMAS = 14.0       # one-round outputs kept: |x - mean| <= 14 sigma (tails < 1e-44)


# ------------------------------------------------------------------ the loss

def loss_t(q, t):
    """log(1 - q + q e^t), vectorised, stable for all t."""
    t = np.asarray(t, dtype=float)
    if q == 1.0:
        return t.copy()
    return np.logaddexp(math.log1p(-q), math.log(q) + t)


def t_of_loss(q, l):
    """Inverse of loss_t: t with log(1 - q + q e^t) = l (-inf where l <= log(1-q))."""
    l = np.asarray(l, dtype=float)
    if q == 1.0:
        return l.copy()
    out = np.full_like(l, -np.inf)
    ok = l > math.log1p(-q)
    lo = l[ok]
    with np.errstate(over="ignore", invalid="ignore"):
        small = np.log1p(np.expm1(lo) / q)
        big = lo - math.log(q) + np.log1p(-(1.0 - q) * np.exp(-lo))
    out[ok] = np.where(lo > 1.0, big, small)
    return out


def x_of_loss(q, s, l, direction):
    t = t_of_loss(q, l if direction == "remove" else -np.asarray(l))
    return s * s * t + 0.5


def cdf_a(q, s, x):
    """P_A(X <= x) and P_A(X > x), each accurate in its own tail."""
    lower = (1 - q) * special.ndtr(x / s) + q * special.ndtr((x - 1) / s)
    upper = (1 - q) * special.ndtr(-x / s) + q * special.ndtr(-(x - 1) / s)
    return lower, upper


def cdf_b(s, x):
    return special.ndtr(x / s), special.ndtr(-x / s)


def round_down_pmf(q, s, h, direction):
    """Masses of L rounded down to the grid k h: returns (k_min, masses)."""
    x_lo, x_hi = -X_SIGMAS * s, 1.0 + X_SIGMAS * s
    t_lo, t_hi = (2 * x_lo - 1) / (2 * s * s), (2 * x_hi - 1) / (2 * s * s)
    l_a, l_b = float(loss_t(q, t_lo)), float(loss_t(q, t_hi))
    if direction == "add":
        l_a, l_b = -l_b, -l_a
    k_min, k_max = math.floor(l_a / h), math.ceil(l_b / h)
    ks = np.arange(k_min, k_max + 2, dtype=np.float64)
    xs = x_of_loss(q, s, ks * h, direction)
    xs = np.clip(xs, x_lo, x_hi)
    if direction == "remove":
        lower, upper = cdf_a(q, s, xs)       # loss increasing in x
    else:
        # loss decreasing in x: P(L >= l_k) = P(X <= x_k), P(L < l_k) = P(X > x_k)
        upper, lower = cdf_b(s, xs)
    # mass of [l_k, l_(k+1)) = lower(k+1) - lower(k) = upper(k) - upper(k+1);
    # take the difference in whichever tail is smaller (full relative precision)
    d_low = np.diff(lower)
    d_up = -np.diff(upper)
    use_low = lower[:-1] < 0.5
    masses = np.where(use_low, d_low, d_up)
    masses = np.maximum(masses, 0.0)
    return k_min, masses[:-1]


# ------------------------------------------------------------ composition

def log_mgf(k_min, p, h, lam):
    """log sum p_k exp(lam l_k), l_k = (k_min + k) h."""
    nz = p > 0
    ls = (k_min + np.nonzero(nz)[0]) * h
    v = np.log(p[nz]) + lam * ls
    m = v.max()
    return m + math.log(np.exp(v - m).sum())


def window(k_min, p, h, T):
    """Loss window of the T-fold sum outside which each tail has mass < TAIL."""
    ls = (k_min + np.arange(p.size)) * h
    mean = float(np.dot(p, ls) / p.sum())
    sd = math.sqrt(float(np.dot(p, (ls - mean) ** 2) / p.sum()) * T) + h
    hi, lo = T * ls[-1], T * ls[0]
    for j in range(-12, 24):
        lam = 2.0 ** (j / 2.0) / sd
        hi = min(hi, (T * log_mgf(k_min, p, h, lam) - math.log(TAIL)) / lam)
        lo = max(lo, (math.log(TAIL) - T * log_mgf(k_min, p, h, -lam)) / lam)
    return lo, hi


def compose(k_min, p, h, T, lo, hi):
    """T-fold convolution on the loss window [lo, hi]: returns (k_lo, masses)."""
    k_lo, k_hi = math.floor(lo / h), math.ceil(hi / h)
    n = 1
    while n < k_hi - k_lo + 1:
        n *= 2
    assert n <= MAX_FFT, (n, MAX_FFT)
    z = np.bincount((k_min + np.arange(p.size)) % n, weights=p, minlength=n)
    f = np.fft.rfft(z)
    del z
    r = np.ones_like(f)
    e = T
    while e:
        if e & 1:
            r *= f
        e >>= 1
        if e:
            f *= f
    del f
    out = np.fft.irfft(r, n)
    del r
    ks = np.arange(k_lo, k_hi + 1)
    return k_lo, np.maximum(out[ks % n], 0.0)


def eps_for_delta(k_lo, p, h, delta):
    """Smallest eps >= 0 with sum_k p_k (1 - e^(eps - l_k))_+ <= delta."""
    ls = (k_lo + np.arange(p.size)) * h
    # U, log W over the points strictly above index k (suffix sums from the top)
    u = np.concatenate([np.cumsum(p[::-1])[::-1][1:], [0.0]])
    with np.errstate(divide="ignore"):
        lw_terms = np.log(p) - ls
        lw = np.concatenate([np.logaddexp.accumulate(lw_terms[::-1])[::-1][1:], [-np.inf]])
    with np.errstate(divide="ignore", invalid="ignore"):
        cand = np.log(u - delta) - lw
    ok = (u > delta) & np.isfinite(lw) & (cand >= ls)
    if not ok.any():  # the solution lies below every point: all of them count
        tot_u = p.sum()
        if tot_u <= delta:
            return 0.0
        return max(0.0, math.log(tot_u - delta) - float(np.logaddexp.reduce(lw_terms)))
    k = np.nonzero(ok)[0][-1]  # the first from the top, as a scan downwards would find
    return max(0.0, float(cand[k]))


def loss_window(q, s, T, d):
    """A window holding all but TAIL per side of the T-fold PLD on any grid h <= h0.

    Computed on a coarse grid h0: rounding down to h0 bounds the lower tail of
    every finer rounding down (pointwise smaller losses), and rounding up to h0
    (the same masses shifted by h0, i.e. the window's top moved up by T h0)
    bounds the upper tail. Returns (lo, hi, h0).
    """
    x_lo, x_hi = -X_SIGMAS * s, 1.0 + X_SIGMAS * s
    l1, l2 = (float(loss_t(q, (2 * x - 1) / (2 * s * s))) for x in (x_lo, x_hi))
    h_a = (l2 - l1) / 1e5
    lo, hi = window(*round_down_pmf(q, s, h_a, d), h_a, T)
    h0 = min(h_a, (hi - lo) / (20.0 * T))
    lo, hi = window(*round_down_pmf(q, s, h0, d), h0, T)
    return lo, hi + T * h0, h0


def bracket(q, s, T, delta, scale):
    """(eps_lo, eps_hi, h) from the fine grid.

    scale is a lower estimate of epsilon (half the RDP value): the grid is
    chosen so that the bracket, T h wide, is at most 2e-4 of it, or as fine as
    MAX_FFT allows.
    """
    wins = {d: loss_window(q, s, T, d) for d in ("remove", "add")}
    width = max(hi - lo for lo, hi, _ in wins.values())
    h = max(2e-4 * scale / T, width / (0.97 * MAX_FFT))
    h = min(h, min(h0 for _, _, h0 in wins.values()))
    # The upper bound also counts what was cut: the one-round outputs beyond
    # 14 sigma (< 1e-44 each) and the two FFT-window tails (aliased, < TAIL each).
    cut = T * 2e-44 + 2 * TAIL
    lo = hi = 0.0
    for d in ("remove", "add"):
        k_min, p = round_down_pmf(q, s, h, d)
        k_lo, pt = compose(k_min, p, h, T, wins[d][0], wins[d][1])
        del p
        lo = max(lo, eps_for_delta(k_lo, pt, h, delta))
        hi = max(hi, eps_for_delta(k_lo, pt, h, delta - cut) + T * h)
        del pt
    return lo, hi, h


# --------------------------------------------------------------- exact T = 1

mp.dps = 40


def delta_exact(q, s, eps):
    q, s, eps = mpf(q), mpf(s), mpf(eps)
    phi = mp.ncdf
    out = mpf(0)
    # remove: L > eps iff x > x*, x* = s^2 log((e^eps - 1 + q)/q) + 1/2
    if eps > mp.log(1 - q):
        x = s * s * mp.log((mp.exp(eps) - 1 + q) / q) + mpf(1) / 2
        out = max(out, (1 - q) * phi(-x / s) + q * phi(-(x - 1) / s) - mp.exp(eps) * phi(-x / s))
    else:
        out = max(out, 1 - mp.exp(eps))
    # add: L > eps iff 1 - q + q e^t < e^-eps iff x < x*
    if q == 1 or eps < -mp.log(1 - q):
        x = s * s * mp.log((mp.exp(-eps) - 1 + q) / q) + mpf(1) / 2
        out = max(out, phi(x / s) - mp.exp(eps) * ((1 - q) * phi(x / s) + q * phi((x - 1) / s)))
    return out


def eps_exact(q, s, delta):
    if delta_exact(q, s, 0.0) <= delta:
        return 0.0
    lo, hi = mpf(0), mpf(1)
    while delta_exact(q, s, hi) > delta:
        hi *= 2
    while hi - lo > mpf("1e-16") * hi:
        mid = (lo + hi) / 2
        if delta_exact(q, s, mid) > delta:
            lo = mid
        else:
            hi = mid
    return float(hi)


def eps_gaussian(mu, delta):
    """Balle and Wang 2018 Thm. 8 for the Gaussian with sensitivity/sigma = mu."""
    def d(e):
        e = mpf(e)
        return mp.ncdf(-e / mu + mu / 2) - mp.exp(e) * mp.ncdf(-e / mu - mu / 2)
    lo, hi = mpf(0), mpf(1)
    while d(hi) > delta:
        hi *= 2
    while hi - lo > mpf("1e-16") * hi:
        mid = (lo + hi) / 2
        if d(mid) > delta:
            lo = mid
        else:
            hi = mid
    return float(hi)


# -------------------------------------------------------------------- main

def g17(x):
    return "%.17g" % x


def self_checks():
    # q = 1, T rounds: the Gaussian with sigma / sqrt(T); the bracket must hold it.
    for s, T, delta in ((1.0, 100, 1e-5), (2.0, 1000, 1e-9)):
        want = eps_gaussian(mpf(math.sqrt(T)) / s, delta)
        lo, hi, _ = bracket(1.0, s, T, delta, want)
        print("check q=1 s=%g T=%d: [%.9g, %.9g] exact %.9g" % (s, T, lo, hi, want), flush=True)
        assert lo <= want <= hi, (lo, want, hi)
    # T = 1: the fine-grid bracket must hold the closed form.
    for q, s, delta in ((0.01, 1.1, 1e-5), (0.5, 0.5, 1e-9)):
        want = eps_exact(q, s, delta)
        lo, hi, _ = bracket(q, s, 1, delta, want)
        print("check T=1 q=%g s=%g: [%.9g, %.9g] exact %.9g" % (q, s, lo, hi, want), flush=True)
        assert lo <= want * (1 + 1e-12) and want <= hi * (1 + 1e-12), (lo, want, hi)


def main():
    self_checks()
    rows = []
    for q, s, T, delta in CASES:
        rdp = [T * r for r in rdp_vector(q, s)]
        e_rdp, _ = rdp_epsilon(rdp, delta)
        if T == 1:
            lo = hi = eps_exact(q, s, delta)
            h = 0.0
        else:
            lo, hi, h = bracket(q, s, T, delta, 0.5 * e_rdp)
        print("q=%g s=%g T=%d delta=%g: eps in [%.9g, %.9g] (h %.3g, width %.2e rel), rdp %.6g"
              % (q, s, T, delta, lo, hi, h, (hi - lo) / hi if hi > 0 else 0.0, e_rdp), flush=True)
        rows.append(" ".join([g17(q), g17(s), str(T), g17(delta), g17(lo), g17(hi), g17(e_rdp)]))
    header = [
        "Reference epsilons of the Poisson-subsampled Gaussian mechanism (sensitivity 1, noise",
        "multiplier sigma, rate q) under add/remove adjacency: the larger of the remove and add",
        "directions. The true epsilon lies in [eps_lo, eps_hi].",
        "Method, T = 1: exact, the closed-form hockey-stick divergence of the monotone privacy",
        "loss in mpmath at 40 digits, eps by bisection (eps_lo = eps_hi).",
        "Method, T > 1: the PLD with every loss rounded down (eps_lo, a rigorous lower bound)",
        "or up (eps_hi = eps_lo + T h) to a fine grid h, composed T times by one numpy FFT of",
        "length <= 2^27 raised to the T-th power, on a window leaving < 1e-25 mass per tail.",
        "rdp: epsilon of the RDP accountant (156 orders) as re-implemented in gen_vectors.py.",
        "Generator: gen_pld_vectors.py. columns: q sigma rounds delta eps_lo eps_hi rdp",
    ]
    with open(os.path.join(HERE, "pld_reference.txt"), "w") as f:
        for line in header:
            f.write("# " + line + "\n")
        for r in rows:
            f.write(r + "\n")


if __name__ == "__main__":
    main()
