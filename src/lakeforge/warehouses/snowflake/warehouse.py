"""Snowflake as warehouse: gold staged as Parquet through lakeforge's internal stage, applied in one transaction.

A load (see :mod:`lakeforge.warehouses.sql` for the plan) sends:

1. DDL, outside the transaction (Snowflake DDL commits implicitly): a new or changed target is dropped and
   created (``CLUSTER BY`` the model's ``cluster_by``), after its ledger row is deleted, so a load that dies
   later is redone in full; the staging table ``_lf_stage_<target>`` is a ``TRANSIENT`` table.
2. The batch as one Parquet file, named after the batch and its content
   (``<target>-v<from+1>-v<to>-<mode>-<digest>.parquet``): ``PUT`` to ``@_lakeforge_stage/<target>/`` without
   overwriting, ``COPY INTO`` the staging table naming that file. A retried batch finds its file in the stage
   and in the staging table's load history, so it is neither uploaded nor copied twice; when its rows are no
   longer in the staging table (a batch replayed after it was applied) it is copied again with ``FORCE``.
3. ``BEGIN``; ``MERGE`` (incremental) or ``DELETE`` + ``INSERT`` (full); the batch's staging rows deleted; the
   ledger row upserted; ``COMMIT``. Anything failing rolls back: target and ledger stay as they were.

The session carries a ``QUERY_TAG`` (JSON naming lakeforge and the project, or ``query_tag``), set at connect
and once more as a statement so it is in the record. Reports are dynamic tables (refreshed by Snowflake within
``target_lag``, or at once by :meth:`SnowflakeWarehouse.refresh_reports`), materialized views or views.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import snowflake.connector

from lakeforge import redaction
from lakeforge.config.models import SnowflakeWarehouseConfig
from lakeforge.errors import WarehouseError
from lakeforge.lakehouse import Catalog
from lakeforge.sql import ident, literal
from lakeforge.warehouses.base import LEDGER, LoadResult, WarehouseCapabilities
from lakeforge.warehouses.snowflake.auth import connect_kwargs, settings
from lakeforge.warehouses.snowflake.errors import transient
from lakeforge.warehouses.sql import BATCH, LoadPlan, SqlWarehouse

STAGE = "_lakeforge_stage"
REPORT_MARKER = "lakeforge report"
# Parquet's logical types (timestamps with their unit and zone, dates, decimals) and binary as binary: without
# them Snowflake loads zoned timestamps wrongly (snowflake-connector-python#1687) and binary as text
PARQUET = "TYPE = PARQUET USE_LOGICAL_TYPE = TRUE BINARY_AS_TEXT = FALSE"
_DROP = {"dynamic_table": "DROP DYNAMIC TABLE IF EXISTS", "materialized_view": "DROP MATERIALIZED VIEW IF EXISTS",
         "view": "DROP VIEW IF EXISTS"}
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_DRIVER_ERRORS = (snowflake.connector.errors.Error, OSError, pa.ArrowException)


def object_name(name: str) -> str:
    """A database or schema name as written in SQL: plain names unquoted (Snowflake folds them to upper case)."""
    return name if _PLAIN.match(name) else ident(name, dialect="snowflake")


def _stored(name: str, written: str) -> str:
    """The name as Snowflake stores it (what ``information_schema`` shows)."""
    return name if written.startswith('"') else name.upper()


def batch_file(plan: LoadPlan, digest: str) -> str:
    """The batch's Parquet file name: the same batch with the same rows always has the same name."""
    return f"{plan.target}-v{plan.from_version + 1}-v{plan.to_version}-{plan.mode}-{digest[:16]}.parquet"


class SnowflakeWarehouse(SqlWarehouse):
    capabilities = WarehouseCapabilities(
        name="snowflake", dialect="snowflake", transactions=True, merge=True, clustering=True,
        materialized_views=True, dynamic_tables=True, staging="stage_files", query_tags=True,
    )

    def __init__(self, config: SnowflakeWarehouseConfig, *, base_dir: Path, read_only: bool = False,
                 project: str = "lakeforge") -> None:
        super().__init__()
        self.config = config
        self.read_only = read_only
        self.where = settings(config, project=project)
        kwargs = connect_kwargs(config, project=project, base_dir=base_dir)
        self.database, self.schema = object_name(self.where.database), object_name(self.where.schema)
        self.location = f"{self.database}.{self.schema}"
        self._fresh: set[str] = set()  # reports created by this session (current: no refresh needed)
        try:
            self.con = snowflake.connector.connect(**kwargs)
        except Exception as exc:  # the driver raises many kinds; none may carry the secret on
            redaction.register([str(kwargs.get("password") or "")])
            message = redaction.redact(_one_line(exc))
            raise WarehouseError.typed(f"cannot connect to Snowflake {self.where.describe()}: {message}",
                                       hint="check the account identifier, the user and the credentials "
                                            "(SNOWFLAKE_* variables or warehouse: in lakeforge.yml)",
                                       transient=transient(exc)) from None
        self.cursor = self.con.cursor()
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        if self.read_only:
            try:
                self.execute(f"USE SCHEMA {self.location}")
            except _DRIVER_ERRORS as exc:
                raise WarehouseError.typed(f"the Snowflake schema {self.location} cannot be used: {exc}",
                                           hint="run `lakeforge run` to create and load it (or check the role's "
                                                "grants on it)", transient=transient(exc)) from None
            return
        # a role without CREATE DATABASE may still use an existing database: CREATE SCHEMA tells
        with suppress(snowflake.connector.errors.ProgrammingError):
            self.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        steps = [f"CREATE SCHEMA IF NOT EXISTS {self.location}",
                 f"USE SCHEMA {self.location}",
                 f"ALTER SESSION SET QUERY_TAG = {self.sql.lit(self.where.query_tag)}",
                 self.sql.ledger_ddl(),
                 f"CREATE STAGE IF NOT EXISTS {STAGE} FILE_FORMAT = (TYPE = PARQUET)"]
        for sql in steps:
            try:
                self.execute(sql)
            except _DRIVER_ERRORS as exc:
                raise WarehouseError.typed(
                    f"preparing Snowflake {self.location} failed: {exc}\n  statement: {sql}",
                    hint=f"the role {self.where.role or '(the default role)'} needs CREATE SCHEMA on "
                         f"{self.database} (or create {self.location} beforehand and grant USAGE and CREATE "
                         "TABLE, VIEW, STAGE, DYNAMIC TABLE on it)", transient=transient(exc)) from None

    # -- driver -------------------------------------------------------------------------------------------
    def _execute(self, sql: str) -> None:
        self.cursor.execute(sql)

    def _fetch(self, sql: str) -> list[tuple[Any, ...]]:
        self.cursor.execute(sql)
        return [tuple(row) for row in self.cursor.fetchall()]

    def close(self) -> None:
        with suppress(Exception):
            self.con.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.execute("BEGIN")
        try:
            yield
        except BaseException:
            with suppress(Exception):
                self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    # -- tables -------------------------------------------------------------------------------------------
    def table_columns(self, name: str) -> list[str] | None:
        stored = _stored(name, self.sql.q(name))
        rows = self.fetch("SELECT column_name FROM information_schema.columns "
                          f"WHERE table_schema = {self.sql.lit(_stored(self.where.schema, self.schema))} "
                          f"AND table_name = {self.sql.lit(stored)} ORDER BY ordinal_position")
        return [str(r[0]).lower() for r in rows] or None

    def load(self, gold_table: str, *, catalog: Catalog, keys: list[str], run_id: str,
             cluster_by: Sequence[str] = ()) -> LoadResult:
        try:
            return super().load(gold_table, catalog=catalog, keys=keys, run_id=run_id, cluster_by=cluster_by)
        except _DRIVER_ERRORS as exc:  # planning: reading the ledger and the target's columns
            raise WarehouseError.typed(f"loading {gold_table} into Snowflake {self.location} failed while planning: "
                                       f"{_one_line(exc)}", hint="the warehouse is unchanged; fix the cause and "
                                       "rerun: the load resumes from the ledger", transient=transient(exc)) from None

    def apply(self, plan: LoadPlan) -> int:
        rows = plan.data.num_rows if not plan.keys or not plan.data.num_rows else \
            plan.data.select(plan.keys).group_by(plan.keys, use_threads=False).aggregate([]).num_rows
        try:
            self._prepare(plan)
            if plan.data.num_rows:
                self._stage(plan)
            with self.transaction():
                if plan.mode == "incremental":
                    self.execute(self.sql.merge(plan))
                else:
                    self.execute(self.sql.delete_all(plan))
                    self.execute(self.sql.insert_all(plan))
                self.execute(self.sql.clear_staging(plan))
                self.execute(self.sql.ledger_merge(plan, rows))
        except _DRIVER_ERRORS as exc:
            statement = self.statements[-1] if self.statements else ""
            if len(statement) > 300:
                statement = statement[:300] + " ..."
            hint = ("the warehouse is unchanged; fix the cause and rerun: the load resumes from the ledger"
                    if not plan.create else
                    f"{plan.target} was recreated and its ledger row removed; fix the cause and rerun: the "
                    "next run loads it in full")
            raise WarehouseError.typed(
                f"loading {plan.gold_table} (version {plan.to_version}) into Snowflake "
                f"{self.location}.{plan.target} failed: {_one_line(exc)}\n  statement: {statement}",
                hint=hint, transient=transient(exc)) from None
        return rows

    def _prepare(self, plan: LoadPlan) -> None:
        """The DDL of a load: a new or changed target, the staging table (each commits on its own)."""
        if plan.create:
            self.execute(f"DELETE FROM {LEDGER} WHERE table_name = {self.sql.lit(plan.target)}")
            self.execute(self.sql.drop_table(plan.target))
            ddl = self.sql.create_target(plan)
            if plan.cluster_by:
                ddl += f" CLUSTER BY ({', '.join(self.sql.q(c) for c in plan.cluster_by)})"
            self.execute(ddl)
        wanted = [c.lower() for c in plan.tagged().column_names]
        current = self.table_columns(plan.staging)
        if current is not None and current != wanted:
            self.execute(self.sql.drop_table(plan.staging))
            current = None
        if current is None:
            self.execute(self.sql.create_staging(plan).replace("CREATE TABLE", "CREATE TRANSIENT TABLE", 1))
        else:  # rows of batches that died before their COMMIT and will not come back
            self.execute(f"DELETE FROM {self.sql.q(plan.staging)} WHERE {BATCH} <> {self.sql.lit(plan.batch)}")

    def _stage(self, plan: LoadPlan) -> None:
        """The batch's rows into the staging table: Parquet, PUT, COPY INTO (once per file)."""
        staging = self.sql.q(plan.staging)
        with tempfile.TemporaryDirectory(prefix="lakeforge-snowflake-") as tmp:
            scratch = Path(tmp) / "batch.parquet"
            # microseconds: what TIMESTAMP_NTZ/TZ load exactly (nanosecond Parquet timestamps load wrongly)
            pq.write_table(plan.tagged(), scratch, coerce_timestamps="us", allow_truncated_timestamps=True)
            name = batch_file(plan, hashlib.sha256(scratch.read_bytes()).hexdigest())
            path = scratch.rename(Path(tmp) / name)
            location = f"@{STAGE}/{plan.target}/"
            uri = literal("file://" + path.resolve().as_posix(), dialect="snowflake")
            self.execute(f"PUT {uri} {location} AUTO_COMPRESS = FALSE OVERWRITE = FALSE")
            copy = (f"COPY INTO {staging} FROM {location} FILES = ({self.sql.lit(name)}) "
                    f"FILE_FORMAT = ({PARQUET}) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE")
            self.execute(copy)
            count = f"SELECT count(*) FROM {staging} WHERE {BATCH} = {self.sql.lit(plan.batch)}"
            if int(self.fetch(count)[0][0]) != plan.data.num_rows:
                # the file was copied before and its rows applied and cleared (a replayed batch): again
                self.execute(f"DELETE FROM {staging} WHERE {BATCH} = {self.sql.lit(plan.batch)}")
                self.execute(copy + " FORCE = TRUE")

    # -- queries, views, reports --------------------------------------------------------------------------
    def query(self, sql: str) -> pa.Table:
        self.statements.append(sql)
        try:
            self.cursor.execute(sql)
            try:
                table = self.cursor.fetch_arrow_all(force_return_table=True, force_microsecond_precision=True)
            except snowflake.connector.errors.NotSupportedError:  # a result not in Arrow (SHOW, DESCRIBE)
                names = [d[0] for d in self.cursor.description or []]
                rows = self.cursor.fetchall()
                table = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
        except _DRIVER_ERRORS as exc:
            raise WarehouseError.typed(f"the query on Snowflake {self.location} failed: {_one_line(exc)}",
                                       hint="write Snowflake SQL over the loaded tables",
                                       transient=transient(exc)) from None
        return _plain_integers(table.rename_columns([c.lower() for c in table.column_names]))

    def create_view(self, name: str, sql: str) -> None:
        """``CREATE OR REPLACE VIEW`` (``sql`` in Snowflake's dialect, see :meth:`Statements.transpile`); a report
        of another kind by that name is dropped first."""
        self._drop_other_kind(name, "view", self._object(name))
        self._ddl(name, "view", f"CREATE OR REPLACE VIEW {self.sql.q(name)} AS {sql}")

    def report_ddl(self, name: str, sql: str) -> str:
        """The DDL of a report as ``reports`` says; dynamic tables and materialized views carry the digest of
        their definition in their comment (:meth:`create_report` keeps an unchanged one)."""
        return self._report(name, sql)[0]

    def _report(self, name: str, sql: str) -> tuple[str, str | None]:
        q = self.sql.q(name)
        if self.config.reports == "view":
            return f"CREATE OR REPLACE VIEW {q} AS {sql}", None
        if self.config.reports == "materialized_view":
            head = f"CREATE OR REPLACE MATERIALIZED VIEW {q}"
        else:
            if not self.where.warehouse:
                raise WarehouseError(f"the report {name} is a dynamic table, which needs a virtual warehouse",
                                     hint="set warehouse.compute_warehouse in lakeforge.yml or SNOWFLAKE_WAREHOUSE, "
                                          "or keep reports as views: warehouse.reports: view")
            lag = self.config.target_lag
            lag = "DOWNSTREAM" if lag.strip().upper() == "DOWNSTREAM" else self.sql.lit(lag)
            head = (f"CREATE OR REPLACE DYNAMIC TABLE {q} TARGET_LAG = {lag} "
                    f"WAREHOUSE = {object_name(self.where.warehouse)}")
        digest = hashlib.sha256(f"{head} AS {sql}".encode()).hexdigest()[:16]
        marker = f"{REPORT_MARKER} {self.config.reports} {digest}"
        return f"{head} COMMENT = {self.sql.lit(marker)} AS {sql}", marker

    def create_report(self, name: str, sql: str) -> None:
        """A standard report as ``reports`` says (``sql`` in Snowflake's dialect). A dynamic table or
        materialized view whose definition is unchanged is kept (not computed again), unless a table was
        created after it: a load recreated a table it may read (it would still read the dropped one)."""
        kind = self.config.reports
        ddl, marker = self._report(name, sql)
        found = self._object(name)
        if marker is not None and found is not None and found[:2] == (kind, marker) and self._newer_than(found[2]):
            return  # unchanged: refresh_reports (or Snowflake, within TARGET_LAG) keeps it current
        self._drop_other_kind(name, kind, found)
        self._ddl(name, kind, ddl)
        self._fresh.add(name)

    def refresh_reports(self, names: Sequence[str]) -> None:
        """Dynamic tables refresh now (not only within their lag), but for those just created; (materialized)
        views are always current."""
        if self.config.reports != "dynamic_table":
            return
        for name in names:
            if name not in self._fresh:
                self._ddl(name, "dynamic_table", f"ALTER DYNAMIC TABLE {self.sql.q(name)} REFRESH")
        self._fresh.clear()

    def _object(self, name: str) -> tuple[str, str | None, Any] | None:
        """``(kind, comment, created)`` of ``name`` in the schema: kind is dynamic_table, materialized_view,
        view or table (a report's comment names its kind); None: absent."""
        rows = self._information("SELECT table_type, comment, created FROM information_schema.tables "
                                 f"WHERE table_schema = {self.sql.lit(_stored(self.where.schema, self.schema))} "
                                 f"AND table_name = {self.sql.lit(_stored(name, self.sql.q(name)))}")
        if not rows:
            return None
        table_type, comment, created = rows[0]
        if comment and str(comment).startswith(f"{REPORT_MARKER} "):  # ours: the comment names the kind
            return str(comment).split()[2], str(comment), created
        kind = {"MATERIALIZED VIEW": "materialized_view", "VIEW": "view"}.get(str(table_type), "table")
        return kind, comment, created

    def _newer_than(self, created: Any) -> bool:
        """Whether an object created at ``created`` is newer than every table of the schema (not reports)."""
        rows = self._information("SELECT max(created) FROM information_schema.tables "
                                 f"WHERE table_schema = {self.sql.lit(_stored(self.where.schema, self.schema))} "
                                 f"AND table_type = 'BASE TABLE' AND coalesce(comment, '') NOT LIKE "
                                 f"{self.sql.lit(REPORT_MARKER + ' %')}")
        newest = rows[0][0] if rows else None
        return newest is None or (created is not None and created >= newest)

    def _information(self, sql: str) -> list[tuple[Any, ...]]:
        """A query of the schema's information_schema, its driver errors mapped."""
        try:
            return self.fetch(sql)
        except _DRIVER_ERRORS as exc:
            raise WarehouseError.typed(f"reading the information schema of Snowflake {self.location} failed: "
                                       f"{_one_line(exc)}", hint="check the role's grants on the schema",
                                       transient=transient(exc)) from None

    def _drop_other_kind(self, name: str, kind: str, found: tuple[str, str | None, Any] | None) -> None:
        """A report that changed kind (``reports:`` changed) is dropped: CREATE OR REPLACE cannot change it."""
        if found is not None and found[0] != kind and found[0] in _DROP:
            self._ddl(name, found[0], f"{_DROP[found[0]]} {self.sql.q(name)}")

    def _ddl(self, name: str, kind: str, sql: str) -> None:
        try:
            self.execute(sql)
        except _DRIVER_ERRORS as exc:
            hint = f"a warehouse {kind.replace('_', ' ')} may read only the loaded gold tables and other reports"
            if kind == "materialized_view":
                hint = ("a Snowflake materialized view reads one table (no joins): use warehouse.reports: "
                        "dynamic_table or view")
            raise WarehouseError.typed(f"creating the {kind.replace('_', ' ')} {name} in Snowflake {self.location} "
                                       f"failed: {_one_line(exc)}\n  statement: {sql[:300]}", hint=hint,
                                       transient=transient(exc)) from None


def _plain_integers(table: pa.Table) -> pa.Table:
    """NUMBER(p, 0) columns (decimals: the connection asks for exact numbers) as int64 where the values fit."""
    for i, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type) and field.type.scale == 0:
            with suppress(pa.ArrowInvalid):
                table = table.set_column(i, field.name, table.column(i).cast(pa.int64()))
    return table


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
