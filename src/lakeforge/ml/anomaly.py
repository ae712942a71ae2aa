"""Streaming anomaly detection for one numeric series (a machine's sensor, a NAB stream).

Every score uses only the current and earlier values. ``StreamingDetector`` takes one point at a time;
``detect`` runs the same computation vectorized over a whole series and gives the same scores, alerts and
reasons (asserted by the tests). There is no random component: results are deterministic.

Per point, five components, each a raw "surprise" (higher = more unusual); a component whose weight is 0 or absent
is not computed. The defaults use ``context`` alone (chosen by leave-one-category-out cross-validation on NAB,
docs/ml.md); ``knn`` alone was the default before (``weights={"knn": 1.0}, alert_surprise=3.0``); the other three
are the earlier detector's (``weights={"tail": 1.0, "level": 0.2, "change": 0.2}, alert_surprise=3.0``).

* ``context``: a causal CAD OSE (:mod:`lakeforge.ml.context`): how unexpected the value is for the contexts learned
  on the quantized series, a raw score in [0, 1]; it does not go through the likelihood: its surprise is
  ``-log10(1 - raw)``;
* ``knn``: KNN-CAD (:mod:`lakeforge.ml.cad`): ``-log10`` of the conformal p-value of the sum of the distances from
  the last ``knn_dim`` values to their ``knn_k`` nearest neighbours among past windows;

* ``tail``: how extreme the value is against the series' own history -- a generalized Pareto distribution
  (peaks over threshold, both tails) fitted by moments to the history's exceedances over its
  ``tail_quantile`` quantile, refitted every ``refit_every`` points on the past only; the raw score is
  ``-log10`` of the tail probability (the body scores ``-log10(1 - tail_quantile)``);
* ``level``: ``|value - median| / (1.4826 MAD)`` over the trailing ``window_hours`` (robust z-score);
* ``change``: the same robust z-score for the change over ``change_hours`` (``x[t] - x[t - h]``) against the
  trailing window of such changes.

Each other raw component goes through NAB's anomaly likelihood (Ahmad et al. 2017): its mean over the last ``short``
points is compared with the distribution (mean, sd, re-estimated every ``reestimate_every`` points over the last
``long`` points) of those averages, giving a Gaussian tail probability ``p``; the component's surprise is
``-log10 p``. The detector's surprise is the largest weighted component surprise (``weights``), and the score
``surprise / (1 + surprise)`` in [0, 1) (0.5: p = 0.1, 0.75: p = 1e-3, 0.8: p = 1e-4).

Alerts: a point whose surprise reaches ``alert_surprise`` raises an alert unless one was raised in the last
``dead_time_hours``; during that dead time scores are capped just below the alert level, so one event gives
one alert (and, on NAB, one detection) at any threshold at or above the alert level.

The first ``min_history`` points only learn (score 0); the likelihood needs ``likelihood_samples`` more
(``context`` alone: the first ``context_learn`` points).
Missing values (NaN) score 0 with the reason "missing value" and do not enter the history. Windows given in
hours become point counts through the sampling period (``period_seconds``, else the median spacing of the
first timestamps: ``infer_period``).
"""

from __future__ import annotations

import math
from bisect import insort
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lakeforge.config.ml import DetectorParams
from lakeforge.errors import LakeforgeError
from lakeforge.ml.cad import KnnCad
from lakeforge.ml.context import ContextDetector

COMPONENTS = ("tail", "level", "change", "knn", "context")
_DIRECT = ("context",)  # components scored by their own raw score, not through the likelihood
_LN10 = math.log(10.0)
_MAD_TO_SD = 1.4826
_MAX_Z = 1e3  # a robust z-score beyond this is clipped (a flat window has MAD 0)
_MAX_SURPRISE = 50.0
_TAIL_FLOOR = 20.0  # reasons: a tail probability below 1e-20 is reported as such (beyond the fitted tail)
_SD_FLOOR = 1e-6
_CHUNK = 2048


@dataclass(frozen=True)
class Point:
    """One scored point (``StreamingDetector.update``)."""

    score: float
    alert: bool
    surprise: float
    components: dict[str, float]
    reason: str


@dataclass(frozen=True)
class _Sizes:
    window: int
    change: int
    dead_time: int
    period: float


def infer_period(timestamps: Sequence[Any] | np.ndarray, *, head: int = 101) -> float:
    """The sampling period in seconds: the median positive spacing of the first ``head`` timestamps (so a
    streaming consumer can decide it as early as the batch path does)."""
    ts = np.asarray(timestamps[:head]).astype("datetime64[ns]").astype(np.int64)
    steps = np.diff(ts)
    steps = steps[steps > 0]
    if not steps.size:
        raise LakeforgeError("cannot infer the sampling period from fewer than two distinct timestamps",
                             hint="pass DetectorParams(period_seconds=...)")
    return float(np.median(steps)) / 1e9


def _sizes(params: DetectorParams, period: float) -> _Sizes:
    def points(hours: float) -> int:
        return max(1, round(hours * 3600.0 / period))
    return _Sizes(window=max(3, points(params.window_hours)), change=points(params.change_hours),
                  dead_time=points(params.dead_time_hours) if params.dead_time_hours > 0 else 0, period=period)


def _uses(params: DetectorParams) -> dict[str, bool]:
    """The components computed: those weighted (level always: the reasons quote it). Only the weighted ones go
    through the likelihood; the others' surprises are 0."""
    return {c: c == "level" or params.weights.get(c, 0.0) > 0 for c in COMPONENTS}


def _weighted(params: DetectorParams) -> list[str]:
    """The components with a weight that go through their own likelihood (all but the direct ones)."""
    return [c for c in COMPONENTS if params.weights.get(c, 0.0) > 0 and c not in _DIRECT]


def warm_up(params: DetectorParams) -> int:
    """Points before any score: ``min_history + likelihood_samples`` for the components through the likelihood,
    ``context_learn`` for the contextual one; the earliest of the weighted ones."""
    starts = [params.min_history + params.likelihood_samples] if _weighted(params) else []
    if params.weights.get("context", 0.0) > 0:
        starts.append(params.context_learn)
    return min(starts, default=params.min_history)


def _direct_surprise(raw: np.ndarray) -> np.ndarray:
    """A direct component's surprise from its raw score in [0, 1]: ``-log10(1 - raw)`` (monotone), capped."""
    with np.errstate(divide="ignore"):
        return np.asarray(np.minimum(-np.log10(1.0 - raw), _MAX_SURPRISE))


def _hours(h: float) -> str:
    return f"{h:g} h" if h < 48 or h % 24 else f"{h / 24:g} d"


# -- components (shared by both paths: the same numpy calls on the same arrays) ---------------------------------

def _robust_z(value: np.ndarray, med: np.ndarray, mad: np.ndarray) -> np.ndarray:
    scale = np.maximum(_MAD_TO_SD * mad, 1e-9 * np.maximum(1.0, np.abs(med)))
    return np.asarray(np.clip((value - med) / scale, -_MAX_Z, _MAX_Z))


def _fit_tail(history: np.ndarray, q: float) -> np.ndarray:
    """Per side (upper, lower): the threshold ``u``, the GPD's shape ``xi`` and scale ``sigma`` (moments)."""
    out = np.empty((2, 3))
    for side, sign in enumerate((1.0, -1.0)):
        h = sign * history
        u = float(np.quantile(h, q))
        y = h[h > u] - u
        if y.size > 5:
            m, v = float(np.mean(y)), float(np.var(y))
            if v > 0:
                xi = 0.5 * (1.0 - m * m / v)
                sigma = 0.5 * m * (m * m / v + 1.0)
            else:
                xi, sigma = 0.0, m
        else:
            xi, sigma = 0.0, float(np.std(h))
        out[side] = (u, min(max(xi, -0.5), 0.5), max(sigma, 1e-9))
    return out


def _tail_surprise(x: np.ndarray, fit: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """``-log10`` of the tail probability of each value (the larger side) and the side (+1 upper, -1 lower)."""
    best = np.zeros_like(x)
    side_of = np.ones_like(x)
    base = -math.log(1.0 - q)
    for side, sign in enumerate((1.0, -1.0)):
        u, xi, sigma = fit[side]
        z = np.maximum(sign * x - u, 0.0)
        if abs(xi) < 1e-6:
            log_sf = -z / sigma
        else:
            arg = 1.0 + xi * z / sigma
            with np.errstate(divide="ignore", invalid="ignore"):
                log_sf = np.where(arg > 0, -np.log1p(np.where(arg > 0, xi * z / sigma, 0.0)) / xi, -_MAX_SURPRISE)
        s = np.minimum((base - log_sf) / _LN10, _MAX_SURPRISE)
        side_of = np.where(s > best, sign, side_of)
        best = np.maximum(best, s)
    return best, side_of


def _likelihood_surprise(avg: np.ndarray, mean: float, sd: float) -> np.ndarray:
    z = (avg - mean) / (sd + _SD_FLOOR)
    from scipy.special import log_ndtr  # (imported when scoring: SciPy takes 0.2 s to import)

    return np.asarray(np.minimum(-log_ndtr(-z) / _LN10, _MAX_SURPRISE))


def _score(surprise: np.ndarray) -> np.ndarray:
    return surprise / (1.0 + surprise)


# -- the streaming detector -------------------------------------------------------------------------------------

class StreamingDetector:
    """The detector, one point at a time: ``update(value)`` returns the point's ``Point``."""

    def __init__(self, params: DetectorParams | None = None, *, period_seconds: float | None = None,
                 name: str = "value") -> None:
        self.params = params or DetectorParams()
        period = period_seconds or self.params.period_seconds
        if not period or period <= 0:
            raise LakeforgeError("StreamingDetector needs the sampling period",
                                 hint="pass period_seconds=... (infer_period(timestamps) for a known series)")
        self.name = name
        self.sizes = _sizes(self.params, period)
        p, sz = self.params, self.sizes
        self._win: deque[float] = deque(maxlen=sz.window)  # level: the trailing window
        self._lag: deque[float] = deque(maxlen=sz.change)  # change: the last h values
        self._hist: deque[float] = deque(maxlen=p.history)  # tail: the history it is fitted on
        self._d: deque[float] = deque(maxlen=sz.window)
        self._raw = {c: deque[float](maxlen=p.short) for c in COMPONENTS}
        self._avg = {c: deque[float](maxlen=p.long) for c in COMPONENTS}
        self._dist: dict[str, tuple[float, float] | None] = dict.fromkeys(COMPONENTS)
        self._fit: np.ndarray | None = None
        self._n = 0  # valid points seen
        self._last_alert: int | None = None
        self._alert_cap = float(np.nextafter(_score(np.array(self.params.alert_surprise)), 0.0))
        self._uses = _uses(p)
        self._weighted = _weighted(p)
        self._cad = KnnCad(p) if self._uses["knn"] else None
        self._ctx = ContextDetector(p) if self._uses["context"] else None

    def update(self, value: float) -> Point:
        p, sz = self.params, self.sizes
        x = float(value)
        if math.isnan(x):
            return Point(0.0, False, 0.0, dict.fromkeys(COMPONENTS, 0.0), "missing value")
        t = self._n
        knn = self._cad.update(x)[0] if self._cad is not None else 0.0
        ctx = self._ctx.update(x) if self._ctx is not None else 0.0
        # level: the value against the trailing window
        win = np.array(self._win, dtype=np.float64)
        med = mad = 0.0
        z = 0.0
        if win.size >= 3:
            med = float(np.median(win))
            mad = float(np.median(np.abs(win - med)))
            z = float(_robust_z(np.array([x]), np.array([med]), np.array([mad]))[0])
        # change: x[t] - x[t - h] against the trailing window of changes
        d = dz = 0.0
        if self._uses["change"] and len(self._lag) == sz.change:
            d = x - self._lag[0]
            dwin = np.array(self._d, dtype=np.float64)
            if dwin.size >= 3:
                dmed = float(np.median(dwin))
                dmad = float(np.median(np.abs(dwin - dmed)))
                dz = float(_robust_z(np.array([d]), np.array([dmed]), np.array([dmad]))[0])
            self._d.append(d)
        # tail: refit on the history every refit_every points, then score the value
        tail = 0.0
        side = 1.0
        if self._uses["tail"] and t >= p.min_history:
            if (t - p.min_history) % p.refit_every == 0:
                self._fit = _fit_tail(np.array(self._hist, dtype=np.float64), p.tail_quantile)
            assert self._fit is not None
            ts_, sd_ = _tail_surprise(np.array([x]), self._fit, p.tail_quantile)
            tail, side = float(ts_[0]), float(sd_[0])
        self._win.append(x)
        self._lag.append(x)
        self._hist.append(x)
        self._n += 1

        surprises = dict.fromkeys(COMPONENTS, 0.0)
        raw = {"tail": tail, "level": abs(z), "change": abs(dz), "knn": knn, "context": ctx}
        if self._ctx is not None:
            surprises["context"] = float(_direct_surprise(np.array([ctx]))[0])
        if t >= p.min_history:
            k = t - p.min_history  # index among the likelihood's samples
            for c in self._weighted:
                self._raw[c].append(raw[c])
                avg = sum(self._raw[c]) / len(self._raw[c])
                if k >= p.likelihood_samples and (k - p.likelihood_samples) % p.reestimate_every == 0:
                    hist = np.array(self._avg[c], dtype=np.float64)
                    self._dist[c] = (float(np.mean(hist)), float(np.std(hist)))
                dist = self._dist[c]
                if dist is not None:
                    surprises[c] = float(_likelihood_surprise(np.array([avg]), *dist)[0])
                self._avg[c].append(avg)
        weighted = {c: p.weights.get(c, 0.0) * surprises[c] for c in COMPONENTS}
        top = max(COMPONENTS, key=lambda c: weighted[c])
        surprise = weighted[top]
        score = float(_score(np.array(surprise)))
        alert = False
        if surprise >= p.alert_surprise:
            if self._last_alert is None or t - self._last_alert > sz.dead_time:
                alert = True
                self._last_alert = t
            else:
                score = min(score, self._alert_cap)
        reason = _reason(self.name, p, t, x, (med, z, d, dz, tail, side, knn, ctx), top, surprise)
        return Point(score, alert, surprise, surprises, reason)


def _reason(name: str, p: DetectorParams, t: int, x: float, figures: tuple[float, ...], top: str,
            surprise: float) -> str:
    """Why a point scores as it does; ``figures``: its median, robust z, change, the change's robust z, tail
    surprise and side, the k-NN surprise and the contextual raw score."""
    med, z, d, dz, tail, side, knn, ctx = figures
    warm = warm_up(p)
    if t < warm:
        return f"learning ({t + 1} of {warm} points)"
    where = "above" if z >= 0 else "below"
    level = f"{name} {abs(z):.1f} robust sd {where} its {_hours(p.window_hours)} median ({x:.4g} vs {med:.4g})"
    if top == "change" and surprise > 0:
        verb = "rose" if d >= 0 else "fell"
        return (f"{name} {verb} {abs(d):.4g} in {_hours(p.change_hours)}, {abs(dz):.1f} robust sd beyond its "
                f"usual {_hours(p.change_hours)} change")
    if top == "context" and surprise > 0:
        return (f"{name}: its last readings broke the patterns learned from its history (contextual anomaly score "
                f"{ctx:.2f}); {level}")
    if top == "knn" and surprise > 0:
        return (f"{name}: its last {p.knn_dim} readings are unlike its earlier ones (nearest-neighbour conformal "
                f"p = {10.0 ** -knn:.2g}); {level}")
    if top == "tail" and tail > -math.log10(1.0 - p.tail_quantile) + 0.05:
        extreme = "high" if side > 0 else "low"
        odds = f"p < 1e-{_TAIL_FLOOR:.0f}" if tail >= _TAIL_FLOOR else f"p = {10.0 ** -tail:.1g}"
        return f"{name} {x:.4g} is unusually {extreme} for its history (tail {odds}); {level}"
    return level


# -- the batch path ------------------------------------------------------------------------------------------------

def _trailing_robust(series: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each i: median and MAD of ``series[max(0, i - window):i]`` (NaN below 3 values) and the robust z of
    ``series[i]`` against them -- the same numpy calls the streaming path makes."""
    n = series.size
    med = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    warm = min(window, n)  # the first points: the window is still filling
    if 3 < warm <= _GROWING_MAX and _plain(series[:warm]):
        med[3:warm], mad[3:warm] = _growing_medians(series[:warm].tolist())
    else:
        for i in range(3, warm):
            w = series[:i]
            med[i] = float(np.median(w))
            mad[i] = float(np.median(np.abs(w - med[i])))
    if n > window:
        views = sliding_window_view(series, window)[: n - window]  # views[j] = series[j:j + window] -> i = j + w
        for lo in range(0, views.shape[0], _CHUNK):
            block = views[lo:lo + _CHUNK]
            m = np.median(block, axis=1)
            med[window + lo: window + lo + block.shape[0]] = m
            mad[window + lo: window + lo + block.shape[0]] = np.median(np.abs(block - m[:, None]), axis=1)
    z = np.zeros(n)
    ok = ~np.isnan(med)
    z[ok] = _robust_z(series[ok], med[ok], mad[ok])
    return np.nan_to_num(med), np.nan_to_num(mad), z


_GROWING_MAX = 128  # windows up to this many points fill in Python; longer ones with np.median (faster there)


def _plain(values: np.ndarray) -> bool:
    """Finite, and no -0.0 (np.median of equal values may pick either zero; sorted() keeps the first)."""
    return bool(np.isfinite(values).all()) and not bool(np.signbit(values[values == 0]).any())


def _median_sorted(values: list[float]) -> float:
    """np.median of sorted values, to the bit: the middle one, or the mean of the middle two as NumPy sums them
    (the first, plus 0.0 + the second: a sum of two -0.0 is +0.0 there)."""
    half = len(values) // 2
    if len(values) % 2:
        return values[half]
    return (values[half - 1] + (0.0 + values[half])) / 2


def _growing_medians(values: list[float]) -> tuple[list[float], list[float]]:
    """For i from 3 to len(values) - 1: the median of ``values[:i]`` and the median of the absolute deviations from
    it (MAD), equal to ``np.median`` of the same arrays (finite values without -0.0, see :func:`_plain`). The first
    points of every series take these while the window fills: with np.median, a call per point and statistic cost
    the example's 40 short series 80 ms; kept sorted here, a few microseconds per point."""
    window = sorted(values[:3])
    meds: list[float] = []
    mads: list[float] = []
    for i in range(3, len(values)):
        m = _median_sorted(window)
        meds.append(m)
        mads.append(_median_sorted(sorted([abs(v - m) for v in window])))
        insort(window, values[i])
    return meds, mads


def _batch_likelihood(r: np.ndarray, p: DetectorParams) -> np.ndarray:
    """A component's likelihood surprises from its raw values after the first ``min_history`` points, as the
    streaming path computes them."""
    m = r.size
    acc = np.zeros(m)
    count = np.zeros(m)
    for lag in range(p.short - 1, -1, -1):  # oldest first, as the streaming sum
        shifted = np.zeros(m)
        shifted[lag:] = r[: m - lag]
        acc = acc + shifted
        count[lag:] += 1
    avg = acc / np.maximum(count, 1)
    out = np.zeros(m)
    for b in range(p.likelihood_samples, m, p.reestimate_every):
        hist = avg[max(0, b - p.long):b]
        out[b:b + p.reestimate_every] = _likelihood_surprise(avg[b:b + p.reestimate_every],
                                                             float(np.mean(hist)), float(np.std(hist)))
    return out


def detect_details(values: np.ndarray | Sequence[float], timestamps: np.ndarray | Sequence[Any] | None = None, *,
                   params: DetectorParams | None = None, name: str = "value",
                   reasons_for: Literal["all", "alerts"] = "all") -> dict[str, Any]:
    """The batch path: per point ``score``, ``alert``, ``surprise``, the component surprises and ``reason``
    (with ``reasons_for="alerts"`` only the alerts get a reason, the other points ``""``: much faster)."""
    p = params or DetectorParams()
    period = p.period_seconds
    if not period:
        if timestamps is None:
            raise LakeforgeError("detect needs timestamps or DetectorParams(period_seconds=...)")
        period = infer_period(timestamps)
    sz = _sizes(p, period)
    values_all = np.asarray(values, dtype=np.float64)
    valid = ~np.isnan(values_all)
    x = values_all[valid]
    n = x.size
    idx = np.arange(n)

    med, _, z = _trailing_robust(x, sz.window)
    h = sz.change
    d = np.zeros(n)
    dz = np.zeros(n)
    uses = _uses(p)
    if uses["change"] and n > h:
        dd = x[h:] - x[:-h]  # d[t] = x[t] - x[t - h], t >= h
        _, _, dzz = _trailing_robust(dd, sz.window)
        d[h:] = dd
        dz[h:] = dzz

    tail = np.zeros(n)
    side = np.ones(n)
    for b in range(p.min_history, n if uses["tail"] else 0, p.refit_every):
        lo = max(0, b - p.history) if p.history else 0
        fit = _fit_tail(x[lo:b], p.tail_quantile)
        tail[b:b + p.refit_every], side[b:b + p.refit_every] = _tail_surprise(x[b:b + p.refit_every], fit,
                                                                            p.tail_quantile)

    knn = np.zeros(n)
    if uses["knn"]:
        cad = KnnCad(p)
        knn = np.array([cad.update(v)[0] for v in x.tolist()], dtype=np.float64).reshape(n)
    ctx = np.zeros(n)
    if uses["context"]:
        contextual = ContextDetector(p)
        ctx = np.array([contextual.update(v) for v in x.tolist()], dtype=np.float64).reshape(n)
    raw = {"tail": tail, "level": np.abs(z), "change": np.abs(dz), "knn": knn, "context": ctx}
    surprises = {c: np.zeros(n) for c in COMPONENTS}
    if uses["context"]:
        surprises["context"] = _direct_surprise(ctx)
    for c in _weighted(p):
        surprises[c][p.min_history:] = _batch_likelihood(raw[c][p.min_history:], p)
    weighted = np.stack([p.weights.get(c, 0.0) * surprises[c] for c in COMPONENTS])
    top = np.argmax(weighted, axis=0)
    surprise = weighted[top, idx]
    score = _score(surprise)
    alert = np.zeros(n, dtype=bool)
    cap = float(np.nextafter(_score(np.array(p.alert_surprise)), 0.0))
    last: int | None = None
    for t in np.flatnonzero(surprise >= p.alert_surprise):
        if last is None or t - last > sz.dead_time:
            alert[t] = True
            last = int(t)
        else:
            score[t] = min(score[t], cap)
    explained: list[int] = list(range(n)) if reasons_for == "all" else np.flatnonzero(alert).tolist()
    reasons = [""] * n
    for i in explained:
        figures = (float(med[i]), float(z[i]), float(d[i]), float(dz[i]), float(tail[i]), float(side[i]),
                   float(knn[i]), float(ctx[i]))
        reasons[i] = _reason(name, p, i, float(x[i]), figures, COMPONENTS[top[i]], float(surprise[i]))

    def scatter(a: np.ndarray, fill: Any) -> np.ndarray:
        full = np.full(values_all.size, fill, dtype=a.dtype)
        full[valid] = a
        return full

    all_reasons = ["missing value"] * values_all.size
    for j, r in zip(np.flatnonzero(valid).tolist(), reasons, strict=True):
        all_reasons[j] = r
    return {
        "score": scatter(score, 0.0), "alert": scatter(alert, False), "surprise": scatter(surprise, 0.0),
        "components": {c: scatter(surprises[c], 0.0) for c in COMPONENTS}, "reason": all_reasons,
        "period_seconds": period,
    }


def detect(values: np.ndarray | Sequence[float], timestamps: np.ndarray | Sequence[Any] | None = None, *,
           params: DetectorParams | None = None, name: str = "value") -> tuple[np.ndarray, list[str]]:
    """Score a whole series: ``(scores in [0, 1), reasons)``, point for point what ``StreamingDetector`` gives."""
    out = detect_details(values, timestamps, params=params, name=name)
    return out["score"], out["reason"]
