"""``Project``: the façade, the one entry point that the CLI, the demo, tests and notebooks call; the work is in
the layers below (docs/architecture.md), which receive the :class:`~lakeforge.workspace.Workspace`, never this."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from lakeforge.config import CONFIG_FILE, DuckDBEngineConfig, ProjectConfig
from lakeforge.config.models import NAME_PATTERN
from lakeforge.engines import Engine
from lakeforge.errors import ConfigError, LakeforgeError
from lakeforge.ingest import Ingestor
from lakeforge.lakehouse import Catalog
from lakeforge.lakehouse.catalog import arrow_dataset
from lakeforge.models import Model, ModelGraph
from lakeforge.ops.observers import configured
from lakeforge.pipeline.hooks import Observer
from lakeforge.pipeline.plan import Plan, plan
from lakeforge.pipeline.progress import Reporter
from lakeforge.pipeline.runner import execute, tasks
from lakeforge.pipeline.status import status
from lakeforge.pipeline.watch import watch
from lakeforge.results import RunResult
from lakeforge.storage import Location
from lakeforge.warehouses.base import Warehouse
from lakeforge.workspace import Workspace

if TYPE_CHECKING:
    import pyarrow as pa

    from lakeforge.deploy.databricks import Written
    from lakeforge.deploy.iam import IamPolicy
    from lakeforge.generate import GenerateSummary
    from lakeforge.ml.cmapss import CmapssEvaluation
    from lakeforge.ml.nab_eval import NabEvaluation
    from lakeforge.ml.registry import PromoteResult, RegisteredVersion, TrainResult
    from lakeforge.ops.alerts import ActiveAlert, SentAlert
    from lakeforge.ops.slo import SloReport
    from lakeforge.pipeline.backfill import BackfillResult
    from lakeforge.pipeline.events import EventRow
    from lakeforge.pipeline.status import StatusReport
    from lakeforge.quality.gx import ImportResult
    from lakeforge.quality.profile import HistogramBin, TableProfile
    from lakeforge.scaffold import Scaffold
    from lakeforge.warehouses.reports import Report
    from lakeforge.warehouses.verify import TableCheckDict

EXAMPLE = "telemetry"


# -- what the commands that are worked out here return (the others' types are declared by their producers) ----
class Optimized(TypedDict):
    table: str
    zorder: list[str]
    files_added: int
    files_removed: int


class Vacuumed(TypedDict):
    table: str
    files: list[str]  # deleted (``deleted``), else what would be
    deleted: bool


class Project:
    """The façade every front end calls (the CLI, the demo, tests, notebooks): one method per command, each a
    few lines over the layers below, returning typed results. It holds the opened :class:`Workspace` (what those
    layers receive) and exposes its resources read-only."""

    def __init__(self, path: str | Path = ".", *, engine: str | None = None) -> None:
        """``engine`` (``duckdb`` or ``spark``) overrides the type of the one in ``lakeforge.yml`` (``run
        --engine``); its other settings are kept where they apply."""
        self.workspace = Workspace(path, engine=engine)

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
    def init_from(path: str | Path, *, origin: str, name: str | None = None) -> Scaffold:
        """A project in ``path`` made from the sample files at ``origin`` (a folder or an ``s3://`` prefix): sources
        and silver models from their profile (:mod:`lakeforge.scaffold`); refuses to overwrite anything."""
        from lakeforge.scaffold import scaffold

        if name is not None and not NAME_PATTERN.match(name):
            raise ConfigError(f"{name!r} cannot name a project: use letters, digits and underscores, starting with "
                              "a letter or an underscore", hint="pass --name, e.g. --name press_line")
        target = Path(path)
        return scaffold(target, origin=origin, name=name or Project.name_for(target))

    def equipment(self, *, check: bool = False) -> dict[str, str]:
        """Write the gold models and reports of lakeforge.yml's ``equipment:`` mapping (files still marked as
        generated are rewritten, the user's are kept); ``check``: only say which would change. Each path's fate."""
        return self.workspace.equipment_files(check=check)

    @staticmethod
    def name_for(path: str | Path) -> str:
        """A project name made from a folder's name: ``press-line`` -> ``press_line``."""
        name = re.sub(r"[^A-Za-z0-9_]+", "_", Path(path).resolve().name).strip("_") or "project"
        return name if NAME_PATTERN.match(name) else f"p_{name}"

    # -- the workspace's resources, read-only ----------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.workspace.path

    @property
    def config(self) -> ProjectConfig:
        return self.workspace.config

    @property
    def duckdb_settings(self) -> DuckDBEngineConfig:
        return self.workspace.duckdb_settings

    @property
    def landing(self) -> Location:
        return self.workspace.landing

    @property
    def lakehouse(self) -> Location:
        return self.workspace.lakehouse

    @property
    def catalog(self) -> Catalog:
        return self.workspace.catalog

    @property
    def engine(self) -> Engine:
        return self.workspace.engine

    @property
    def local_engine(self) -> Engine:
        return self.workspace.local_engine

    @property
    def run_catalog(self) -> Catalog:
        return self.workspace.run_catalog

    def close(self) -> None:
        self.workspace.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingestor(self, name: str, *, engine: Engine | None = None) -> Ingestor:
        return self.workspace.ingestor(name, engine=engine)

    def models(self) -> list[Model]:
        return self.workspace.models()

    def graph(self) -> ModelGraph:
        return self.workspace.graph()

    def table(self, name: str) -> pa.Table:
        """A lakehouse table as Arrow."""
        return self.workspace.table(name)

    def warehouse(self, *, read_only: bool = False) -> Warehouse:
        """The configured warehouse, connected (close it when done)."""
        return self.workspace.warehouse(read_only=read_only)

    def reports(self, *, models: list[Model] | None = None) -> list[Report]:
        return self.workspace.reports(models=models)

    def backlog(self) -> dict[str, int]:
        """Files waiting per source (listing only; cheap enough to poll)."""
        return self.workspace.backlog()

    def modified(self) -> set[str]:
        return self.workspace.modified()

    def select(self, patterns: list[str] | None, *, graph: ModelGraph | None = None) -> list[Model]:
        return self.workspace.select(patterns, graph=graph)

    # -- commands ---------------------------------------------------------------------------------
    def generate(self, **options: Any) -> GenerateSummary:
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
        return execute(self.workspace, observers=self.observers(), full_refresh=full_refresh, select=select,
                       task=task, reporter=reporter or Reporter())

    def score(self, *, full_refresh: bool = False, reporter: Reporter | None = None) -> RunResult:
        """The scoring stages (``ml:anomalies``, ``ml:risk`` as configured in ``ml:``) and the warehouse load, as a
        run: new readings and feature hours are scored, and a new champion rescores every hour."""
        return execute(self.workspace, observers=self.observers(), full_refresh=full_refresh, score_only=True,
                       reporter=reporter or Reporter())

    def backfill(self, *, start: str, end: str, select: list[str] | None = None) -> BackfillResult:
        """Recompute the selected models' rows of the days ``start`` .. ``end`` (YYYY-MM-DD, both included) from
        their upstream tables as they are now: one commit per model replaces exactly those rows (idempotent), in
        graph order, then the warehouse loads. By default every stored model that has a date or timestamp column;
        see :mod:`lakeforge.pipeline.backfill`. Returns ``from``, ``to``, ``models`` (model, column, rows_deleted,
        rows_written, ...), ``skipped`` (model, reason) and ``warehouse``."""
        from lakeforge.pipeline.backfill import backfill  # pyarrow, deltalake, sqlglot: only for a backfill

        return backfill(self.workspace, observers=self.observers(), start=start, end=end, select=select)

    def tasks(self) -> dict[str, list[str]]:
        """The pipeline's tasks and what each waits for: what deploy targets turn into jobs and DAGs."""
        return tasks(self.workspace)

    def watch(self, *, interval: float = 1.0, max_runs: int | None = None, idle_timeout: float | None = None,
              reporter: Reporter | None = None, on_run: Callable[[RunResult | LakeforgeError], None] | None = None,
              ) -> int:
        """Continuous mode (:func:`lakeforge.pipeline.watch.watch`): run when files arrive, until ``max_runs``
        runs, ``idle_timeout`` seconds without new files, or Ctrl-C. Returns the number of runs."""
        return watch(run=lambda: self.run(reporter=reporter), backlog=self.backlog, interval=interval,
                     max_runs=max_runs, idle_timeout=idle_timeout, on_run=on_run)

    def status(self) -> StatusReport:
        """The tables, the rows in quarantine, the files waiting per source and the last run."""
        return status(self.workspace)

    def query(self, sql: str, *, dialect: str | None = None) -> pa.Table:
        """Read-only SQL over the warehouse; lakehouse tables are addressable as ``bronze.x``, ``gold.x`` ...
        Written in ``dialect`` (default: the project's, as the models are; ``duckdb`` passes through)."""
        from lakeforge.query import query

        return query(self.workspace, sql, dialect=dialect)

    def plan(self, *, full_refresh: bool = False, select: list[str] | None = None) -> Plan:
        """What a run would do, and why, without doing it (``lakeforge plan`` / ``run --dry-run``): per model its
        strategy, the reason, what it would recompute, and the edits that make it rebuild."""
        return plan(self.workspace, full_refresh=full_refresh, select=select)

    def observers(self) -> list[Observer]:
        """What watches each run, as configured: OpenLineage events, alert rules."""
        return configured(self.workspace)

    def runs(self, *, limit: int | None = 20) -> list[EventRow]:
        """Run history from the event log, newest first (crashed runs included)."""
        from lakeforge.pipeline import events

        return events.runs(self.workspace, limit=limit)

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

    def verify_warehouse(self) -> list[TableCheckDict]:
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

    def iam_policy(self) -> IamPolicy:
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

    def profile(self, name: str, *, version: int | None = None) -> TableProfile:
        """Per column: null rate, distinct count, min, max, quantiles and a histogram, at a table version."""
        from lakeforge.quality import profile as prof

        table = self.catalog.table(name, version=version)
        dataset = arrow_dataset(table)
        engine = self.local_engine
        engine.register("__lf_profile", dataset)
        sql, numeric = prof.profile_sql(dataset.schema, "__lf_profile")
        row = engine.to_arrow(engine.query(sql, relations={})).to_pylist()[0]
        histograms: dict[str, list[HistogramBin]] = {}
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

    def optimize(self, tables: list[str] | None = None) -> list[Optimized]:
        """Compact every (or the named) lakehouse table; models with ``cluster_by`` are Z-ordered by it."""
        clusters = {m.name: m.config.cluster_by for m in self.models() if m.config.cluster_by}
        done: list[Optimized] = []
        for name in tables or self.catalog.names():
            metrics = self.catalog.optimize(name, zorder=clusters.get(name))
            done.append({"table": name, "zorder": clusters.get(name, []),
                         "files_added": metrics.get("numFilesAdded", 0),
                         "files_removed": metrics.get("numFilesRemoved", 0)})
        return done

    def vacuum(self, tables: list[str] | None = None, *, retention_hours: int = 168,
               apply: bool = False) -> list[Vacuumed]:
        """Files older versions needed, past the retention: listed (dry run) unless ``apply``."""
        if retention_hours < 1:
            raise ConfigError("a vacuum retention under 1 hour would break readers of recent versions",
                              hint="use --retention-hours 1 or more (default 168: a week)")
        return [{"table": name, "files": self.catalog.vacuum(name, retention_hours=retention_hours, dry_run=not apply),
                 "deleted": apply} for name in tables or self.catalog.names()]

    # -- services: what the command line's other commands call (each a few lines; the work is the service's) ----
    def alerts(self) -> list[ActiveAlert]:
        """The alerts firing now, with when they began and were last sent."""
        from lakeforge.ops.alerts import status as alert_status

        return alert_status(self.workspace)

    def check_alerts(self) -> list[SentAlert]:
        """Evaluate every alert rule now and notify (what ``lakeforge serve`` does every few minutes)."""
        from lakeforge.ops.alerts import evaluate

        return evaluate(self.workspace)

    def slo(self, *, window_days: float | None = None) -> SloReport:
        """The service-level objectives over the window, each against its target."""
        from lakeforge.ops.slo import compute

        return compute(self.workspace, window_days=window_days)

    def train(self, *, seed: int = 42, num_boost_round: int | None = None, tracking_uri: str | None = None,
              reporter: Reporter | None = None) -> TrainResult:
        """Train the failure-within-a-horizon model, log it to MLflow and register it as the challenger;
        ``reporter`` shows its steps and boosting rounds."""
        from lakeforge.ml.registry import train

        rounds = {} if num_boost_round is None else {"num_boost_round": num_boost_round}
        progress = None if reporter is None else reporter.step
        try:
            return train(self.workspace, seed=seed, tracking_uri=tracking_uri, progress=progress, **rounds)
        finally:
            if reporter is not None:
                reporter.end()

    def promote(self, *, tracking_uri: str | None = None) -> PromoteResult:
        """Make the challenger the champion if it beats the champion on the current holdout."""
        from lakeforge.ml.registry import promote

        return promote(self.workspace, tracking_uri=tracking_uri)

    def champion(self, *, tracking_uri: str | None = None) -> str | None:
        """The registered version the ``champion`` alias points at (None: no champion yet)."""
        from lakeforge.ml.registry import champion_version

        return champion_version(self.workspace, tracking_uri=tracking_uri)

    def registered_models(self, *, tracking_uri: str | None = None) -> list[RegisteredVersion]:
        """The registered versions of the project's model, with aliases and holdout metrics."""
        from lakeforge.ml.registry import models

        return models(self.workspace, tracking_uri=tracking_uri)

    @staticmethod
    def evaluate(dataset: str, *, data_dir: Path, subset: str = "FD001", seed: int = 42,
                 work_dir: Path | None = None, streams: str | None = None,
                 folds: int = 0) -> CmapssEvaluation | NabEvaluation:
        """A public benchmark (``cmapss``: remaining useful life; ``nab``: anomaly windows over a corpus, every
        stream or those matching the glob ``streams``); needs no project (C-MAPSS builds one, in ``work_dir`` when
        given, else in a temporary folder; ``folds`` > 0 also cross-validates it by engine on the training set)."""
        if dataset == "cmapss":
            from lakeforge.ml.cmapss import evaluate as evaluate_cmapss

            return evaluate_cmapss(data_dir, load=Project.cmapss_features, subset=subset, seed=seed,
                                   work_dir=work_dir, folds=folds)
        if dataset == "nab":
            from lakeforge.ml.nab_eval import evaluate as evaluate_nab

            return evaluate_nab(data_dir, streams=streams)
        raise LakeforgeError(f"unknown dataset {dataset!r}", hint="use --dataset cmapss or --dataset nab")

    @staticmethod
    def cmapss_features(files: dict[str, Path], subset: str, folder: Path) -> tuple[pa.Table, dict[str, float]]:
        """The C-MAPSS example project in ``folder`` with a subset's ``files`` landed (copied; the originals are
        only read), run; its gold.cycle_features (checked: silver.rul against the RUL file line by line) and the
        pipeline's seconds."""
        from lakeforge.ml import cmapss

        started = time.perf_counter()
        with Project.init(folder, example=cmapss.EXAMPLE) as project:
            landing = project.landing.local_path()
            landing.mkdir(parents=True, exist_ok=True)
            for path in files.values():
                shutil.copyfile(path, landing / path.name)
            result = project.run()
            if result.status != "succeeded":
                raise LakeforgeError(f"the C-MAPSS pipeline failed at {result.failed_stage}: {result.error}")
            seconds = time.perf_counter() - started
            cmapss.check_rul_units(project.table(cmapss.RUL_TABLE), files["rul"], subset)
            return project.table(cmapss.FEATURES_TABLE), {"pipeline_seconds": seconds}

    def write_iam_policy(self, path: Path) -> None:
        from lakeforge.deploy import write_policy

        write_policy(self.iam_policy(), path)

    def deploy_airflow(self, *, out: Path | None = None, lakeforge_bin: str | None = None) -> tuple[str, Path]:
        """The Airflow DAG file, one task per stage: its id and where it was written."""
        from lakeforge.deploy.airflow import dag_id, write_dag

        return dag_id(self.workspace), write_dag(self.workspace, out=out or self.path / "deploy" / "airflow",
                                       lakeforge_bin=lakeforge_bin)

    def deploy_databricks(self, *, out: Path | None = None, kind: str = "job",
                          target: str = "databricks") -> Written:
        """A Databricks Asset Bundle (``kind`` job or pipeline), or a pipeline open-source Spark runs."""
        from lakeforge.deploy.databricks import write_job_bundle
        from lakeforge.deploy.pipeline import TARGETS, default_out, write_pipeline

        if kind not in ("job", "pipeline") or target not in TARGETS:
            raise ConfigError(f"--as {kind} --target {target} is not a known combination",
                              hint="use --as job, --as pipeline, or --as pipeline --target spark")
        if kind == "job":
            if target != "databricks":
                raise ConfigError("--target is for --as pipeline", hint="a job bundle always targets Databricks")
            return write_job_bundle(self.workspace, out or self.path / "deploy" / "databricks")
        return write_pipeline(self.workspace, out or default_out(self.workspace, target=target), target=target)

    def import_gx(self, suite: Path, *, model: str | None = None, action: str = "warn"
                  ) -> tuple[ImportResult, Path | None]:
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

        serve(self.workspace, host=host, port=port, scheduler=scheduler)
