"""The contextual detector (lakeforge.ml.context): causal, deterministic, quiet on a learned pattern, loud on a break
of it, resting after an alarm."""

from __future__ import annotations

import numpy as np
import pytest

from lakeforge.config.ml import DetectorParams
from lakeforge.ml import anomaly
from lakeforge.ml.context import ContextDetector


def pattern(n: int = 1200) -> np.ndarray:
    """A square-ish wave of period 12 with a break at 1000 (a level it never took, then the pattern again)."""
    base = np.tile([0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 5.0, 3.0, 1.0], n // 12 + 1)[:n]
    values = base.copy()
    values[1000:1006] = 3.5  # flat where the wave moves
    return values


def run(params: DetectorParams, values: np.ndarray) -> np.ndarray:
    detector = ContextDetector(params)
    return np.array([detector.update(float(v)) for v in values])


@pytest.mark.parametrize(("margin", "replay", "quiet"), [(0.0, 0, 0.0), (0.25, 20_000, 0.33)])
def test_quiet_on_a_learned_pattern_loud_on_its_break_and_deterministic(margin: float, replay: int,
                                                                          quiet: float) -> None:
    """With the margin (the default), the wave's levels alias (0 and 1 fall in one bin): where it stays three steps
    in one bin the next step is ambiguous, a steady 0.33; the break still stands out."""
    values = pattern()
    params = DetectorParams(context_learn=120, context_rest=24, context_margin=margin, context_replay=replay)
    scores = run(params, values)
    assert np.array_equal(scores, run(params, values))
    assert np.all(scores[:120] == 0.0)  # learning the range (the values are replayed, they score 0)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert scores[600:1000].max() <= quiet  # the wave is predicted
    assert scores[1000:1010].max() >= 0.5


def test_it_rests_after_a_high_score() -> None:
    values = pattern()
    params = DetectorParams(context_learn=120, context_rest=50, context_threshold=0.3, context_margin=0.0,
                            context_replay=0)
    scores = run(params, values)
    first = 1000 + int(np.flatnonzero(scores[1000:] >= 0.3)[0])
    assert np.all(scores[first + 1:first + 50] == 0.0)


@pytest.mark.parametrize(("replay", "after"), [(0, (-3.5, 50.0)), (20_000, (-25.0, 75.0))])
def test_a_value_beyond_the_learned_range_widens_it(replay: int, after: tuple[float, float]) -> None:
    """Without replay the range stretches to the value; with it, it becomes the kept values' and the value's, plus
    the margin (half the span here), and the memory relearns the kept values in it."""
    values = pattern()
    detector = ContextDetector(DetectorParams(context_learn=120, context_margin=0.5, context_replay=replay))
    for v in values[:1100]:
        detector.update(float(v))
    assert (detector._lo, detector._hi) == (-3.5, 10.5)
    memory = detector._memory
    detector.update(50.0)
    assert (detector._lo, detector._hi) == after
    assert (detector._memory is memory) == (replay == 0)


def test_the_component_alone_warms_up_for_context_learn_points_only() -> None:
    values = pattern()
    ts = np.datetime64("2021-01-01T00:00:00") + np.arange(values.size) * np.timedelta64(300, "s")
    params = DetectorParams(weights={"context": 1.0}, context_learn=120, context_rest=24)
    scores, reasons = anomaly.detect(values, ts, params=params, name="temp")
    assert reasons[119] == "learning (120 of 120 points)" and not reasons[120].startswith("learning")
    top = 1000 + int(np.argmax(scores[1000:1010]))
    assert "contextual anomaly score" in reasons[top]
