"""What SQL warehouses (Snowflake, PostgreSQL) share: the load plan, the statements, the ledger.

A load of gold table ``gold.x`` at Delta version ``v`` (the warehouse's ledger says ``u`` was loaded):

1. **Plan** (:meth:`SqlWarehouse.plan`): ``u`` counts only when the ledger row names this very Delta table (its
   id; a lakehouse deleted and created again, or another one, starts from nothing: a full load).
   ``v <= u`` and the target exists: skipped. Else *incremental* when the
   target exists with gold's columns, gold has a key and no row was deleted in ``u+1..v`` (the change data feed
   gives the rows to upsert); else *full* (the whole table at ``v``).
2. **Stage**: the rows go to a staging table, tagged with the batch (``_lf_batch``: ``x:v<u+1>-v<v>``) and their
   order in it (``_lf_seq``). How is the backend's business (Snowflake: Parquet, PUT, COPY INTO naming the
   files; PostgreSQL: COPY FROM STDIN).
3. **Apply, in one transaction**: MERGE on the business key from the batch with duplicate keys resolved first
   (the last row of a key wins), or for a full load DELETE + INSERT; the batch's staging rows are deleted;
   the ledger row is upserted. A load that dies anywhere before COMMIT leaves target and ledger as they were,
   so the next run redoes it; one that dies after leaves them both done, so the next run skips it.

Every statement goes through :meth:`SqlWarehouse.execute`, which records it (``statements``): the golden SQL
tests compare that record with files, per dialect.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import sqlglot
from sqlglot import exp

from lakeforge import sql as quoting
from lakeforge.errors import WarehouseError
from lakeforge.lakehouse import Catalog
from lakeforge.warehouses.base import LEDGER, Loaded, LoadResult, WarehouseCapabilities, resume_from

BATCH = "_lf_batch"
SEQ = "_lf_seq"
_SAFE = re.compile(r"^[a-z_][a-z0-9_]*$")
LEDGER_COLUMNS = ["table_name", "source_table", "source_version", "row_count", "load_mode", "run_id", "loaded_at",
                  "source_id"]


def ident(name: str, dialect: str) -> str:
    """An identifier, unquoted when it is a plain lower-case name (so Snowflake folds it to upper case and BI tools
    need no quotes), quoted otherwise (by :func:`lakeforge.sql.ident`)."""
    if _SAFE.match(name) and name.upper() not in _RESERVED:
        return name
    return quoting.ident(name, dialect=dialect)


# Reserved in Snowflake or PostgreSQL: such a column name is quoted (everything else stays unquoted, so
# Snowflake folds it to upper case like the names in every report and BI query).
_RESERVED_WORDS = """ALL ALTER ANALYSE ANALYZE AND ANY ARRAY AS ASC ASYMMETRIC BETWEEN BOTH BY CASE CAST CHECK COLLATE
COLUMN CONNECT CONSTRAINT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DEFAULT
DEFERRABLE DELETE DESC DISTINCT DO DROP ELSE END EXCEPT EXISTS FALSE FETCH FOLLOWING FOR FOREIGN FROM FULL GRANT
GROUP HAVING ILIKE IN INCREMENT INITIALLY INNER INSERT INTERSECT INTO IS JOIN LATERAL LEADING LEFT LIKE LIMIT
LOCALTIME LOCALTIMESTAMP MINUS NATURAL NOT NULL OF OFFSET ON ONLY OR ORDER PLACING PRIMARY QUALIFY REFERENCES REGEXP
RETURNING REVOKE RIGHT RLIKE ROW ROWS SAMPLE SELECT SESSION_USER SET SOME START SYMMETRIC TABLE TABLESAMPLE THEN TO
TRAILING TRIGGER TRUE TRY_CAST UNION UNIQUE UPDATE USER USING VALUES VARIADIC WHEN WHENEVER WHERE WINDOW WITH"""
_RESERVED = frozenset(_RESERVED_WORDS.split())


def literal(value: Any, dialect: str) -> str:
    """A literal of the warehouse's dialect (:func:`lakeforge.sql.literal`); a value of no SQL type as its text."""
    if not isinstance(value, int | float | str | dt.date) and value is not None:
        value = str(value)
    return quoting.literal(value, dialect=dialect)


def sql_type(dtype: pa.DataType, dialect: str) -> str:
    """The warehouse column type of an Arrow type."""
    if pa.types.is_boolean(dtype):
        name = "BOOLEAN"
    elif pa.types.is_integer(dtype):
        name = "BIGINT" if dtype.bit_width > 32 else "INT"
    elif pa.types.is_floating(dtype):
        name = "DOUBLE"
    elif pa.types.is_decimal(dtype):
        name = f"DECIMAL({dtype.precision}, {dtype.scale})"
    elif pa.types.is_date(dtype):
        name = "DATE"
    elif pa.types.is_timestamp(dtype):
        name = "TIMESTAMPTZ" if dtype.tz else "TIMESTAMP"
    elif pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        name = "VARCHAR"
    elif pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        name = "VARBINARY"
    else:
        raise WarehouseError(f"the column type {dtype} has no warehouse type",
                             hint="cast it in the gold model to a scalar type (string, bigint, double, ...)")
    return exp.DataType.build(name, dialect="duckdb").sql(dialect=dialect)


@dataclass
class LoadPlan:
    gold_table: str
    target: str  # the warehouse table (gold's name without the layer)
    mode: str  # "full" | "incremental"
    from_version: int  # the version loaded before (-1: none)
    to_version: int
    keys: list[str]
    cluster_by: list[str]
    data: pa.Table  # the rows to load, gold's columns
    create: bool  # (re)create the target first
    run_id: str
    source_id: str | None = None  # the gold table's Delta id, kept in the ledger

    @property
    def batch(self) -> str:
        return f"{self.target}:v{self.from_version + 1}-v{self.to_version}"

    @property
    def staging(self) -> str:
        return f"_lf_stage_{self.target}"

    def tagged(self) -> pa.Table:
        """The rows with their batch and their order in it (the last row of a key wins)."""
        n = self.data.num_rows
        return self.data.append_column(BATCH, pa.array([self.batch] * n, pa.string())).append_column(
            SEQ, pa.array(range(n), pa.int64()))


class Statements:
    """The SQL of a load, in one dialect. Pure functions of their arguments: the golden files test them."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def q(self, name: str) -> str:
        return ident(name, self.dialect)

    def lit(self, value: Any) -> str:
        return literal(value, self.dialect)

    def columns(self, schema: pa.Schema) -> str:
        return ", ".join(f"{self.q(f.name)} {sql_type(f.type, self.dialect)}" for f in schema)

    def ledger_ddl(self) -> str:
        t = sql_type
        return (f"CREATE TABLE IF NOT EXISTS {LEDGER} (table_name {t(pa.string(), self.dialect)} PRIMARY KEY, "
                f"source_table {t(pa.string(), self.dialect)}, source_version {t(pa.int64(), self.dialect)}, "
                f"row_count {t(pa.int64(), self.dialect)}, load_mode {t(pa.string(), self.dialect)}, "
                f"run_id {t(pa.string(), self.dialect)}, loaded_at {t(pa.timestamp('us', 'UTC'), self.dialect)}, "
                f"source_id {t(pa.string(), self.dialect)})")

    def ledger_add_source_id(self) -> str:
        """A ledger of an older lakeforge gains the column (its rows keep NULL: each table is loaded in full)."""
        return f"ALTER TABLE {LEDGER} ADD COLUMN IF NOT EXISTS source_id {sql_type(pa.string(), self.dialect)}"

    def ledger_read(self, *, source_id: bool = True) -> str:
        return f"SELECT source_table, source_version, {'source_id' if source_id else 'NULL'} FROM {LEDGER}"

    def drop_table(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS {self.q(name)}"

    def create_target(self, plan: LoadPlan) -> str:
        key = f", PRIMARY KEY ({', '.join(self.q(k) for k in plan.keys)})" if plan.keys else ""
        return f"CREATE TABLE IF NOT EXISTS {self.q(plan.target)} ({self.columns(plan.data.schema)}{key})"

    def create_staging(self, plan: LoadPlan) -> str:
        return f"CREATE TABLE IF NOT EXISTS {self.q(plan.staging)} ({self.columns(plan.tagged().schema)})"

    def _batch_rows(self, plan: LoadPlan, *, dedup: bool) -> str:
        cols = ", ".join(self.q(c) for c in plan.data.column_names)
        where = f"WHERE {BATCH} = {self.lit(plan.batch)}"
        if not (dedup and plan.keys):
            return f"SELECT {cols} FROM {self.q(plan.staging)} {where}"
        keys = ", ".join(self.q(k) for k in plan.keys)
        return (f"SELECT {cols} FROM (SELECT {cols}, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {SEQ} DESC) "
                f"AS _lf_rank FROM {self.q(plan.staging)} {where}) AS _lf_batch_rows WHERE _lf_rank = 1")

    def merge(self, plan: LoadPlan) -> str:
        cols = plan.data.column_names
        on = " AND ".join(f"t.{self.q(k)} = s.{self.q(k)}" for k in plan.keys)
        update = ", ".join(f"{self.q(c)} = s.{self.q(c)}" for c in cols if c not in plan.keys)
        matched = f" WHEN MATCHED THEN UPDATE SET {update}" if update else ""
        return (f"MERGE INTO {self.q(plan.target)} AS t USING ({self._batch_rows(plan, dedup=True)}) AS s "
                f"ON {on}{matched} WHEN NOT MATCHED THEN INSERT ({', '.join(self.q(c) for c in cols)}) "
                f"VALUES ({', '.join('s.' + self.q(c) for c in cols)})")

    def upsert_on_conflict(self, plan: LoadPlan) -> str:
        cols = plan.data.column_names
        update = ", ".join(f"{self.q(c)} = EXCLUDED.{self.q(c)}" for c in cols if c not in plan.keys)
        action = f"DO UPDATE SET {update}" if update else "DO NOTHING"
        return (f"INSERT INTO {self.q(plan.target)} ({', '.join(self.q(c) for c in cols)}) "
                f"{self._batch_rows(plan, dedup=True)} "
                f"ON CONFLICT ({', '.join(self.q(k) for k in plan.keys)}) {action}")

    def delete_all(self, plan: LoadPlan) -> str:
        return f"DELETE FROM {self.q(plan.target)}"

    def insert_all(self, plan: LoadPlan) -> str:
        cols = ", ".join(self.q(c) for c in plan.data.column_names)
        return f"INSERT INTO {self.q(plan.target)} ({cols}) {self._batch_rows(plan, dedup=bool(plan.keys))}"

    def clear_staging(self, plan: LoadPlan) -> str:
        return f"DELETE FROM {self.q(plan.staging)} WHERE {BATCH} = {self.lit(plan.batch)}"

    def ledger_values(self, plan: LoadPlan, rows: int) -> list[str]:
        return [self.lit(plan.target), self.lit(plan.gold_table), self.lit(plan.to_version), self.lit(rows),
                self.lit(plan.mode), self.lit(plan.run_id), "CURRENT_TIMESTAMP", self.lit(plan.source_id)]

    def ledger_merge(self, plan: LoadPlan, rows: int) -> str:
        cols = [self.q(n) for n in LEDGER_COLUMNS]
        select = ", ".join(f"{v} AS {c}" for v, c in zip(self.ledger_values(plan, rows), cols, strict=True))
        update = ", ".join(f"{c} = s.{c}" for c in cols[1:])
        return (f"MERGE INTO {LEDGER} AS t USING (SELECT {select}) AS s ON t.table_name = s.table_name "
                f"WHEN MATCHED THEN UPDATE SET {update} "
                f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) VALUES ({', '.join('s.' + c for c in cols)})")

    def ledger_on_conflict(self, plan: LoadPlan, rows: int) -> str:
        cols = [self.q(n) for n in LEDGER_COLUMNS]
        update = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols[1:])
        return (f"INSERT INTO {LEDGER} ({', '.join(cols)}) VALUES ({', '.join(self.ledger_values(plan, rows))}) "
                f"ON CONFLICT (table_name) DO UPDATE SET {update}")

    def transpile(self, sql: str, *, read: str) -> str:
        """A query written in ``read`` (the project's dialect), in this warehouse's dialect."""
        return ";\n".join(sqlglot.transpile(sql, read=read, write=self.dialect))


class SqlWarehouse(ABC):
    """The load algorithm for warehouses reached over a DB-API connection; backends stage and apply."""

    capabilities: ClassVar[WarehouseCapabilities]
    read_only: bool = False

    def __init__(self) -> None:
        self.sql = Statements(self.capabilities.dialect)
        self.statements: list[str] = []  # every statement sent, in order (golden SQL tests, --debug)

    # -- the backend's part --------------------------------------------------------------------------------
    @abstractmethod
    def _execute(self, sql: str) -> None: ...

    @abstractmethod
    def _fetch(self, sql: str) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def table_columns(self, name: str) -> list[str] | None:
        """The table's columns (lower case), None when it does not exist."""

    @abstractmethod
    def apply(self, plan: LoadPlan) -> int:
        """Stage and apply ``plan``: data and ledger in one transaction. Returns the rows loaded."""

    @abstractmethod
    def query(self, sql: str) -> pa.Table: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]: ...

    # -- shared -------------------------------------------------------------------------------------------
    def execute(self, sql: str) -> None:
        self.statements.append(sql)
        self._execute(sql)

    def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        self.statements.append(sql)
        return self._fetch(sql)

    def ledger(self) -> dict[str, Loaded]:
        columns = self.table_columns(LEDGER)
        if columns is None:
            return {}
        has_id = "source_id" in columns
        if not has_id and not self.read_only:
            self.execute(self.sql.ledger_add_source_id())
            has_id = True
        return {str(name): Loaded(int(version), None if sid is None else str(sid))
                for name, version, sid in self.fetch(self.sql.ledger_read(source_id=has_id))}

    def loaded_versions(self) -> dict[str, int]:
        return {name: loaded.version for name, loaded in self.ledger().items()}

    def plan(self, gold_table: str, *, catalog: Catalog, keys: Sequence[str], run_id: str,
             cluster_by: Sequence[str] = ()) -> LoadPlan | None:
        """What a load of ``gold_table`` must do now; None when the warehouse already holds its version."""
        target = gold_table.split(".", 1)[1]
        version, source_id = catalog.identity(gold_table)
        current = self.table_columns(target)
        ledger = self.ledger()  # read for a new target too: it brings an older ledger's columns up to date
        loaded = resume_from(ledger.get(gold_table), source_id) if current is not None else -1
        if version <= loaded:
            return None
        gold_columns = [c.lower() for c in catalog.table(gold_table, version=version).schema().to_arrow().names]
        mode, create = "full", current is None or current != gold_columns
        data: pa.Table | None = None
        if not create and keys and loaded >= 0:
            changes, has_deletes = catalog.changes(gold_table, since=loaded, until=version, keys=list(keys))
            if not has_deletes:
                mode, data = "incremental", changes
        if data is None:
            data = catalog.dataset(gold_table, version=version).to_table()
        return LoadPlan(gold_table=gold_table, target=target, mode=mode, from_version=loaded, to_version=version,
                        keys=list(keys), cluster_by=[c for c in cluster_by if c in data.column_names],
                        data=data, create=create, run_id=run_id, source_id=source_id)

    def load(self, gold_table: str, *, catalog: Catalog, keys: list[str], run_id: str,
             cluster_by: Sequence[str] = ()) -> LoadResult:
        started = time.perf_counter()
        plan = self.plan(gold_table, catalog=catalog, keys=keys, run_id=run_id, cluster_by=cluster_by)
        if plan is None:
            loaded = self.loaded_versions().get(gold_table, -1)
            return LoadResult(gold_table.split(".", 1)[1], "skipped", loaded, loaded, 0,
                              time.perf_counter() - started)
        rows = self.apply(plan)
        return LoadResult(plan.target, plan.mode, plan.from_version, plan.to_version, rows,
                          time.perf_counter() - started)
