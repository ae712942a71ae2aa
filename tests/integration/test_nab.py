"""The anomaly detector on the NAB streams in the shared data, scored by NAB's standard profile."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lakeforge.cli import app
from lakeforge.ml import anomaly, nab
from tests.conftest import SHARED_DATA

NAB = SHARED_DATA / "nab"
pytestmark = pytest.mark.skipif(not (NAB / "labels" / "windows.json").is_file(),
                                reason=f"the NAB data (realKnownCause/, labels/) is not at {NAB}")
TWITTER_ADVEC = 47.1  # the published whole-corpus standard score to beat


@pytest.fixture(scope="module")
def result() -> dict:
    return nab.evaluate(NAB)


def test_the_detector_beats_the_published_level_on_each_stream_and_combined(result: dict) -> None:
    assert result["profile"] == "standard"
    assert set(result["streams"]) == set(nab.STREAMS)
    assert result["combined"] > TWITTER_ADVEC
    for stream, value in result["streams"].items():
        assert value > TWITTER_ADVEC, stream
    # every labeled window is found; the numbers are what the report quotes
    assert result["details"]["combined"]["windows_detected"] == 6
    assert result["combined"] == pytest.approx(85.66, abs=1.0)  # the score reported in the docs
    assert result["published"]["Numenta HTM"] == 70.5


def test_the_scores_follow_from_the_threshold(result: dict) -> None:
    windows = nab.load_windows(NAB)
    runs = []
    raw = 0.0
    for stream in nab.STREAMS:
        timestamps, values = nab.load_stream(NAB, stream)
        scores, reasons = anomaly.detect(values, timestamps)
        runs.append((timestamps, scores, windows[stream]))
        scored = nab.score(timestamps, scores >= result["threshold"], windows[stream])
        assert round(scored["normalized"], 2) == result["streams"][stream]
        raw += scored["raw"]
        detections = np.flatnonzero(scores >= result["threshold"])
        assert all(reasons[i] and not reasons[i].startswith("learning") for i in detections)
    _, sweep = nab.scores_by_threshold(runs)
    assert raw == pytest.approx(sweep.max())  # the threshold is the best one over both streams


@pytest.mark.parametrize("stream", nab.STREAMS)
def test_streaming_equals_batch_on_a_prefix(stream: str) -> None:
    timestamps, values = nab.load_stream(NAB, stream)
    timestamps, values = timestamps[:1500], values[:1500]
    batch = anomaly.detect_details(values, timestamps, name="temperature")
    detector = anomaly.StreamingDetector(period_seconds=anomaly.infer_period(timestamps), name="temperature")
    points = [detector.update(v) for v in values]
    assert np.array_equal([p.score for p in points], batch["score"])
    assert np.array_equal([p.alert for p in points], batch["alert"])
    assert [p.reason for p in points] == batch["reason"]


def test_the_cli_prints_the_evaluation() -> None:
    out = CliRunner().invoke(app, ["ml", "evaluate", "--dataset", "nab", "--data-dir", str(NAB), "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert body["combined"] > TWITTER_ADVEC and set(body["streams"]) == set(nab.STREAMS)
