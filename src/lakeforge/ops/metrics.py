"""Prometheus metrics of a project, computed at scrape time from the event log and the lakehouse.

A custom collector in a registry of its own (no process metrics, nothing global): every scrape reads the
event log once (and only its new commits: the Delta table is kept and updated incrementally, the aggregates
are reused while its version is unchanged), and lists the lakehouse tables and the landing backlog.

=========================================  =======  ==============  ==============================================
metric                                     type     labels          value
=========================================  =======  ==============  ==============================================
lakeforge_up                               gauge                    1 when the event log and lakehouse were read
lakeforge_runs_total                       counter  status          runs in the event log (crashed included)
lakeforge_rows_total                       counter  stage, kind     rows written by each stage, all runs
lakeforge_bytes_ingested_total             counter  source          landing bytes ingested, all runs
lakeforge_cost_usd_total                   counter                  estimated cost of all runs (monitoring.cost)
lakeforge_run_duration_seconds             gauge                    the last run's duration
lakeforge_stage_duration_seconds           gauge    stage           the last run's duration of each stage
lakeforge_last_success_timestamp_seconds   gauge                    end of the last run that did not fail
lakeforge_table_freshness_seconds          gauge    table           seconds since the table last changed (now)
lakeforge_table_rows                       gauge    table           rows of each lakehouse table
lakeforge_dq_pass_rate                     gauge    model, rule     share of rows that passed, last check
lakeforge_backlog_files                    gauge    source          landing files waiting to be ingested
lakeforge_backlog_bytes                    gauge    source          their bytes
=========================================  =======  ==============  ==============================================

"The last run" is the newest run that is not ``crashed`` (a crashed run has no stages). A run that did not
fail is ``succeeded`` or ``nothing_to_do``. A DQ rule's pass rate is from the last run that checked rows with it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lakeforge.errors import MissingDependency
from lakeforge.lakehouse.catalog import arrow_dataset

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
except ImportError:  # pragma: no cover - the serve extra is missing
    raise MissingDependency("lakeforge serve's /metrics needs prometheus-client",
                            hint="pip install 'lakeforge[serve]'") from None

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from lakeforge.workspace import Workspace

log = logging.getLogger("lakeforge.metrics")

RUN_STATUSES = ("succeeded", "nothing_to_do", "failed", "crashed")
OK_STATUSES = ("succeeded", "nothing_to_do")


@dataclass
class EventStats:
    """What the metrics need from the event log (recomputed only when the log has a new version)."""

    runs: dict[str, int] = field(default_factory=dict)
    rows: dict[tuple[str, str], int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    cost: float = 0.0
    run_seconds: float | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    last_success: float | None = None
    dq: dict[tuple[str, str], float] = field(default_factory=dict)


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    return float(value)


def event_stats(log_table: pa.Table) -> EventStats:
    """The aggregates of an event log (``events.SCHEMA``), with Arrow (the log grows with every run)."""
    stats = EventStats()
    if log_table.num_rows == 0:
        return stats
    kind_of = log_table["event"]
    runs = log_table.filter(pc.equal(kind_of, "run"))
    stages = log_table.filter(pc.equal(kind_of, "stage"))
    checks = log_table.filter(pc.equal(kind_of, "expectation"))

    for row in runs.group_by("status").aggregate([("run_id", "count")]).to_pylist():
        stats.runs[str(row["status"])] = int(row["run_id_count"])
    stats.cost = float(pc.sum(runs["cost"]).as_py() or 0.0)
    ok = runs.filter(pc.is_in(runs["status"], pa.array(OK_STATUSES)))
    stats.last_success = _timestamp(pc.max(ok["ended_at"]).as_py()) if ok.num_rows else None
    finished = runs.filter(pc.not_equal(runs["status"], "crashed"))
    if finished.num_rows:
        last = finished.take(pc.sort_indices(finished, [("started_at", "descending"), ("ended_at", "descending")])[:1])
        last_row = last.to_pylist()[0]
        stats.run_seconds = last_row["seconds"]
        mine = stages.filter(pc.equal(stages["run_id"], last_row["run_id"]))
        for row in mine.select(["name", "seconds"]).to_pylist():
            stats.stage_seconds[str(row["name"])] = float(row["seconds"] or 0.0)

    for row in stages.group_by(["name", "kind"]).aggregate([("rows_out", "sum")]).to_pylist():
        stats.rows[(str(row["name"]), str(row["kind"]))] = int(row["rows_out_sum"] or 0)
    ingests = stages.filter(pc.equal(stages["kind"], "ingest"))
    for row in ingests.group_by("name").aggregate([("bytes_in", "sum")]).to_pylist():
        stats.bytes[str(row["name"]).removeprefix("ingest:")] = int(row["bytes_in_sum"] or 0)

    total = pc.add(pc.fill_null(checks["dq_passed"], 0), pc.fill_null(checks["dq_failed"], 0))
    checks = checks.select(["name", "started_at", "dq_passed"]).append_column("total", total)
    checks = checks.filter(pc.greater(checks["total"], 0))
    if checks.num_rows:
        newest = checks.group_by("name").aggregate([("started_at", "max")]).rename_columns(["name", "started_at"])
        for row in checks.join(newest, keys=["name", "started_at"], join_type="inner").to_pylist():
            model, _, rule = str(row["name"]).partition(":")
            stats.dq[(model, rule)] = int(row["dq_passed"] or 0) / int(row["total"])
    return stats


class Collector:
    """The project's metrics, computed when Prometheus scrapes (``clock``: unix seconds, for freshness)."""

    def __init__(self, workspace: Workspace, *, clock: Callable[[], float] = time.time) -> None:
        self.workspace = workspace
        self.clock = clock
        self._mutex = threading.Lock()
        self._table: DeltaTable | None = None
        self._cached: tuple[int, EventStats] | None = None

    def describe(self) -> list[Metric]:
        return []  # registering must not read anything

    def event_stats(self) -> EventStats:
        """The event log's aggregates: re-read only when it has new commits."""
        from deltalake import DeltaTable

        uri = self.workspace.lakehouse.join("_lakeforge", "event_log")
        options = self.workspace.lakehouse.storage_options
        if self._table is None:
            if not DeltaTable.is_deltatable(uri, storage_options=options):
                return EventStats()
            self._table = DeltaTable(uri, storage_options=options)
        else:
            self._table.update_incremental()
        version = self._table.version()
        if self._cached is None or self._cached[0] != version:
            self._cached = (version, event_stats(arrow_dataset(self._table).to_table()))
        return self._cached[1]

    def collect(self) -> Iterator[Metric]:
        with self._mutex:
            found: list[Metric] = []
            try:
                found = list(self._families())
                ok = True
            except Exception as exc:
                log.warning("metrics: the event log or lakehouse could not be read: %s", exc)
                self._table = self._cached = None
                ok = False
            up = GaugeMetricFamily("lakeforge_up", "1 when the event log and the lakehouse could be read")
            up.add_metric([], 1.0 if ok else 0.0)
        yield up
        yield from found

    def _families(self) -> Iterator[Metric]:
        stats = self.event_stats()
        workspace = self.workspace
        now = self.clock()

        runs = CounterMetricFamily("lakeforge_runs", "Runs in the event log, by status", labels=["status"])
        for status in sorted({*RUN_STATUSES, *stats.runs}):
            runs.add_metric([status], stats.runs.get(status, 0))
        yield runs

        rows = CounterMetricFamily("lakeforge_rows", "Rows written by each stage over all runs",
                                   labels=["stage", "kind"])
        for (stage, kind), value in sorted(stats.rows.items()):
            rows.add_metric([stage, kind], value)
        yield rows

        ingested = CounterMetricFamily("lakeforge_bytes_ingested", "Landing bytes ingested over all runs",
                                       labels=["source"])
        for source in sorted({*workspace.config.sources, *stats.bytes}):
            ingested.add_metric([source], stats.bytes.get(source, 0))
        yield ingested

        cost = CounterMetricFamily("lakeforge_cost_usd", "Estimated cost of all runs in USD (monitoring.cost)")
        cost.add_metric([], stats.cost)
        yield cost

        if stats.run_seconds is not None:
            run = GaugeMetricFamily("lakeforge_run_duration_seconds", "Duration of the last run")
            run.add_metric([], stats.run_seconds)
            yield run
        stage_seconds = GaugeMetricFamily("lakeforge_stage_duration_seconds", "Duration of each stage of the last run",
                                          labels=["stage"])
        for stage, seconds in sorted(stats.stage_seconds.items()):
            stage_seconds.add_metric([stage], seconds)
        yield stage_seconds

        if stats.last_success is not None:
            success = GaugeMetricFamily("lakeforge_last_success_timestamp_seconds",
                                        "Unix time the last run that did not fail ended")
            success.add_metric([], stats.last_success)
            yield success

        freshness = GaugeMetricFamily("lakeforge_table_freshness_seconds", "Seconds since the table last changed",
                                      labels=["table"])
        table_rows = GaugeMetricFamily("lakeforge_table_rows", "Rows of each lakehouse table", labels=["table"])
        for name in workspace.catalog.names():
            try:
                info = workspace.catalog.info(name)
            except Exception:  # a table being created right now
                continue
            freshness.add_metric([name], max(0.0, now - info.last_modified))
            table_rows.add_metric([name], info.rows)
        yield freshness
        yield table_rows

        dq = GaugeMetricFamily("lakeforge_dq_pass_rate", "Share of rows that passed each rule, in the last run "
                               "that checked rows with it", labels=["model", "rule"])
        for (model, rule), rate in sorted(stats.dq.items()):
            dq.add_metric([model, rule], rate)
        yield dq

        files = GaugeMetricFamily("lakeforge_backlog_files", "Landing files waiting to be ingested",
                                  labels=["source"])
        size = GaugeMetricFamily("lakeforge_backlog_bytes", "Bytes of the landing files waiting to be ingested",
                                 labels=["source"])
        for source in workspace.config.sources:
            waiting = workspace.ingestor(source).backlog()
            files.add_metric([source], len(waiting))
            size.add_metric([source], sum(f.size for f in waiting))
        yield files
        yield size


def registry(workspace: Workspace, *, clock: Callable[[], float] = time.time) -> CollectorRegistry:
    """A registry holding only the project's collector."""
    found = CollectorRegistry(auto_describe=False)
    found.register(Collector(workspace, clock=clock))
    return found


def exposition(workspace: Workspace) -> bytes:
    """The metrics in the Prometheus text format, once (``lakeforge serve`` keeps a registry instead)."""
    return generate_latest(registry(workspace))
