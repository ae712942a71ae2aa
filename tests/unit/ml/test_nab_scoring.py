"""NAB's scoring function on synthetic streams with known answers, and the streaming detector on synthetic data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lakeforge.errors import LakeforgeError
from lakeforge.ml import anomaly, nab

N = 2000  # hourly rows: the probationary period is min(floor(0.15 * 2000), 750) = 300 rows
TS = np.datetime64("2020-01-01T00:00:00") + np.arange(N) * np.timedelta64(3600, "s")
W1, W2 = (500, 599), (1200, 1299)  # two windows of 100 rows
WINDOWS = [(TS[W1[0]], TS[W1[1]]), (TS[W2[0]], TS[W2[1]])]
MAX_TP = 2.0 / (1.0 + math.exp(-5.0)) - 1.0  # scaledSigmoid(-1) = 0.98661


def ss(x: float) -> float:
    """NAB's scaled sigmoid, written out."""
    return -1.0 if x >= 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def fires(*rows: int) -> np.ndarray:
    mask = np.zeros(N, dtype=bool)
    mask[list(rows)] = True
    return mask


def test_scaled_sigmoid_and_probationary_length() -> None:
    assert float(nab.scaled_sigmoid(-1.0)) == pytest.approx(0.98661, abs=1e-5)
    assert float(nab.scaled_sigmoid(-0.5)) == pytest.approx(0.84828, abs=1e-5)
    assert float(nab.scaled_sigmoid(0.0)) == 0.0
    assert float(nab.scaled_sigmoid(1.0)) == pytest.approx(-0.98661, abs=1e-5)
    assert float(nab.scaled_sigmoid(3.0)) == -1.0
    assert nab.probationary_length(N) == 300
    assert nab.probationary_length(22695) == 750  # 15 %, capped at 0.15 * 5000 rows
    assert nab.probationary_length(7267) == 750


def test_never_firing_scores_zero() -> None:
    result = nab.score(TS, np.zeros(N, dtype=bool), WINDOWS)
    assert result["normalized"] == 0.0
    assert result["raw"] == -2.0 and result["null"] == -2.0 and result["perfect"] == 2.0
    assert result["windows_missed"] == 2


def test_firing_once_at_each_window_start_is_perfect() -> None:
    # the earliest detection earns A_TP * scaledSigmoid(-1) / scaledSigmoid(-1) = A_TP exactly (NAB divides by maxTP)
    result = nab.score(TS, fires(W1[0], W2[0]), WINDOWS)
    assert result["raw"] == pytest.approx(2.0)
    assert result["normalized"] == pytest.approx(100.0)
    assert result["windows_detected"] == 2 and result["false_positives"] == 0


def test_a_later_detection_scores_by_the_sigmoid_of_its_position() -> None:
    mid = 550  # position -(599 - 550 + 1) / 100 = -0.5
    result = nab.score(TS, fires(mid, W2[0]), WINDOWS)
    tp = ss(-0.5) / MAX_TP
    assert tp == pytest.approx(0.85979, abs=1e-5)
    assert result["raw"] == pytest.approx(tp + 1.0)
    assert result["normalized"] == pytest.approx(100.0 * (tp + 1.0 + 2.0) / 4.0)
    last = nab.score(TS, fires(W1[1]), WINDOWS)  # the window's last row: position -1/100, barely positive
    assert last["windows"][0]["score"] == pytest.approx(ss(-0.01) / MAX_TP)
    assert 0 < last["windows"][0]["score"] < 0.03


def test_a_second_detection_in_a_window_adds_nothing() -> None:
    once = nab.score(TS, fires(W1[0], W2[0]), WINDOWS)
    more = nab.score(TS, fires(W1[0], 520, 550, W1[1], W2[0], W2[0] + 1), WINDOWS)
    assert more["raw"] == once["raw"]
    # only the earliest counts, whatever the order they are given in
    assert nab.score(TS, np.array([550, 510]), WINDOWS)["windows"][0]["score"] == pytest.approx(
        ss(-(599 - 510 + 1) / 100) / MAX_TP)


@pytest.mark.parametrize(("row", "weight"), [
    (400, -1.0),  # before any window: -A_FP
    (600, ss(1 / 99)),  # the row after a window's end: position |599 - 600| / (100 - 1), nearly free
    (700, ss(101 / 99)),  # one window width later: -0.987 A_FP
    (1000, -1.0),  # more than three widths after: -A_FP
    (1350, ss(51 / 99)),  # after the second window, relative to it
])
def test_a_false_positive_costs_the_fp_weight_scaled_as_nab_does(row: int, weight: float) -> None:
    base = nab.score(TS, fires(W1[0], W2[0]), WINDOWS)
    result = nab.score(TS, fires(W1[0], W2[0], row), WINDOWS)
    assert result["false_positives"] == 1
    assert result["fp_cost"] == pytest.approx(0.11 * weight)
    assert result["raw"] - base["raw"] == pytest.approx(0.11 * weight)
    assert result["normalized"] == pytest.approx(100.0 * (2.0 + 0.11 * weight + 2.0) / 4.0)
    if row in (400, 1000):
        assert result["normalized"] == pytest.approx(100.0 - 2.75)  # 0.11 of a 4-point range


def test_detections_in_the_probationary_period_are_ignored() -> None:
    assert nab.score(TS, fires(0, 10, 299), WINDOWS)["normalized"] == 0.0
    assert nab.score(TS, fires(0, 299, W1[0], W2[0]), WINDOWS)["normalized"] == pytest.approx(100.0)
    first_scored = nab.score(TS, fires(300), WINDOWS)  # the first row after it counts (a false positive)
    assert first_scored["false_positives"] == 1 and first_scored["fp_cost"] == pytest.approx(-0.11)


def test_profiles_change_the_weights_and_the_normalization() -> None:
    low_fn = nab.PROFILES["reward_low_FN_rate"]
    assert nab.score(TS, fires(), WINDOWS, low_fn)["raw"] == -4.0
    assert nab.score(TS, fires(), WINDOWS, low_fn)["normalized"] == 0.0
    assert nab.score(TS, fires(W1[0], W2[0]), WINDOWS, low_fn)["normalized"] == pytest.approx(100.0)
    one = nab.score(TS, fires(W1[0]), WINDOWS, low_fn)  # (1 - 2 - (-4)) / (2 - (-4))
    assert one["normalized"] == pytest.approx(50.0)
    low_fp = nab.score(TS, fires(W1[0], W2[0], 400), WINDOWS, "reward_low_FP_rate")
    assert low_fp["fp_cost"] == pytest.approx(-0.22)


def test_profiles_and_windows_are_read_from_the_label_files(tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "profiles.json").write_text(json.dumps({"standard": {"CostMatrix": {
        "tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}}}))
    (tmp_path / "labels" / "windows.json").write_text(json.dumps({"x/y.csv": [
        ["2020-01-21 20:00:00.000000", "2020-01-25 23:00:00.000000"]]}))
    assert nab.load_profiles(tmp_path) == {"standard": nab.CostMatrix(tp=1.0, fp=0.11, fn=1.0, tn=1.0)}
    windows = nab.load_windows(tmp_path)["x/y.csv"]
    assert windows == [(TS[500], TS[599])]
    assert nab.window_indices(TS, windows) == [W1]


def test_the_threshold_sweep_agrees_with_scoring_at_each_threshold() -> None:
    rng = np.random.default_rng(7)
    scores = np.round(rng.random(N), 3)  # ties on purpose
    thresholds, raw = nab.scores_by_threshold([(TS, scores, WINDOWS)])
    assert thresholds[0] == nab.NO_DETECTION_THRESHOLD and raw[0] == -2.0
    assert np.all(np.diff(thresholds) < 0)
    for i in (1, 2, 3, 10, 100, len(thresholds) // 2, len(thresholds) - 1):
        assert raw[i] == pytest.approx(nab.score(TS, scores >= thresholds[i], WINDOWS)["raw"], abs=1e-9)


def test_the_optimized_threshold_is_the_best_one_over_all_streams_jointly() -> None:
    rng = np.random.default_rng(3)
    a = rng.random(N) * 0.5
    a[[W1[0] + 5, W2[0] + 5]] = 0.9  # the windows, early
    a[[800, 1500]] = 0.7  # two false positives that a lower threshold would add
    b = rng.random(N) * 0.5
    b[W1[0]] = 0.95
    best = nab.optimize_threshold([(TS, a, WINDOWS), (TS, b, WINDOWS)])
    assert best["threshold"] == 0.9  # the highest threshold among equal best scores
    tp = ss(-(100 - 5) / 100) / MAX_TP
    assert best["raw"] == pytest.approx(2 * tp + 1.0 - 1.0)  # b: one window found, one missed
    assert best["normalized"] == pytest.approx(100.0 * (best["raw"] + 4.0) / 8.0)
    _, raw = nab.scores_by_threshold([(TS, a, WINDOWS), (TS, b, WINDOWS)])
    assert raw.max() == best["raw"]


# -- the detector, on synthetic series ----------------------------------------------------------------------------

def synthetic(n: int = 1500, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 50 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, n)
    values[1100:1110] += 25  # a spike
    values[1300:] -= np.linspace(0, 30, n - 1300)  # a failure: a steady decline
    ts = np.datetime64("2021-03-01T00:00:00") + t * np.timedelta64(3600, "s")
    return values, ts


@pytest.mark.parametrize("weights", [{"knn": 1.0}, {"tail": 1.0, "level": 0.2, "change": 0.2},
                                     {"tail": 1.0, "level": 0.2, "change": 0.2, "knn": 0.5}, {"context": 1.0},
                                     {"knn": 1.0, "context": 0.5}])
def test_streaming_and_batch_give_the_same_scores_alerts_and_reasons(weights: dict[str, float]) -> None:
    values, ts = synthetic()
    values[[7, 400, 401, 1200]] = np.nan
    params = anomaly.DetectorParams(min_history=100, likelihood_samples=100, refit_every=20, reestimate_every=30,
                                    long=400, history=500, short=5, knn_training=300, weights=weights)
    batch = anomaly.detect_details(values, ts, params=params, name="vibration")
    stream = anomaly.StreamingDetector(params, period_seconds=anomaly.infer_period(ts), name="vibration")
    points = [stream.update(v) for v in values]
    assert np.array_equal([p.score for p in points], batch["score"])
    assert np.array_equal([p.alert for p in points], batch["alert"])
    assert [p.reason for p in points] == batch["reason"]
    assert batch["reason"][400] == "missing value" and batch["score"][400] == 0.0
    assert batch["alert"].sum() >= 2


def test_the_detector_finds_a_spike_and_a_decline_and_says_why() -> None:
    values, ts = synthetic()
    knn = anomaly.DetectorParams(weights={"knn": 1.0}, alert_surprise=3.0)  # the k-NN detector (the earlier default)
    scores, reasons = anomaly.detect(values, ts, params=knn, name="vibration")
    again, _ = anomaly.detect(values, ts, params=knn, name="vibration")
    assert np.array_equal(scores, again)  # deterministic
    assert np.all((scores >= 0) & (scores < 1))
    assert np.all(scores[:888] == 0.0) and reasons[0] == "learning (1 of 888 points)"
    quiet = scores[900:1100].max()
    assert scores[1100:1115].max() > max(quiet, 0.75)  # the spike: surprise >= 3 (p <= 0.001)
    # a slow decline: the k-NN component (the default) sees windows of the same shape at a lower level and misses
    # it; the earlier detector's tail and level components flag it
    assert scores[1300:].max() < 0.75
    level = anomaly.DetectorParams(weights={"tail": 1.0, "level": 0.2, "change": 0.2})
    declined, _ = anomaly.detect(values, ts, params=level, name="vibration")
    assert declined[1300:].max() > max(declined[900:1100].max(), 0.75)
    spike = 1100 + int(np.argmax(scores[1100:1115]))
    assert "vibration" in reasons[spike]
    assert any(word in reasons[spike] for word in ("robust sd above its 24 h median", "unusually high", "rose"))


def test_a_series_needs_a_sampling_period() -> None:
    with pytest.raises(LakeforgeError):
        anomaly.detect([1.0, 2.0], None)
    with pytest.raises(LakeforgeError):
        anomaly.StreamingDetector(anomaly.DetectorParams())
    assert anomaly.infer_period(TS) == 3600.0


def test_the_warm_up_medians_equal_numpys() -> None:
    """While the trailing window fills, the batch path keeps the points sorted instead of calling np.median per
    point: the medians and MADs are NumPy's to the bit (ties, zeros, huge values; -0.0 goes to np.median)."""
    rng = np.random.default_rng(1)
    for trial in range(600):
        n = int(rng.integers(4, 140))
        series = [rng.normal(size=n), np.round(rng.normal(size=n), 1), rng.integers(-2, 3, size=n).astype(float),
                  rng.normal(size=n) * 1e300, np.where(rng.random(n) < 0.2, -0.0, rng.normal(size=n))][trial % 5]
        window = int(rng.integers(4, 130))
        med, mad, _ = anomaly._trailing_robust(series, window)
        for i in range(3, min(window, n)):
            w = series[:i]
            expected = float(np.median(w))
            assert med[i] == expected and math.copysign(1, med[i]) == math.copysign(1, expected)
            assert mad[i] == float(np.median(np.abs(w - expected)))
