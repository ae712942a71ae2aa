"""Predictive maintenance: will a machine fail within 24 hours, and which component?

The rows are the point-in-time features of ``gold.machine_features`` (one per machine and hour; no feature reads
a later row). A row's features are complete at ``hour + 1 h`` (the hourly averages cover ``[hour, hour + 1 h)``),
so its label window starts there: the label is the component (``comp1`` .. ``comp4``) of the first failure in
``(hour + 1 h, hour + 1 h + 24 h]`` (from ``gold.fact_failures``), else ``none``. A failure inside the feature
hour would otherwise label the hour whose averages already show it. Rows whose horizon passes the end of the data
are left out: their label is not known yet. A failure of a component not in ``CLASSES`` is an error.

The model reads the declared ``FEATURES`` only, never "every other column"; a declared column named like the label
or the failures, or one that on its own separates failing rows from the others almost perfectly, is refused.

The split is by time: the last ``test_fraction`` of the hours is the holdout (``hour > cutoff``); training
uses the hours up to ``cutoff - 25 h``, so no training label window reaches into the holdout. The model is LightGBM
multiclass, deterministic (``deterministic``, a fixed ``num_threads``, ``seed``), with class weights that lift
the rare failure classes. Metrics: per class precision, recall and F1; macro F1 over the classes that occur in
the holdout or its predictions; and the area under the precision-recall curve (average precision) of "any
failure" scored by ``1 - P(none)``.

scikit-learn, LightGBM and pandas are imported when needed (``pip install 'lakeforge[ml]'``).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import pyarrow as pa

from lakeforge.duckdb_connect import DuckDBSettings, connect
from lakeforge.errors import LakeforgeError, MissingDependency

if TYPE_CHECKING:
    import lightgbm
    import pandas as pd

    from lakeforge.workspace import Workspace

CLASSES: tuple[str, ...] = ("none", "comp1", "comp2", "comp3", "comp4")
HORIZON_HOURS = 24
FEATURE_HOURS = 1  # a row's features are complete this long after its hour: its label window starts there
FEATURES_TABLE = "gold.machine_features"
FAILURES_TABLE = "gold.fact_failures"
KEYS: tuple[str, ...] = ("machine_id", "hour")
LABEL = "label"
CATEGORICAL = "model"  # the machine model: a string, encoded as ``model_code`` (its index in ``categories``)
SENSORS = ("volt", "rotate", "pressure", "vibration", "temperature")
# the columns of gold.machine_features the model reads, in this order (declared: a new column is not a feature)
FEATURES: tuple[str, ...] = (
    *(f"{s}_{stat}_{w}" for s in SENSORS for w in ("3h", "24h") for stat in ("mean", "std", "slope")),
    "errors_24h", *(f"error{i}_24h" for i in range(1, 6)),
    *(f"comp{i}_hours_since_maint" for i in range(1, 5)),
    CATEGORICAL, "age",
)
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
def labelled(features: pa.Table, failures: pa.Table, *, horizon_hours: int = HORIZON_HOURS,
             settings: DuckDBSettings) -> pa.Table:
    """Every feature row with its label; rows whose horizon passes the end of the data are left out.
    ``settings``: of the DuckDB connection that joins them (the project's: :attr:`Workspace.duckdb_settings`)."""
    for name, table, needed in (("features", features, KEYS), ("failures", failures, ("machine_id", "ts",
                                                                                      "component"))):
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            raise LakeforgeError(f"the {name} table has no column {', '.join(missing)}",
                                 hint="train on gold.machine_features and gold.fact_failures of the example project")
    con = connect(settings=settings)
    try:
        con.register("f", features)
        con.register("x", failures.select(["machine_id", "ts", "component"]))
        _check_classes([str(r[0]) for r in con.sql("SELECT DISTINCT component FROM x WHERE component IS NOT NULL "
                                                     "ORDER BY 1").fetchall()])
        start, end = FEATURE_HOURS, FEATURE_HOURS + int(horizon_hours)
        return con.sql(f"""
            WITH firsts AS (
              SELECT f.machine_id, f.hour, first(x.component ORDER BY x.ts, x.component) AS component
              FROM f JOIN x ON x.machine_id = f.machine_id AND x.ts > f.hour + INTERVAL {start} HOUR
                           AND x.ts <= f.hour + INTERVAL {end} HOUR
              GROUP BY f.machine_id, f.hour
            )
            SELECT f.*, coalesce(firsts.component, 'none') AS {LABEL}
            FROM f LEFT JOIN firsts USING (machine_id, hour)
            WHERE f.hour <= (SELECT max(hour) FROM f) - INTERVAL {int(horizon_hours)} HOUR
            ORDER BY f.hour, f.machine_id
        """).to_arrow_table()
    finally:
        con.close()


def _check_classes(found: list[str]) -> None:
    unknown = [c for c in found if c not in CLASSES[1:]]
    if unknown:
        raise LakeforgeError(f"{FAILURES_TABLE} has failures of {', '.join(map(repr, unknown))}, not a known class",
                             hint=f"the classes are {', '.join(CLASSES[1:])}: map the component to one of them in "
                                  "the failures model, or leave those rows out")


def load(workspace: Workspace, *, horizon_hours: int = HORIZON_HOURS) -> pd.DataFrame:
    """The labelled feature rows of a project, as pandas (sorted by hour, then machine)."""
    require()
    for name in (FEATURES_TABLE, FAILURES_TABLE):
        if not workspace.catalog.exists(name):
            raise LakeforgeError(f"{name} does not exist in project {workspace.config.name}",
                                 hint="run the pipeline first: `lakeforge run` (the telemetry example has it)")
    frame = labelled(workspace.table(FEATURES_TABLE), workspace.table(FAILURES_TABLE),
                     horizon_hours=horizon_hours, settings=workspace.duckdb_settings).to_pandas()
    if frame.empty:
        raise LakeforgeError(f"{FEATURES_TABLE} has no row with a known {horizon_hours} h label",
                             hint="generate more days of data (e.g. `lakeforge generate --days 20`) and run")
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


def split(frame: pd.DataFrame, *, test_fraction: float = 0.3, gap_hours: int = HORIZON_HOURS + FEATURE_HOURS) -> Split:
    """The last ``test_fraction`` of the time span is the holdout; training ends ``gap_hours`` before it."""
    import pandas as pd

    if not 0 < test_fraction < 1:
        raise LakeforgeError(f"test_fraction must be between 0 and 1, not {test_fraction}")
    hours = pd.to_datetime(frame["hour"], utc=True)
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


@dataclass
class Encoding:
    """How a frame becomes the model's input: the feature columns, and the categories of ``model``."""

    features: list[str]
    categories: list[str] = field(default_factory=list)

    @staticmethod
    def fit(frame: pd.DataFrame, *, declared: tuple[str, ...] = FEATURES) -> Encoding:
        """The declared features of ``frame`` (each must be there; see :func:`check_features`)."""
        check_features(frame, declared)
        features = [c for c in declared if c != CATEGORICAL]
        categories: list[str] = []
        if CATEGORICAL in declared:
            categories = sorted(str(v) for v in frame[CATEGORICAL].dropna().unique())
            features.append(f"{CATEGORICAL}_code")
        return Encoding(features=features, categories=categories)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input: float64 columns in a fixed order; an unknown or missing category is NaN."""
        import pandas as pd

        columns: dict[str, Any] = {}
        for name in self.features:
            if name == f"{CATEGORICAL}_code":
                codes = {c: float(i) for i, c in enumerate(self.categories)}
                source = frame[CATEGORICAL] if CATEGORICAL in frame.columns else pd.Series(None, index=frame.index)
                columns[name] = source.map(lambda v, codes=codes: codes.get(str(v), np.nan)).astype("float64")
            elif name in frame.columns:
                columns[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
            else:
                columns[name] = pd.Series(np.nan, index=frame.index, dtype="float64")
        return pd.DataFrame(columns, index=frame.index)

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "categorical": {f"{CATEGORICAL}_code": self.categories}}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Encoding:
        return Encoding(features=list(data["features"]),
                        categories=list(data.get("categorical", {}).get(f"{CATEGORICAL}_code", [])))


def check_features(frame: pd.DataFrame, declared: tuple[str, ...]) -> None:
    """Refuse a declared feature that is missing, named like the label or the failures, or that on its own ranks
    failing rows (``label != none``) above the others almost perfectly (ROC AUC >= ``SEPARATES_ALONE`` either way):
    the label, or something derived from it."""
    from sklearn.metrics import roc_auc_score

    missing = [c for c in declared if c not in frame.columns]
    if missing:
        raise LakeforgeError(f"the features table has no column {', '.join(missing)}",
                             hint=f"the model reads {FEATURES_TABLE}'s declared features: {', '.join(declared)}")
    kin = [c for c in declared if any(word in c.lower() for word in LABEL_FAMILY)]
    if kin:
        raise LakeforgeError(f"feature {kin[0]} is named like the label or the failures it predicts",
                             hint="a feature must be known before the label window: leave it out of the features")
    failing = (frame[LABEL] != "none").to_numpy() if LABEL in frame.columns else np.zeros(0, dtype=bool)
    if failing.size == 0 or failing.all() or not failing.any():
        return
    for name in declared:
        if name == CATEGORICAL:
            continue
        values = np.asarray(frame[name], dtype="float64")
        known = ~np.isnan(values)
        if known.sum() < 2 or failing[known].all() or not failing[known].any():
            continue
        auc = float(roc_auc_score(failing[known], values[known]))
        if max(auc, 1.0 - auc) >= SEPARATES_ALONE:
            raise LakeforgeError(f"feature {name} alone separates failing rows from the others (ROC AUC "
                                 f"{max(auc, 1.0 - auc):.3f}): it is the label or derived from it",
                                 hint="a feature must be known before the label window: leave it out of the features")


# -- model ------------------------------------------------------------------------------------------
def class_weights(labels: pd.Series, *, power: float = CLASS_WEIGHT_POWER) -> dict[str, float]:
    counts = labels.value_counts()
    base = float(counts.get("none", 0)) or float(counts.max())
    return {c: (base / float(counts[c])) ** power if counts.get(c, 0) else 1.0 for c in CLASSES}


def params_for(*, seed: int, **overrides: Any) -> dict[str, Any]:
    return {**PARAMS, "seed": seed, **overrides}


def fit(train: pd.DataFrame, encoding: Encoding, *, seed: int = 42, num_boost_round: int = NUM_BOOST_ROUND,
        params: dict[str, Any] | None = None, class_weight_power: float = CLASS_WEIGHT_POWER) -> lightgbm.Booster:
    require()
    import lightgbm as lgb

    x = encoding.transform(train)
    y = train[LABEL].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    weights = class_weights(train[LABEL], power=class_weight_power)
    w = train[LABEL].map(weights).to_numpy(dtype="float64")
    categorical = [f"{CATEGORICAL}_code"] if f"{CATEGORICAL}_code" in encoding.features else []
    data = lgb.Dataset(x, label=y, weight=w, categorical_feature=categorical or "auto", free_raw_data=True)
    return lgb.train(params or params_for(seed=seed), data, num_boost_round=num_boost_round)


def predict_proba(model: Any, frame: pd.DataFrame, encoding: Encoding) -> np.ndarray:
    """Class probabilities in :data:`CLASSES` order (a LightGBM booster, or anything with ``predict``)."""
    proba = np.asarray(model.predict(encoding.transform(frame)), dtype="float64")
    return proba.reshape(len(frame), len(CLASSES))


def metrics(labels: pd.Series | np.ndarray | list[str], proba: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, f1_score, precision_recall_fscore_support

    y_true = np.asarray(labels, dtype=object)
    y_pred = np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(CLASSES), zero_division=0)
    out: dict[str, float] = {}
    for i, name in enumerate(CLASSES):
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


def train_frame(frame: pd.DataFrame, *, seed: int = 42, num_boost_round: int = NUM_BOOST_ROUND,
                test_fraction: float = 0.3, gap_hours: int = HORIZON_HOURS,
                class_weight_power: float = CLASS_WEIGHT_POWER) -> Trained:
    """Split, fit on the training part, score the holdout."""
    parts = split(frame, test_fraction=test_fraction, gap_hours=gap_hours)
    encoding = Encoding.fit(parts.train)
    params = params_for(seed=seed)
    booster = fit(parts.train, encoding, seed=seed, num_boost_round=num_boost_round, params=params,
                  class_weight_power=class_weight_power)
    scores = metrics(parts.test[LABEL], predict_proba(booster, parts.test, encoding))
    return Trained(booster=booster, encoding=encoding, split=parts, params=params, num_boost_round=num_boost_round,
                   metrics=scores, class_weights=class_weights(parts.train[LABEL], power=class_weight_power))


def evaluate(workspace: Workspace, *, seed: int = 42, num_boost_round: int = NUM_BOOST_ROUND,
             test_fraction: float = 0.3) -> dict[str, Any]:
    """Train and score on a project's data without tracking anything (see ``lakeforge.ml.registry``)."""
    trained = train_frame(load(workspace), seed=seed, num_boost_round=num_boost_round, test_fraction=test_fraction)
    return {**trained.split.describe(), **trained.metrics}
