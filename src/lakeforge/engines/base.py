"""The engine boundary: what the runner asks of a compute engine, and what an engine declares it can do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from lakeforge.config.models import DuckDBEngineConfig, SourceConfig
from lakeforge.quality import Expectation, RuleResult
from lakeforge.storage import FileInfo, Location

# A relation handed to an engine: anything Arrow can stream (pyarrow Table or Dataset).
Relation = Any


@dataclass(frozen=True)
class EngineCapabilities:
    name: str
    formats: tuple[str, ...]
    arrow_native: bool
    distributed: bool


@dataclass
class FileRead:
    """What reading one batch of landing files gave: the rows, and the files that could not be read."""

    table: pa.Table | None
    rows_per_file: dict[str, int]
    bad_files: dict[str, str]  # path -> reason


@dataclass
class ModelOutput:
    kept: pa.Table
    quarantined: pa.Table | None
    rows_in: int
    rows_dropped: int
    rules: list[RuleResult] = field(default_factory=list)
    dropped_by: dict[str, int] = field(default_factory=dict)  # reason -> rows


class Engine(Protocol):
    capabilities: EngineCapabilities

    def read_files(self, files: list[FileInfo], *, location: Location, source: SourceConfig) -> FileRead: ...

    def run_model(
        self,
        sql: str,
        *,
        model: str,
        relations: Mapping[str, Relation],
        expectations: list[tuple[Expectation, str]],
        unique_key: list[str],
        latest_by: str | None,
    ) -> ModelOutput: ...

    def register(self, alias: str, relation: Relation) -> None: ...

    def query_arrow(self, sql: str, *, relations: Mapping[str, Relation]) -> pa.Table: ...

    def close(self) -> None: ...


def create_engine(config: DuckDBEngineConfig) -> Engine:
    if config.type == "duckdb":
        from lakeforge.engines.duckdb import DuckDBEngine

        return DuckDBEngine(config)
    raise AssertionError(config.type)  # pragma: no cover - pydantic rejects other types
