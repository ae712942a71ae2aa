"""What the web pages read, and how: a snapshot of the warehouse, the event log, read-only connections.

The dashboards must answer in well under 100 ms on 1,000 machines over a year of hourly data, and they must not
stand in the way of the pipeline: a DuckDB file has one writer, and a run cannot load the warehouse while
another connection holds it. So the pages read

- the **snapshot** (:data:`SNAPSHOT`): a DuckDB file of the web app's own (in a temporary folder) holding what
  the pages show, each table sorted so that DuckDB's zone maps skip what a filter excludes: one machine's hourly
  values and risk scores sorted by machine and hour (a machine's page reads a few row groups of ~8.76M rows),
  one row per machine and day (hours reporting, sensor averages), the fleet per day, site and model (what the
  executive page adds up), failures with their repair, maintenance, errors, each machine's latest risk,
  anomalies. It is built when a page first needs it and again when the warehouse changed (its file's size and
  time; on Snowflake/PostgreSQL the load ledger, polled a minute): the warehouse is opened once per load, read
  as it is into a scratch file and closed before the sorting, not on every page view. A rebuild happens in a
  thread while the pages keep showing the previous snapshot;
- the **event log** (:mod:`.eventlog`): runs, stages, expectations and table freshness, in memory, the new
  commits appended as they come;
- the **warehouse** itself only for the SQL explorer: on DuckDB every such connection is read-only with
  external access disabled and its configuration locked (:func:`connect_duckdb`), closed when the query ends.

While the scheduler of the same ``lakeforge serve`` runs the pipeline (``busy``), the warehouse is not opened:
the pages show the snapshot they have; the explorer asks to retry. A ``lakeforge run`` in another process that
starts while the snapshot is copied or the explorer runs a query fails its load (DuckDB's single writer): let
the scheduler of ``lakeforge serve`` run the pipeline.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import sqlglot

from lakeforge.config import DuckDBWarehouseConfig
from lakeforge.duckdb_connect import DuckDBSettings, Settings, connect
from lakeforge.errors import LakeforgeError
from lakeforge.sql import DUCKDB
from lakeforge.web.eventlog import EventLog
from lakeforge.web.readonly import Unavailable, connect_duckdb, web_settings

if TYPE_CHECKING:
    from lakeforge.warehouses.base import Warehouse
    from lakeforge.workspace import Workspace

log = logging.getLogger("lakeforge.web")

REMOTE_POLL_SECONDS = 60.0  # how often the load ledger of a Snowflake/PostgreSQL warehouse is looked at
LEDGER = "_lakeforge_loads"


def _signature(path: Path) -> tuple[int, ...]:
    """Changes whenever the DuckDB file (or its write-ahead log) does."""
    parts: list[int] = []
    for file in (path, path.with_name(path.name + ".wal")):
        try:
            stat = file.stat()
            parts += [stat.st_size, stat.st_mtime_ns]
        except FileNotFoundError:
            parts += [-1, -1]
    return tuple(parts)


class Source:
    """The configured warehouse, read-only: DuckDB (a file) or Snowflake/PostgreSQL (through ``Warehouse.query``,
    with the SQL written in DuckDB's dialect and transpiled by sqlglot). ``settings``: those of the web app's
    DuckDB connections (:func:`.readonly.web_settings`; ``memory_limit`` overrides the engine's)."""

    def __init__(self, workspace: Workspace, *, memory_limit: str | None = None) -> None:
        self.workspace = workspace
        self.settings: Settings = web_settings(workspace.duckdb_settings, memory_limit=memory_limit)
        config = workspace.config.warehouse
        self.duckdb_path: Path | None = None
        if isinstance(config, DuckDBWarehouseConfig):
            path = Path(config.path)
            self.duckdb_path = path if path.is_absolute() else workspace.path / path
        self.dialect = "duckdb" if self.duckdb_path else config.type
        self._remote_seen: tuple[float, Any] | None = None

    @property
    def name(self) -> str:
        return self.duckdb_path.name if self.duckdb_path else f"the {self.dialect} warehouse"

    def exists(self) -> bool:
        return self.duckdb_path.exists() if self.duckdb_path else True

    def version(self) -> Any:
        """Something that changes when the warehouse is loaded (cheap: a stat, or a ledger poll a minute)."""
        if self.duckdb_path is not None:
            return _signature(self.duckdb_path)
        now = time.monotonic()
        if self._remote_seen is None or now - self._remote_seen[0] > REMOTE_POLL_SECONDS:
            with self.connect() as wh:
                rows = self.query(wh, f"SELECT max(loaded_at) AS at, sum(source_version) AS v FROM {LEDGER}")
            self._remote_seen = (now, tuple(rows.to_pylist()[0].values()) if rows.num_rows else None)
        return self._remote_seen[1]

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A read-only handle for :meth:`query`, closed on exit."""
        if not self.exists():
            raise Unavailable(f"the warehouse {self.name} does not exist yet",
                              hint="run `lakeforge run` to build and load it")
        if self.duckdb_path is not None:
            con = connect_duckdb(self.duckdb_path, settings=self.settings)
            try:
                yield con
            finally:
                con.close()
            return
        warehouse = self.workspace.warehouse(read_only=True)
        try:
            yield warehouse
        finally:
            warehouse.close()

    def query(self, handle: Any, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """``sql`` (DuckDB's dialect) on a handle of :meth:`connect`, as Arrow."""
        if isinstance(handle, duckdb.DuckDBPyConnection):
            from lakeforge.web.queries import used

            return handle.sql(sql, params=used(sql, params) or None).to_arrow_table()
        warehouse: Warehouse = handle
        text = sqlglot.transpile(_inline(sql, params), read="duckdb", write=self.dialect)[0]
        return warehouse.query(text)

    def tables(self, handle: Any) -> set[str]:
        """The warehouse's tables and views (lower case)."""
        if isinstance(handle, duckdb.DuckDBPyConnection):
            rows = handle.execute("SELECT table_name FROM information_schema.tables "
                                  "WHERE table_schema = 'main' AND table_catalog = current_database()").fetchall()
            return {str(r[0]).lower() for r in rows}
        found = self.query(handle, "SELECT table_name FROM information_schema.tables")
        return {str(n).lower() for n in found.column("table_name").to_pylist()}


def _inline(sql: str, params: dict[str, Any] | None) -> str:
    """``$name`` replaced by SQL literals, for warehouses reached through ``Warehouse.query`` (no parameters)."""
    for key, value in sorted((params or {}).items(), key=lambda kv: -len(kv[0])):
        if isinstance(value, dt.datetime):
            value = value.replace(tzinfo=None)  # (the warehouses keep naive UTC timestamps)
        elif value is not None and not isinstance(value, int | float | str | dt.date):
            value = str(value)
        literal = DUCKDB.literal(value)
        sql = sql.replace(f"${key}", literal)
    return sql


# -- the snapshot ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A snapshot table: ``sql`` over the warehouse's tables (``needs``) or over snapshot tables built before it
    (``local``), stored sorted by ``order`` so that DuckDB's zone maps skip what a filter on those columns
    excludes (one machine's hours read a few row groups, not the whole table)."""

    needs: tuple[str, ...]
    sql: str
    order: str
    local: bool = False
    sensors: bool = False  # ``sql`` names the sensors' columns as ``{hourly}`` and ``{daily}`` (:func:`sensor_sql`)

    def text(self, sensors: Sensors) -> str:
        return sensor_sql(self.sql, sensors) if self.sensors else self.sql


@dataclass(frozen=True)
class Sensors:
    """The sensors both telemetry facts have (``<name>_avg``), and the daily fact's other per-sensor columns."""

    names: tuple[str, ...] = ()
    daily_max: tuple[str, ...] = ()

    @staticmethod
    def of(hourly: list[str], daily: list[str]) -> Sensors:
        hourly, daily = [c.lower() for c in hourly], [c.lower() for c in daily]
        names = tuple(c[:-4] for c in hourly if c.endswith("_avg") and c in daily)
        return Sensors(names, tuple(c for c in daily if c.endswith("_max") and c[:-4] in names))


def sensor_sql(sql: str, sensors: Sensors) -> str:
    """``{hourly}``: each sensor's hourly mean named as the sensor; ``{daily}``: its daily mean and maxima."""
    hourly = ", ".join(f"{s}_avg AS {s}" for s in sensors.names) or "NULL AS no_sensor"
    daily = ", ".join([f"{s}_avg" for s in sensors.names] + list(sensors.daily_max)) or "NULL AS no_sensor"
    return sql.replace("{hourly}", hourly).replace("{daily}", daily)


SNAPSHOT: dict[str, Spec] = {
    "sites": Spec(("dim_site",), "SELECT site_id, site_name, region, timezone FROM dim_site", "site_id"),
    "machines": Spec(("dim_machine",), "SELECT machine_id, model, age, install_date, site_id, site_name, region "
                                       "FROM dim_machine", "machine_id"),
    # the sensors: each ``<sensor>_avg`` of both telemetry facts (whatever the project's sensors are: the example's
    # volt ... temperature, or those of an equipment mapping), found in the warehouse when the snapshot is built
    "hourly": Spec(("fact_telemetry_hourly",), """
        SELECT machine_id, hour, {hourly}, readings FROM fact_telemetry_hourly""", "machine_id, hour",
                   sensors=True),
    "daily": Spec(("fact_telemetry_daily",), """
        SELECT machine_id, date, readings, {daily} FROM fact_telemetry_daily""", "machine_id, date", sensors=True),
    # the hours each machine reported each day (availability counts hours; the daily fact has readings), with
    # the daily fact's averages
    "machine_day": Spec(("hourly", "daily"), """
        SELECT h.machine_id, h.date, h.hours_reporting, h.last_hour, d.* EXCLUDE (machine_id, date)
        FROM (SELECT machine_id, CAST(hour AS DATE) AS date, count(*) AS hours_reporting, max(hour) AS last_hour
              FROM hourly GROUP BY machine_id, CAST(hour AS DATE)) AS h
        LEFT JOIN daily AS d ON d.machine_id = h.machine_id AND d.date = h.date""", "machine_id, date", local=True),
    "failures": Spec(("fact_failures",), "SELECT machine_id, ts, date, component FROM fact_failures", "machine_id, ts"),
    "maintenance": Spec(("fact_maintenance",), "SELECT machine_id, ts, date, component, reason FROM fact_maintenance",
                        "machine_id, ts"),
    "errors": Spec(("fact_errors",), "SELECT machine_id, ts, date, error_id FROM fact_errors", "machine_id, ts"),
    # a failure and the corrective maintenance that ended it, counted as the fleet_availability report does
    "repairs": Spec(("failures", "maintenance"), """
        SELECT f.machine_id, f.ts, CAST(f.ts AS DATE) AS date, min(m.ts) AS repaired_at,
               (extract(EPOCH FROM min(m.ts)) - extract(EPOCH FROM f.ts)) / 3600.0 AS repair_hours
        FROM failures AS f
        LEFT JOIN maintenance AS m
          ON m.machine_id = f.machine_id AND m.component = f.component AND m.reason = 'failure' AND m.ts >= f.ts
        GROUP BY f.machine_id, f.ts""", "machine_id, ts", local=True),
    # the ML tables' timestamps as UTC TIMESTAMP, whether they are stored with a time zone or without
    "machine_last": Spec(("machine_day",), """
        SELECT machine_id, max(last_hour) AS last_hour FROM machine_day GROUP BY machine_id""", "machine_id",
                         local=True),
    # the fleet per day, site and model: what the executive page adds up (a few rows a day, not one per machine)
    "fleet_day": Spec(("machine_day", "machines"), """
        SELECT d.date, m.site_id, m.model, sum(d.hours_reporting) AS reporting_hours, count(*) AS machines_reporting
        FROM machine_day AS d JOIN machines AS m USING (machine_id) GROUP BY ALL""", "date, site_id, model",
                      local=True),
    "repair_day": Spec(("repairs", "machines"), """
        SELECT r.date, m.site_id, m.model, sum(r.repair_hours) AS repair_hours, count(r.repair_hours) AS repaired
        FROM repairs AS r JOIN machines AS m USING (machine_id) GROUP BY ALL""", "date, site_id, model", local=True),
    "failure_day": Spec(("failures", "machines"), """
        SELECT f.date, m.site_id, m.model, count(*) AS failures
        FROM failures AS f JOIN machines AS m USING (machine_id) GROUP BY ALL""", "date, site_id, model", local=True),
    "risk_hourly": Spec(("machine_risk",), """
        SELECT machine_id, CAST(hour AS TIMESTAMP) AS hour, p_failure_24h, predicted_component, model_name,
               model_version, CAST(scored_at AS TIMESTAMP) AS scored_at
        FROM machine_risk""", "machine_id, hour"),
    # machines at risk: each machine's latest scored hour
    "risk_latest": Spec(("risk_hourly",), """
        SELECT machine_id, max(hour) AS hour, arg_max(p_failure_24h, hour) AS p_failure_24h,
               arg_max(predicted_component, hour) AS predicted_component, arg_max(model_name, hour) AS model_name,
               arg_max(model_version, hour) AS model_version, arg_max(scored_at, hour) AS scored_at
        FROM risk_hourly GROUP BY machine_id""", "machine_id", local=True),
    "anomalies": Spec(("anomalies",), """
        SELECT machine_id, sensor, CAST(ts AS TIMESTAMP) AS ts, value, score, reason, detector FROM anomalies""",
                      "machine_id, ts"),
    "anomaly_day": Spec(("anomalies",), """
        SELECT machine_id, CAST(ts AS DATE) AS date, sensor, count(*) AS anomalies, max(score) AS max_score
        FROM anomalies GROUP BY machine_id, CAST(ts AS DATE), sensor""", "machine_id, date", local=True),
    "loads": Spec((LEDGER,), f"SELECT table_name, source_version, row_count, loaded_at FROM {LEDGER}", "table_name"),
}


class Snapshot:
    """A DuckDB file (in a temporary folder) with the :data:`SNAPSHOT` tables the warehouse allowed.

    Requests read it through cursors (:meth:`cursor`); a snapshot replaced by a newer one is closed and its file
    deleted when its last cursor is closed."""

    def __init__(self, db: duckdb.DuckDBPyConnection, *, version: Any, path: Path | None = None,
                 seconds: float = 0.0, problem: str | None = None) -> None:
        self.db = db
        self.version = version
        self.path = path
        self.seconds = seconds
        self.warehouse_seconds = 0.0  # of which the warehouse was attached
        self.problem = problem  # why it is empty (shown on the pages)
        self.built_at = dt.datetime.now(dt.UTC)
        self.warehouse_tables: set[str] = set()
        self.tables: set[str] = set()
        self.sensors = Sensors()
        self.first_date: dt.date | None = None
        self.last_date: dt.date | None = None
        self._users = 0
        self._retired = False
        self._mutex = threading.Lock()

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection of its own to the snapshot (thread-safe), for one request."""
        with self._mutex:
            self._users += 1
            cursor = self.db.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
            with self._mutex:
                self._users -= 1
                done = self._retired and self._users == 0
            if done:
                self._dispose()

    def retire(self) -> None:
        with self._mutex:
            self._retired = True
            done = self._users == 0
        if done:
            self._dispose()

    def _dispose(self) -> None:
        self.db.close()
        if self.path is not None:
            for file in (self.path, self.path.with_name(self.path.name + ".wal")):
                file.unlink(missing_ok=True)


def memory_db(*, settings: DuckDBSettings) -> duckdb.DuckDBPyConnection:
    db = connect(settings=settings)
    db.execute("SET python_enable_replacements=false")  # only the tables made here, never a Python variable
    return db


def build_snapshot(source: Source, path: Path) -> Snapshot:
    """Read the :data:`SNAPSHOT` tables from the warehouse into a new DuckDB file ``path``.

    On DuckDB the warehouse is attached read-only to the snapshot's own connection (which never runs a user's
    SQL) just long enough to copy the tables as they are into a scratch file beside ``path``; it is detached
    before they are sorted into ``path`` (sorting 8.76M rows takes longer than copying them, and a run cannot
    load the warehouse while it is attached). Other warehouses are read as Arrow through ``Warehouse.query``."""
    started = time.perf_counter()
    held = 0.0
    version = source.version()
    scratch = path.with_name(path.stem + "-scratch.duckdb")
    db = connect(path, settings=source.settings)  # the web app's memory limit (:func:`.readonly.web_settings`)
    try:
        db.execute("SET python_enable_replacements=false")
        catalog = db.execute("SELECT current_database()").fetchall()[0][0]
        built: set[str] = set()
        if source.duckdb_path is not None:
            if not source.exists():
                raise Unavailable(f"the warehouse {source.name} does not exist yet",
                                  hint="run `lakeforge run` to build and load it")
            db.execute(f"ATTACH '{scratch}' AS lf_scratch")
            attached = time.perf_counter()
            try:
                db.execute(f"ATTACH '{source.duckdb_path}' AS lf_warehouse (READ_ONLY)")
            except duckdb.Error as exc:
                raise Unavailable(f"the warehouse {source.name} cannot be opened now: {str(exc).splitlines()[0]}",
                                  hint="a run is probably loading it; try again when it is done") from None
            try:
                available = {str(r[0]).lower() for r in db.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'lf_warehouse' "
                    "AND table_schema = 'main'").fetchall()}
                db.execute("USE lf_warehouse")  # unqualified names are the warehouse's
                sensors = Sensors.of(*(_columns(db, t) for t in ("fact_telemetry_hourly", "fact_telemetry_daily")))
                for name, spec in SNAPSHOT.items():
                    if not spec.local and all(n.lower() in available for n in spec.needs):
                        db.execute(f"CREATE TABLE lf_scratch.main.{name} AS {spec.text(sensors)}")
                        built.add(name)
            finally:
                db.execute(f'USE "{catalog}"')
                db.execute("DETACH lf_warehouse")
                held = time.perf_counter() - attached
            for name in SNAPSHOT:
                if name in built:
                    db.execute(f"CREATE TABLE {name} AS SELECT * FROM lf_scratch.main.{name} "
                               f"ORDER BY {SNAPSHOT[name].order}")
            db.execute("DETACH lf_scratch")
        else:
            with source.connect() as handle:
                available = source.tables(handle)
                sensors = Sensors.of(*(source.query(handle, f"SELECT * FROM {t} WHERE 1 = 0").column_names
                                       if t in available else [] for t in ("fact_telemetry_hourly",
                                                                           "fact_telemetry_daily")))
                for name, spec in SNAPSHOT.items():
                    if not spec.local and all(n.lower() in available for n in spec.needs):
                        db.register("__lf_snapshot", source.query(handle, spec.text(sensors)))
                        try:
                            db.execute(f"CREATE TABLE {name} AS SELECT * FROM __lf_snapshot ORDER BY {spec.order}")
                        finally:
                            db.unregister("__lf_snapshot")
                        built.add(name)
        for name, spec in SNAPSHOT.items():
            if spec.local and all(n in built for n in spec.needs):
                db.execute(f"CREATE TABLE {name} AS {spec.sql} ORDER BY {spec.order}")
                built.add(name)
        db.execute("CHECKPOINT")
    except BaseException:
        db.close()
        path.unlink(missing_ok=True)
        raise
    finally:
        for file in (scratch, scratch.with_name(scratch.name + ".wal")):
            file.unlink(missing_ok=True)
    snapshot = Snapshot(db, version=version, path=path, seconds=time.perf_counter() - started)
    snapshot.warehouse_tables, snapshot.tables, snapshot.warehouse_seconds = available, built, held
    snapshot.sensors = sensors
    if "machine_day" in built:
        bounds = db.execute("SELECT min(date), max(date) FROM machine_day").fetchall()[0]
        snapshot.first_date, snapshot.last_date = bounds
    log.info("dashboard snapshot of %s built in %.2fs (the warehouse open for %.2fs): %s", source.name,
             snapshot.seconds, held, ", ".join(sorted(built)))
    return snapshot


def _columns(db: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The columns of an attached warehouse table (none when it does not exist)."""
    return [str(r[0]) for r in db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'lf_warehouse' AND table_schema = "
        "'main' AND lower(table_name) = ? ORDER BY ordinal_position", [table]).fetchall()]


def empty_snapshot(problem: str, *, settings: DuckDBSettings) -> Snapshot:
    return Snapshot(memory_db(settings=settings), version=None, problem=problem)


# -- the store ---------------------------------------------------------------------------------------------------


FOLDER_PREFIX = "lakeforge-web-"


def _sweep() -> None:
    """Remove the snapshot folders of web apps whose process is gone (killed before it could clean up)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*-*"):
        pid = folder.name.removeprefix(FOLDER_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # alive (or not ours to signal)
            continue


class Store:
    """The pages' data: the snapshot (rebuilt when the warehouse changed), the event log, the warehouse.

    ``busy()`` is true while this process's scheduler runs the pipeline: the warehouse is then left alone."""

    def __init__(self, workspace: Workspace, *, busy: Callable[[], bool] | None = None,
                 memory_limit: str | None = None, background: bool = True) -> None:
        """``memory_limit``: of the web app's DuckDB connections; default: the engine's of lakeforge.yml, else
        :data:`.readonly.MEMORY_LIMIT` (:func:`.readonly.web_settings`)."""
        self.workspace = workspace
        self.source = Source(workspace, memory_limit=memory_limit)
        self.busy = busy or (lambda: False)
        self.background = background  # rebuild a stale snapshot in a thread, showing the previous one meanwhile
        _sweep()
        self.folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
        self._generation = 0
        self._snapshot: Snapshot | None = None
        self._snapshot_lock = threading.Lock()  # one build at a time
        self._builder: threading.Thread | None = None
        self.events = EventLog(workspace, settings=self.source.settings)
        self._backlog: tuple[float, list[dict[str, Any]]] | None = None

    # the snapshot
    def snapshot(self) -> Snapshot:
        """The current snapshot. The first one is built now; a later one, when the warehouse changed, in the
        background (the previous one is shown meanwhile), unless ``background`` is off."""
        current = self._snapshot
        if current is None or current.version is None:
            return self.refresh()
        if not self.busy() and self._builder is None and self._stale(current):
            if not self.background:
                return self.refresh()
            self._builder = threading.Thread(target=self._build_in_background, name="lakeforge-web-snapshot",
                                             daemon=True)
            self._builder.start()
        return current

    def _stale(self, current: Snapshot) -> bool:
        try:
            return bool(current.version != self.source.version())
        except Exception as exc:  # a remote warehouse unreachable: keep what we have
            log.warning("dashboard: the warehouse's version could not be read: %s", exc)
            return False

    def _build_in_background(self) -> None:
        try:
            self.refresh()
        finally:
            self._builder = None

    def refresh(self) -> Snapshot:
        """Build a snapshot now if the warehouse changed (or there is none), and make it the current one."""
        with self._snapshot_lock:
            current = self._snapshot
            if current is not None and current.version is not None and not self._stale(current):
                return current
            try:
                if self.busy():
                    raise Unavailable("a pipeline run is in progress", hint="the pages show the data once it is done")
                if not self.source.exists():
                    raise Unavailable(f"the warehouse {self.source.name} does not exist yet",
                                      hint="run `lakeforge run` to build and load it")
                self._generation += 1
                fresh = build_snapshot(self.source, self.folder / f"snapshot-{self._generation}.duckdb")
            except Exception as exc:
                if not isinstance(exc, Unavailable):
                    log.warning("dashboard snapshot failed: %s", exc)
                if current is not None and current.version is not None:
                    return current  # keep showing the last good one
                message = exc.message if isinstance(exc, LakeforgeError) else str(exc).splitlines()[0]
                fresh = empty_snapshot(message if isinstance(exc, Unavailable)
                                       else f"the warehouse could not be read: {message}",
                                       settings=self.source.settings)
            self._snapshot = fresh
        if current is not None:
            current.retire()
        return fresh

    @contextmanager
    def snapshot_cursor(self) -> Iterator[tuple[Snapshot, duckdb.DuckDBPyConnection]]:
        snapshot = self.snapshot()
        with snapshot.cursor() as cursor:
            yield snapshot, cursor

    # the event log
    @contextmanager
    def events_cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The event log's tables (:mod:`.eventlog`), with the commits made since the last look."""
        with self.events.cursor() as cursor:
            yield cursor

    # the warehouse itself
    @contextmanager
    def warehouse(self) -> Iterator[Any]:
        """A read-only handle on the warehouse for :meth:`Source.query` (refused while a run loads it)."""
        if self.busy():
            raise Unavailable("a pipeline run is in progress and may be loading the warehouse",
                              hint="try again when it is done")
        with self.source.connect() as handle:
            yield handle

    # the landing backlog (a listing: kept for a few seconds)
    def backlog(self, *, max_age: float = 15.0) -> list[dict[str, Any]]:
        now = time.monotonic()
        if self._backlog is None or now - self._backlog[0] > max_age:
            rows = []
            for name in self.workspace.config.sources:
                files = self.workspace.ingestor(name).backlog()
                rows.append({"source": name, "files": len(files), "bytes": sum(f.size for f in files)})
            self._backlog = (now, rows)
        return self._backlog[1]

    def close(self) -> None:
        builder = self._builder
        if builder is not None:
            builder.join()
        if self._snapshot is not None:
            self._snapshot.retire()
        self._snapshot = None
        shutil.rmtree(self.folder, ignore_errors=True)

