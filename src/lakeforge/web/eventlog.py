"""The event log, as the operations page reads it: in memory, one table per kind of event, sorted by time.

A year of hourly runs is ~600k rows (a run row, and a row per stage, expectation and table of each run). The page
reads them by time range, so each kind is kept in a table of its own, in time order: DuckDB's zone maps skip the
row groups outside the range, and the last week reads a few thousand rows, not the whole log.

- ``runs``: one row per run (``run_at``: its start, or its end when a crash lost the start; ``good``: succeeded or
  had nothing to do);
- ``stages``: ``name``, ``kind``, ``status``, ``started_at``, ``seconds``, ``attempts``;
- ``checks``: expectations that checked rows: ``name`` (``model:rule``), ``kind`` (the action), ``started_at``,
  ``passed``, ``failed``;
- ``observations``: tables' freshness at the end of each run: ``name``, ``kind`` (layer), ``ended_at``,
  ``freshness_seconds``.

The Delta table is checked every few seconds; a new commit's files (one per run) are read and appended, so a
run costs the page the rows it added, not the whole log again. When files went away (``lakeforge optimize`` of
the log) or the schema changed, everything is read again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from lakeforge.duckdb_connect import DuckDBSettings, connect
from lakeforge.web.readonly import web_settings

if TYPE_CHECKING:
    from lakeforge.workspace import Workspace

log = logging.getLogger("lakeforge.web")

POLL_SECONDS = 2.0
GOOD = "('succeeded', 'nothing_to_do')"
TABLES: dict[str, str] = {  # table -> its rows of a batch of event-log rows (``batch``)
    "runs": f"""SELECT run_id, status, started_at, ended_at, seconds, rows_in, rows_out, bytes_in, bytes_out,
                       dq_passed, dq_failed, cost, cost_per_gb, error, coalesce(started_at, ended_at) AS run_at,
                       status IN {GOOD} AS good
                FROM batch WHERE event = 'run' ORDER BY run_at""",
    "stages": """SELECT name, kind, status, started_at, seconds, attempts FROM batch WHERE event = 'stage'
                 ORDER BY started_at""",
    "checks": """SELECT name, kind, started_at, coalesce(dq_passed, 0) AS passed, coalesce(dq_failed, 0) AS failed
                 FROM batch WHERE event = 'expectation' AND coalesce(dq_passed, 0) + coalesce(dq_failed, 0) > 0
                 ORDER BY started_at""",
    "observations": """SELECT name, kind, ended_at, freshness_seconds FROM batch
                       WHERE event = 'table' AND freshness_seconds IS NOT NULL ORDER BY ended_at""",
}


def _memory(settings: DuckDBSettings) -> duckdb.DuckDBPyConnection:
    db = connect(settings=settings)
    db.execute("SET python_enable_replacements=false")
    return db


class EventLog:
    """The project's event log in an in-memory DuckDB (:data:`TABLES`), kept up to date by :meth:`refresh`."""

    def __init__(self, workspace: Workspace, *, poll_seconds: float = POLL_SECONDS,
                 settings: DuckDBSettings | None = None) -> None:
        """``settings``: of its DuckDB database; default: the web app's (:func:`.readonly.web_settings`)."""
        from lakeforge.pipeline import events

        self.workspace = workspace
        self.poll_seconds = poll_seconds
        self.settings = settings or web_settings(workspace.duckdb_settings)
        self.uri = workspace.lakehouse.join("_lakeforge", "event_log")
        self.options = workspace.lakehouse.storage_options
        self.db = self._load(events.SCHEMA.empty_table())
        self.version = -1
        self.rows = 0
        self._files: set[str] = set()
        self._schema: pa.Schema | None = None
        self._table: Any = None
        self._checked = 0.0
        self._lock = threading.Lock()

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.refresh()
        cursor = self.db.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def _load(self, batch: pa.Table) -> duckdb.DuckDBPyConnection:
        db = _memory(self.settings)
        db.register("batch", batch)
        for name, sql in TABLES.items():
            db.execute(f"CREATE TABLE {name} AS {sql}")
        db.unregister("batch")
        return db

    def refresh(self, *, force: bool = False) -> None:
        """Read the commits made since the last look (at most every ``poll_seconds``)."""
        from deltalake import DeltaTable

        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked < self.poll_seconds:
                return
            self._checked = now
            try:
                if self._table is None:
                    if not DeltaTable.is_deltatable(self.uri, storage_options=self.options):
                        return
                    self._table = DeltaTable(self.uri, storage_options=self.options)
                else:
                    self._table.update_incremental()
                version = self._table.version()
                if version == self.version:
                    return
                dataset = self._table.to_pyarrow_dataset()
                fragments = list(dataset.get_fragments())
                paths = {f.path for f in fragments}
                if self._schema is not None and dataset.schema.equals(self._schema) and self._files <= paths:
                    import pyarrow.dataset as ds

                    new = [f for f in fragments if f.path not in self._files]
                    batch = ds.FileSystemDataset(new, dataset.schema, dataset.format, dataset.filesystem).to_table()
                    self.db.register("batch", batch)
                    try:
                        for name, sql in TABLES.items():
                            self.db.execute(f"INSERT INTO {name} {sql}")
                    finally:
                        self.db.unregister("batch")
                    self.rows += batch.num_rows
                else:  # the first read, or files rewritten (optimize) or a new column: read it all
                    batch = dataset.to_table()
                    self.db = self._load(batch)  # requests holding a cursor on the old one finish on it
                    self.rows = batch.num_rows
                self._files, self._schema, self.version = paths, dataset.schema, version
            except Exception as exc:  # a commit being written, the lakehouse unreachable: keep what we have
                log.warning("dashboard: the event log could not be read: %s", exc)
                self._table = None
