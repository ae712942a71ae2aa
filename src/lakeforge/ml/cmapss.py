"""Remaining useful life on NASA C-MAPSS (turbofan engines run to failure), with the data going through lakeforge.

:func:`evaluate` builds a temporary project from the ``cmapss`` example (``lakeforge/examples/cmapss``), lands a
subset's three published files in its landing folder unchanged (``train_FD00x.txt``, ``test_FD00x.txt``,
``RUL_FD00x.txt``) and runs the pipeline: ingestion types them into ``bronze.train``, ``bronze.test`` and
``bronze.rul``; the silver models key them by subset, unit and cycle (the RUL file has no unit column: its line
number is the unit, numbered in SQL and checked here against the file); the gold models compute per-cycle,
point-in-time features in SQL (``gold.sensor_stats``, ``gold.cycle_features``: windows per engine ordered by
cycle, ending at the current row). The model trains on every cycle of the training engines with the standard
target, the remaining cycles capped at 125 (piecewise linear), and is scored the standard way: one prediction
per test engine, at its last cycle, against the RUL file; RMSE and the PHM08 score (``d = predicted - true``:
``exp(-d/13) - 1`` for ``d < 0``, ``exp(d/10) - 1`` otherwise, summed).

The model (:func:`train`) is LightGBM on those features, seeded and on one thread, and the pipeline runs DuckDB
on one thread, so the same data and seed give the same metrics. The recipe (features, model, parameters) is the
same for every subset; it came from 5-fold cross-validation by engine on the training files, each validation
engine cut at random cycles to mimic the test protocol (:func:`cross_validate`); the test set's RUL was never
used to choose anything. Besides the RMSE against the RUL file, ``rmse_capped`` compares with the true RUL capped
at 125 like the target: the convention of the published figures (DAST's 15.25 on FD002 is below what any
prediction capped at 125 can reach against the uncapped RUL there, 18.3).

scikit-learn and LightGBM are imported when needed (``pip install 'lakeforge[ml]'``).
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakeforge.errors import LakeforgeError, MissingDependency

if TYPE_CHECKING:
    from lightgbm import LGBMRegressor

# Lands a subset's files (train, test, RUL) in a new example project in a folder, runs it, and returns
# gold.cycle_features with timings (``pipeline_seconds``): the façade's :meth:`Project.cmapss_features`.
Load = Callable[[dict[str, Path], str, Path], tuple[pa.Table, dict[str, float]]]

EXAMPLE = "cmapss"
FEATURES_TABLE = "gold.cycle_features"
RUL_TABLE = "silver.rul"
CAP = 125  # the piecewise-linear target: remaining cycles, at most this
THREADS = 1  # LightGBM's threads: fixed, so that results do not depend on the machine's cores (one: on a
# shared machine, OpenMP threads waiting for a busy core spin and bill CPU seconds for nothing)
# gold.cycle_features columns that are keys or labels, not features
NOT_FEATURES = ("split", "subset", "unit", "cycle", "op_condition", "rul", "rul_capped", "is_last")
SUBSET = re.compile(r"^FD00[1-4]$")
PUBLISHED: dict[str, dict[str, dict[str, float | None]]] = {  # RMSE / PHM08 score on the test set
    "FD001": {
        "CNN (Babu et al. 2016)": {"rmse": 18.45, "score": 1287},
        "LSTM (Zheng et al. 2017)": {"rmse": 16.14, "score": 338},
        "DCNN (Li, Ding & Sun 2018)": {"rmse": 12.61, "score": 274},
        "DAST (Zhang et al. 2022)": {"rmse": 11.43, "score": None},
        "STAR (Fan et al. 2024)": {"rmse": 10.61, "score": 169},
    },
    # FD002 and FD003: RMSE as ../shared/data/README.md quotes the papers (their PHM08 scores are not quoted there)
    "FD002": {
        "CNN (Babu et al. 2016)": {"rmse": 30.29, "score": None},
        "LSTM (Zheng et al. 2017)": {"rmse": 24.49, "score": None},
        "DCNN (Li, Ding & Sun 2018)": {"rmse": 22.36, "score": None},
        "DAST (Zhang et al. 2022)": {"rmse": 15.25, "score": None},
        "STAR (Fan et al. 2024)": {"rmse": 13.47, "score": None},
    },
    "FD003": {
        "CNN (Babu et al. 2016)": {"rmse": 19.82, "score": None},
        "LSTM (Zheng et al. 2017)": {"rmse": 16.18, "score": None},
        "DCNN (Li, Ding & Sun 2018)": {"rmse": 12.64, "score": None},
        "DAST (Zhang et al. 2022)": {"rmse": 11.32, "score": None},
        "STAR (Fan et al. 2024)": {"rmse": 10.71, "score": None},
    },
    # FD004: as tabulated in the STAR paper's comparison (Fan et al., Sensors 2024, PMC10857698), read through a
    # public literature review (github), not checked against the papers themselves. DAST's FD004 figure is left
    # out: that table gives 18.23, another quotation gives 18.36 (unverified which is right).
    "FD004": {
        "DCNN (Li, Ding & Sun 2018)": {"rmse": 23.31, "score": None},
        "STAR (Fan et al. 2024)": {"rmse": 15.87, "score": None},
    },
}
LGBM_PARAMS: dict[str, Any] = {  # chosen by cross-validation by engine on the training files (docs/ml.md)
    "n_estimators": 1500,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
    "deterministic": True,
    "force_col_wise": True,
    "n_jobs": THREADS,
    "verbose": -1,
}


def require() -> None:
    """Fail with the pip extra to install when the ML libraries are missing."""
    try:
        import lightgbm  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(f"C-MAPSS evaluation needs {exc.name}", hint="pip install 'lakeforge[ml]'") from None


# -- the metrics -----------------------------------------------------------------------------------
def rmse(predicted: np.ndarray, true: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted, float) - np.asarray(true, float)) ** 2)))


def phm08_score(predicted: np.ndarray, true: np.ndarray) -> float:
    """The PHM08 challenge score: late predictions (``d >= 0``) cost more than early ones."""
    d = np.asarray(predicted, float) - np.asarray(true, float)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


# -- the model -------------------------------------------------------------------------------------
def train(features: np.ndarray, target: np.ndarray, seed: int = 42) -> LGBMRegressor:
    """Fit the RUL model: LightGBM (:data:`LGBM_PARAMS`, seeded, one thread) on the features.

    ``features``: one row per training cycle (the columns of :func:`feature_columns`); ``target``: the capped
    remaining cycles. Returns a fitted ``LGBMRegressor`` (``predict`` takes the same columns)."""
    require()
    from lightgbm import LGBMRegressor

    model = LGBMRegressor(**LGBM_PARAMS, random_state=seed)
    model.fit(np.asarray(features, np.float64), np.asarray(target, np.float64))
    return model


def predict(model: Any, features: np.ndarray) -> np.ndarray:
    """Remaining cycles, within [0, CAP] (the model was trained on the capped target)."""
    return np.clip(model.predict(np.asarray(features, np.float64)), 0.0, CAP)


# -- the data --------------------------------------------------------------------------------------
def feature_columns(table: pa.Table) -> list[str]:
    """The model's inputs: the cycle number and every feature column of ``gold.cycle_features`` that varies over
    the training rows. A sensor constant within each operating condition on the training engines has z-scores
    of 0 (its standard deviation is 0), so all its columns are constant and dropped: which sensors carry signal
    is decided on each subset's training data, by rule, not from a list."""
    training = table.filter(pc.equal(table["split"], "train"))
    return ["cycle", *[c for c in table.column_names if c not in NOT_FEATURES and _varies(training[c])]]


def _varies(column: pa.ChunkedArray) -> bool:
    bounds = pc.min_max(column)
    return bool(bounds["min"].is_valid and bounds["min"].as_py() != bounds["max"].as_py())


def matrix(table: pa.Table, columns: list[str]) -> np.ndarray:
    if table.num_rows == 0:
        return np.zeros((0, len(columns)))
    return np.column_stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in columns])


def split(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(every training cycle, the last cycle of every test engine), both ordered by unit and cycle."""
    ordered = table.sort_by([("unit", "ascending"), ("cycle", "ascending")])
    train_rows = ordered.filter(pc.equal(ordered["split"], "train"))
    test_last = ordered.filter(pc.and_(pc.equal(ordered["split"], "test"), pc.equal(ordered["is_last"], True)))
    return train_rows, test_last


def files_of(data_dir: Path, subset: str) -> dict[str, Path]:
    """The subset's three published files, by source name."""
    return {"train": data_dir / f"train_{subset}.txt", "test": data_dir / f"test_{subset}.txt",
            "rul": data_dir / f"RUL_{subset}.txt"}


def check_rul_units(table: pa.Table, rul_file: Path, subset: str) -> None:
    """``table`` (silver.rul) numbers the RUL file's lines in SQL (the file has no unit column); check against the
    file."""
    expected = [int(line) for line in rul_file.read_text().split() if line.strip()]
    table = table.filter(pc.equal(table["subset"], subset)).sort_by("unit")
    units, rul = table["unit"].to_pylist(), table["rul"].to_pylist()
    if units != list(range(1, len(expected) + 1)) or rul != expected:
        raise LakeforgeError(f"{RUL_TABLE} does not match {rul_file.name} line by line (the line number is the "
                             "unit)", hint="the RUL file must be ingested in one batch with its lines in order")


@contextmanager
def _folder(work_dir: Path | None) -> Iterator[Path]:
    if work_dir is not None:
        yield Path(work_dir)
        return
    with tempfile.TemporaryDirectory(prefix="lakeforge-cmapss-") as tmp:
        yield Path(tmp) / "project"


def check_files(data_dir: Path, subset: str) -> dict[str, Path]:
    """The subset's three files (train, test, RUL), each present."""
    files = files_of(data_dir, subset)
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise LakeforgeError(f"{data_dir} lacks {', '.join(missing)}",
                             hint="point --data-dir at the C-MAPSS folder as published (train_FD00x.txt, "
                                  "test_FD00x.txt, RUL_FD00x.txt)")
    return files


# -- validation ------------------------------------------------------------------------------------
def cross_validate(train_rows: pa.Table, *, seed: int = 42, folds: int = 5, cuts: int = 5,
                   min_history: int = 31) -> dict[str, float]:
    """GroupKFold by engine on the training cycles; each validation engine is cut at ``cuts`` random cycles
    (at least ``min_history`` cycles in, as test engines are) and scored there, as the test protocol does.
    RMSE against the true remaining cycles (``rmse``: cuts early in a long life, true RUL far above 125, dominate
    it) and against the capped target (``rmse_capped``, what model choices were compared on), and the PHM08 score
    per cut against the capped target."""
    require()
    from sklearn.model_selection import GroupKFold

    columns = feature_columns(train_rows)
    x, target = matrix(train_rows, columns), train_rows["rul_capped"].to_numpy().astype(np.float64)
    units, cycles = train_rows["unit"].to_numpy(), train_rows["cycle"].to_numpy()
    true = train_rows["rul"].to_numpy().astype(np.float64)
    rng = np.random.default_rng(seed)
    predicted, actual = [], []
    for fit_idx, val_idx in GroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, groups=units):
        model = train(x[fit_idx], target[fit_idx], seed)
        chosen: list[np.ndarray] = []
        for unit in np.unique(units[val_idx]):
            rows = val_idx[units[val_idx] == unit]
            eligible = rows[cycles[rows] >= min(min_history, int(cycles[rows].max()))]
            chosen.append(rng.choice(eligible, size=min(cuts, len(eligible)), replace=False))
        at = np.sort(np.concatenate(chosen))
        predicted.append(predict(model, x[at]))
        actual.append(true[at])
    p, t = np.concatenate(predicted), np.concatenate(actual)
    capped = np.minimum(t, CAP)
    return {"rmse": rmse(p, t), "rmse_capped": rmse(p, capped), "score_capped_per_cut": phm08_score(p, capped) / len(t),
            "cuts": float(len(t))}


# -- the benchmark ---------------------------------------------------------------------------------
class CmapssEvaluation(TypedDict):
    """``lakeforge ml evaluate --dataset cmapss``: the test set's RMSE and PHM08 score, what was trained on, the
    published results to compare with (method -> rmse, score)."""

    dataset: str
    subset: str
    rmse: float
    score: float
    rmse_capped: float  # against min(true RUL, 125), the published papers' convention
    score_capped: float
    units: int
    train_rows: int
    train_units: int
    features: int
    feature_table: str
    target: str
    model: str
    seed: int
    pipeline_seconds: float
    train_seconds: float
    train_cpu_seconds: float  # time.process_time() of the fit
    published: dict[str, dict[str, float | None]]
    validation: NotRequired[dict[str, float]]  # with folds: cross_validate's figures, folds and seconds


def evaluate(data_dir: Path, *, load: Load, subset: str = "FD001", seed: int = 42, work_dir: Path | None = None,
             folds: int = 0) -> CmapssEvaluation:
    """Run the subset through the pipeline, train, and score one prediction per test engine at its last cycle.

    ``load`` lands the files in a project and runs it (:meth:`Project.cmapss_features`). ``work_dir``: the folder
    the project is built in (kept, for a look at the tables); by default a temporary
    one. ``folds`` > 0 also cross-validates on the training engines (``validation`` in the result)."""
    require()
    subset = subset.upper()
    if not SUBSET.match(subset):
        raise LakeforgeError(f"unknown C-MAPSS subset {subset!r}", hint="use FD001, FD002, FD003 or FD004")
    files = check_files(Path(data_dir), subset)
    with _folder(work_dir) as folder:
        table, timings = load(files, subset, folder)
    train_rows, test_last = split(table)
    columns = feature_columns(table)
    started, cpu = time.perf_counter(), time.process_time()
    model = train(matrix(train_rows, columns), train_rows["rul_capped"].to_numpy(), seed)
    train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu
    true = test_last["rul"].to_numpy().astype(np.float64)
    if np.isnan(true).any():
        raise LakeforgeError(f"some test engines of {subset} have no RUL", hint=f"check RUL_{subset}.txt")
    predicted = predict(model, matrix(test_last, columns))
    result: CmapssEvaluation = {
        "dataset": "cmapss",
        "subset": subset,
        "rmse": round(rmse(predicted, true), 4),
        "score": round(phm08_score(predicted, true), 2),
        "rmse_capped": round(rmse(predicted, np.minimum(true, CAP)), 4),
        "score_capped": round(phm08_score(predicted, np.minimum(true, CAP)), 2),
        "units": test_last.num_rows,
        "train_rows": train_rows.num_rows,
        "train_units": len(set(train_rows["unit"].to_pylist())),
        "features": len(columns),
        "feature_table": FEATURES_TABLE,
        "target": f"remaining cycles capped at {CAP}",
        "model": f"LightGBM ({LGBM_PARAMS['n_estimators']} trees, {LGBM_PARAMS['num_leaves']} leaves, "
                 f"learning rate {LGBM_PARAMS['learning_rate']}, {THREADS} thread)",
        "seed": seed,
        "pipeline_seconds": round(timings["pipeline_seconds"], 2),
        "train_seconds": round(train_seconds, 2),
        "train_cpu_seconds": round(train_cpu, 2),
        "published": PUBLISHED.get(subset, {}),
    }
    if folds > 0:
        started, cpu = time.perf_counter(), time.process_time()
        validation = cross_validate(train_rows, seed=seed, folds=folds)
        result["validation"] = {k: round(v, 4) for k, v in validation.items()} | {
            "folds": folds, "seconds": round(time.perf_counter() - started, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2)}
    return result
