"""The warehouse boundary.

A load is keyed by the gold table and the Delta version range it covers; the warehouse keeps a ledger
(``_lakeforge_loads``) updated in the same transaction as the data, so a retried or resumed load changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from lakeforge.config.models import DuckDBWarehouseConfig
from lakeforge.lakehouse import Catalog


@dataclass(frozen=True)
class WarehouseCapabilities:
    name: str
    transactions: bool
    merge: bool
    clustering: bool
    materialized_views: bool


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

    def load(self, gold_table: str, *, catalog: Catalog, keys: list[str], run_id: str) -> LoadResult: ...

    def query(self, sql: str) -> pa.Table: ...

    def create_view(self, name: str, sql: str) -> None: ...

    def loaded_versions(self) -> dict[str, int]: ...

    def close(self) -> None: ...


def create_warehouse(config: DuckDBWarehouseConfig, *, base_dir: Path, read_only: bool = False) -> Warehouse:
    if config.type == "duckdb":
        from lakeforge.warehouses.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(config, base_dir=base_dir, read_only=read_only)
    raise AssertionError(config.type)  # pragma: no cover - pydantic rejects other types
