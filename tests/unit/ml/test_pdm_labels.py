"""The failure-within-24 h model's labels and features (lakeforge.ml.pdm): the label window starts where the
feature window ends, unknown failure classes and label-like features are refused, the features are the declared
ones."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lakeforge.duckdb_connect import DEFAULTS
from lakeforge.errors import LakeforgeError
from lakeforge.ml import pdm

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HOURS = 60


def _features(machines: int = 1) -> pa.Table:
    rows = [{"machine_id": m, "hour": T0 + dt.timedelta(hours=h), "volt_mean_3h": float(h)}
            for m in range(1, machines + 1) for h in range(HOURS)]
    return pa.Table.from_pylist(rows, schema=pa.schema([("machine_id", pa.int64()), ("hour", pa.timestamp("us", "UTC")),
                                                        ("volt_mean_3h", pa.float64())]))


def _failures(*events: tuple[int, float, str]) -> pa.Table:
    return pa.Table.from_pylist([{"machine_id": m, "ts": T0 + dt.timedelta(hours=h), "component": c}
                                 for m, h, c in events],
                                schema=pa.schema([("machine_id", pa.int64()), ("ts", pa.timestamp("us", "UTC")),
                                                  ("component", pa.string())]))


def _labels(failures: pa.Table) -> dict[int, str]:
    table = pdm.labelled(_features(), failures, settings=DEFAULTS)
    return {int((h - T0).total_seconds() // 3600): label for h, label in
            zip(table["hour"].to_pylist(), table["label"].to_pylist(), strict=True)}


def test_a_failure_inside_the_feature_hour_labels_the_hours_before_it_not_that_hour() -> None:
    labels = _labels(_failures((1, 30.5, "comp2")))  # during hour 30, whose averages cover [30:00, 31:00)
    assert labels[30] == "none" and labels[29] == "comp2"  # hour 29's window is (30:00, 54:00]
    assert labels[6] == "comp2" and labels[5] == "none"  # hour 6's window ends at 31:00; hour 5's at 30:00
    assert set(labels) == set(range(HOURS - pdm.HORIZON_HOURS))  # later hours' windows pass the data's end


@pytest.mark.parametrize("at", [31.0, 31.5, 54.999])
def test_the_window_is_the_horizon_after_the_feature_hour(at: float) -> None:
    labels = _labels(_failures((1, at, "comp1")))
    inside = [h for h, label in labels.items() if label == "comp1"]
    assert inside == [h for h in labels if h + 1 < at <= h + 1 + pdm.HORIZON_HOURS]


def test_moving_a_failure_later_changes_labels_only_within_its_windows() -> None:
    """The features never change (they are the input); only hours whose window holds the moved event relabel."""
    before, after = _labels(_failures((1, 40.0, "comp3"))), _labels(_failures((1, 45.0, "comp3")))
    changed = {h for h in before if before[h] != after[h]}
    assert changed == {h for h in before if (h + 1 < 40.0 <= h + 25) != (h + 1 < 45.0 <= h + 25)}
    early, late = (pdm.labelled(_features(), _failures((1, at, "comp3")), settings=DEFAULTS) for at in (40.0, 45.0))
    assert early.drop_columns(["label"]).equals(late.drop_columns(["label"]))  # no feature moved with the event


def test_an_unknown_failure_class_is_an_error_naming_it_and_the_known_ones() -> None:
    with pytest.raises(LakeforgeError, match="'comp9'") as caught:
        _labels(_failures((1, 10.0, "comp1"), (1, 20.0, "comp9")))
    assert "comp1, comp2, comp3, comp4" in (caught.value.hint or "")


def _frame(rows: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(size=rows) for name in pdm.FEATURES if name != pdm.CATEGORICAL})
    frame[pdm.CATEGORICAL] = rng.choice(["model1", "model2"], size=rows)
    frame["machine_id"], frame["hour"] = 1, pd.date_range("2024-01-01", periods=rows, freq="h", tz="UTC")
    frame[pdm.LABEL] = np.where(rng.random(rows) < 0.1, "comp1", "none")
    return frame


def test_the_features_are_the_declared_ones_in_order() -> None:
    frame = _frame()
    frame["an_extra_column"] = 1.0  # not declared: not a feature
    encoding = pdm.Encoding.fit(frame)
    assert encoding.features == [*(f for f in pdm.FEATURES if f != pdm.CATEGORICAL), f"{pdm.CATEGORICAL}_code"]
    assert encoding.categorical == {"model_code": ["model1", "model2"]}
    with pytest.raises(LakeforgeError, match="no column age"):
        pdm.Encoding.fit(frame.drop(columns=["age"]))


def test_a_feature_named_like_the_label_or_derived_from_it_is_refused() -> None:
    frame = _frame()
    frame["failure_flag"] = (frame[pdm.LABEL] != "none").astype(float)
    with pytest.raises(LakeforgeError, match="failure_flag is named like the label"):
        pdm.Encoding.fit(frame, declared=(*pdm.FEATURES, "failure_flag"))
    frame["x_component_hint"] = (frame[pdm.LABEL] != "none") * 5.0 + np.random.default_rng(0).normal(0, 0.1, len(frame))
    with pytest.raises(LakeforgeError, match=r"x_component_hint alone separates failing rows .*ROC AUC 1\.000"):
        pdm.Encoding.fit(frame, declared=(*pdm.FEATURES, "x_component_hint"))
    pdm.Encoding.fit(frame)  # the declared features alone pass
