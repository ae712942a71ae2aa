"""The event log: every run, stage, expectation and table freshness, as a Delta table ``_lakeforge.event_log``.

One append per run (one commit), written when the run ends, failed or not: a row for the run, one per stage
(rows and bytes in and out, seconds, attempts, the error), one per expectation result, one per table
(freshness at the end of the run), one per landing file that changed after it was ingested (``event = 'file'``,
``kind = 'changed_after_ingest'``). A run that died (killed, crashed, power cut) leaves a marker
(``_lakeforge/runs/<run_id>.started``) that the next run turns into a ``crashed`` run row: nothing is missing
from the history. Cost is compute seconds times the rate of ``monitoring.cost``; a run's cost per GB divides
by the bytes it ingested. ``lakeforge query "SELECT * FROM _lakeforge.event_log"`` reads it; ``lakeforge
runs`` lists the runs.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import operator
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from deltalake import DeltaTable, write_deltalake

from lakeforge.lakehouse.catalog import LAYERS, arrow_dataset
from lakeforge.lakehouse.errors import delta_errors
from lakeforge.redaction import redact_data

if TYPE_CHECKING:
    import pyarrow as pa
    from arro3.core import Table as ArrowTable

    from lakeforge.results import RunResult, StageResult
    from lakeforge.workspace import Workspace

EVENT_LOG = "_lakeforge.event_log"
MARKERS = "_lakeforge/runs"
# the log's columns and their types ("ts": timestamp[us, tz=UTC]); SCHEMA and TS, their pyarrow forms, are made on
# first use (module ``__getattr__``): a run writes its record through arro3 and need not import pyarrow
COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "string"), ("event", "string"),  # run | stage | expectation | table | file
    ("name", "string"), ("kind", "string"), ("status", "string"),
    ("started_at", "ts"), ("ended_at", "ts"), ("seconds", "float64"),
    ("rows_in", "int64"), ("rows_out", "int64"), ("rows_dropped", "int64"),
    ("rows_quarantined", "int64"), ("bytes_in", "int64"), ("bytes_out", "int64"),
    ("dq_passed", "int64"), ("dq_failed", "int64"), ("attempts", "int32"),
    ("freshness_seconds", "float64"), ("compute_seconds", "float64"), ("cost", "float64"),
    ("cost_per_gb", "float64"), ("engine", "string"), ("error", "string"), ("detail", "string"),
)


@functools.cache
def _pyarrow_schema() -> pa.Schema:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    types = {"string": pa.string(), "ts": ts, "float64": pa.float64(), "int64": pa.int64(), "int32": pa.int32()}
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS])


def __getattr__(name: str) -> Any:
    if name == "SCHEMA":
        return _pyarrow_schema()
    if name == "TS":
        return _pyarrow_schema().field("started_at").type
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


GB = 1e9


class EventRow(TypedDict):
    """One row of the event log (``SCHEMA``), as Arrow's ``to_pylist`` gives it: ``lakeforge runs`` lists those
    of the runs."""

    run_id: str
    event: str  # run | stage | expectation | table | file
    name: str | None
    kind: str | None
    status: str | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    seconds: float | None
    rows_in: int | None
    rows_out: int | None
    rows_dropped: int | None
    rows_quarantined: int | None
    bytes_in: int | None
    bytes_out: int | None
    dq_passed: int | None
    dq_failed: int | None
    attempts: int | None
    freshness_seconds: float | None
    compute_seconds: float | None
    cost: float | None
    cost_per_gb: float | None
    engine: str | None
    error: str | None
    detail: str | None


def _uri(workspace: Workspace) -> str:
    return workspace.lakehouse.join("_lakeforge", "event_log")


def _ts(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def versions(workspace: Workspace) -> dict[str, int]:
    """Every lakehouse table's version: taken when a run starts, to tell the bytes each stage wrote."""
    return {name: workspace.catalog.version(name) for name in workspace.catalog.names()}


def _tables(workspace: Workspace) -> dict[str, DeltaTable]:
    """Every lakehouse table, opened once for all of a run's end-of-run figures (bytes out, freshness)."""
    return {name: workspace.catalog.table(name) for name in workspace.catalog.names()}


def bytes_written(workspace: Workspace, before: dict[str, int],
                  tables: dict[str, DeltaTable] | None = None) -> dict[str, int]:
    """Stage name -> bytes of the data files its commits added since ``before`` (from the Delta log's add
    actions; a model's quarantine table counts for the model, ``bronze.x`` for ``ingest:x``)."""
    written: dict[str, int] = {}
    for name, delta in (tables if tables is not None else _tables(workspace)).items():
        start, end = before.get(name, -1), delta.version()
        if end <= start:
            continue
        layer, table = name.split(".", 1)
        if layer == "quarantine":  # quarantine.<layer>_<table>: of the stage that wrote <layer>.<table>
            layer_of, _, table = table.partition("_")
            stage = f"ingest:{table}" if layer_of == "bronze" else f"{layer_of}.{table}"
        else:
            stage = f"ingest:{table}" if layer == "bronze" else name
        layer, table = name.split(".", 1)
        for version in range(start + 1, end + 1):
            try:
                log = workspace.lakehouse.read_bytes(f"{layer}/{table}/_delta_log/{version:020d}.json")
            except Exception:  # a log entry already cleaned up: the figure is a lower bound
                continue
            for line in log.splitlines():
                action = json.loads(line) if line.strip() else {}
                if "add" in action:
                    written[stage] = written.get(stage, 0) + int(action["add"].get("size") or 0)
    return written


def rows_of(workspace: Workspace, result: RunResult, *, ended: dt.datetime,
            before: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """The event log rows of one run (``before``: the tables' versions when it started, for bytes out)."""
    tables = _tables(workspace)
    written = bytes_written(workspace, before, tables) if before is not None else {}
    rate = workspace.config.monitoring.cost.rate_per_hour()
    engine = workspace.config.engine.type
    started = _ts(result.started_at) or ended
    base = {"run_id": result.run_id, "engine": engine}
    rows: list[dict[str, Any]] = []
    clock = started
    for stage in result.stages:
        end = clock + dt.timedelta(seconds=stage.seconds)
        rows.append({**base, "event": "stage", "name": stage.name, "kind": stage.kind, "status": stage.status,
                     "started_at": clock, "ended_at": end, "seconds": stage.seconds,
                     "rows_in": stage.rows_in, "rows_out": stage.rows_out, "rows_dropped": stage.rows_dropped,
                     "rows_quarantined": stage.rows_quarantined,
                     "bytes_in": stage.bytes if stage.kind == "ingest" else None,
                     "bytes_out": written.get(stage.name), "attempts": stage.attempts,
                     "dq_passed": sum(r.passed for r in stage.rules) if stage.rules else None,
                     "dq_failed": sum(r.failed for r in stage.rules) if stage.rules else None,
                     "compute_seconds": stage.seconds, "cost": stage.seconds / 3600 * rate,
                     "detail": stage.detail or None})
        for change in stage.changed:  # a landing file changed after it was ingested: never ignored in silence
            rows.append({**base, "event": "file", "name": change["path"], "kind": "changed_after_ingest",
                         "status": change["action"], "started_at": clock, "ended_at": end,
                         "detail": change["message"]})
        for rule in stage.rules:
            rows.append({**base, "event": "expectation", "name": f"{rule.model}:{rule.rule}", "kind": rule.action,
                         "status": "passed" if rule.failed == 0 else "failed", "started_at": clock,
                         "ended_at": end, "dq_passed": rule.passed, "dq_failed": rule.failed})
        clock = end
    if result.failed_stage:
        rows.append({**base, "event": "stage", "name": result.failed_stage, "kind": _kind(workspace, result),
                     "status": "failed", "started_at": clock, "ended_at": ended,
                     "seconds": (ended - clock).total_seconds(), "error": result.error,
                     "attempts": getattr(result, "failed_attempts", 1),
                     "compute_seconds": (ended - clock).total_seconds(),
                     "cost": (ended - clock).total_seconds() / 3600 * rate})
    cost = result.seconds / 3600 * rate
    gb = result.bytes_processed / GB
    rows.insert(0, {**base, "event": "run", "name": workspace.config.name, "kind": "run", "status": result.status,
                    "started_at": started, "ended_at": ended, "seconds": result.seconds,
                    "rows_in": _rows_entered(result),
                    "rows_out": sum(s.rows_written for s in result.stages),
                    "bytes_in": result.bytes_processed, "bytes_out": sum(written.values()) if written else None,
                    "dq_passed": sum(r.passed for s in result.stages for r in s.rules),
                    "dq_failed": sum(r.failed for s in result.stages for r in s.rules),
                    "compute_seconds": result.seconds, "cost": cost, "cost_per_gb": cost / gb if gb else None,
                    "error": result.error, "detail": result.failed_stage})
    rows.extend(_freshness(tables, base, ended))
    return rows


def _kind(workspace: Workspace, result: RunResult) -> str:
    name = result.failed_stage or ""
    if name.startswith(("ingest:", "ml:")):
        return name.split(":", 1)[0]
    return "load" if name == "warehouse" else "model"


def _freshness(tables: dict[str, DeltaTable], base: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
    """How long ago each lakehouse table last changed, observed at the end of the run (the SLO's p95)."""
    rows = []
    for name, table in tables.items():
        try:
            modified = table.history(1)[0].get("timestamp")
        except Exception:  # a table being created by another writer: skip the observation
            continue
        if modified is None:
            continue
        changed = dt.datetime.fromtimestamp(int(modified) / 1000, tz=dt.UTC)
        rows.append({**base, "event": "table", "name": name, "kind": name.split(".", 1)[0], "status": "observed",
                     "started_at": changed, "ended_at": now,
                     "freshness_seconds": max((now - changed).total_seconds(), 0.0)})
    return rows


def append(workspace: Workspace, rows: list[dict[str, Any]]) -> None:
    """One commit of event rows (the schema is fixed: missing fields are null); secrets in their texts masked."""
    with delta_errors(f"write the event log {_uri(workspace)}", local=workspace.lakehouse.is_local):
        write_deltalake(_uri(workspace), table_of([redact_data(row) for row in rows]), mode="append",
                        storage_options=workspace.lakehouse.storage_options)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _same(value: Any) -> Any:
    return value


def table_of(rows: list[dict[str, Any]]) -> ArrowTable:
    """Event rows as an arro3 table of the log's columns (:data:`COLUMNS`), what ``pa.table(columns, schema=SCHEMA)``
    makes of them (``pa.table()`` of it gives that). Built with arro3 (delta-rs' Arrow library), which delta-rs
    writes as it is: pyarrow's conversion of Python lists imports pandas (~0.3 s), and pyarrow itself takes 0.1 s,
    and every run, one with nothing to do too, writes the event log."""
    from arro3.core import Array, DataType, Field, Schema, Table

    types: dict[str, tuple[DataType, Callable[[Any], Any]]] = {
        "string": (DataType.string(), _same), "float64": (DataType.float64(), float),
        "int64": (DataType.int64(), operator.index), "int32": (DataType.int32(), operator.index)}
    ts = DataType.timestamp("us", tz="UTC")
    arrays, fields = [], []
    for name, kind in COLUMNS:
        values = [r.get(name) for r in rows]
        if kind == "ts":  # as microseconds since the epoch (a naive time is UTC, as pyarrow takes it)
            micros = [None if v is None else ((v if v.tzinfo else v.replace(tzinfo=dt.UTC)) - _EPOCH)
                      // dt.timedelta(microseconds=1) for v in values]
            arrays.append(Array(micros, DataType.int64()).cast(ts))
            fields.append(Field(name, ts, nullable=True))
        else:
            arro3_type, convert = types[kind]
            arrays.append(Array([None if v is None else convert(v) for v in values], arro3_type))
            fields.append(Field(name, arro3_type, nullable=True))
    return Table.from_arrays(arrays, schema=Schema(fields))


def record(workspace: Workspace, result: RunResult, *, before: dict[str, int] | None = None,
           detail: str | None = None) -> None:
    """The run's rows into the event log (``detail``: its run row's, e.g. ``backfill <from>..<to>``), and its
    marker gone."""
    rows = rows_of(workspace, result, ended=dt.datetime.now(dt.UTC), before=before)
    if detail is not None:
        rows[0]["detail"] = detail
    append(workspace, rows)
    workspace.lakehouse.delete(f"{MARKERS}/{result.run_id}.started")


def mark_started(workspace: Workspace, run_id: str, started_at: str) -> None:
    """A marker that says a run is under way: if the process dies, the next run logs it as crashed. It names the
    process (host, pid, and the process's start as the kernel counts it, so a reused pid is another process)."""
    workspace.lakehouse.write_json_atomic(f"{MARKERS}/{run_id}.started", {
        "run_id": run_id, "started_at": started_at, "pid": os.getpid(), "host": socket.gethostname(),
        "process_start": process_start(os.getpid())})


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as this boot's id and the kernel's start time in clock ticks (Linux's
    ``/proc``); None where there is no ``/proc`` or no such process."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{boot}:{stat.rpartition(')')[2].split()[19]}"  # field 22; the command name may hold spaces


def alive(marker: dict[str, Any]) -> bool:
    """Whether the process a run marker names is still running: on this host, the same pid with the same start
    (where the start cannot be read, a process with that pid). A marker of another host cannot be checked here;
    it counts as gone (the run lock, held by the caller, says no run of this lakehouse is under way)."""
    pid = marker.get("pid")
    if marker.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    started = marker.get("process_start")
    if started is not None:
        return process_start(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process with that pid
        return True
    return True


def log_crashed(workspace: Workspace) -> list[str]:
    """Markers of runs that never ended and whose process is gone: logged as crashed (a marker of a process
    still running, which the run lock should make impossible, is left alone)."""
    found = workspace.lakehouse.list_files(MARKERS, pattern="*.started")
    rows, ids, gone = [], [], []
    for info in found:
        try:
            marker = workspace.lakehouse.read_json(info.path)
        except Exception:  # a marker cut short by the crash itself
            marker = {"run_id": info.path.rsplit("/", 1)[-1].removesuffix(".started"), "started_at": None}
        if alive(marker):
            continue
        gone.append(info)
        started = _ts(marker.get("started_at"))
        ended = dt.datetime.fromtimestamp(info.mtime_ms / 1000, tz=dt.UTC) if info.mtime_ms else started
        rows.append({"run_id": marker["run_id"], "event": "run", "name": workspace.config.name, "kind": "run",
                     "status": "crashed", "started_at": started, "ended_at": ended,
                     "engine": workspace.config.engine.type,
                     "error": f"the run's process ended without finishing it (pid {marker.get('pid')} on "
                              f"{marker.get('host')}); the next run resumed its work"})
        ids.append(str(marker["run_id"]))
    if rows:
        append(workspace, rows)
        for info in gone:
            workspace.lakehouse.delete(info.path)
    return ids


def read(workspace: Workspace, *, event: str | None = None, since: dt.datetime | None = None) -> pa.Table:
    """The event log (or one kind of event, from ``since``) as Arrow; empty before the first run."""
    uri = _uri(workspace)
    with delta_errors(f"read the event log {uri}", local=workspace.lakehouse.is_local):
        if not DeltaTable.is_deltatable(uri, storage_options=workspace.lakehouse.storage_options):
            return _pyarrow_schema().empty_table()
        data = arrow_dataset(DeltaTable(uri, storage_options=workspace.lakehouse.storage_options)).to_table()
    import pyarrow as pa
    import pyarrow.compute as pc

    if event is not None:
        data = data.filter(pc.equal(data["event"], event))
    if since is not None:
        data = data.filter(pc.greater_equal(data["started_at"], pa.scalar(since, pa.timestamp("us", tz="UTC"))))
    return data


def runs(workspace: Workspace, *, limit: int | None = 20) -> list[EventRow]:
    """The runs, newest first."""
    rows: list[EventRow] = read(workspace, event="run").to_pylist()
    rows.sort(key=lambda r: (r["started_at"] or dt.datetime.min.replace(tzinfo=dt.UTC)), reverse=True)
    return rows[:limit] if limit else rows


def _rows_entered(result: RunResult) -> int:
    """The rows that entered the run at its first step that had any: what its ingestion parsed; with no new
    files (a run of models alone, a full refresh), the rows its lowest layer read; a warehouse load alone, the rows
    it loaded. (Summing every stage would count a row once per layer it passed through.)"""
    def step(stage: StageResult) -> int:  # ingestion, then the model layers in order, then ML and the load
        if stage.kind == "ingest":
            return 0
        layer = stage.name.split(".", 1)[0]
        return 1 + LAYERS.index(layer) if stage.kind == "model" and layer in LAYERS else 1 + len(LAYERS)

    read = [s for s in result.stages if s.rows_in]
    if not read:
        return 0
    first = min(step(s) for s in read)
    return sum(s.rows_in for s in read if step(s) == first)
