"""The warehouse boundary.

A load is keyed by the gold table and the Delta version range it covers; the warehouse keeps a ledger
(``_lakeforge_loads``) updated in the same transaction as the data, so a retried or resumed load changes
nothing. The ledger also names the Delta table a version came from (its id): versions of a lakehouse deleted
and created again, or of another lakehouse, mean nothing here, and such a table is loaded in full. What a
warehouse supports is declared as data (:class:`WarehouseCapabilities`); drivers are imported only when their
warehouse is used, and a missing one names its pip extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from lakeforge.config.models import WarehouseConfig
from lakeforge.errors import MissingDependency
from lakeforge.lakehouse import Catalog

if TYPE_CHECKING:
    import pyarrow as pa

    from lakeforge.duckdb_connect import DuckDBSettings

LEDGER = "_lakeforge_loads"


@dataclass(frozen=True)
class WarehouseCapabilities:
    name: str
    dialect: str  # sqlglot dialect of the warehouse's SQL
    transactions: bool  # data and ledger commit together
    merge: bool  # MERGE INTO on business keys (else DELETE + INSERT, or INSERT ... ON CONFLICT)
    clustering: bool  # clustering keys on tables
    materialized_views: bool
    dynamic_tables: bool = False
    staging: Literal["arrow", "copy", "stage_files"] = "arrow"  # how data reaches the staging table
    query_tags: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Loaded:
    """A ledger row: the version of a gold table the warehouse holds, and the Delta table it came from."""

    version: int
    source_id: str | None  # the Delta table's id; None in a ledger row written before ids were kept


def resume_from(loaded: Loaded | None, source_id: str | None) -> int:
    """The version a load continues from: the ledger's when it came from this very Delta table, else -1 (a load
    in full). A ledger row without an id (an older lakeforge) is not trusted either: one full load records it."""
    if loaded is None or source_id is None or loaded.source_id != source_id:
        return -1
    return loaded.version


@dataclass
class LoadResult:
    table: str
    mode: str  # "full" | "incremental" | "skipped"
    from_version: int
    to_version: int
    rows: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "mode": self.mode, "from_version": self.from_version,
                "to_version": self.to_version, "rows": self.rows, "seconds": round(self.seconds, 3)}


class Warehouse(Protocol):
    capabilities: WarehouseCapabilities

    def load(self, gold_table: str, *, catalog: Catalog, keys: list[str], run_id: str,
             cluster_by: Sequence[str] = ()) -> LoadResult: ...

    def query(self, sql: str) -> pa.Table: ...

    def create_view(self, name: str, sql: str) -> None: ...

    def create_report(self, name: str, sql: str) -> None: ...

    def refresh_reports(self, names: Sequence[str]) -> None: ...

    def ledger(self) -> dict[str, Loaded]: ...

    def loaded_versions(self) -> dict[str, int]: ...

    def close(self) -> None: ...


# type -> (module, class, pip extra naming the driver)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "duckdb": ("lakeforge.warehouses.duckdb", "DuckDBWarehouse", None),
    "snowflake": ("lakeforge.warehouses.snowflake", "SnowflakeWarehouse", "snowflake"),
    "postgres": ("lakeforge.warehouses.postgres", "PostgresWarehouse", "postgres"),
}


def create_warehouse(config: WarehouseConfig, *, base_dir: Path, read_only: bool = False,
                     project: str = "lakeforge", duckdb_settings: DuckDBSettings | None = None) -> Warehouse:
    """The warehouse ``config`` names, connected; ``duckdb_settings`` (the engine settings of lakeforge.yml) are
    those of a DuckDB warehouse's connection, which the other backends have no use for."""
    module, cls, extra = BACKENDS[config.type]
    try:
        backend = getattr(importlib.import_module(module), cls)
    except ImportError as exc:  # the backend's driver is missing
        raise MissingDependency(
            f"warehouse: {{type: {config.type}}} needs a driver that is not installed ({exc.name or exc})",
            hint=f"pip install 'lakeforge[{extra}]'" if extra else "reinstall lakeforge") from None
    options = {"duckdb_settings": duckdb_settings} if config.type == "duckdb" and duckdb_settings else {}
    return backend(config, base_dir=base_dir, read_only=read_only, project=project, **options)
