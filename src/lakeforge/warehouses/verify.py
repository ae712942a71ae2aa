"""``lakeforge warehouse verify``: is every warehouse table what gold says it is?

For each gold table the warehouse has loaded (its ledger), both sides are read as Arrow and checked by the
embedded engine with the same functions, so the check means the same on any warehouse: row counts, and per
partition (the first date or timestamp column, by month; else a bucket of the key) a row count and an
order-independent checksum of every row's values as text. A difference names the table and the partitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

import pyarrow as pa

from lakeforge.engines.base import Engine
from lakeforge.lakehouse import Catalog
from lakeforge.sql import DUCKDB
from lakeforge.warehouses.base import Warehouse
from lakeforge.warehouses.sql import ident

BUCKETS = 16


class PartitionDiff(TypedDict):
    """A partition whose rows differ (``(columns)``: the column sets differ; the rows are the column counts)."""

    partition: str
    gold_rows: int
    warehouse_rows: int


class TableCheckDict(TypedDict):
    """A table's line of ``lakeforge warehouse verify`` (:meth:`TableCheck.to_dict`)."""

    table: str
    ok: bool
    gold_rows: int
    warehouse_rows: int
    partitions: int
    differing: list[PartitionDiff]
    stale_source: bool


@dataclass
class TableCheck:
    table: str
    gold_rows: int
    warehouse_rows: int
    partitions: int
    differing: list[PartitionDiff] = field(default_factory=list)
    stale_source: bool = False  # the warehouse copy came from another Delta table than gold's (recreated)

    @property
    def ok(self) -> bool:
        return self.gold_rows == self.warehouse_rows and not self.differing and not self.stale_source

    def to_dict(self) -> TableCheckDict:
        return {"table": self.table, "ok": self.ok, "gold_rows": self.gold_rows,
                "warehouse_rows": self.warehouse_rows, "partitions": self.partitions, "differing": self.differing,
                "stale_source": self.stale_source}


def partition_expr(schema: pa.Schema, keys: list[str]) -> str:
    """The partition a row belongs to, as text: its month by the first date/timestamp column, else a hash bucket
    of the key (or of the whole row)."""
    for f in schema:
        if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type):
            return f"CAST(date_trunc('month', {DUCKDB.ident(f.name)}) AS VARCHAR)"
    by = ", ".join(map(DUCKDB.ident, [k for k in keys if k in schema.names] or schema.names))
    return f"CAST(hash({by}) % {BUCKETS} AS VARCHAR)"


def checksums(engine: Engine, table: pa.Table, *, columns: list[str], partition: str) -> dict[str, tuple[int, int]]:
    """Partition -> (rows, checksum of the rows' values as text), computed by the embedded engine."""
    engine.register("__lf_verify", table)
    values = ", ".join(f"coalesce(CAST({DUCKDB.ident(c)} AS VARCHAR), '\\0')" for c in columns) or "''"
    sql = (f"SELECT {partition} AS p, count(*) AS n, bit_xor(hash(concat_ws('\\x1f', {values}))) AS h "
           "FROM __lf_verify GROUP BY ALL")
    rows = engine.to_arrow(engine.query(sql, relations={})).to_pylist()
    return {str(r["p"]): (int(r["n"]), int(r["h"] or 0)) for r in rows}


def verify(warehouse: Warehouse, *, catalog: Catalog, engine: Engine, tables: dict[str, list[str]]
           ) -> list[TableCheck]:
    """Every loaded gold table (``tables``: gold name -> unique key) against its warehouse copy: gold at the
    version the ledger holds, or at its latest when the ledger's copy came from another Delta table (a lakehouse
    deleted and created again; a ledger row without an id, from an older lakeforge, is taken at its word)."""
    ledger = warehouse.ledger()
    checks = []
    for name, keys in tables.items():
        if name not in ledger:
            continue
        version, source_id = catalog.identity(name)
        stale = ledger[name].source_id is not None and ledger[name].source_id != source_id
        gold = catalog.dataset(name, version=version if stale else ledger[name].version).to_table()
        # the table's name as the warehouse's loads wrote it (Snowflake folds unquoted names to upper case)
        copy = warehouse.query(f"SELECT * FROM {ident(name.split('.', 1)[1], warehouse.capabilities.dialect)}")
        columns = [c for c in gold.column_names if c in copy.column_names]
        partition = partition_expr(gold.schema, keys)
        ours = checksums(engine, gold, columns=columns, partition=partition)
        theirs = checksums(engine, copy, columns=columns, partition=partition)
        differing: list[PartitionDiff] = [
            {"partition": p, "gold_rows": ours.get(p, (0, 0))[0], "warehouse_rows": theirs.get(p, (0, 0))[0]}
            for p in sorted(set(ours) | set(theirs)) if ours.get(p) != theirs.get(p)]
        if set(gold.column_names) != set(copy.column_names):
            differing.insert(0, {"partition": "(columns)", "gold_rows": gold.num_columns,
                                 "warehouse_rows": copy.num_columns})
        checks.append(TableCheck(table=name, gold_rows=gold.num_rows, warehouse_rows=copy.num_rows,
                                 partitions=len(set(ours) | set(theirs)), differing=differing, stale_source=stale))
    return checks
