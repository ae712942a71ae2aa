"""NAB scoring (the Numenta Anomaly Benchmark: Lavin & Ahmad 2015) and the evaluation of ``lakeforge.ml.anomaly``
on the NAB streams in a data folder.

The scorer reproduces the NAB repository's ``nab/sweeper.py`` (``calcSweepScore``, ``calcScoreByThreshold``),
``nab/scorer.py`` (scoring at a threshold) and the normalization of ``nab/runner.py``:

* the probationary period is the first ``min(floor(0.15 * n), 0.15 * 5000)`` rows of each stream (NAB's
  ``getProbationPeriod``: 15 %, capped at 750 rows); detections there are ignored;
* a labeled window, ``[start, end]`` from ``labels/windows.json``, is scored by its earliest detection only:
  ``A_TP * scaledSigmoid(-(end - i + 1) / width) / scaledSigmoid(-1)`` (so a detection on the window's first row
  earns exactly ``A_TP``); a window with no detection costs ``-A_FN``;
* a detection outside every window costs ``A_FP * scaledSigmoid(|i - prev_end| / (prev_width - 1))`` relative to
  the preceding window (close to 0 just after a window, -A_FP three window widths later) and ``-A_FP`` before
  the first window; ``scaledSigmoid(x) = 2 / (1 + exp(5 x)) - 1``, and -1 from ``x >= 3``;
* true negatives score nothing (the profiles' ``tnWeight`` is read but, as in NAB, unused);
* normalized score = ``100 * (raw - null) / (perfect - null)`` with ``null`` the raw score of a detector that
  never fires (``-A_FN`` per window) and ``perfect = A_TP`` per window;
* the threshold turning anomaly scores into detections (``score >= threshold``) is the one that maximizes the
  summed raw score over the corpus (NAB's sweep over every distinct anomaly score: the highest threshold wins a
  tie; "never fire" is the start row, threshold 1.1).

Deviations (none changes a result on NAB's labels): NAB requires window limits to be timestamps of the stream;
here a limit that is not one falls back to the first row at or after ``start`` / the last row at or before
``end``, and a one-row window's FP denominator ``width - 1`` is clamped to 1 (NAB divides by zero).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lakeforge.errors import LakeforgeError

PROBATIONARY_PERCENT = 0.15
STREAMS = (  # the two industrial streams (the detector's defaults were first tuned on them)
    "realKnownCause/machine_temperature_system_failure.csv",
    "realKnownCause/ambient_temperature_system_failure.csv",
)
# Published NAB (v1.1) scoreboard, standard profile, whole corpus (58 streams).
PUBLISHED = {
    "ARTime": 74.9, "Numenta HTM": 70.5, "CAD OSE": 69.9, "KNN CAD": 58.0, "Random Cut Forest": 51.7,
    "Twitter ADVec": 47.1, "Windowed Gaussian": 39.6, "Bayesian Changepoint": 17.7, "random": 11.0, "null": 0.0,
}
NO_DETECTION_THRESHOLD = 1.1  # NAB's sweep starts above every score in [0, 1]: nothing flagged

OUTSIDE = -1  # window id of a scorable row outside every window
PROBATION = -2  # window id of a row in the probationary period


@dataclass(frozen=True)
class CostMatrix:
    """A NAB profile's weights (``labels/profiles.json``: ``CostMatrix``)."""

    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0
    tn: float = 1.0  # unused by NAB's scorer: true negatives score 0

    @classmethod
    def from_json(cls, matrix: Mapping[str, Any]) -> CostMatrix:
        return cls(tp=float(matrix["tpWeight"]), fp=float(matrix["fpWeight"]), fn=float(matrix["fnWeight"]),
                   tn=float(matrix.get("tnWeight", 1.0)))


PROFILES = {
    "standard": CostMatrix(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": CostMatrix(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostMatrix(tp=1.0, fp=0.11, fn=2.0),
}

Window = tuple[np.datetime64, np.datetime64]


# -- data -----------------------------------------------------------------------------------------------------

def _stream_key(name: str) -> str:
    """``machine_temperature_system_failure`` -> ``realKnownCause/machine_temperature_system_failure.csv``."""
    if "/" in name:
        return name if name.endswith(".csv") else f"{name}.csv"
    stem = name.removesuffix(".csv")
    for key in STREAMS:
        if Path(key).stem == stem:
            return key
    return f"realKnownCause/{stem}.csv"


def load_stream(data_dir: Path | str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A NAB stream's ``(timestamps, values)``: ``datetime64[s]`` and ``float64`` arrays, in file order.

    ``name`` is the path under ``data_dir`` (``realKnownCause/x.csv``) or the file's stem (``x``)."""
    path = Path(data_dir) / _stream_key(name)
    if not path.is_file():
        raise LakeforgeError(f"NAB stream {path} not found",
                             hint="--data-dir is the NAB folder, the one holding realKnownCause/ and labels/")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    timestamps = np.array([row["timestamp"] for row in rows], dtype="datetime64[s]")
    values = np.array([float(row["value"]) for row in rows], dtype=np.float64)
    return timestamps, values


def load_windows(data_dir: Path | str, *, path: Path | None = None) -> dict[str, list[Window]]:
    """``labels/windows.json`` (or the labels file at ``path``, in NAB's ``combined_windows.json`` format): each
    stream's labeled windows as ``(start, end)`` timestamps."""
    with (path or Path(data_dir) / "labels" / "windows.json").open() as f:
        raw = json.load(f)
    return {key: [(np.datetime64(a, "s"), np.datetime64(b, "s")) for a, b in limits] for key, limits in raw.items()}


def load_profiles(data_dir: Path | str) -> dict[str, CostMatrix]:
    """``labels/profiles.json`` (NAB's application profiles; ``config/profiles.json`` in NAB's repository); the
    built-in ``PROFILES`` if neither is there."""
    path = next((p for p in (Path(data_dir) / "labels" / "profiles.json", Path(data_dir) / "config" / "profiles.json")
                 if p.is_file()), None)
    if path is None:
        return dict(PROFILES)
    with path.open() as f:
        raw = json.load(f)
    return {name: CostMatrix.from_json(body["CostMatrix"]) for name, body in raw.items()}


def _cost(profile: str | CostMatrix | Mapping[str, Any]) -> CostMatrix:
    if isinstance(profile, CostMatrix):
        return profile
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise LakeforgeError(f"unknown NAB profile {profile!r}", hint=f"use one of {sorted(PROFILES)}")
        return PROFILES[profile]
    return CostMatrix.from_json(profile)


# -- the scoring function ---------------------------------------------------------------------------------------

def probationary_length(n: int, percent: float = PROBATIONARY_PERCENT) -> int:
    """NAB's ``getProbationPeriod``: ``min(floor(percent * n), percent * 5000)`` rows (rows ``i`` below it)."""
    return math.ceil(min(math.floor(percent * n), percent * 5000))


def scaled_sigmoid(x: float | np.ndarray) -> np.ndarray:
    """``2 * sigmoid(-5 x) - 1``, and -1 for ``x >= 3`` (NAB's ``scaledSigmoid``)."""
    arr = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        out = 2.0 / (1.0 + np.exp(5.0 * arr)) - 1.0
    return np.where(arr >= 3.0, -1.0, out)


_MAX_TP = float(scaled_sigmoid(-1.0))  # 0.98661: the earliest detection in a window, scaled to A_TP


def window_indices(timestamps: np.ndarray, windows: Iterable[Window]) -> list[tuple[int, int]]:
    """Each window's first and last row index (inclusive), found as NAB does: the row whose timestamp equals the
    limit (the first such row; the start is searched after the previous window's end)."""
    ts = np.asarray(timestamps).astype("datetime64[s]")
    out: list[tuple[int, int]] = []
    after = 0
    for start, end in sorted(windows, key=lambda w: w[0]):
        a, b = np.array(start, dtype="datetime64[s]"), np.array(end, dtype="datetime64[s]")
        hits = np.flatnonzero(ts[after:] == a)
        if hits.size:
            lo = after + int(hits[0])
        else:  # not a timestamp of the stream (NAB would fail): the first row at or after start
            later = np.flatnonzero(ts[after:] >= a)
            if not later.size:
                continue
            lo = after + int(later[0])
        hits = np.flatnonzero(ts[lo:] == b)
        if hits.size:
            hi = lo + int(hits[0])
        else:  # the last row at or before end
            before = np.flatnonzero(ts[lo:] <= b)
            if not before.size:
                continue
            hi = lo + int(before[-1])
        out.append((lo, hi))
        after = hi + 1
    return out


def sweep_scores(timestamps: np.ndarray, windows: Iterable[Window], profile: str | CostMatrix = "standard", *,
                 probationary_percent: float = PROBATIONARY_PERCENT) -> tuple[np.ndarray, np.ndarray]:
    """NAB's ``calcSweepScore`` for every row: ``(weight, window)``, the row's score were it a detection and its
    window's number (``OUTSIDE`` outside every window, ``PROBATION`` in the probationary period)."""
    cost = _cost(profile)
    n = len(timestamps)
    weight = np.empty(n, dtype=np.float64)
    window = np.full(n, OUTSIDE, dtype=np.int64)
    idx = np.arange(n, dtype=np.float64)
    prev_end: int | None = None
    prev_width = 0
    cursor = 0
    for k, (lo, hi) in enumerate(window_indices(timestamps, windows)):
        # rows before this window: false positives relative to the preceding window (or before any: -A_FP)
        _fp_weights(weight, cursor, lo, idx, prev_end, prev_width, cost)
        width = hi - lo + 1
        position = -(hi - idx[lo:hi + 1] + 1) / width
        weight[lo:hi + 1] = scaled_sigmoid(position) * cost.tp / _MAX_TP
        window[lo:hi + 1] = k
        prev_end, prev_width, cursor = hi, width, hi + 1
    _fp_weights(weight, cursor, n, idx, prev_end, prev_width, cost)
    window[:probationary_length(n, probationary_percent)] = PROBATION
    return weight, window


def _fp_weights(weight: np.ndarray, lo: int, hi: int, idx: np.ndarray, prev_end: int | None, prev_width: int,
                cost: CostMatrix) -> None:
    if hi <= lo:
        return
    if prev_end is None:
        weight[lo:hi] = -cost.fp
        return
    position = np.abs(prev_end - idx[lo:hi]) / max(prev_width - 1, 1)
    weight[lo:hi] = scaled_sigmoid(position) * cost.fp


def _as_mask(detections: np.ndarray | Sequence[Any], n: int) -> np.ndarray:
    arr = np.asarray(detections)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise LakeforgeError(f"detections: a mask of {arr.shape[0]} rows for a stream of {n}")
        return arr
    mask = np.zeros(n, dtype=bool)
    mask[arr.astype(np.int64)] = True  # row indices
    return mask


def score(timestamps: np.ndarray, detections: np.ndarray | Sequence[Any], windows: Iterable[Window],
          profile: str | CostMatrix = "standard", *, probationary_percent: float = PROBATIONARY_PERCENT
          ) -> dict[str, Any]:
    """NAB's score of one stream's detections (a boolean mask over the rows, or row indices).

    Returns the raw score, the null (never fires) and perfect raw scores, ``normalized`` (NAB's 0..100 scale),
    and the counts: windows detected / missed, false-positive rows and what they cost."""
    cost = _cost(profile)
    windows = list(windows)
    n = len(timestamps)
    mask = _as_mask(detections, n)
    weight, window = sweep_scores(timestamps, windows, cost, probationary_percent=probationary_percent)
    scorable = mask & (window != PROBATION)
    per_window: list[dict[str, Any]] = []
    raw = null = 0.0
    for k, (lo, hi) in enumerate(window_indices(timestamps, windows)):
        if not np.any(window[lo:hi + 1] == k):  # wholly in the probationary period: NAB ignores it
            continue
        null -= cost.fn
        hits = np.flatnonzero(scorable[lo:hi + 1])
        if hits.size:  # only the earliest detection counts
            first = lo + int(hits[0])
            part = float(weight[first])
            per_window.append({"start": str(timestamps[lo]), "end": str(timestamps[hi]),
                               "detected_at": str(timestamps[first]), "score": part})
        else:
            part = -cost.fn
            per_window.append({"start": str(timestamps[lo]), "end": str(timestamps[hi]), "detected_at": None,
                               "score": part})
        raw += part
    fp_rows = scorable & (window == OUTSIDE)
    fp_cost = float(weight[fp_rows].sum())
    raw += fp_cost
    perfect = cost.tp * len(windows)
    detected = sum(1 for w in per_window if w["detected_at"] is not None)
    return {
        "normalized": normalize(raw, null, perfect),
        "raw": raw, "null": null, "perfect": perfect,
        "windows_detected": detected, "windows_missed": len(per_window) - detected,
        "false_positives": int(fp_rows.sum()), "fp_cost": fp_cost,
        "probationary_rows": probationary_length(n, probationary_percent),
        "windows": per_window,
    }


def normalize(raw: float, null: float, perfect: float) -> float:
    """NAB's normalization: 0 for the null detector, 100 for the perfect one."""
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0


# -- the threshold ----------------------------------------------------------------------------------------------

StreamScores = tuple[np.ndarray, np.ndarray, Sequence[Window]]  # (timestamps, anomaly scores, windows)


def scores_by_threshold(streams: Sequence[StreamScores], profile: str | CostMatrix = "standard", *,
                        probationary_percent: float = PROBATIONARY_PERCENT) -> tuple[np.ndarray, np.ndarray]:
    """NAB's ``calcScoreByThreshold`` over several streams at once: ``(thresholds, raw)``, the summed raw score
    when every row whose anomaly score is ``>= threshold`` is a detection, thresholds descending (the first row,
    ``NO_DETECTION_THRESHOLD`` or above every score, flags nothing)."""
    cost = _cost(profile)
    scores_, weights, windows_ = [], [], []
    offset = 0
    for timestamps, anomaly, windows in streams:
        anomaly = np.asarray(anomaly, dtype=np.float64)
        weight, window = sweep_scores(timestamps, windows, cost, probationary_percent=probationary_percent)
        keep = window != PROBATION
        scores_.append(anomaly[keep])
        weights.append(weight[keep])
        w = window[keep]
        windows_.append(np.where(w >= 0, w + offset, w))
        offset += int(w.max(initial=-1)) + 1
    a = np.concatenate(scores_) if scores_ else np.empty(0)
    wt = np.concatenate(weights) if weights else np.empty(0)
    wid = np.concatenate(windows_) if windows_ else np.empty(0, dtype=np.int64)
    order = np.argsort(-a, kind="stable")
    a, wt, wid = a[order], wt[order], wid[order]
    delta = np.where(wid == OUTSIDE, wt, 0.0)  # every flagged FP row adds its (negative) weight
    present = np.unique(wid[wid >= 0])
    base = -cost.fn * present.size  # every window missed
    for k in present:  # a window's part is max(-A_FN, best weight flagged so far)
        rows = np.flatnonzero(wid == k)
        part = np.maximum(np.maximum.accumulate(wt[rows]), -cost.fn)
        delta[rows] += np.diff(part, prepend=-cost.fn)
    total = base + np.cumsum(delta)
    # the score at threshold t counts every row with a score >= t: the last row of each run of equal scores
    last = np.flatnonzero(np.append(a[1:] != a[:-1], True)) if a.size else np.empty(0, dtype=np.int64)
    start = max(NO_DETECTION_THRESHOLD, float(np.nextafter(a[0], np.inf))) if a.size else NO_DETECTION_THRESHOLD
    thresholds = np.concatenate([[start], a[last]])
    raw = np.concatenate([[base], total[last]])
    return thresholds, raw


def optimize_threshold(streams: Sequence[StreamScores], profile: str | CostMatrix = "standard", *,
                       probationary_percent: float = PROBATIONARY_PERCENT) -> dict[str, float]:
    """The threshold with the best summed raw score over ``streams`` (NAB's sweeper/optimizer: every distinct
    anomaly score is tried; ties go to the highest threshold). Returns ``threshold``, ``raw`` and ``normalized``."""
    cost = _cost(profile)
    thresholds, raw = scores_by_threshold(streams, cost, probationary_percent=probationary_percent)
    best = int(np.argmax(raw))
    null = perfect = 0.0
    for timestamps, _, windows in streams:
        _, window = sweep_scores(timestamps, windows, cost, probationary_percent=probationary_percent)
        null -= cost.fn * np.unique(window[window >= 0]).size
        perfect += cost.tp * len(list(windows))
    return {"threshold": float(thresholds[best]), "raw": float(raw[best]),
            "normalized": normalize(float(raw[best]), null, perfect)}
