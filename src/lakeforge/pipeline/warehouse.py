"""The warehouse stage: the stored gold tables (and what the scoring stages write) loaded into the warehouse,
incrementally by its ledger, then the gold views and the reports over them (:func:`load`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from lakeforge import __version__
from lakeforge.config import DuckDBWarehouseConfig
from lakeforge.errors import LakeforgeError
from lakeforge.libraries import version_of
from lakeforge.models import Model
from lakeforge.results import StageResult
from lakeforge.warehouses.base import Warehouse
from lakeforge.workspace import Workspace

STAMP = "_lakeforge/warehouse.json"  # what the last warehouse load saw (_unchanged)


def tables(workspace: Workspace, models: list[Model]) -> dict[str, tuple[list[str], list[str]]]:
    """What the warehouse holds: table -> (unique key, cluster by): the stored gold models and the tables
    the scoring stages write (``gold.anomalies``, ``gold.machine_risk``)."""
    from lakeforge.ml import scoring  # numpy and the ML modules: only when a run loads

    found: dict[str, tuple[list[str], list[str]]] = {
        m.name: (m.config.unique_key, m.config.cluster_by)
        for m in models if m.layer == "gold" and m.config.kind != "view"}
    for stage in scoring.enabled(workspace):
        table = scoring.io(workspace, stage)[1][0]
        found[table] = (scoring.keys(workspace)[table], [])
    return found

def load(workspace: Workspace, *, run_id: str, models: list[Model]) -> StageResult:
    started = time.perf_counter()
    stage = StageResult(name="warehouse", kind="load", strategy="ledger")
    gold = {name: spec for name, spec in tables(workspace, models).items() if workspace.catalog.exists(name)}
    views = [m for m in models if m.layer == "gold" and m.config.kind == "view"
             and all(u.startswith("gold.") for u in m.upstream())]
    if not gold:
        stage.status, stage.detail = "skipped", "no gold table to load"
        return stage
    unchanged = _unchanged(workspace, gold, views)
    kept = _loaded_stamp(workspace) if unchanged is not None else None
    if unchanged is not None and kept == unchanged:
        stage.status, stage.detail = "skipped", "gold unchanged"
        stage.seconds = time.perf_counter() - started
        return stage
    # the views and reports as the last load left them, for the same gold tables, in a file nothing has written
    # since: they stand (writing their SQL again takes sqlglot 20-30 ms)
    standing = (unchanged is not None and kept is not None and kept["sources"] == unchanged["sources"]
                and set(kept["tables"]) == set(unchanged["tables"]))
    warehouse = workspace.warehouse()
    dialect = warehouse.capabilities.dialect
    loads = []
    try:
        for name, (keys, cluster_by) in gold.items():
            loads.append(warehouse.load(name, catalog=workspace.catalog, keys=keys, run_id=run_id,
                                        cluster_by=cluster_by))
        done = [ld for ld in loads if ld.mode != "skipped"]
        for view in [] if standing else views:  # gold views over gold tables are views in the warehouse too
            sql = view.duckdb_sql() if dialect == "duckdb" else view.sql_for(dialect)
            warehouse.create_view(view.table, _unqualified_gold(sql, dialect=dialect))
        if not standing:  # (a DuckDB warehouse's reports are views: no refresh)
            _keep_reports(workspace, warehouse, loaded=set(gold) | {v.name for v in views},
                               refresh=bool(done), models=models)
    finally:
        warehouse.close()
    if unchanged is not None:
        _keep_loaded_stamp(workspace, gold, views)
    stage.rows_in = stage.rows_out = stage.rows_read = stage.rows_written = sum(ld.rows for ld in done)
    stage.status = "ok" if done else "skipped"
    stage.detail = ", ".join(f"{ld.table} ({ld.mode}, v{ld.to_version})" for ld in done) or "gold unchanged"
    stage.seconds = time.perf_counter() - started
    return stage

# A DuckDB warehouse that nothing has touched since the last load, of gold tables at the versions it loaded,
# with the same reports and views, has nothing to do: the stage says so without opening it (opening the file,
# reading the ledger, writing the reports' SQL: 40-70 ms of a run with nothing to do). What it saw is kept in
# STAMP after each load: the file (inode, mtime, size: any write changes them, a run that changes
# nothing does not), each gold table's version and Delta id, and a digest of the reports' and views' text.
def _unchanged(workspace: Workspace, gold: dict[str, Any], views: list[Model]) -> dict[str, Any] | None:
    """What the warehouse stage depends on, if the warehouse is a DuckDB file and the lakehouse a local folder
    (None otherwise: on object storage the stamp would cost a request each way)."""
    if not isinstance(workspace.config.warehouse, DuckDBWarehouseConfig) or not workspace.lakehouse.is_local:
        return None
    folder = workspace.path / workspace.config.reports_path
    texts = sorted((p.name, p.read_text(encoding="utf-8")) for p in folder.glob("*.sql")) if folder.is_dir() else []
    digest = hashlib.sha256(json.dumps({
        "reports": texts, "views": sorted((m.name, m.sql) for m in views), "dialect": workspace.config.dialect,
        "versions": [__version__, version_of("sqlglot")],
    }).encode()).hexdigest()
    return {"tables": {name: list(workspace.catalog.identity(name)) for name in sorted(gold)}, "sources": digest}

def _file(workspace: Workspace) -> list[int] | None:
    assert isinstance(workspace.config.warehouse, DuckDBWarehouseConfig)
    path = Path(workspace.config.warehouse.path)
    path = path if path.is_absolute() else workspace.path / path
    if path.with_name(path.name + ".wal").exists():  # a load cut short: opening it replays the log
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_size]

def _loaded_stamp(workspace: Workspace) -> dict[str, Any] | None:
    """What the last load saw, if the warehouse file is still the one it left."""
    try:
        stamp: dict[str, Any] = dict(workspace.lakehouse.read_json(STAMP))
    except (OSError, ValueError, LakeforgeError):  # none yet, or cut short
        return None
    current = _file(workspace)
    if current is None or stamp.pop("file", None) != current:
        return None
    return stamp


def _keep_loaded_stamp(workspace: Workspace, gold: dict[str, Any], views: list[Model]) -> None:
    """Best effort: a stamp not written (a full disk) leaves the last one, whose file no longer matches."""
    unchanged, current = _unchanged(workspace, gold, views), _file(workspace)
    if unchanged is not None and current is not None and _loaded_stamp(workspace) != unchanged:
        with contextlib.suppress(OSError, LakeforgeError):
            workspace.lakehouse.write_json_atomic(STAMP, {**unchanged, "file": current})


def _keep_reports(workspace: Workspace, warehouse: Warehouse, *, loaded: set[str], refresh: bool,
                  models: list[Model] | None = None) -> None:
    """Create (or replace: a backend keeps an unchanged one) every report whose tables the warehouse holds;
    after a load, refresh the materialized ones."""
    dialect = warehouse.capabilities.dialect
    kept = []
    for report in workspace.reports(models=models):
        if not report.tables() <= loaded:
            continue
        if report.materialize:
            warehouse.create_report(report.name, report.sql_for(dialect))
            kept.append(report.name)
        else:
            warehouse.create_view(report.name, report.sql_for(dialect))
    if refresh:
        warehouse.refresh_reports(kept)


def _unqualified_gold(sql: str, *, dialect: str = "duckdb") -> str:
    """``gold.fact_x`` -> ``fact_x``: the warehouse holds gold tables under their own names."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read=dialect)
    for table in tree.find_all(exp.Table):
        if table.db == "gold":
            table.set("db", None)
    return tree.sql(dialect=dialect)


