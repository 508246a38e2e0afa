"""Bjontegaard delta rate / delta metric with piecewise cubic (PCHIP) interpolation.

As in the JVET/VCEG common-test-condition spreadsheets: log-rate is interpolated as a
monotone piecewise cubic function of the quality metric (or the metric as a function of
log-rate for BD-metric), both curves are integrated over the range where they overlap, and
the mean log-rate difference is turned into a percentage. For metrics where lower is better
(LPIPS, DISTS) the metric is negated first so that "quality" increases with rate.
Negative BD-rate = the test codec needs fewer bits for the same quality."""

import math

import numpy as np
from scipy.interpolate import PchipInterpolator


def _prepare(x, y):
    """Sort by x, average duplicates of x, drop non-finite points."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    ux = np.unique(x)
    uy = np.array([y[x == v].mean() for v in ux])
    return ux, uy


def _mean_over(x, y, lo, hi):
    f = PchipInterpolator(x, y, extrapolate=False)
    return float(f.integrate(lo, hi)) / (hi - lo)


def bd_rate(rate_a, metric_a, rate_b, metric_b, lower_is_better=False):
    """BD-rate of B (test) against A (anchor), in percent; NaN without overlap or < 2 points."""
    sign = -1.0 if lower_is_better else 1.0
    qa, la = _prepare(sign * np.asarray(metric_a, float), np.log(np.asarray(rate_a, float)))
    qb, lb = _prepare(sign * np.asarray(metric_b, float), np.log(np.asarray(rate_b, float)))
    if len(qa) < 2 or len(qb) < 2:
        return float("nan")
    lo, hi = max(qa[0], qb[0]), min(qa[-1], qb[-1])
    if not hi > lo:
        return float("nan")
    diff = _mean_over(qb, lb, lo, hi) - _mean_over(qa, la, lo, hi)
    return (math.exp(diff) - 1.0) * 100.0


def bd_metric(rate_a, metric_a, rate_b, metric_b):
    """Mean metric difference B - A over the overlapping log-rate range (e.g. BD-PSNR in dB)."""
    ra, ma = _prepare(np.log(np.asarray(rate_a, float)), metric_a)
    rb, mb = _prepare(np.log(np.asarray(rate_b, float)), metric_b)
    if len(ra) < 2 or len(rb) < 2:
        return float("nan")
    lo, hi = max(ra[0], rb[0]), min(ra[-1], rb[-1])
    if not hi > lo:
        return float("nan")
    return _mean_over(rb, mb, lo, hi) - _mean_over(ra, ma, lo, hi)


def overlap_fraction(rate_a, metric_a, rate_b, metric_b, lower_is_better=False):
    """Share of the anchor's metric range that the two curves have in common (0..1)."""
    sign = -1.0 if lower_is_better else 1.0
    qa = sign * np.asarray(metric_a, float)
    qb = sign * np.asarray(metric_b, float)
    qa, qb = qa[np.isfinite(qa)], qb[np.isfinite(qb)]
    if qa.size < 2 or qb.size < 2:
        return 0.0
    lo, hi = max(qa.min(), qb.min()), min(qa.max(), qb.max())
    span = qa.max() - qa.min()
    return max(0.0, hi - lo) / span if span > 0 else 0.0
