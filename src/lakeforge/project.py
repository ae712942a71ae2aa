"""``Project``: the one entry point that the CLI, tests, notebooks (and later the dashboard) call."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakeforge import __version__
from lakeforge.config import (
    CONFIG_FILE,
    DuckDBEngineConfig,
    DuckDBWarehouseConfig,
    EngineConfig,
    ProjectConfig,
    SparkEngineConfig,
    load_config,
)
from lakeforge.config.models import NAME_PATTERN
from lakeforge.engines import Engine, create_engine
from lakeforge.errors import ConfigError, LakeforgeError
from lakeforge.ingest import Ingestor
from lakeforge.lakehouse import LAYERS, Catalog
from lakeforge.lakehouse.catalog import arrow_dataset
from lakeforge.libraries import version_of
from lakeforge.models import Model, ModelGraph, load_models
from lakeforge.models.execute import Decision, decide, edits, table_columns
from lakeforge.models.model import replace_views
from lakeforge.ops.hooks import Observer
from lakeforge.ops.progress import Reporter
from lakeforge.ops.results import RunResult, StageResult
from lakeforge.ops.runner import execute, last_run, tasks
from lakeforge.storage import open_location
from lakeforge.warehouses.base import Warehouse

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlglot import exp

    from lakeforge.warehouses.reports import Report

EXAMPLE = "telemetry"
WAREHOUSE_STAMP = "_lakeforge/warehouse.json"  # what the last warehouse load saw (Project._warehouse_unchanged)


class Project:
    def __init__(self, path: str | Path = ".", *, engine: str | None = None) -> None:
        """``engine`` (``duckdb`` or ``spark``) overrides the type of the one in ``lakeforge.yml`` (``run
        --engine``); its other settings are kept where they apply (:func:`_engine_config`)."""
        self.path = Path(path).resolve()
        self.config: ProjectConfig = _resolved(load_config(self.path), base=self.path)
        configured = self.config.engine
        if engine is not None and engine != configured.type:
            self.config = self.config.model_copy(update={"engine": _engine_config(engine, configured)})
        # The settings of every DuckDB connection of this project (lakeforge.duckdb_connect): the run engine's when
        # it is DuckDB, else lakeforge.yml's DuckDB engine (run --engine spark keeps them for the warehouse, the
        # web app and interactive queries), else DuckDB's defaults.
        self.duckdb_settings: DuckDBEngineConfig = next(
            (e for e in (self.config.engine, configured) if isinstance(e, DuckDBEngineConfig)), DuckDBEngineConfig())
        self.landing = open_location(self.config.landing, base_dir=self.path, settings=self.config.storage)
        self.lakehouse = open_location(self.config.lakehouse, base_dir=self.path, settings=self.config.storage)
        self.catalog = Catalog(self.lakehouse)

    # -- set-up -----------------------------------------------------------------------------------
    @staticmethod
    def init(path: str | Path, *, example: str = EXAMPLE, force: bool = False, name: str | None = None) -> Project:
        """Scaffold the example project into ``path`` (refuses to overwrite an existing project); ``name``: the
        project's name (default: the example's)."""
        target = Path(path)
        if name is not None and not NAME_PATTERN.match(name):
            raise ConfigError(f"{name!r} cannot name a project: use letters, digits and underscores, starting with "
                              "a letter or an underscore", hint="pass --name, e.g. --name press_line")
        if (target / CONFIG_FILE).exists() and not force:
            raise ConfigError(f"{target / CONFIG_FILE} already exists",
                              hint="choose an empty folder, or pass --force to overwrite the example's files")
        source = resources.files("lakeforge") / "examples" / example
        if not source.is_dir():
            raise ConfigError(f"there is no example named {example!r}", hint=f"use {EXAMPLE!r}")
        with resources.as_file(source) as folder:
            shutil.copytree(folder, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "__init__.py"))
        if name is not None:
            config = target / CONFIG_FILE
            config.write_text(re.sub(r"(?m)^name: *\S+", f"name: {name}", config.read_text(), count=1))
        return Project(target)

    @staticmethod
    def name_for(path: str | Path) -> str:
        """A project name made from a folder's name: ``press-line`` -> ``press_line``."""
        name = re.sub(r"[^A-Za-z0-9_]+", "_", Path(path).resolve().name).strip("_") or "project"
        return name if NAME_PATTERN.match(name) else f"p_{name}"

    @cached_property
    def engine(self) -> Engine:
        """The engine runs use (``engine:`` in lakeforge.yml); started on first use."""
        return create_engine(self.config.engine, base_dir=str(self.path))

    @cached_property
    def local_engine(self) -> Engine:
        """The embedded engine, for interactive work (query, profile) whatever engine runs use."""
        if self.config.engine.type == "duckdb":
            return self.engine
        return create_engine(self.duckdb_settings)

    @cached_property
    def run_catalog(self) -> Catalog:
        """The catalog runs write through: the engine's own (Spark writes Delta with Spark)."""
        return self.catalog if self.config.engine.type == "duckdb" else self.engine.catalog(self.lakehouse)

    def close(self) -> None:
        for name in ("local_engine", "engine"):
            if name in self.__dict__:
                self.__dict__.pop(name).close()
        self.__dict__.pop("run_catalog", None)

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingestor(self, name: str, *, engine: Engine | None = None) -> Ingestor:
        """Source ``name``'s ingestion (without an engine it can only look: backlog, plan, status)."""
        return Ingestor(name=name, source=self.config.sources[name], landing=self.landing, lakehouse=self.lakehouse,
                        catalog=self.catalog if engine is None else self.run_catalog, engine=engine)

    def models(self) -> list[Model]:
        """The project's models; what the last load of the same files learned is reused (see
        :mod:`lakeforge.models.analysis`), so their SQL is parsed only when needed."""
        return load_models(self.path / self.config.models_path, dialect=self.config.dialect, cache=self.lakehouse,
                           required="models_path" in self.config.model_fields_set)

    def graph(self) -> ModelGraph:
        return ModelGraph(self.models(), sources=list(self.config.sources))

    # -- commands ---------------------------------------------------------------------------------
    def generate(self, **options: Any) -> dict[str, object]:
        from lakeforge.generate import generate

        options = {"duckdb_settings": self.duckdb_settings, **options}
        if self.landing.is_local:
            return generate(self.landing.local_path(), **options).to_dict()
        with tempfile.TemporaryDirectory(prefix="lakeforge-generate-") as tmp:  # write locally, then upload
            result = generate(tmp, **options).to_dict()
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    self.landing.write_bytes_atomic(path.relative_to(tmp).as_posix(), path.read_bytes())
            result["path"] = self.landing.uri
            return result

    def run(self, *, full_refresh: bool = False, select: list[str] | None = None, task: str | None = None,
            reporter: Reporter | None = None) -> RunResult:
        """Ingest every source, run the (selected) models, load the warehouse; ``full_refresh`` recomputes the
        selected models (all without ``select``). ``task`` runs one stage only (see :meth:`tasks`)."""
        return execute(self, full_refresh=full_refresh, select=select, task=task, reporter=reporter or Reporter())

    def score(self, *, full_refresh: bool = False, reporter: Reporter | None = None) -> RunResult:
        """The scoring stages (``ml:anomalies``, ``ml:risk`` as configured in ``ml:``) and the warehouse load, as a
        run: new readings and feature hours are scored, and a new champion rescores every hour."""
        return execute(self, full_refresh=full_refresh, score_only=True, reporter=reporter or Reporter())

    def backfill(self, *, start: str, end: str, select: list[str] | None = None) -> dict[str, Any]:
        """Recompute the selected models' rows of the days ``start`` .. ``end`` (YYYY-MM-DD, both included) from
        their upstream tables as they are now: one commit per model replaces exactly those rows (idempotent), in
        graph order, then the warehouse loads. By default every stored model that has a date or timestamp column;
        see :mod:`lakeforge.models.backfill`. Returns ``from``, ``to``, ``models`` (model, column, rows_deleted,
        rows_written, ...), ``skipped`` (model, reason) and ``warehouse``."""
        from lakeforge.models.backfill import backfill

        return backfill(self, start=start, end=end, select=select)

    def tasks(self) -> dict[str, list[str]]:
        """The pipeline's tasks and what each waits for: what deploy targets turn into jobs and DAGs."""
        return tasks(self)

    def modified(self) -> set[str]:
        """Stored models whose fingerprint (SQL, output-changing header settings) differs from the one their table
        was last committed with: what ``--select state:modified`` selects."""
        return {m.name for m in self.graph().ordered()
                if m.config.kind != "view" and self.catalog.exists(m.name) and edits(m, self.catalog)}

    def check_strategies(self, models: list[Model]) -> None:
        """Raise the error of the first model whose header demands a strategy its SQL does not allow (only those
        can: a model that asks for none, or for ``full``, is not parsed here)."""
        for model in models:
            if model.config.kind != "view" and model.config.demands_strategy:
                from lakeforge.models.strategy import analyze

                analyze(model, columns=table_columns(self.catalog))

    def select(self, patterns: list[str] | None, *, graph: ModelGraph | None = None) -> list[Model]:
        """The models ``--select`` names, in run order (see :meth:`ModelGraph.select`)."""
        return (graph or self.graph()).select(patterns, modified=self.modified)

    def plan(self, *, full_refresh: bool = False, select: list[str] | None = None) -> dict[str, Any]:
        """What a run would do, and why, without doing it (``lakeforge plan`` / ``run --dry-run``): per model its
        strategy, the reason, what it would recompute, and the edits that make it rebuild."""
        graph = self.graph()
        sources = []
        changing: set[str] = set()
        for name in self.config.sources:
            files = self.ingestor(name).backlog()
            sources.append({"name": name, "table": f"bronze.{name}", "files": len(files),
                            "bytes": sum(f.size for f in files), "run": bool(files)})
            if files:
                changing.add(f"bronze.{name}")
        models = []
        rebuilt: set[str] = set()
        chosen = self.select(select, graph=graph)
        self.check_strategies(chosen)
        for model in chosen:
            decision = decide(model, catalog=self.catalog, full_refresh=full_refresh, rebuilt=rebuilt)
            if decision.rebuild:
                rebuilt.add(model.name)
            planned = _planned(model, decision, feeding=[u for u in model.upstream() if u in changing])
            if planned["run"]:
                changing.add(model.name)
            models.append(planned)
        return {"sources": sources, "models": models}

    def watch(self, *, interval: float = 1.0, max_runs: int | None = None, idle_timeout: float | None = None,
              reporter: Reporter | None = None, on_run: Callable[[RunResult | LakeforgeError], None] | None = None,
              ) -> int:
        """Continuous mode: poll the landing zone every ``interval`` seconds and run when files arrive.

        A failing run is reported (``on_run`` gets the error) and watching goes on. Stops after ``max_runs``
        runs, after ``idle_timeout`` seconds without new files, or on Ctrl-C. Returns the number of runs.
        """
        runs = 0
        idle_since = time.monotonic()
        first = True
        try:
            while max_runs is None or runs < max_runs:
                if first or self.backlog():
                    first = False
                    try:
                        outcome: RunResult | LakeforgeError = self.run(reporter=reporter)
                    except LakeforgeError as exc:
                        outcome = exc
                    runs += 1
                    idle_since = time.monotonic()
                    if on_run:
                        on_run(outcome)
                    continue
                if idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
        return runs

    def backlog(self) -> dict[str, int]:
        """Files waiting per source (listing only; cheap enough to poll)."""
        found = {}
        for name in self.config.sources:
            files = self.ingestor(name).backlog()
            if files:
                found[name] = len(files)
        return found

    def warehouse_tables(self, models: list[Model]) -> dict[str, tuple[list[str], list[str]]]:
        """What the warehouse holds: table -> (unique key, cluster by): the stored gold models and the tables
        the scoring stages write (``gold.anomalies``, ``gold.machine_risk``)."""
        from lakeforge.ml import scoring

        found: dict[str, tuple[list[str], list[str]]] = {
            m.name: (m.config.unique_key, m.config.cluster_by)
            for m in models if m.layer == "gold" and m.config.kind != "view"}
        for stage in scoring.enabled(self):
            table = scoring.io(self, stage)[1][0]
            found[table] = (scoring.keys(self)[table], [])
        return found

    def load_warehouse(self, *, run_id: str, models: list[Model]) -> StageResult:
        started = time.perf_counter()
        stage = StageResult(name="warehouse", kind="load", strategy="ledger")
        gold = {name: spec for name, spec in self.warehouse_tables(models).items() if self.catalog.exists(name)}
        views = [m for m in models if m.layer == "gold" and m.config.kind == "view"
                 and all(u.startswith("gold.") for u in m.upstream())]
        if not gold:
            stage.status, stage.detail = "skipped", "no gold table to load"
            return stage
        unchanged = self._warehouse_unchanged(gold, views)
        kept = self._loaded_stamp() if unchanged is not None else None
        if unchanged is not None and kept == unchanged:
            stage.status, stage.detail = "skipped", "gold unchanged"
            stage.seconds = time.perf_counter() - started
            return stage
        # the views and reports as the last load left them, for the same gold tables, in a file nothing has written
        # since: they stand (writing their SQL again takes sqlglot 20-30 ms)
        standing = (unchanged is not None and kept is not None and kept["sources"] == unchanged["sources"]
                    and set(kept["tables"]) == set(unchanged["tables"]))
        warehouse = self.warehouse()
        dialect = warehouse.capabilities.dialect
        loads = []
        try:
            for name, (keys, cluster_by) in gold.items():
                loads.append(warehouse.load(name, catalog=self.catalog, keys=keys, run_id=run_id,
                                            cluster_by=cluster_by))
            done = [ld for ld in loads if ld.mode != "skipped"]
            for view in [] if standing else views:  # gold views over gold tables are views in the warehouse too
                sql = view.duckdb_sql() if dialect == "duckdb" else view.sql_for(dialect)
                warehouse.create_view(view.table, _unqualified_gold(sql, dialect=dialect))
            if not standing:  # (a DuckDB warehouse's reports are views: no refresh)
                self._keep_reports(warehouse, loaded=set(gold) | {v.name for v in views},
                                   refresh=bool(done), models=models)
        finally:
            warehouse.close()
        if unchanged is not None:
            self._keep_loaded_stamp(gold, views)
        stage.rows_in = stage.rows_out = stage.rows_read = stage.rows_written = sum(ld.rows for ld in done)
        stage.status = "ok" if done else "skipped"
        stage.detail = ", ".join(f"{ld.table} ({ld.mode}, v{ld.to_version})" for ld in done) or "gold unchanged"
        stage.seconds = time.perf_counter() - started
        return stage

    # A DuckDB warehouse that nothing has touched since the last load, of gold tables at the versions it loaded,
    # with the same reports and views, has nothing to do: the stage says so without opening it (opening the file,
    # reading the ledger, writing the reports' SQL: 40-70 ms of a run with nothing to do). What it saw is kept in
    # WAREHOUSE_STAMP after each load: the file (inode, mtime, size: any write changes them, a run that changes
    # nothing does not), each gold table's version and Delta id, and a digest of the reports' and views' text.
    def _warehouse_unchanged(self, gold: dict[str, Any], views: list[Model]) -> dict[str, Any] | None:
        """What the warehouse stage depends on, if the warehouse is a DuckDB file and the lakehouse a local folder
        (None otherwise: on object storage the stamp would cost a request each way)."""
        if not isinstance(self.config.warehouse, DuckDBWarehouseConfig) or not self.lakehouse.is_local:
            return None
        folder = self.path / self.config.reports_path
        texts = sorted((p.name, p.read_text(encoding="utf-8")) for p in folder.glob("*.sql")) if folder.is_dir() else []
        digest = hashlib.sha256(json.dumps({
            "reports": texts, "views": sorted((m.name, m.sql) for m in views), "dialect": self.config.dialect,
            "versions": [__version__, version_of("sqlglot")],
        }).encode()).hexdigest()
        return {"tables": {name: list(self.catalog.identity(name)) for name in sorted(gold)}, "sources": digest}

    def _warehouse_file(self) -> list[int] | None:
        assert isinstance(self.config.warehouse, DuckDBWarehouseConfig)
        path = Path(self.config.warehouse.path)
        path = path if path.is_absolute() else self.path / path
        if path.with_name(path.name + ".wal").exists():  # a load cut short: opening it replays the log
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        return [st.st_ino, st.st_mtime_ns, st.st_size]

    def _loaded_stamp(self) -> dict[str, Any] | None:
        """What the last load saw, if the warehouse file is still the one it left."""
        try:
            stamp: dict[str, Any] = dict(self.lakehouse.read_json(WAREHOUSE_STAMP))
        except (OSError, ValueError, LakeforgeError):  # none yet, or cut short
            return None
        current = self._warehouse_file()
        if current is None or stamp.pop("file", None) != current:
            return None
        return stamp

    def _keep_loaded_stamp(self, gold: dict[str, Any], views: list[Model]) -> None:
        """Best effort: a stamp not written (a full disk) leaves the last one, whose file no longer matches."""
        unchanged, current = self._warehouse_unchanged(gold, views), self._warehouse_file()
        if unchanged is not None and current is not None and self._loaded_stamp() != unchanged:
            with contextlib.suppress(OSError, LakeforgeError):
                self.lakehouse.write_json_atomic(WAREHOUSE_STAMP, {**unchanged, "file": current})

    def observers(self) -> list[Observer]:
        """What watches each run, as configured: OpenLineage events, alert rules."""
        found: list[Observer] = []
        if self.config.monitoring.lineage.transport != "none":
            from lakeforge.ops.lineage import LineageObserver

            found.append(LineageObserver(self))
        if self.config.alerts.rules:
            from lakeforge.ops.alerts import AlertObserver

            found.append(AlertObserver(self))
        return found

    def runs(self, *, limit: int | None = 20) -> list[dict[str, Any]]:
        """Run history from the event log, newest first (crashed runs included)."""
        from lakeforge.ops import events

        return events.runs(self, limit=limit)

    def warehouse(self, *, read_only: bool = False) -> Warehouse:
        """The configured warehouse, connected (close it when done)."""
        from lakeforge.config.loader import require_set
        from lakeforge.warehouses import create_warehouse

        require_set(self.config.warehouse, at="warehouse", use=f"the {self.config.warehouse.type} warehouse")
        return create_warehouse(self.config.warehouse, base_dir=self.path, read_only=read_only,
                                project=self.config.name, duckdb_settings=self.duckdb_settings)

    def reports(self, *, models: list[Model] | None = None) -> list[Report]:
        """The project's reports (``reports/*.sql``), in the project's dialect (``models``: the project's models,
        when the caller has them: parsing them again costs a run 30 ms)."""
        from lakeforge.warehouses.reports import load_reports

        reports = load_reports(self.path / self.config.reports_path, dialect=self.config.dialect)
        tables = {m.table for m in (self.models() if models is None else models) if m.layer == "gold"}
        for report in reports:
            if report.name == "slo":
                raise ConfigError(f"report {report.path}: the name slo is lakeforge's own (`lakeforge report slo`)",
                                  hint="rename the report file")
            if report.name in tables:
                raise ConfigError(f"report {report.name} ({report.path}) has the name of the gold table "
                                  f"gold.{report.name}; in the warehouse they would collide",
                                  hint="rename the report file")
        return reports

    def _keep_reports(self, warehouse: Warehouse, *, loaded: set[str], refresh: bool,
                      models: list[Model] | None = None) -> None:
        """Create (or replace: a backend keeps an unchanged one) every report whose tables the warehouse holds;
        after a load, refresh the materialized ones."""
        dialect = warehouse.capabilities.dialect
        kept = []
        for report in self.reports(models=models):
            if not report.tables() <= loaded:
                continue
            if report.materialize:
                warehouse.create_report(report.name, report.sql_for(dialect))
                kept.append(report.name)
            else:
                warehouse.create_view(report.name, report.sql_for(dialect))
        if refresh:
            warehouse.refresh_reports(kept)

    def report(self, name: str) -> pa.Table:
        """A report's rows, read from the warehouse: in the report's own ORDER BY, or else by its columns from
        left to right (a view without one has no order, and the same report should print the same way twice)."""
        import pyarrow as pa

        reports = {r.name: r for r in self.reports()}
        if name not in reports:
            raise ConfigError(f"no report named {name!r} in {self.path / self.config.reports_path}",
                              hint=f"the reports are: {', '.join(reports) or 'none'}")
        warehouse = self.warehouse(read_only=True)
        try:
            rows = warehouse.query(f"SELECT * FROM {name}")
        finally:
            warehouse.close()
        if reports[name].ordered:
            return rows
        keys = [(f.name, "ascending", "at_end") for f in rows.schema
                if not (pa.types.is_nested(f.type) or pa.types.is_null(f.type))]
        return rows.sort_by(keys) if keys and rows.num_rows > 1 else rows

    def verify_warehouse(self) -> list[dict[str, Any]]:
        """Each loaded gold table against its warehouse copy: rows, and per partition rows and a checksum."""
        from lakeforge.warehouses.verify import verify

        tables = {m.name: m.config.unique_key for m in self.graph().ordered()
                  if m.layer == "gold" and m.config.kind != "view"}
        warehouse = self.warehouse(read_only=True)
        try:
            checks = verify(warehouse, catalog=self.catalog, engine=self.local_engine, tables=tables)
        finally:
            warehouse.close()
        return [c.to_dict() for c in checks]

    def iam_policy(self) -> dict[str, Any]:
        """The least-privilege AWS IAM policy for this project's S3 locations (``lakeforge deploy iam``)."""
        from lakeforge.deploy import iam_policy

        sources = self.config.sources.values()
        moves = sorted({s.move_to.strip("/") for s in sources if s.clean_source == "move"})
        return iam_policy(
            landing=self.landing.uri, lakehouse=self.lakehouse.uri,
            source_folders=sorted({s.folder(n) for n, s in self.config.sources.items()}),
            lifecycle_prefixes=moves,
            can_delete_landing=any(s.clean_source == "delete" for s in sources),
        )

    def profile(self, name: str, *, version: int | None = None) -> dict[str, Any]:
        """Per column: null rate, distinct count, min, max, quantiles and a histogram, at a table version."""
        from lakeforge.quality import profile as prof

        table = self.catalog.table(name, version=version)
        dataset = arrow_dataset(table)
        engine = self.local_engine
        engine.register("__lf_profile", dataset)
        sql, numeric = prof.profile_sql(dataset.schema, "__lf_profile")
        row = engine.to_arrow(engine.query(sql, relations={})).to_pylist()[0]
        histograms = {}
        for i, field in enumerate(dataset.schema):
            low, high = row.get(f"c{i}_min"), row.get(f"c{i}_max")
            if field.name in numeric and low is not None and high is not None:
                width = (float(high) - float(low)) / prof.BINS or 1.0
                counts = engine.query(
                    prof.histogram_sql(field.name, "__lf_profile", float(low), float(high)), relations={}).to_pylist()
                histograms[field.name] = [{"from": float(low) + r["bin"] * width,
                                           "to": float(low) + (r["bin"] + 1) * width, "count": int(r["n"])}
                                          for r in counts]
        return {"table": name, "version": table.version(), "rows": int(row["__rows"]),
                "columns": prof.assemble(dataset.schema, row, histograms)}

    def optimize(self, tables: list[str] | None = None) -> list[dict[str, Any]]:
        """Compact every (or the named) lakehouse table; models with ``cluster_by`` are Z-ordered by it."""
        clusters = {m.name: m.config.cluster_by for m in self.models() if m.config.cluster_by}
        done = []
        for name in tables or self.catalog.names():
            metrics = self.catalog.optimize(name, zorder=clusters.get(name))
            done.append({"table": name, "zorder": clusters.get(name, []),
                         "files_added": metrics.get("numFilesAdded", 0),
                         "files_removed": metrics.get("numFilesRemoved", 0)})
        return done

    def vacuum(self, tables: list[str] | None = None, *, retention_hours: int = 168,
               apply: bool = False) -> list[dict[str, Any]]:
        """Files older versions needed, past the retention: listed (dry run) unless ``apply``."""
        if retention_hours < 1:
            raise ConfigError("a vacuum retention under 1 hour would break readers of recent versions",
                              hint="use --retention-hours 1 or more (default 168: a week)")
        return [{"table": name, "files": self.catalog.vacuum(name, retention_hours=retention_hours, dry_run=not apply),
                 "deleted": apply} for name in tables or self.catalog.names()]

    def status(self) -> dict[str, Any]:
        import pyarrow.compute as pc

        tables = [self.catalog.info(name).to_dict() for name in self.catalog.names()]
        quarantine = 0
        for table in tables:
            if table["layer"] == "quarantine":
                if table["name"].startswith("quarantine.bronze_"):
                    ds = self.catalog.dataset(table["name"])
                    quarantine += int(pc.sum(ds.to_table(columns=["_rows"])["_rows"]).as_py() or 0)
                else:
                    quarantine += int(table["rows"])
        backlog = {}
        for name in self.config.sources:
            ingestor = self.ingestor(name)
            found = ingestor.discover()
            files = found.backlog()
            changed = [] if ingestor.source.allow_overwrites else found.changed
            backlog[name] = {"files": len(files), "bytes": sum(f.size for f in files),
                             "changed_after_ingest": len(changed)}
        return {"project": self.config.name, "tables": tables, "quarantine_rows": quarantine,
                "backlog": backlog, "last_run": last_run(self)}

    def query(self, sql: str) -> pa.Table:
        """Read-only SQL over the warehouse; lakehouse tables are addressable as ``bronze.x``, ``gold.x`` ..."""
        import sqlglot
        from sqlglot import exp

        statements = _parse_read_only(sql)
        views = {m.name: m for m in self.models() if m.config.kind == "view"}
        if views:  # a view is its query, in DuckDB SQL here
            statements = [replace_views(statements[0], lambda n: sqlglot.parse_one(
                views[n].duckdb_sql(), read="duckdb"), set(views))]
            sql = statements[0].sql(dialect="duckdb")
        wanted = {f"{t.db}.{t.name}" for s in statements for t in s.find_all(exp.Table)
                  if t.db in LAYERS and not t.catalog}
        logs = {f"{t.db}.{t.name}" for s in statements for t in s.find_all(exp.Table)
                if t.db == "_lakeforge" and not t.catalog}
        if not isinstance(self.config.warehouse, DuckDBWarehouseConfig):
            return self._query_remote(statements[0], wanted=wanted)
        from lakeforge.engines.duckdb import DuckDBEngine

        engine = DuckDBEngine(self.duckdb_settings)
        try:
            wh = self.path / self.config.warehouse.path
            if wh.exists():
                import duckdb

                from lakeforge.sql import DUCKDB
                from lakeforge.warehouses.duckdb.warehouse import busy
                try:
                    engine.execute(f"ATTACH {DUCKDB.literal(str(wh))} AS warehouse (READ_ONLY)")
                except duckdb.IOException as exc:
                    raise busy(wh, exc) from None
                engine.execute("USE warehouse")
            relations: dict[str, Any] = {name: self.catalog.dataset(name) for name in sorted(wanted)}
            if logs:  # lakeforge's own tables: _lakeforge.event_log
                from lakeforge.ops import events

                relations.update({name: events.read(self) for name in logs if name == events.EVENT_LOG})
            try:
                return engine.query_arrow(sql, relations=relations)
            except Exception as exc:  # duckdb errors: report as ours
                raise LakeforgeError(f"query failed: {str(exc).splitlines()[0]}",
                                     hint="check table and column names with `lakeforge status`") from None
        finally:
            engine.close()

    def _query_remote(self, statement: exp.Expr, *, wanted: set[str]) -> pa.Table:
        """A query on a Snowflake or PostgreSQL warehouse: written in DuckDB SQL, run in the warehouse's."""
        if wanted:
            raise ConfigError(f"the warehouse is {self.config.warehouse.type}: a query there cannot read the "
                              f"lakehouse tables {', '.join(sorted(wanted))}",
                              hint="query the warehouse's own tables (gold tables by their name, without `gold.`)")
        warehouse = self.warehouse(read_only=True)
        try:
            return warehouse.query(statement.sql(dialect=warehouse.capabilities.dialect))
        finally:
            warehouse.close()

    def table(self, name: str) -> pa.Table:
        """A lakehouse table as Arrow."""
        return self.catalog.dataset(name).to_table()

    # -- services: what the command line's other commands call (each a few lines; the work is the service's) ----
    def alerts(self) -> list[dict[str, Any]]:
        """The alerts firing now, with when they began and were last sent."""
        from lakeforge.ops.alerts import status

        return status(self)

    def check_alerts(self) -> list[dict[str, Any]]:
        """Evaluate every alert rule now and notify (what ``lakeforge serve`` does every few minutes)."""
        from lakeforge.ops.alerts import evaluate

        return evaluate(self)

    def slo(self, *, window_days: float | None = None) -> dict[str, Any]:
        """The service-level objectives over the window, each against its target."""
        from lakeforge.ops.slo import compute

        return compute(self, window_days=window_days)

    def train(self, *, seed: int = 42, num_boost_round: int | None = None,
              tracking_uri: str | None = None) -> dict[str, Any]:
        """Train the failure-within-24 h model, log it to MLflow and register it as the challenger."""
        from lakeforge.ml.registry import train

        rounds = {} if num_boost_round is None else {"num_boost_round": num_boost_round}
        return train(self, seed=seed, tracking_uri=tracking_uri, **rounds)

    def promote(self, *, tracking_uri: str | None = None) -> dict[str, Any]:
        """Make the challenger the champion if it beats the champion on the current holdout."""
        from lakeforge.ml.registry import promote

        return promote(self, tracking_uri=tracking_uri)

    def registered_models(self, *, tracking_uri: str | None = None) -> list[dict[str, Any]]:
        """The registered versions of the project's model, with aliases and holdout metrics."""
        from lakeforge.ml.registry import models

        return models(self, tracking_uri=tracking_uri)

    @staticmethod
    def evaluate(dataset: str, *, data_dir: Path, subset: str = "FD001", seed: int = 42) -> dict[str, Any]:
        """A public benchmark (``cmapss``: remaining useful life; ``nab``: anomaly windows); needs no project."""
        if dataset == "cmapss":
            from lakeforge.ml.cmapss import evaluate as evaluate_cmapss

            return evaluate_cmapss(data_dir, subset=subset, seed=seed)
        if dataset == "nab":
            from lakeforge.ml.nab import evaluate as evaluate_nab

            return evaluate_nab(data_dir)
        raise LakeforgeError(f"unknown dataset {dataset!r}", hint="use --dataset cmapss or --dataset nab")

    def write_iam_policy(self, path: Path) -> None:
        from lakeforge.deploy import write_policy

        write_policy(self.iam_policy(), path)

    def deploy_airflow(self, *, out: Path | None = None, lakeforge_bin: str | None = None) -> tuple[str, Path]:
        """The Airflow DAG file, one task per stage: its id and where it was written."""
        from lakeforge.deploy.airflow import dag_id, write_dag

        return dag_id(self), write_dag(self, out=out or self.path / "deploy" / "airflow",
                                       lakeforge_bin=lakeforge_bin)

    def deploy_databricks(self, *, out: Path | None = None, kind: str = "job",
                          target: str = "databricks") -> Any:
        """A Databricks Asset Bundle (``kind`` job or pipeline), or a pipeline open-source Spark runs."""
        from lakeforge.deploy.databricks import write_job_bundle
        from lakeforge.deploy.pipeline import TARGETS, default_out, write_pipeline

        if kind not in ("job", "pipeline") or target not in TARGETS:
            raise ConfigError(f"--as {kind} --target {target} is not a known combination",
                              hint="use --as job, --as pipeline, or --as pipeline --target spark")
        if kind == "job":
            if target != "databricks":
                raise ConfigError("--target is for --as pipeline", hint="a job bundle always targets Databricks")
            return write_job_bundle(self, out or self.path / "deploy" / "databricks")
        return write_pipeline(self, out or default_out(self, target=target), target=target)

    def import_gx(self, suite: Path, *, model: str | None = None, action: str = "warn") -> tuple[Any, Path | None]:
        """A Great Expectations suite as rules, appended to ``model``'s header when given. Returns the import and
        the model file written (None: nothing written)."""
        from lakeforge.quality.gx import import_into

        if model is None:
            return import_into(suite, action=action, dialect=self.config.dialect), None
        target = next((m for m in self.models() if m.name == model), None)
        if target is None:
            raise ConfigError(f"no model {model}", hint="name a model as layer.table, e.g. silver.telemetry")
        result = import_into(suite, action=action, dialect=self.config.dialect, model_file=target.path,
                             existing=[e.name for e in target.config.expectations])
        return result, target.path

    def serve(self, *, host: str = "127.0.0.1", port: int = 8642, scheduler: bool = True) -> None:
        """The dashboards, the SQL explorer, /metrics, /health and the schedules, until stopped."""
        from lakeforge.ops.serve import serve

        serve(self, host=host, port=port, scheduler=scheduler)


def _planned(model: Model, decision: Decision, *, feeding: list[str]) -> dict[str, Any]:
    """A model's line of the plan; ``feeding``: its upstream tables that this run changes before it runs (the
    decision, made on the lakehouse as it is, cannot see those)."""
    run, reason, strategy, recompute = decision.run, decision.reason, decision.strategy, decision.recompute
    shape = decision.shape
    if feeding and (not run or reason.startswith("waiting")):
        run, reason = True, f"upstream changes in this run: {', '.join(feeding)}"
        if shape is None and model.config.kind != "view":
            from lakeforge.models.strategy import analyze

            shape = analyze(model)
        strategy, recompute = "full", "the whole table"
        if shape is not None and decision.exists:
            others = [u for u in feeding if u != shape.driver]
            if shape.strategy != "full" and not others:
                strategy, recompute = shape.strategy, shape.recompute()
            else:
                reason += f"; {shape.reason}" if shape.strategy == "full" else (
                    f"; {', '.join(others)} (not the driver) changes: recomputed whole")
    return {"name": model.name, "kind": model.config.kind, "upstream": model.upstream(), "run": run,
            "strategy": strategy if run else "", "reason": reason, "recompute": recompute if run else "",
            "changed": decision.edits,
            "incremental": {"strategy": shape.strategy, "why": shape.reason} if shape is not None else None}


def _engine_config(name: str, configured: EngineConfig) -> EngineConfig:
    """The engine of ``run --engine NAME`` over ``configured`` (lakeforge.yml's): only the type changes. The
    settings made in lakeforge.yml that NAME's type has too are kept; the others (a DuckDB memory limit for Spark,
    a Spark master for DuckDB) mean nothing to it and are dropped, not refused: the same lakeforge.yml serves
    both engines. (DuckDB's are still those of the project's other DuckDB connections: ``duckdb_settings``.)"""
    configs: dict[str, type[EngineConfig]] = {"duckdb": DuckDBEngineConfig, "spark": SparkEngineConfig}
    if name not in configs:
        raise ConfigError(f"unknown engine {name!r}", hint="use duckdb or spark")
    if configured.type == name:
        return configured
    target = configs[name]
    kept = {key: getattr(configured, key) for key in configured.model_fields_set
            if key in target.model_fields and key != "type"}
    return target.model_validate({**kept, "type": name})


def _resolved(config: ProjectConfig, *, base: Path) -> ProjectConfig:
    """``config`` with the DuckDB engine's ``temp_directory`` relative to the project folder, like every other
    path of lakeforge.yml (DuckDB would take it relative to the working folder)."""
    engine = config.engine
    if not isinstance(engine, DuckDBEngineConfig) or not engine.temp_directory:
        return config
    folder = base / Path(engine.temp_directory).expanduser()
    return config.model_copy(update={"engine": engine.model_copy(update={"temp_directory": str(folder)})})


def _unqualified_gold(sql: str, *, dialect: str = "duckdb") -> str:
    """``gold.fact_x`` -> ``fact_x``: the warehouse holds gold tables under their own names."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read=dialect)
    for table in tree.find_all(exp.Table):
        if table.db == "gold":
            table.set("db", None)
    return tree.sql(dialect=dialect)


def _parse_read_only(sql: str) -> list[exp.Expr]:
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise LakeforgeError(f"query does not parse: {str(exc).splitlines()[0]}",
                             hint="write DuckDB SQL, e.g. SELECT * FROM fact_telemetry_hourly LIMIT 5") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query | exp.Describe):
        raise LakeforgeError("lakeforge query is read-only: one SELECT (or WITH ... SELECT / DESCRIBE) statement",
                             hint="change data through models and `lakeforge run`, not through query")
    return statements
