"""The study table's statistics: t-based confidence intervals over seeds, paired differences by
seed, paired-t p-values and the minimum detectable effect. Pure Python + numpy (no SciPy, no JAX).

The Student-t distribution is computed here: its CDF from the regularized incomplete beta function
(evaluated by its continued fraction, modified Lentz iteration), its quantile by bisection on the CDF.
Accurate to ~1e-10, far below what a table of PSNRs needs.

Pairing: in a study, seed k of every setting shares the data order and the draws of the weights the
setting does not touch, so two settings are compared seed by seed (a paired t-test on the per-seed
differences), which removes the seed-to-seed spread that both rows share.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import numpy as np


# ------------------------------------------------------------------------------------ Student t

def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), converging for x < (a + 1) / (a + b + 2)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        # even step: d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m))
        num = m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        # odd step: d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))
        num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 ≤ x ≤ 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc: x={x} outside [0, 1]")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b   # I_x(a, b) = 1 − I_{1−x}(b, a)


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))   # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_sf_two_sided(t: float, df: float) -> float:
    """P(|T| ≥ |t|): the two-sided p-value of a t statistic."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's t (bisection on `t_cdf`, to ~1e-12)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"t_ppf: q={q} outside (0, 1)")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------------------------ the table's numbers

class MeanCI(NamedTuple):
    mean: float
    lo: float
    hi: float
    n: int
    std: float     # the sample standard deviation (ddof 1)


class Paired(NamedTuple):
    mean: float    # mean over the shared seeds of (a − b)
    lo: float
    hi: float
    p: float       # two-sided paired t-test of mean(a − b) = 0
    n: int         # number of pairs
    sd: float      # sample SD (ddof 1) of the per-seed differences


def _finite(values) -> np.ndarray:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return np.asarray(vals, dtype=np.float64)


def mean_ci(values: Sequence[float], level: float = 0.95) -> MeanCI:
    """Mean and the t-based `level` confidence interval of the mean: mean ± t_{(1+level)/2, n−1} · s/√n.
    Non-finite or None values are dropped. With one value the interval is (nan, nan)."""
    x = _finite(values)
    n = len(x)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0, math.nan)
    mean = float(np.mean(x))
    if n == 1:
        return MeanCI(mean, math.nan, math.nan, 1, math.nan)
    std = float(np.std(x, ddof=1))
    half = t_ppf(0.5 + level / 2.0, n - 1) * std / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, n, std)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], level: float = 0.95) -> Paired:
    """a − b paired by seed: `a` and `b` map seed -> value; only seeds with finite values in both count.
    Returns the mean difference, its t-based CI, the two-sided paired-t p-value, the number of pairs
    and the SD of the differences. Identical differences (SD 0) give p 0 (or 1 if they are all 0)."""
    seeds = [s for s in a if s in b and a[s] is not None and b[s] is not None
             and math.isfinite(float(a[s])) and math.isfinite(float(b[s]))]
    d = np.asarray([float(a[s]) - float(b[s]) for s in seeds], dtype=np.float64)
    n = len(d)
    if n == 0:
        return Paired(math.nan, math.nan, math.nan, math.nan, 0, math.nan)
    mean = float(np.mean(d))
    if n == 1:
        return Paired(mean, math.nan, math.nan, math.nan, 1, math.nan)
    ci = mean_ci(d, level)
    sd = ci.std
    if sd == 0.0:
        return Paired(mean, mean, mean, 1.0 if mean == 0.0 else 0.0, n, 0.0)
    t = mean / (sd / math.sqrt(n))
    return Paired(mean, ci.lo, ci.hi, t_sf_two_sided(t, n - 1), n, sd)


def minimum_detectable_effect(sd_diff: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided paired t-test at level `alpha` detects with
    probability `power`, given the SD of the per-seed differences and n pairs.

    Uses the usual approximation of the noncentral t by a shifted central t:
    δ = (t_{1−α/2, n−1} + t_{power, n−1}) · sd / √n (slightly optimistic for very small n)."""
    if n < 2 or not math.isfinite(sd_diff):
        return math.nan
    return (t_ppf(1.0 - alpha / 2.0, n - 1) + t_ppf(power, n - 1)) * sd_diff / math.sqrt(n)


def largest_effect_left_open(paired: Paired) -> float:
    """The largest |effect| the CI of a difference does not exclude: max(|lo|, |hi|). 'No effect of
    size e' may be said only when e is beyond this (the CI lies inside ±e)."""
    return max(abs(paired.lo), abs(paired.hi)) if math.isfinite(paired.lo) else math.nan
