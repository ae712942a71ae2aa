"""``Workspace``: a project's resources, opened — its folder, its settings (``lakeforge.yml``, resolved), the
landing zone and the lakehouse, the catalog, the engines and the warehouse connection, the models and their graph.

What the layers above receive: the pipeline (runs, backfills, the warehouse stage), the scoring stages, the services
(scheduler, alerts, metrics, lineage), the web app and the deploy targets. :class:`~lakeforge.project.Project`, the
façade, holds one and adds the commands; nothing below the façade sees it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lakeforge.config import (
    DuckDBEngineConfig,
    EngineConfig,
    ProjectConfig,
    SparkEngineConfig,
    load_config,
)
from lakeforge.config.loader import require_set
from lakeforge.engines import Engine, create_engine
from lakeforge.errors import ConfigError
from lakeforge.ingest import Ingestor
from lakeforge.lakehouse import Catalog
from lakeforge.models import Model, ModelGraph, load_models
from lakeforge.models.execute import edits, table_columns
from lakeforge.storage import open_location
from lakeforge.warehouses.base import Warehouse

if TYPE_CHECKING:
    import pyarrow as pa

    from lakeforge.warehouses.reports import Report


class Workspace:
    """A project folder's resources, opened (engines and the run catalog on first use; :meth:`close` them)."""

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

    def __enter__(self) -> Workspace:
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
        if self.config.equipment is not None:
            self._check_equipment()
        return load_models(self.path / self.config.models_path, dialect=self.config.dialect, cache=self.lakehouse,
                           required="models_path" in self.config.model_fields_set)

    def equipment_files(self, *, check: bool) -> dict[str, str]:
        """The gold models and reports of the ``equipment:`` mapping, written (or, with ``check``, compared):
        :func:`lakeforge.models.equipment.write`."""
        from lakeforge.models import equipment

        if self.config.equipment is None:
            raise ConfigError("lakeforge.yml has no equipment: mapping, so there is nothing to generate",
                              hint="add one (docs/transforms.md), or let `lakeforge init --from` propose it")
        return equipment.write(self.path, self.config.equipment, models_path=self.config.models_path,
                               reports_path=self.config.reports_path, check=check)

    def _check_equipment(self) -> None:
        stale = sorted(p for p, fate in self.equipment_files(check=True).items() if fate == "stale")
        if stale:
            raise ConfigError(f"{stale[0]} was generated from another equipment: mapping than lakeforge.yml's now"
                              + (f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""),
                              hint="run `lakeforge equipment` to rewrite the generated files, or delete a file's "
                                   "first line to keep it as yours")

    def graph(self) -> ModelGraph:
        return ModelGraph(self.models(), sources=list(self.config.sources))

    def backlog(self) -> dict[str, int]:
        """Files waiting per source (listing only; cheap enough to poll)."""
        found = {}
        for name in self.config.sources:
            files = self.ingestor(name).backlog()
            if files:
                found[name] = len(files)
        return found

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

    def warehouse(self, *, read_only: bool = False) -> Warehouse:
        """The configured warehouse, connected (close it when done)."""
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

    def table(self, name: str) -> pa.Table:
        """A lakehouse table as Arrow."""
        return self.catalog.dataset(name).to_table()


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


