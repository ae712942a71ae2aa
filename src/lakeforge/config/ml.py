"""Machine-learning settings of ``lakeforge.yml`` (``ml:``): the MLflow store, and what every run scores."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class DetectorParams:
    """The streaming detector's settings (:mod:`lakeforge.ml.anomaly`; the defaults are the ones evaluated on
    NAB). Here, with the configuration that validates them, so that reading lakeforge.yml needs no SciPy."""

    knn_k: int = 27  # knn: neighbours summed in the nonconformity (lakeforge.ml.cad)
    knn_dim: int = 19  # knn: values in each lagged window
    knn_training: int = 600  # knn: the training set grows to this many windows, then slides
    context_learn: int = 300  # context: points learned (the value range among them) before it scores
    context_bits: int = 3  # context: bits of the quantized value (lakeforge.ml.context)
    context_margin: float = 0.25  # context: the learned range widened by this share of it on each side
    context_neurons: int = 15  # context: active contexts carried to the next step at most
    context_rest: int = 75  # context: points output as 0 after a raw score reaching context_threshold
    context_threshold: float = 0.75  # context: the raw score that starts a rest
    context_replay: int = 20_000  # context: values kept and relearned when one leaves the range (0: stretch it)
    window_hours: float = 24.0  # level and change: trailing window of the robust statistics
    change_hours: float = 6.0  # change: horizon of the difference
    tail_quantile: float = 0.95  # tail: the GPD is fitted to exceedances over this quantile, on each side
    refit_every: int = 50  # tail: refit on the history every this many points
    history: int | None = 20_000  # tail: points of history kept (None: all)
    min_history: int = 600  # points learned before any score (knn: its first training set)
    short: int = 10  # likelihood: points averaged
    long: int = 8640  # likelihood: points of averages the distribution is estimated on
    reestimate_every: int = 100  # likelihood: re-estimation period
    likelihood_samples: int = 288  # likelihood: averages needed before the first estimate
    weights: dict[str, float] = field(default_factory=lambda: {"context": 1.0})  # 0 or absent: not computed
    alert_surprise: float = 0.6  # alert when the surprise (-log10 p; context: -log10(1 - score)) reaches this
    dead_time_hours: float = 24.0  # at most one alert per this many hours
    period_seconds: float | None = None  # sampling period (None: inferred from the timestamps)

    def describe(self) -> dict[str, Any]:
        return asdict(self)



class AnomalyDetectionConfig(_Strict):
    """``gold.anomalies``: every run scores the new readings of each entity (machine) and sensor with the
    streaming detector (:mod:`lakeforge.ml.anomaly`), and all sensors together with an isolation forest."""

    enabled: bool = False
    source: str = Field(default="silver.telemetry", description="the table of readings")
    entity: str = Field(default="machine_id", description="the column naming one monitored thing")
    time: str = Field(default="ts", description="the reading's timestamp column")
    sensors: list[str] = Field(default_factory=list, description="numeric columns, each its own stream")
    context_hours: float = Field(default=168.0, gt=0, description="history before the new readings that the "
                                 "detector re-reads each run (warm-up included)")
    detector: dict[str, Any] = Field(default_factory=dict, description="settings of the streaming detector "
                                     "(lakeforge.ml.anomaly.DetectorParams), e.g. {min_history: 72}")
    multivariate: bool = Field(default=True, description="also an isolation forest over all sensors")
    multivariate_threshold: float = Field(default=0.70, gt=0.5, lt=1.0, description="isolation-forest score "
                                          "(Liu et al.'s s, 0.5 = ordinary) at or above which a reading is flagged")
    forest_refit_hours: float = Field(default=168.0, gt=0, description="the isolation forest is kept between runs "
                                      "and fitted again on the history once it has grown by this many hours "
                                      "(a run that only scores does not fit; --full-refresh fits anew)")
    seed: int = 0

    @model_validator(mode="after")
    def _sensors(self) -> AnomalyDetectionConfig:
        if self.enabled and not self.sensors:
            raise ValueError("ml.anomalies.sensors: name the sensor columns to watch, e.g. [volt, vibration]")
        if not self.detector:  # (the detector's module imports SciPy: not on every command's start)
            return self
        known = {f.name for f in fields(DetectorParams)}
        unknown = sorted(set(self.detector) - known)
        if unknown:
            raise ValueError(f"ml.anomalies.detector: unknown setting {', '.join(unknown)}; known: "
                             + ", ".join(sorted(known)))
        DetectorParams(**self.detector)
        return self


_DURATION = re.compile(r"^\s*(\d+)\s*(h|d)\s*$")
FAILURE_CLASSES = ("comp1", "comp2", "comp3", "comp4")
# the example's declared features (gold.machine_features of the telemetry example), in the model's order
_SENSORS = ("volt", "rotate", "pressure", "vibration", "temperature")
EXAMPLE_FEATURES: tuple[str, ...] = (
    *(f"{s}_{stat}_{w}" for s in _SENSORS for w in ("3h", "24h") for stat in ("mean", "std", "slope")),
    "errors_24h", *(f"error{i}_24h" for i in range(1, 6)),
    *(f"comp{i}_hours_since_maint" for i in range(1, 5)),
    "model", "age",
)


def whole_hours(value: Any, *, name: str) -> int:
    """``24h``, ``2d`` or a number of hours, as whole hours."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} is not a duration; write e.g. 24h or 2d")
    if isinstance(value, int):
        return value
    found = _DURATION.match(str(value))
    if not found:
        raise ValueError(f"{name}: {value!r} is not a duration in whole hours or days; write e.g. 24h or 2d")
    return int(found.group(1)) * (24 if found.group(2) == "d" else 1)


class FailureModelConfig(_Strict):
    """The failure-within-a-horizon model (``lakeforge ml train``): which tables it learns from, what it predicts.
    The defaults are the telemetry example's tables, so a project with other tables sets them here."""

    features: str = Field(default="gold.machine_features", description="point-in-time feature rows, one per "
                          "entity and time (no feature may read a later row)")
    events: str = Field(default="gold.fact_failures", description="the failure events the model predicts")
    entity: str = Field(default="machine_id", description="the column naming one machine, in both tables")
    time: str = Field(default="hour", description="the features table's time column (the start of its window)")
    event_time: str = Field(default="ts", description="the events table's time column")
    label: str = Field(default="component", description="the events table's column naming the failure class")
    horizon: int | str = Field(default="24h", description="a row is labelled with the first failure within this "
                               "long after its features are complete (whole hours or days: 24h, 2d)")
    feature_window: int | str = Field(default="1h", description="how long after its time a row's features are "
                                      "complete (an hourly average: 1h); the label window starts there")
    classes: list[str] = Field(default_factory=lambda: list(FAILURE_CLASSES), description="the failure classes "
                               "(values of label); an event of another class is an error")
    columns: list[str] = Field(default_factory=lambda: list(EXAMPLE_FEATURES), description="the declared feature "
                               "columns of the features table (the example's by default); text columns are "
                               "encoded as categories")

    @model_validator(mode="after")
    def _check(self) -> FailureModelConfig:
        hours = whole_hours(self.horizon, name="ml.failure.horizon")
        if hours < 1:
            raise ValueError("ml.failure.horizon: at least 1h")
        if whole_hours(self.feature_window, name="ml.failure.feature_window") < 0:
            raise ValueError("ml.failure.feature_window: 0h or more")
        if not self.classes or "none" in self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError("ml.failure.classes: name each failure class once; 'none' (no failure) is implied")
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise ValueError("ml.failure.columns: name each feature column once")
        keys = {self.entity, self.time} & set(self.columns)
        if keys:
            raise ValueError(f"ml.failure.columns: {', '.join(sorted(keys))} is a key, not a feature")
        return self

    @property
    def horizon_hours(self) -> int:
        return whole_hours(self.horizon, name="ml.failure.horizon")

    @property
    def feature_hours(self) -> int:
        return whole_hours(self.feature_window, name="ml.failure.feature_window")


class RiskScoringConfig(_Strict):
    """``gold.machine_risk``: every run scores the new rows of the features table (``ml.failure.features``) with the
    champion of the failure-within-a-horizon model (``lakeforge ml train`` / ``promote``); without a champion the
    stage is skipped."""

    enabled: bool = False


class MLConfig(_Strict):
    tracking_uri: str | None = Field(default=None, description="MLflow tracking server URI (production); default: "
                                     "the embedded SQLite store <project>/mlflow/mlflow.db. MLFLOW_TRACKING_URI "
                                     "overrides it")
    registry_uri: str | None = Field(default=None, description="MLflow registry URI; default: the tracking store. "
                                     "MLFLOW_REGISTRY_URI overrides it")
    anomalies: AnomalyDetectionConfig = Field(default_factory=AnomalyDetectionConfig)
    risk: RiskScoringConfig = Field(default_factory=RiskScoringConfig)
    failure: FailureModelConfig = Field(default_factory=FailureModelConfig)
