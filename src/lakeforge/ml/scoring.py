"""Scoring in every run: ``gold.anomalies`` (the streaming detector and an isolation forest over the readings) and
``gold.machine_risk`` (the champion failure model over ``gold.machine_features``); online predictions.

Both stages are incremental and idempotent. Their progress is a small state file in the lakehouse
(``_lakeforge/ml/<stage>.json``), written after the Delta commit: a run that dies in between redoes the same
work, and the MERGE on the table's key makes that a no-op.

- ``ml:anomalies``: per entity (machine) the readings newer than its watermark are scored, each sensor by
  :func:`lakeforge.ml.anomaly.detect_details` over the trailing ``context_hours`` of history plus the new readings
  (every score uses only earlier readings, so the rescored history gives the same scores as before), and all
  sensors together by an isolation forest fitted (seeded) on the history only. Only flagged readings are stored:
  an alert of the detector (at most one per event and dead time), or an isolation-forest score at or above
  ``multivariate_threshold`` (the first of each 24 h episode), each with a reason a person can read.
- ``ml:risk``: the new hours of ``gold.machine_features`` get ``P(failure within 24 h)`` and the probability of
  each component from the champion (:mod:`lakeforge.ml.registry`); a new champion rescores every hour. Without
  a champion the stage is skipped and says how to get one.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import TYPE_CHECKING, Any

from lakeforge.errors import LakeforgeError, NotFound
from lakeforge.ml import pdm
from lakeforge.results import StageResult
from lakeforge.sql import DUCKDB

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from lakeforge.config.ml import AnomalyDetectionConfig
    from lakeforge.ml.forest import Forest
    from lakeforge.ml.registry import Champion
    from lakeforge.workspace import Workspace

ANOMALIES = "gold.anomalies"
RISK = "gold.machine_risk"
ANOMALY_STAGE = "ml:anomalies"
RISK_STAGE = "ml:risk"
STAGES = (ANOMALY_STAGE, RISK_STAGE)
STATE = "_lakeforge/ml/{}.json"
FOREST = "_lakeforge/ml/anomalies-forest.npz"  # the isolation forest between runs (lakeforge.ml.forest)
STREAM_DETECTOR = "streaming (tail + level + change)"
FOREST_DETECTOR = "isolation forest"
REFIT = "stream+refit"  # the anomaly stage's strategy in a run that fitted its isolation forest anew
MULTIVARIATE = "multivariate"
EPISODE_HOURS = 24.0  # one multivariate anomaly per entity and episode
_MAX_FIT_ROWS = 50_000


def enabled(workspace: Workspace) -> list[str]:
    """The scoring stages this project runs, in order."""
    ml = workspace.config.ml
    return [name for name, on in ((ANOMALY_STAGE, ml.anomalies.enabled), (RISK_STAGE, ml.risk.enabled)) if on]


def keys(workspace: Workspace) -> dict[str, list[str]]:
    """The scoring tables and their keys (the warehouse loads them like keyed gold models)."""
    failure = workspace.config.ml.failure
    return {ANOMALIES: [workspace.config.ml.anomalies.entity, "sensor", "ts"], RISK: [failure.entity, failure.time]}


def io(workspace: Workspace, name: str) -> tuple[list[str], list[str]]:
    """The tables a scoring stage reads and the one it writes."""
    if name == ANOMALY_STAGE:
        return [workspace.config.ml.anomalies.source], [ANOMALIES]
    return [workspace.config.ml.failure.features], [RISK]


def run_stage(workspace: Workspace, name: str, *, run_id: str, full_refresh: bool = False,
              force: bool = False) -> StageResult:
    if name == ANOMALY_STAGE:
        return score_anomalies(workspace, run_id=run_id, full_refresh=full_refresh)
    if name == RISK_STAGE:
        return score_risk(workspace, run_id=run_id, full_refresh=full_refresh, force=force)
    raise LakeforgeError(f"there is no scoring stage {name!r}", hint="stages: " + ", ".join(STAGES))


def _state(workspace: Workspace, stage: str) -> dict[str, Any]:
    path = STATE.format(stage)
    return dict(workspace.lakehouse.read_json(path)) if workspace.lakehouse.exists(path) else {}


def _save_state(workspace: Workspace, stage: str, state: dict[str, Any]) -> None:
    workspace.lakehouse.write_json_atomic(STATE.format(stage), state)


def _skipped(stage: StageResult, detail: str, started: float) -> StageResult:
    stage.status, stage.detail, stage.seconds = "skipped", detail, time.perf_counter() - started
    return stage


def _commit(workspace: Workspace, name: str, table: pa.Table, *, key: list[str], replace: bool) -> None:
    if replace or not workspace.catalog.exists(name):
        workspace.catalog.write(name, table, mode="overwrite")
    elif table.num_rows:
        workspace.catalog.merge(name, table, keys=key, update=True)


# -- anomalies ------------------------------------------------------------------------------------------------
def _anomaly_schema(entity: str, entity_type: pa.DataType) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([(entity, entity_type), ("sensor", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
                      ("value", pa.float64()), ("score", pa.float64()), ("reason", pa.string()),
                      ("detector", pa.string()), ("run_id", pa.string())])


def _readings(workspace: Workspace, cfg: AnomalyDetectionConfig, marks: dict[str, str]) -> pa.Table:
    """The readings of every entity with new ones: its history within ``context_hours`` of its watermark and the
    new readings (``_new``), sorted by entity and time."""
    import pyarrow as pa

    dataset = workspace.catalog.dataset(cfg.source)
    missing = [c for c in (cfg.entity, cfg.time, *cfg.sensors) if c not in dataset.schema.names]
    if missing:
        raise LakeforgeError(f"ml.anomalies: {cfg.source} has no column {', '.join(missing)}",
                             hint="name columns of the source in ml.anomalies (entity, time, sensors)")
    watermarks = pa.table({"entity": pa.array(list(marks), pa.string()),
                           "wm": pa.array([dt.datetime.fromisoformat(v) for v in marks.values()],
                                          pa.timestamp("us", tz="UTC"))})
    con = _connection(workspace)
    try:
        con.execute("SET TimeZone='UTC'")
        con.register("src", dataset)
        con.register("marks", watermarks)
        e, t = DUCKDB.ident(cfg.entity), DUCKDB.ident(cfg.time)
        sensors = ", ".join(f"CAST({DUCKDB.ident(s)} AS DOUBLE) AS {DUCKDB.ident(s)}" for s in cfg.sensors)
        return con.sql(f"""
            WITH r AS (
              SELECT r.{e} AS entity, CAST(r.{t} AS TIMESTAMPTZ) AS ts, {sensors}, m.wm
              FROM src r LEFT JOIN marks m ON CAST(r.{e} AS VARCHAR) = m.entity
              WHERE r.{t} IS NOT NULL AND r.{e} IS NOT NULL
                AND (m.wm IS NULL OR CAST(r.{t} AS TIMESTAMPTZ) > m.wm - INTERVAL {float(cfg.context_hours)} HOUR)
            ), flagged AS (  -- an entity's latest time may still be filling (an hour being aggregated): next run
              SELECT * EXCLUDE (wm), (wm IS NULL OR ts > wm) AND ts < max(ts) OVER (PARTITION BY entity) AS _new,
                     coalesce(ts <= wm, false) AS _context
              FROM r
            )
            SELECT * FROM flagged QUALIFY bool_or(_new) OVER (PARTITION BY entity)
            ORDER BY entity, ts
        """).to_arrow_table()
    finally:
        con.close()


def _connection(workspace: Workspace) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection of its own (its registrations and results are its own) on the embedded engine's
    database when the run has one (a new database costs 10-20 ms to open, a connection to an open one microseconds;
    the engine's threads and memory limit apply), else a new one with the project's DuckDB settings."""
    from lakeforge.duckdb_connect import connect
    from lakeforge.engines.duckdb import DuckDBEngine

    engine = workspace.local_engine
    return engine.con.cursor() if isinstance(engine, DuckDBEngine) else connect(settings=workspace.duckdb_settings)


def _groups(entities: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of equal values in a sorted array."""
    import numpy as np

    if not entities.size:
        return []
    cuts = np.flatnonzero(entities[1:] != entities[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [entities.size]])
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


class _Readings:
    """The readings as NumPy arrays, sorted by entity and time: ``ts`` naive UTC ``datetime64[ns]`` (what the
    detector's arithmetic wants), each sensor float64 with NaN for a missing value, and the run's flags."""

    def __init__(self, table: pa.Table, sensors: list[str]) -> None:
        import numpy as np
        import pyarrow as pa

        self.entity = table["entity"].to_numpy(zero_copy_only=False)
        self.ts = table["ts"].cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False).astype("datetime64[ns]")
        self.values = np.column_stack([table[s].cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
                                       for s in sensors]) if table.num_rows else np.zeros((0, len(sensors)))
        self.new = table["_new"].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        self.context = table["_context"].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        self.spans = _groups(self.entity)

    def watermarks(self) -> dict[str, str]:
        """The latest new reading of each entity that has one, as ISO time (the next run's watermark)."""
        marks: dict[str, str] = {}
        for lo, hi in self.spans:
            new = self.ts[lo:hi][self.new[lo:hi]]
            if new.size:
                marks[str(self.entity[lo])] = _utc(new.max()).isoformat()
        return marks


def _streams(r: _Readings, cfg: AnomalyDetectionConfig) -> list[dict[str, Any]]:
    import numpy as np

    from lakeforge.ml import anomaly

    params = anomaly.DetectorParams(**cfg.detector)
    rows: list[dict[str, Any]] = []
    for lo, hi in r.spans:
        stamps = r.ts[lo:hi]
        if hi - lo < 2:
            continue
        _check_warm_up(params, cfg, period=params.period_seconds or anomaly.infer_period(stamps), entity=r.entity[lo])
        for j, sensor in enumerate(cfg.sensors):
            values = r.values[lo:hi, j]
            if np.isnan(values).all():
                continue
            out = anomaly.detect_details(values, stamps, params=params, name=sensor, reasons_for="alerts")
            for i in np.flatnonzero(out["alert"] & r.new[lo:hi]):
                rows.append({"entity": r.entity[lo + i], "sensor": sensor, "ts": _utc(stamps[i]),
                             "value": float(values[i]), "score": float(out["score"][i]), "reason": out["reason"][i],
                             "detector": STREAM_DETECTOR})
    return rows


def _check_warm_up(params: Any, cfg: AnomalyDetectionConfig, *, period: float, entity: Any) -> None:
    """Refuse settings under which no reading is ever scored: each run re-reads ``context_hours`` of history, and
    the detector learns ``warm_up(params)`` readings before its first score (``context_learn`` for the contextual
    component, ``min_history + likelihood_samples`` for those through the likelihood)."""
    from lakeforge.ml import anomaly

    if not math.isfinite(period) or period <= 0:
        return
    warm_up = anomaly.warm_up(params)
    held = cfg.context_hours * 3600.0 / period
    if held < warm_up:
        raise LakeforgeError(
            f"ml.anomalies: the detector learns for {warm_up} readings before its first score, but context_hours "
            f"{cfg.context_hours:g} holds {held:.0f} readings of {cfg.entity} {entity} (one every {period:g} s): "
            "no reading would ever be scored",
            hint=f"raise ml.anomalies.context_hours to at least {math.ceil(warm_up * period / 3600.0)}, or lower "
                 "ml.anomalies.detector's context_learn (the contextual default) or min_history and likelihood_samples "
                 "(hourly data: the example's {min_history: "
                 "72, likelihood_samples: 72, weights: {tail: 1.0, level: 0.2, change: 0.2}, alert_surprise: 5}; "
                 "docs/ml.md)")


def _utc(value: np.datetime64) -> dt.datetime:
    import numpy as np

    return dt.datetime.fromtimestamp(int(value.astype("datetime64[us]").astype(np.int64)) / 1e6, tz=dt.UTC)


def _robust(block: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Each column as robust z-scores against its median and MAD over the ``fit`` rows (NaN -> 0)."""
    import numpy as np

    med = np.nanmedian(block[fit], axis=0)
    mad = np.nanmedian(np.abs(block[fit] - med), axis=0)
    scale = np.maximum(1.4826 * np.nan_to_num(mad), 1e-9 * np.maximum(1.0, np.abs(np.nan_to_num(med))))
    return np.nan_to_num((block - med) / scale, nan=0.0, posinf=0.0, neginf=0.0)


def _zscores(r: _Readings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All sensors as robust z-scores against each entity's own history (its readings before the watermark, or,
    the first time, the first half of what it has), the history rows, and the new rows to score."""
    import numpy as np

    z = np.zeros_like(r.values)
    fit = np.zeros(r.values.shape[0], dtype=bool)
    scored = np.zeros(r.values.shape[0], dtype=bool)
    for lo, hi in r.spans:
        history = r.context[lo:hi].copy()
        if not history.any():  # first time: learn on the first half
            history = np.arange(hi - lo) < (hi - lo) // 2
        if history.sum() < 30:
            continue
        with np.errstate(all="ignore"):
            z[lo:hi] = _robust(r.values[lo:hi], history)
        fit[lo:hi] = history
        scored[lo:hi] = ~history & r.new[lo:hi]
    return z, fit, scored


def _fitted(workspace: Workspace, cfg: AnomalyDetectionConfig, z: np.ndarray, fit: np.ndarray, through: np.datetime64,
            kept: dict[str, Any]) -> tuple[Forest, dict[str, Any] | None]:
    """The isolation forest to score with: the one kept in the lakehouse, unless there is none, it was fitted
    for other sensors or seed, or the history has grown by ``forest_refit_hours`` since its fit; then a new one
    fitted (scikit-learn, seeded) on the history rows and kept, with what the state keeps of it (None: the kept
    forest)."""
    import numpy as np

    from lakeforge.ml import forest

    setting = {"sensors": list(cfg.sensors), "seed": cfg.seed}
    fitted_through = kept.get("fitted_through")
    due = (fitted_through is None or {k: kept.get(k) for k in setting} != setting
           or _utc(through) - dt.datetime.fromisoformat(fitted_through) >= dt.timedelta(hours=cfg.forest_refit_hours))
    if not due and workspace.lakehouse.exists(FOREST):
        return forest.Forest.from_bytes(workspace.lakehouse.read_bytes(FOREST)), None
    pdm.require()
    sample = np.flatnonzero(fit)
    if sample.size > _MAX_FIT_ROWS:
        sample = np.sort(np.random.default_rng(cfg.seed).choice(sample, _MAX_FIT_ROWS, replace=False))
    model = forest.fit(z[sample], seed=cfg.seed)
    workspace.lakehouse.write_bytes_atomic(FOREST, model.to_bytes())
    return model, {**setting, "fitted_through": _utc(through).isoformat(), "rows": int(sample.size)}


def _forest(workspace: Workspace, r: _Readings, cfg: AnomalyDetectionConfig,
            kept: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The multivariate anomalies among the new readings, and what the state keeps of a forest fitted now (None:
    none was)."""
    import numpy as np

    z, fit, scored = _zscores(r)
    if fit.sum() < 100 or not scored.any():
        return [], None
    model, refit = _fitted(workspace, cfg, z, fit, r.ts[fit].max(), kept)
    index = np.flatnonzero(scored)
    s = model.score(z[index])  # Liu et al.'s anomaly score: ~0.5 ordinary, near 1 isolated at once
    rows: list[dict[str, Any]] = []
    last: dict[Any, Any] = {}
    episode = np.timedelta64(int(EPISODE_HOURS * 3600), "s")
    for i, score in zip(index[s >= cfg.multivariate_threshold], s[s >= cfg.multivariate_threshold], strict=True):
        entity = r.entity[i]
        if entity in last and r.ts[i] - last[entity] <= episode:
            continue
        last[entity] = r.ts[i]
        top = np.argsort(-np.abs(z[i]))[:2]
        parts = ", ".join(f"{cfg.sensors[j]} {z[i, j]:+.1f} robust sd" for j in top)
        reason = (f"{len(cfg.sensors)} sensors together unusual (isolation forest score {score:.2f} >= "
                  f"{cfg.multivariate_threshold:.2f}): {parts} from its median over the history")
        rows.append({"entity": entity, "sensor": MULTIVARIATE, "ts": _utc(r.ts[i]), "value": None,
                     "score": float(score), "reason": reason, "detector": FOREST_DETECTOR})
    return rows, refit


def score_anomalies(workspace: Workspace, *, run_id: str, full_refresh: bool = False) -> StageResult:
    started = time.perf_counter()
    cfg = workspace.config.ml.anomalies
    stage = StageResult(name=ANOMALY_STAGE, kind="ml", strategy="stream")
    if not workspace.catalog.exists(cfg.source):
        return _skipped(stage, f"{cfg.source} does not exist yet", started)
    version = workspace.catalog.version(cfg.source)
    state = {} if full_refresh or not workspace.catalog.exists(ANOMALIES) else _state(workspace, "anomalies")
    if state.get("source_version") == version:
        return _skipped(stage, f"no new readings in {cfg.source} (v{version})", started)
    import pyarrow as pa  # (a stage with nothing to score imports neither numpy nor pyarrow)

    marks: dict[str, str] = dict(state.get("watermarks", {}))
    readings = _Readings(_readings(workspace, cfg, marks), list(cfg.sensors))
    rows = _streams(readings, cfg)
    kept: dict[str, Any] = dict(state.get("forest", {}))
    refit = None
    if cfg.multivariate and readings.spans:
        found, refit = _forest(workspace, readings, cfg, kept)
        rows += found
    entity_type = workspace.catalog.dataset(cfg.source).schema.field(cfg.entity).type
    schema = _anomaly_schema(cfg.entity, entity_type)
    table = pa.Table.from_pylist([{cfg.entity: r.pop("entity"), **r, "run_id": run_id} for r in rows],
                                 schema=schema)
    table = table.sort_by([(cfg.entity, "ascending"), ("sensor", "ascending"), ("ts", "ascending")])
    _commit(workspace, ANOMALIES, table, key=keys(workspace)[ANOMALIES], replace=full_refresh or not state)
    new = int(readings.new.sum())
    marks.update(readings.watermarks())
    _save_state(workspace, "anomalies", {"source_version": version, "watermarks": marks, "forest": refit or kept})
    multivariate = sum(1 for r in rows if r["sensor"] == MULTIVARIATE)
    if refit:
        stage.strategy = REFIT
    stage.rows_in = stage.rows_out = new
    stage.rows_read, stage.rows_written = readings.values.shape[0], table.num_rows
    stage.detail = (f"{new:,} new readings of {len(readings.spans)} {cfg.entity} values scored; {table.num_rows} "
                    f"anomalies ({multivariate} multivariate)"
                    + (f"; isolation forest fitted on {refit['rows']:,} history rows" if refit else ""))
    stage.seconds = time.perf_counter() - started
    return stage


# -- failure risk ---------------------------------------------------------------------------------------------
def risk_schema(task: pdm.Task, features: pa.Schema) -> pa.Schema:
    """``gold.machine_risk``: the features table's entity and time, ``p_failure_<horizon>h`` (``p_failure_24h``),
    ``p_<class>`` for each failure class, the predicted class (``predicted_component``) and the model's version."""
    import pyarrow as pa

    return pa.schema([
        (task.entity, features.field(task.entity).type), (task.time, pa.timestamp("us", tz="UTC")),
        (f"p_failure_{task.horizon_hours}h", pa.float64()), *[(f"p_{c}", pa.float64()) for c in task.failure_classes],
        ("predicted_component", pa.string()), ("model_name", pa.string()), ("model_version", pa.string()),
        ("scored_at", pa.timestamp("us", tz="UTC")), ("run_id", pa.string()),
    ])


def risk_rows(frame: pd.DataFrame, champion: Champion, *, task: pdm.Task, schema: pa.Schema,
              run_id: str | None) -> pa.Table:
    """``gold.machine_risk`` rows for feature rows (entity, time and the features)."""
    import numpy as np
    import pyarrow as pa

    classes = tuple(champion.encoding.classes)
    if classes != task.classes:
        raise LakeforgeError(f"the champion {champion.model} v{champion.version} predicts {', '.join(classes)}, "
                             f"not ml.failure.classes ({', '.join(task.classes)})",
                             hint="train and promote a model on the current settings: `lakeforge ml train`, "
                                  "`lakeforge ml promote`")
    proba = pdm.predict_proba(champion.booster, frame, champion.encoding)
    now = dt.datetime.now(dt.UTC)
    n = len(frame)
    columns: dict[str, Any] = {
        task.entity: frame[task.entity].to_numpy(), task.time: frame[task.time].to_numpy(),
        f"p_failure_{task.horizon_hours}h": 1.0 - proba[:, 0],
        **{f"p_{c}": proba[:, i] for i, c in enumerate(classes) if i},
        "predicted_component": np.asarray(classes, dtype=object)[proba.argmax(axis=1)],
        "model_name": [champion.model] * n, "model_version": [champion.version] * n,
        "scored_at": [now] * n, "run_id": [run_id] * n,
    }
    return pa.table({f.name: pa.array(columns[f.name], f.type) for f in schema}, schema=schema)


def score_risk(workspace: Workspace, *, run_id: str, full_refresh: bool = False, force: bool = False) -> StageResult:
    started = time.perf_counter()
    stage = StageResult(name=RISK_STAGE, kind="ml", strategy="champion")
    task = pdm.task_of(workspace)
    source = task.features_table
    if not workspace.catalog.exists(source):
        return _skipped(stage, f"{source} does not exist yet", started)
    version = workspace.catalog.version(source)
    state = {} if full_refresh or not workspace.catalog.exists(RISK) else _state(workspace, "risk")
    if not force and state.get("features_version") == version:
        return _skipped(stage, f"{source} unchanged (v{version})", started)
    from lakeforge.ml import registry

    pdm.require()
    champion = registry.load_champion(workspace)
    if champion is None:
        return _skipped(stage, f"no champion of {registry.model_name(workspace)} yet: `lakeforge ml train` then "
                               "`lakeforge ml promote`", started)
    import pyarrow as pa
    import pyarrow.compute as pc

    rescore = full_refresh or not state or state.get("model_version") != champion.version
    mark = None if rescore or not state.get("watermark") else dt.datetime.fromisoformat(state["watermark"])
    dataset = workspace.catalog.dataset(source)
    features = dataset.to_table(filter=None if mark is None else pc.field(task.time) > pa.scalar(
        mark, dataset.schema.field(task.time).type))
    schema = risk_schema(task, dataset.schema)
    table = (risk_rows(features.to_pandas(), champion, task=task, schema=schema, run_id=run_id)
             if features.num_rows else schema.empty_table())
    if table.num_rows or rescore:
        _commit(workspace, RISK, table, key=keys(workspace)[RISK], replace=rescore)
    latest = pc.max(features[task.time]).as_py() if features.num_rows else mark
    _save_state(workspace, "risk", {"features_version": version, "model_version": champion.version,
                                  "watermark": latest.isoformat() if latest else None})
    stage.rows_in = stage.rows_out = stage.rows_read = stage.rows_written = table.num_rows
    stage.status = "ok" if table.num_rows or rescore else "skipped"
    stage.detail = (f"{table.num_rows:,} rows of {source} scored by {champion.model} v{champion.version}"
                    + (" (every hour: a new champion)" if rescore and state else "")
                    if stage.status == "ok" else
                    f"no new hours in {source}: every hour is scored by {champion.model} "
                    f"v{champion.version}, the champion")
    stage.seconds = time.perf_counter() - started
    return stage


# -- online ---------------------------------------------------------------------------------------------------
class OnlineScorer:
    """Predictions for a machine's latest features with the champion, for ``lakeforge serve``. The champion is
    looked up on every call (a promotion takes effect at once) and loaded once per version."""

    def __init__(self, workspace: Workspace) -> None:
        import threading

        self.workspace = workspace
        self._loaded: Champion | None = None
        self._lock = threading.Lock()  # requests come from a thread pool; MLflow's URIs are process-wide

    def champion(self) -> Champion | None:
        from lakeforge.ml import registry

        with self._lock:
            version = registry.champion_version(self.workspace)
            if version is None:
                return None
            if self._loaded is None or self._loaded.version != version:
                self._loaded = registry.load_champion(self.workspace)
            return self._loaded

    def predict(self, machine_id: Any) -> dict[str, Any]:
        """The latest row of ``machine_id`` (a value of ``ml.failure.entity``), scored by the champion."""
        import pyarrow.compute as pc

        task = pdm.task_of(self.workspace)
        if not self.workspace.catalog.exists(task.features_table):
            raise NotFound(f"{task.features_table} does not exist yet", hint="run the pipeline: `lakeforge run`")
        dataset = self.workspace.catalog.dataset(task.features_table)
        rows = dataset.to_table(filter=pc.field(task.entity) == machine_id)
        if not rows.num_rows:
            raise NotFound(f"{task.entity} {machine_id} has no row in {task.features_table}",
                           hint=f"check the {task.entity} (dim_machine in the example) or wait for its data")
        latest = rows.take([int(pc.index(rows[task.time], pc.max(rows[task.time])).as_py())])
        champion = self.champion()
        if champion is None:
            from lakeforge.ml import registry

            raise NotFound(f"no champion of {registry.model_name(self.workspace)} yet",
                           hint="`lakeforge ml train` then `lakeforge ml promote`")
        row = risk_rows(latest.to_pandas(), champion, task=task, schema=risk_schema(task, dataset.schema),
                        run_id=None).to_pylist()[0]
        row.pop("run_id")
        row[task.time] = row[task.time].isoformat()
        row["scored_at"] = row["scored_at"].isoformat()
        return row
