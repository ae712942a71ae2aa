"""Predictive maintenance: will a machine fail within a horizon (24 hours), and of which class (component)?

What the model learns from is a :class:`Task`, from ``ml: failure:`` in lakeforge.yml; the defaults are the
telemetry example's tables, so a project with its own tables names them there instead of renaming anything.

The rows are the point-in-time features of the features table (``gold.machine_features``: one per machine and
hour; no feature reads a later row). A row's features are complete ``feature_window`` after its time (``hour + 1
h``: the hourly averages cover ``[hour, hour + 1 h)``), so its label window starts there: the label is the class
(``comp1`` .. ``comp4``) of the first event in ``(hour + 1 h, hour + 1 h + horizon]`` (from the events table,
``gold.fact_failures``), else ``none``. A failure inside the feature hour would otherwise label the hour whose
averages already show it. Rows whose horizon passes the end of the data are left out: their label is not known
yet. An event of a class not in ``classes`` is an error naming it.

The model reads the declared features only (``ml.failure.columns``, the example's ``FEATURES`` by default), never
"every other column"; a declared column named like the label or the failures, or one that on its own separates
failing rows from the others almost perfectly, is refused. Text columns are encoded as categories.

The split is by time: the last ``test_fraction`` of the hours is the holdout (``hour > cutoff``); training
uses the hours up to ``cutoff - (horizon + feature_window)``, so no training label window reaches into the
holdout. The model is LightGBM multiclass, deterministic (``deterministic``, a fixed ``num_threads``, ``seed``),
with class weights that lift the rare failure classes. Metrics: per class precision, recall and F1; macro F1 over
the classes that occur in the holdout or its predictions; and the area under the precision-recall curve (average
precision) of "any failure" scored by ``1 - P(none)``.

scikit-learn, LightGBM and pandas are imported when needed (``pip install 'lakeforge[ml]'``).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from lakeforge.config.ml import FailureModelConfig
from lakeforge.duckdb_connect import DuckDBSettings, connect
from lakeforge.errors import LakeforgeError, MissingDependency
from lakeforge.sql import DUCKDB

if TYPE_CHECKING:
    import lightgbm
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from lakeforge.workspace import Workspace

LABEL = "label"  # the label's column in a labelled frame
CATEGORICAL = "model"  # the example's machine model: a string, encoded as ``model_code``


@dataclass(frozen=True)
class Task:
    """What the model predicts from which tables (``ml: failure:`` in lakeforge.yml, whose defaults are the
    example's: :data:`DEFAULT`)."""

    features_table: str
    events_table: str
    entity: str
    time: str
    event_time: str
    event_class: str
    horizon_hours: int
    feature_hours: int  # a row's features are complete this long after its time: its label window starts there
    failure_classes: tuple[str, ...]
    features: tuple[str, ...]  # the declared features, in the model's order (a new column is not one)

    @property
    def classes(self) -> tuple[str, ...]:
        """The model's classes: ``none`` (no failure in the horizon), then the failure classes."""
        return ("none", *self.failure_classes)

    @property
    def gap_hours(self) -> int:
        """Training ends this long before the holdout, so that no training label window reaches into it."""
        return self.horizon_hours + self.feature_hours

    @staticmethod
    def of(config: FailureModelConfig) -> Task:
        return Task(features_table=config.features, events_table=config.events, entity=config.entity,
                    time=config.time, event_time=config.event_time, event_class=config.label,
                    horizon_hours=config.horizon_hours, feature_hours=config.feature_hours,
                    failure_classes=tuple(config.classes), features=tuple(config.columns))


DEFAULT = Task.of(FailureModelConfig())  # the telemetry example's
CLASSES = DEFAULT.classes
HORIZON_HOURS = DEFAULT.horizon_hours
FEATURES = DEFAULT.features


def task_of(workspace: Workspace) -> Task:
    """The project's failure model (``ml.failure``). With an ``equipment:`` mapping, the feature columns and the
    classes not set in ``ml.failure`` are those of the generated ``gold.machine_features`` and the mapped failures'
    components."""
    failure = workspace.config.ml.failure
    mapping = workspace.config.equipment
    if mapping is not None:
        from lakeforge.models.equipment import feature_columns

        given = failure.model_fields_set
        derived: dict[str, Any] = {}
        if "columns" not in given:
            derived["columns"] = feature_columns(mapping)
        if "classes" not in given and mapping.failures is not None and mapping.failures.components:
            derived["classes"] = list(mapping.failures.components)
        if derived:
            failure = FailureModelConfig.model_validate({**failure.model_dump(exclude_unset=True), **derived})
    return Task.of(failure)


LABEL_FAMILY = ("label", "failure", "fail_", "rul")  # a feature named with one of these is the label's kin
SEPARATES_ALONE = 0.99  # a feature whose ranking alone separates failing rows this well (ROC AUC) is refused
NUM_BOOST_ROUND = 300
PARAMS: dict[str, Any] = {
    "objective": "multiclass",
    "num_class": len(CLASSES),
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbosity": -1,
}
CLASS_WEIGHT_POWER = 1.0  # weight of class c: (rows of "none" / rows of c) ** power: 1 balances them
Progress = Callable[[str, int, int], None]  # (what, done, total): a front end's progress display


def require() -> None:
    """Fail with the pip extra to install when the ML libraries are missing. They are looked up, not imported:
    every run asks (``ml:risk`` before it knows whether there is a champion), and importing them takes 0.5-0.6 s
    (scikit-learn imports SciPy's statistics); the code that uses them imports them."""
    for module in ("lightgbm", "pandas", "sklearn"):
        if not installed(module):
            raise MissingDependency(f"predictive maintenance needs {module}", hint="pip install 'lakeforge[ml]'")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a module set to None in ``sys.modules`` is not)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# -- data ------------------------------------------------------------------------------------------
def labelled(features: pa.Table, failures: pa.Table, *, task: Task = DEFAULT, settings: DuckDBSettings) -> pa.Table:
    """Every feature row with its label (column ``label``); rows whose horizon passes the end of the data are left
    out. ``settings``: of the DuckDB connection that joins them (the project's: :attr:`Workspace.duckdb_settings`)."""
    for name, table, needed, hint in (
            ("features", features, (task.entity, task.time), "ml.failure.entity and ml.failure.time"),
            ("events", failures, (task.entity, task.event_time, task.event_class),
             "ml.failure.entity, ml.failure.event_time and ml.failure.label")):
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            raise LakeforgeError(f"the {name} table has no column {', '.join(missing)}",
                                 hint=f"name its columns in lakeforge.yml: {hint} (docs/ml.md)")
    q = DUCKDB.ident
    entity, time, label = q(task.entity), q(task.time), q(LABEL)
    kept = [q(c) for c in features.column_names if c != LABEL]
    con = connect(settings=settings)
    try:
        con.register("f", features)
        con.register("x", failures.select([task.entity, task.event_time, task.event_class]).rename_columns(
            ["entity", "ts", "class"]))
        _check_classes([str(r[0]) for r in con.sql("SELECT DISTINCT class FROM x WHERE class IS NOT NULL "
                                                     "ORDER BY 1").fetchall()], task)
        start, end = task.feature_hours, task.feature_hours + task.horizon_hours
        return con.sql(f"""
            WITH firsts AS (
              SELECT f.{entity} AS entity, f.{time} AS t, first(x.class ORDER BY x.ts, x.class) AS class
              FROM f JOIN x ON x.entity = f.{entity} AND x.ts > f.{time} + INTERVAL {start} HOUR
                           AND x.ts <= f.{time} + INTERVAL {end} HOUR
              GROUP BY ALL
            )
            SELECT {", ".join(f"f.{c}" for c in kept)}, coalesce(firsts.class, 'none') AS {label}
            FROM f LEFT JOIN firsts ON firsts.entity = f.{entity} AND firsts.t = f.{time}
            WHERE f.{time} <= (SELECT max({time}) FROM f) - INTERVAL {task.horizon_hours} HOUR
            ORDER BY f.{time}, f.{entity}
        """).to_arrow_table()
    finally:
        con.close()


def _check_classes(found: list[str], task: Task) -> None:
    unknown = [c for c in found if c not in task.failure_classes]
    if unknown:
        raise LakeforgeError(f"{task.events_table} has failures of {', '.join(map(repr, unknown))}, not a known "
                             "class", hint=f"the classes are {', '.join(task.failure_classes)}: add it to "
                             "ml.failure.classes in lakeforge.yml, or map it to one of them in the events model")


def load(workspace: Workspace, *, task: Task | None = None) -> pd.DataFrame:
    """The labelled feature rows of a project, as pandas (sorted by time, then entity)."""
    require()
    task = task or task_of(workspace)
    for name in (task.features_table, task.events_table):
        if not workspace.catalog.exists(name):
            raise LakeforgeError(f"{name} does not exist in project {workspace.config.name}",
                                 hint="run the pipeline first (`lakeforge run`), or name your tables in "
                                      "lakeforge.yml: ml.failure.features and ml.failure.events (docs/ml.md)")
    frame = labelled(workspace.table(task.features_table), workspace.table(task.events_table), task=task,
                     settings=workspace.duckdb_settings).to_pandas()
    if frame.empty:
        raise LakeforgeError(f"{task.features_table} has no row with a known {task.horizon_hours} h label",
                             hint="land more data (the example: `lakeforge generate --days 20`) and run")
    return frame


class SplitSummary(TypedDict):
    """A time split in figures (:meth:`Split.describe`)."""

    cutoff: str  # ISO 8601: the last hour that is not in the holdout
    gap_hours: int
    rows_train: int
    rows_test: int
    failures_train: int
    failures_test: int


@dataclass
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    cutoff: dt.datetime  # the last hour that is not in the holdout
    gap_hours: int

    def describe(self) -> SplitSummary:
        return {"cutoff": self.cutoff.isoformat(), "gap_hours": self.gap_hours, "rows_train": len(self.train),
                "rows_test": len(self.test), "failures_train": int((self.train[LABEL] != "none").sum()),
                "failures_test": int((self.test[LABEL] != "none").sum())}


def split(frame: pd.DataFrame, *, test_fraction: float = 0.3, gap_hours: int = DEFAULT.gap_hours,
          time: str = DEFAULT.time) -> Split:
    """The last ``test_fraction`` of the time span (column ``time``) is the holdout; training ends ``gap_hours``
    before it."""
    import pandas as pd

    if not 0 < test_fraction < 1:
        raise LakeforgeError(f"test_fraction must be between 0 and 1, not {test_fraction}")
    hours = pd.to_datetime(frame[time], utc=True)
    start, end = hours.min(), hours.max()
    span_hours = (end - start) / pd.Timedelta(hours=1)
    cutoff = start + pd.Timedelta(hours=math.floor(span_hours * (1 - test_fraction)))
    train = frame[hours <= cutoff - pd.Timedelta(hours=gap_hours)]
    test = frame[hours > cutoff]
    if train.empty or test.empty:
        raise LakeforgeError(f"{len(frame)} rows over {span_hours:.0f} h are too few for a time split with a "
                             f"{gap_hours} h gap", hint="generate more days of data and run the pipeline")
    return Split(train=train.reset_index(drop=True), test=test.reset_index(drop=True),
                 cutoff=cutoff.to_pydatetime(), gap_hours=gap_hours)


def _categorical(frame: pd.DataFrame, name: str) -> bool:
    """Whether a declared feature is encoded as categories (text) rather than read as a number."""
    import pandas as pd

    column = frame[name]
    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        raise LakeforgeError(f"feature {name} is a time, not a number or a category",
                             hint="derive a number from it in the features model (e.g. hours since it), or "
                                  "leave it out of ml.failure.columns")
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


@dataclass
class Encoding:
    """How a frame becomes the model's input: the feature columns (a text column ``c`` becomes ``c_code``, its
    index in ``categorical["c_code"]``), and the classes the model's outputs stand for."""

    features: list[str]
    categorical: dict[str, list[str]] = field(default_factory=dict)
    classes: list[str] = field(default_factory=lambda: list(CLASSES))

    @staticmethod
    def fit(frame: pd.DataFrame, *, declared: tuple[str, ...] = FEATURES,
            classes: tuple[str, ...] = CLASSES) -> Encoding:
        """The declared features of ``frame`` (each must be there; see :func:`check_features`)."""
        check_features(frame, declared)
        text = [c for c in declared if _categorical(frame, c)]
        categorical = {f"{c}_code": sorted(str(v) for v in frame[c].dropna().unique()) for c in text}
        return Encoding(features=[c for c in declared if c not in text] + list(categorical),
                        categorical=categorical, classes=list(classes))

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input: float64 columns in a fixed order; an unknown or missing category is NaN."""
        import numpy as np
        import pandas as pd

        columns: dict[str, Any] = {}
        for name in self.features:
            source = name[:-len("_code")] if name in self.categorical else name
            if source not in frame.columns:
                columns[name] = pd.Series(np.nan, index=frame.index, dtype="float64")
            elif name in self.categorical:
                codes = {c: float(i) for i, c in enumerate(self.categorical[name])}
                columns[name] = frame[source].map(lambda v, codes=codes: codes.get(str(v), np.nan)).astype("float64")
            else:
                columns[name] = pd.to_numeric(frame[source], errors="coerce").astype("float64")
        return pd.DataFrame(columns, index=frame.index)

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "categorical": self.categorical, "classes": self.classes}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Encoding:
        """(A model logged before ``classes`` was kept predicts the example's classes.)"""
        return Encoding(features=list(data["features"]),
                        categorical={k: list(v) for k, v in data.get("categorical", {}).items()},
                        classes=list(data.get("classes", CLASSES)))


def check_features(frame: pd.DataFrame, declared: tuple[str, ...]) -> None:
    """Refuse a declared feature that is missing, named like the label or the failures, or that on its own ranks
    failing rows (``label != none``) above the others almost perfectly (ROC AUC >= ``SEPARATES_ALONE`` either way):
    the label, or something derived from it."""
    import numpy as np

    missing = [c for c in declared if c not in frame.columns]
    if missing:
        raise LakeforgeError(f"the features table has no column {', '.join(missing)}",
                             hint="the model reads the declared features (ml.failure.columns in lakeforge.yml; "
                                  f"the example's by default): {', '.join(declared)}")
    kin = [c for c in declared if any(word in c.lower() for word in LABEL_FAMILY)]
    if kin:
        raise LakeforgeError(f"feature {kin[0]} is named like the label or the failures it predicts",
                             hint="a feature must be known before the label window: leave it out of the features")
    failing = (frame[LABEL] != "none").to_numpy() if LABEL in frame.columns else np.zeros(0, dtype=bool)
    if failing.size == 0 or failing.all() or not failing.any():
        return
    for name in declared:
        if not _categorical(frame, name):
            _separates_alone(name, np.asarray(frame[name], dtype="float64"), failing)


def _separates_alone(name: str, values: np.ndarray, failing: np.ndarray) -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    known = ~np.isnan(values)
    if known.sum() < 2 or failing[known].all() or not failing[known].any():
        return
    auc = float(roc_auc_score(failing[known], values[known]))
    if max(auc, 1.0 - auc) >= SEPARATES_ALONE:
        raise LakeforgeError(f"feature {name} alone separates failing rows from the others (ROC AUC "
                             f"{max(auc, 1.0 - auc):.3f}): it is the label or derived from it",
                             hint="a feature must be known before the label window: leave it out of the features")


# -- model ------------------------------------------------------------------------------------------
def class_weights(labels: pd.Series, *, power: float = CLASS_WEIGHT_POWER,
                  classes: tuple[str, ...] | list[str] = CLASSES) -> dict[str, float]:
    counts = labels.value_counts()
    base = float(counts.get("none", 0)) or float(counts.max())
    return {c: (base / float(counts[c])) ** power if counts.get(c, 0) else 1.0 for c in classes}


def params_for(*, seed: int, classes: int = len(CLASSES), **overrides: Any) -> dict[str, Any]:
    return {**PARAMS, "seed": seed, "num_class": classes, **overrides}


def fit(train: pd.DataFrame, encoding: Encoding, *, seed: int = 42, num_boost_round: int = NUM_BOOST_ROUND,
        params: dict[str, Any] | None = None, class_weight_power: float = CLASS_WEIGHT_POWER,
        progress: Progress | None = None) -> lightgbm.Booster:
    """The LightGBM booster; ``progress(what, done, total)`` hears of every boosting round."""
    require()
    import lightgbm as lgb

    x = encoding.transform(train)
    y = train[LABEL].map({c: i for i, c in enumerate(encoding.classes)}).to_numpy()
    weights = class_weights(train[LABEL], power=class_weight_power, classes=encoding.classes)
    w = train[LABEL].map(weights).to_numpy(dtype="float64")
    categorical = list(encoding.categorical)
    data = lgb.Dataset(x, label=y, weight=w, categorical_feature=categorical or "auto", free_raw_data=True)
    callbacks = [] if progress is None else [
        lambda env: progress("training: boosting rounds", env.iteration + 1, env.end_iteration)]
    if progress is not None:
        progress("training: boosting rounds", 0, num_boost_round)
    return lgb.train(params or params_for(seed=seed, classes=len(encoding.classes)), data,
                     num_boost_round=num_boost_round, callbacks=callbacks)


def predict_proba(model: Any, frame: pd.DataFrame, encoding: Encoding) -> np.ndarray:
    """Class probabilities in ``encoding.classes`` order (a LightGBM booster, or anything with ``predict``)."""
    import numpy as np

    proba = np.asarray(model.predict(encoding.transform(frame)), dtype="float64")
    return proba.reshape(len(frame), len(encoding.classes))


def metrics(labels: pd.Series | np.ndarray | list[str], proba: np.ndarray, *,
            classes: tuple[str, ...] | list[str] = CLASSES) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import average_precision_score, f1_score, precision_recall_fscore_support

    y_true = np.asarray(labels, dtype=object)
    y_pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(classes), zero_division=0)
    out: dict[str, float] = {}
    for i, name in enumerate(classes):
        out[f"precision_{name}"] = float(precision[i])
        out[f"recall_{name}"] = float(recall[i])
        out[f"f1_{name}"] = float(f1[i])
        out[f"support_{name}"] = float(support[i])
    out["macro_f1"] = float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    failing = y_true != "none"
    if failing.any() and not failing.all():
        out["auc_pr_any_failure"] = float(average_precision_score(failing, 1.0 - proba[:, 0]))
        out["failure_rate_test"] = float(failing.mean())  # the AUC-PR of a random score
    return out


def importance(booster: lightgbm.Booster) -> list[dict[str, Any]]:
    """Gain and split importance per feature, highest gain first."""
    names = booster.feature_name()
    gain = booster.feature_importance(importance_type="gain")
    splits = booster.feature_importance(importance_type="split")
    rows = [{"feature": n, "gain": round(float(g), 6), "splits": int(s)} for n, g, s in zip(names, gain, splits,
                                                                                           strict=True)]
    return sorted(rows, key=lambda r: (-r["gain"], r["feature"]))


@dataclass
class Trained:
    booster: lightgbm.Booster
    encoding: Encoding
    split: Split
    params: dict[str, Any]
    num_boost_round: int
    metrics: dict[str, float]
    class_weights: dict[str, float]


def train_frame(frame: pd.DataFrame, *, task: Task = DEFAULT, seed: int = 42,
                num_boost_round: int = NUM_BOOST_ROUND, test_fraction: float = 0.3,
                class_weight_power: float = CLASS_WEIGHT_POWER, progress: Progress | None = None) -> Trained:
    """Split (by ``task.time``, training ending ``task.gap_hours`` before the holdout), fit on the training part,
    score the holdout."""
    parts = split(frame, test_fraction=test_fraction, gap_hours=task.gap_hours, time=task.time)
    encoding = Encoding.fit(parts.train, declared=task.features, classes=task.classes)
    params = params_for(seed=seed, classes=len(task.classes))
    booster = fit(parts.train, encoding, seed=seed, num_boost_round=num_boost_round, params=params,
                  class_weight_power=class_weight_power, progress=progress)
    scores = metrics(parts.test[LABEL], predict_proba(booster, parts.test, encoding), classes=task.classes)
    return Trained(booster=booster, encoding=encoding, split=parts, params=params, num_boost_round=num_boost_round,
                   metrics=scores, class_weights=class_weights(parts.train[LABEL], power=class_weight_power,
                                                               classes=task.classes))


def evaluate(workspace: Workspace, *, seed: int = 42, num_boost_round: int = NUM_BOOST_ROUND,
             test_fraction: float = 0.3) -> dict[str, Any]:
    """Train and score on a project's data without tracking anything (see ``lakeforge.ml.registry``)."""
    task = task_of(workspace)
    trained = train_frame(load(workspace, task=task), task=task, seed=seed, num_boost_round=num_boost_round,
                          test_fraction=test_fraction)
    return {**trained.split.describe(), **trained.metrics}
