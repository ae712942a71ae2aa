"""The engine boundary: what the runner asks of a compute engine, and what an engine declares it can do."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from lakeforge.config.models import EngineConfig, SourceConfig
from lakeforge.quality import Expectation, RuleResult
from lakeforge.storage import FileInfo, Location

if TYPE_CHECKING:
    import pyarrow as pa

    from lakeforge.lakehouse import Catalog

# A relation handed to an engine: for DuckDB anything Arrow can stream (pyarrow Table, Dataset, reader); for
# Spark a DataFrame. Only the engine that made a relation looks inside it.
Relation = Any


@dataclass(frozen=True)
class EngineCapabilities:
    name: str
    formats: tuple[str, ...]
    arrow_native: bool
    distributed: bool
    dialect: str  # sqlglot dialect the engine runs


@dataclass(frozen=True)
class ReadPlan:
    """How to read a batch of landing files into bronze."""

    types: Mapping[str, str] = field(default_factory=dict)  # column -> type; values that do not fit are rescued
    rescue: tuple[str, ...] = ()  # columns packed whole into ``_rescued_data`` (schema_evolution: rescue)
    ignore: tuple[str, ...] = ()  # columns left out (schema_evolution: none)
    columns: tuple[str, ...] = ()  # the batch's columns as described (saves a second look at JSON files)
    typed_read: bool = False  # JSON: let the reader parse the typed columns directly (fails on a misfit)


@dataclass(frozen=True)
class Claimed:
    """A micro-batch a stream may commit: its batch id, its files in commit order, its ingestion time."""

    batch_id: int
    files: list[FileInfo]
    ingested_at: dt.datetime


class StreamSink(Protocol):
    """One source's ingestion as an engine that ingests as a stream (Spark's available-now query) sees it: the
    schema for the backlog, where the stream keeps its checkpoint, and the exactly-once commit of each
    micro-batch (:class:`lakeforge.ingest.Ingestor` is one)."""

    name: str
    source: SourceConfig
    landing: Location

    def stream_plan(self, backlog: list[FileInfo]) -> ReadPlan:
        """The schema (and its evolution) for the whole backlog."""
        ...

    def stream_checkpoint(self) -> str:
        """The URI of the stream's own checkpoint folder."""
        ...

    def claim(self, files: list[FileInfo]) -> Claimed | None:
        """Record a micro-batch's files not recorded yet as the next batch (its manifest), or None when every
        file is recorded already (a replay)."""
        ...

    def append(self, data: Any, *, batch_id: int) -> int:
        """Commit a claimed batch's rows to bronze, once per batch id; the rows written."""
        ...


@dataclass
class ModelOutput:
    """Counts of one model run, and its rows as streams (call each once; then ``release``)."""

    rows_in: int
    rows_kept: int
    rows_quarantined: int
    rows_dropped: int
    rules: list[RuleResult]
    dropped_by: dict[str, int]  # reason -> rows
    kept: Callable[[], Relation]  # DuckDB: a RecordBatchReader; Spark: a DataFrame
    quarantined: Callable[[], Relation]
    release: Callable[[], None] = field(default=lambda: None)
    schema: pa.Schema | None = None  # the kept rows' schema


class Engine(Protocol):
    capabilities: EngineCapabilities

    @property
    def local(self) -> Engine:
        """The embedded engine beside it, for small driver-side work (schema sniffing, SCD2 history)."""
        ...

    def catalog(self, location: Location) -> Catalog:
        """The catalog that writes this engine's relations to Delta tables."""
        ...

    def rows(self, relation: Relation) -> int: ...

    def materialize(self, relation: Relation) -> Relation:
        """A relation that can be read more than once (a stream is read into memory)."""
        ...

    def to_arrow(self, relation: Relation) -> pa.Table: ...

    def query(self, sql: str, *, relations: Mapping[str, Relation]) -> Relation:
        """SQL (in the engine's dialect) over registered relations, as a relation of this engine."""
        ...

    def describe_files(self, files: list[FileInfo], *, location: Location, source: SourceConfig) -> dict[str, str]: ...

    def scan_files(self, files: list[FileInfo], *, location: Location, source: SourceConfig, plan: ReadPlan,
                   batch_id: int, ingested_at: dt.datetime) -> pa.RecordBatchReader: ...

    def check_files(self, files: list[FileInfo], *, location: Location, source: SourceConfig,
                    plan: ReadPlan) -> dict[str, str]: ...

    def is_bad_input(self, exc: BaseException) -> bool: ...

    def typed_schema(self, types: Mapping[str, str]) -> pa.Schema: ...

    def run_model(
        self,
        sql: str,
        *,
        model: str,
        relations: Mapping[str, Relation],
        expectations: list[tuple[Expectation, str]],
        unique_key: list[str],
        order_by: list[str],
        keep: Literal["first", "last"],
    ) -> ModelOutput: ...

    def register(self, alias: str, relation: Relation) -> None: ...

    def query_arrow(self, sql: str, *, relations: Mapping[str, Relation]) -> pa.Table: ...

    def close(self) -> None: ...


def create_engine(config: EngineConfig, *, base_dir: str | None = None) -> Engine:
    """The engine a config names; drivers are imported only here (a missing one names its pip extra)."""
    if config.type == "duckdb":
        from lakeforge.engines.duckdb import DuckDBEngine

        return DuckDBEngine(config)
    if config.type == "spark":
        from lakeforge.engines.spark import SparkEngine

        return SparkEngine(config, base_dir=base_dir)
    raise AssertionError(config)  # pragma: no cover - pydantic rejects other types
