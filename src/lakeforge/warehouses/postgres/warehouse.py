"""PostgreSQL as warehouse: gold streamed with COPY, upserted with MERGE (15+) or INSERT ... ON CONFLICT.

A load (see :mod:`lakeforge.warehouses.sql` for the plan) is one transaction, DDL included, since PostgreSQL's
DDL is transactional::

    BEGIN
    DROP TABLE IF EXISTS x CASCADE; CREATE TABLE x (..., PRIMARY KEY (keys))      -- only when (re)created
    CREATE INDEX IF NOT EXISTS x_cluster ON x (cluster_by)                        -- with cluster_by
    CREATE TEMP TABLE _lf_stage_x (..., _lf_batch, _lf_seq) ON COMMIT DROP
    COPY _lf_stage_x (...) FROM STDIN (FORMAT csv)                                -- the rows, as CSV chunks
    MERGE INTO x ... | INSERT INTO x ... ON CONFLICT (keys) DO UPDATE ...        -- incremental
    DELETE FROM x; INSERT INTO x SELECT ...                                       -- full
    MERGE INTO _lakeforge_loads ... | INSERT INTO _lakeforge_loads ... ON CONFLICT
    COMMIT

A connection that dies anywhere before COMMIT (server killed, restarted, network cut) leaves the target and
the ledger as they were, and the next run redoes the load; readers see the old rows until COMMIT (MVCC, no
TRUNCATE). PostgreSQL's CLUSTER is a one-off sort, not a property of the table: ``cluster_by`` becomes an
index on those columns, the honest equivalent (capabilities say ``clustering=False``).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.string import TextLoader

from lakeforge import redaction
from lakeforge.config.models import PostgresWarehouseConfig
from lakeforge.errors import Transient, WarehouseError
from lakeforge.lakehouse import Catalog
from lakeforge.warehouses.base import LoadResult, WarehouseCapabilities
from lakeforge.warehouses.postgres.errors import transient
from lakeforge.warehouses.sql import LoadPlan, SqlWarehouse

MERGE_SINCE = 150000  # server_version_num of PostgreSQL 15, the first with MERGE
COPY_ROWS = 65536  # rows per CSV chunk written to COPY
APPLICATION = "lakeforge"
# TCP keepalives, so a peer that vanished (network cut, host down) fails the load in about a minute instead of
# waiting for the kernel's two hours; a dsn that sets them wins.
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10", "keepalives_count": "3"}
RESUME_HINT = "the warehouse is unchanged (one transaction); fix the cause and rerun: the load resumes from the ledger"


class PostgresWarehouse(SqlWarehouse):
    capabilities = WarehouseCapabilities(
        name="postgres", dialect="postgres", transactions=True, merge=True, clustering=False,
        materialized_views=True, staging="copy",
    )

    def __init__(self, config: PostgresWarehouseConfig, *, base_dir: Path, read_only: bool = False,
                 project: str = "lakeforge") -> None:
        super().__init__()
        self.config = config
        self.schema = config.db_schema
        self.read_only = read_only
        self.project = project
        self._fresh_reports: set[str] = set()  # materialized views created since the last load: already current
        self._rowcount = -1
        self.commit_failed = False
        self.failed_at: str | None = None  # the last statement sent when a transaction failed
        conninfo, secret = _conninfo(config)
        redaction.register([secret])  # a DSN's password (the settings' was registered when read)
        self.where, user = _describe(conninfo)  # host:port/dbname, as libpq will resolve them
        try:
            self.con: psycopg.Connection[Any] = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise WarehouseError.typed(
                f"cannot connect to PostgreSQL {self.where} as user {user}: {self._scrub(exc)}",
                hint="is the server running and reachable there? lakeforge.yml's warehouse (dsn, host, port, "
                     "dbname, user) and libpq's PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD (or ~/.pgpass) "
                     "say where to connect", transient=transient(exc, connecting=True)) from None
        info = self.con.info
        self.where = f"{info.host}:{info.port}/{info.dbname}"
        self.server_version = info.server_version
        for oid_name in ("json", "jsonb"):  # query(): JSON as its text, not parsed into Python objects
            self.con.adapters.register_loader(oid_name, TextLoader)
        self.use_merge = self._decide_upsert()
        try:
            self.execute("SET TIME ZONE 'UTC'")
            if read_only:
                self.execute("SET default_transaction_read_only = on")
            else:
                self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.sql.q(self.schema)}")
            self.execute(f"SET search_path TO {self.sql.q(self.schema)}")
            if not read_only:
                self.execute(self.sql.ledger_ddl())
        except psycopg.Error as exc:
            self.close()
            raise WarehouseError.typed(
                f"preparing the schema {self.schema} in PostgreSQL {self.where} failed: {self._scrub(exc)}",
                hint=f"the user needs CREATE on the database, or create the schema {self.schema} and grant the "
                     "user CREATE and USAGE on it", transient=transient(exc)) from None

    def _decide_upsert(self) -> bool:
        """MERGE (PostgreSQL 15+) or INSERT ... ON CONFLICT, per ``upsert:``."""
        if self.config.upsert == "on_conflict":
            return False
        if self.server_version >= MERGE_SINCE:
            return True
        if self.config.upsert == "merge":
            self.close()
            raise WarehouseError(f"upsert: merge needs PostgreSQL 15 or later; {self.where} runs "
                                 f"{_version_text(self.server_version)}",
                                 hint="set warehouse.upsert to on_conflict (or auto)")
        return False

    # -- the backend's part of SqlWarehouse --------------------------------------------------------------
    def _execute(self, sql: str) -> None:
        with self.con.cursor() as cur:
            cur.execute(sql.encode())  # bytes: psycopg takes it as it is (no placeholders to parse)
            self._rowcount = cur.rowcount

    def _fetch(self, sql: str) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cur:
            cur.execute(sql.encode())
            return cur.fetchall()

    def table_columns(self, name: str) -> list[str] | None:
        rows = self.fetch("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                          f"{self.sql.lit(self.schema)} AND table_name = {self.sql.lit(name)} "
                          "ORDER BY ordinal_position")
        return [str(r[0]).lower() for r in rows] or None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT; ROLLBACK on an error, when the connection is still alive to hear it."""
        self.commit_failed, self.failed_at = False, None
        self.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.failed_at = self.statements[-1]  # before the ROLLBACK is recorded
            self._rollback()
            raise
        try:
            self.execute("COMMIT")
        except BaseException:
            self.commit_failed = True  # the server may have committed before the connection dropped
            raise

    def _rollback(self) -> None:
        if self.alive:
            with contextlib.suppress(psycopg.Error):
                self.execute("ROLLBACK")

    @property
    def alive(self) -> bool:
        return not (self.con.closed or self.con.broken)

    def load(self, gold_table: str, *, catalog: Catalog, keys: list[str], run_id: str,
             cluster_by: Sequence[str] = ()) -> LoadResult:
        try:
            return super().load(gold_table, catalog=catalog, keys=keys, run_id=run_id, cluster_by=cluster_by)
        except psycopg.Error as exc:  # planning: reading the ledger and the target's columns
            raise WarehouseError.typed(f"loading {gold_table} into PostgreSQL {self.where} failed while planning: "
                                       f"{self._scrub(exc)}", hint=RESUME_HINT, transient=transient(exc)) from None

    def apply(self, plan: LoadPlan) -> int:
        q = self.sql.q
        target = f"{self.schema}.{plan.target}"
        rows = 0
        self.commit_failed, self.failed_at = False, None
        try:
            index = f"{plan.target}_cluster"[:63]  # PostgreSQL's identifiers end at 63 bytes
            # the index on the cluster_by columns: with a new table, or when missing (a look at the catalog, which
            # takes no lock: CREATE INDEX IF NOT EXISTS locks the table before it finds the index exists)
            indexed = bool(plan.cluster_by) and (plan.create or self._relation(index)[0] != "i")
            with self.transaction():
                if plan.create:
                    self.execute(f"{self.sql.drop_table(plan.target)} CASCADE")  # views over it: the run remakes them
                    self.execute(self.sql.create_target(plan))
                if indexed:
                    self.execute(f"CREATE INDEX IF NOT EXISTS {q(index)} ON {q(plan.target)} "
                                 f"({', '.join(q(c) for c in plan.cluster_by)})")
                staged = plan.tagged()
                self.execute(f"CREATE TEMP TABLE {q(plan.staging)} ({self.sql.columns(staged.schema)}) "
                             "ON COMMIT DROP")
                self._copy(plan.staging, staged)
                if plan.mode == "incremental":
                    self.execute(self.sql.merge(plan) if self.use_merge else self.sql.upsert_on_conflict(plan))
                    rows = self._rowcount
                else:
                    self.execute(self.sql.delete_all(plan))
                    self.execute(self.sql.insert_all(plan))
                    rows = self._rowcount
                self.execute(self.sql.ledger_merge(plan, rows) if self.use_merge
                             else self.sql.ledger_on_conflict(plan, rows))
        except (psycopg.Error, WarehouseError) as exc:
            detail = exc.message if isinstance(exc, WarehouseError) else self._scrub(exc)
            at = f" at {_step(self.failed_at or self.statements[-1])}" if isinstance(exc, psycopg.Error) else ""
            hint = RESUME_HINT
            if self.commit_failed and not self.alive:
                hint = ("the connection failed during COMMIT, so the load may or may not have been applied; "
                        "rerun: the ledger tells the next run which, and it skips or redoes the load")
            again = isinstance(exc, Transient) if isinstance(exc, WarehouseError) else transient(exc)
            raise WarehouseError.typed(f"loading {plan.gold_table} (version {plan.to_version}) into PostgreSQL "
                                       f"{self.where} {target} failed{at}: {detail}", hint=hint,
                                       transient=again) from None
        self._fresh_reports.clear()  # a report created before this load is stale now
        return rows

    def _copy(self, table_name: str, data: pa.Table) -> None:
        """``COPY ... FROM STDIN`` of ``data`` as CSV, written chunk by chunk by Arrow (no Python rows)."""
        columns = ", ".join(self.sql.q(c) for c in data.column_names)
        sql = f"COPY {self.sql.q(table_name)} ({columns}) FROM STDIN (FORMAT csv)"
        self.statements.append(sql)
        with self.con.cursor() as cur, cur.copy(sql.encode()) as copy:
            for chunk in csv_chunks(data):
                copy.write(chunk)

    def query(self, sql: str) -> pa.Table:
        self.statements.append(sql)
        try:
            with self.con.cursor() as cur:
                cur.execute(sql.encode())
                if cur.description is None:  # not a query
                    return pa.table({})
                rows = cur.fetchall()
                columns = [(col.name, col.type_code, col.precision, col.scale) for col in cur.description]
        except psycopg.Error as exc:
            raise WarehouseError.typed(f"the query failed on PostgreSQL {self.where}: {self._scrub(exc)}",
                                       hint="the warehouse holds gold tables under their own names, in schema "
                                            f"{self.schema}; check the SQL (PostgreSQL dialect)",
                                       transient=transient(exc)) from None
        arrays, names = [], []
        for i, (name, oid, precision, scale) in enumerate(columns):
            names.append(name)
            arrays.append(to_arrow([row[i] for row in rows], oid, precision, scale))
        return pa.Table.from_arrays(arrays, names=names) if names else pa.table({})

    # -- views and reports ---------------------------------------------------------------------------------
    def _relation(self, name: str) -> tuple[str | None, str | None]:
        """``(relkind, comment)`` of ``name`` in the schema: r table, v view, m materialized view; None: absent."""
        try:
            rows = self.fetch(
                "SELECT c.relkind, obj_description(c.oid, 'pg_class') FROM pg_class AS c JOIN pg_namespace AS n "
                f"ON n.oid = c.relnamespace WHERE n.nspname = {self.sql.lit(self.schema)} "
                f"AND c.relname = {self.sql.lit(name)}")
        except psycopg.Error as exc:
            raise WarehouseError.typed(f"looking up {self.schema}.{name} in PostgreSQL {self.where} failed: "
                                       f"{self._scrub(exc)}", hint=RESUME_HINT, transient=transient(exc)) from None
        return (str(rows[0][0]), rows[0][1]) if rows else (None, None)

    def _ddl(self, what: str, statements: Callable[[], None]) -> None:
        try:
            with self.transaction():
                statements()
        except psycopg.Error as exc:
            raise WarehouseError.typed(f"{what} in PostgreSQL {self.where} failed: {self._scrub(exc)}",
                                       hint="a warehouse view or report may read only gold tables (and views); the "
                                            "SQL runs in PostgreSQL's dialect", transient=transient(exc)) from None

    def create_view(self, name: str, sql: str) -> None:
        """``CREATE OR REPLACE VIEW``; when PostgreSQL refuses the replacement (columns removed, renamed or
        retyped) the view is dropped and created again, with whatever depended on it (reports are remade by
        the run)."""
        q = self.sql.q(name)
        kind, _ = self._relation(name)
        self._refuse_table(name, kind)
        try:
            with self.transaction():
                if kind == "m":
                    self.execute(f"DROP MATERIALIZED VIEW IF EXISTS {q} CASCADE")
                self.execute(f"CREATE OR REPLACE VIEW {q} AS {sql}")
            return
        except (psycopg.errors.InvalidTableDefinition, psycopg.errors.DatatypeMismatch,
                psycopg.errors.FeatureNotSupported):
            pass  # the column list changed: drop and create
        except psycopg.Error as exc:
            raise WarehouseError.typed(f"creating the view {name} in PostgreSQL {self.where} failed: "
                                       f"{self._scrub(exc)}", hint="a warehouse view may read only gold tables (and "
                                       "views); the SQL runs in PostgreSQL's dialect", transient=transient(exc)
                                       ) from None

        def recreate() -> None:
            self.execute(f"DROP VIEW IF EXISTS {q} CASCADE")
            self.execute(f"CREATE VIEW {q} AS {sql}")

        self._ddl(f"recreating the view {name}", recreate)

    def create_report(self, name: str, sql: str) -> None:
        """``reports: materialized_view``: a materialized view, made again only when its SQL changed (a comment
        on it holds the SQL's digest); ``reports: view``: a view."""
        if self.config.reports == "view":
            self.create_view(name, sql)
            return
        q = self.sql.q(name)
        marker = f"lakeforge report {hashlib.sha256(sql.encode()).hexdigest()[:16]}"
        kind, comment = self._relation(name)
        self._refuse_table(name, kind)
        if kind == "m" and comment == marker:
            return  # unchanged: refresh_reports keeps it current

        def create() -> None:
            if kind == "v":
                self.execute(f"DROP VIEW IF EXISTS {q} CASCADE")
            self.execute(f"DROP MATERIALIZED VIEW IF EXISTS {q} CASCADE")
            self.execute(f"CREATE MATERIALIZED VIEW {q} AS {sql}")
            self.execute(f"COMMENT ON MATERIALIZED VIEW {q} IS {self.sql.lit(marker)}")

        self._ddl(f"creating the report {name} (materialized view)", create)
        self._fresh_reports.add(name)

    def refresh_reports(self, names: Sequence[str]) -> None:
        """``REFRESH MATERIALIZED VIEW`` each report, in one transaction (readers see them all change at once);
        those created since the last load are current already."""
        if self.config.reports == "view":
            return
        stale = [n for n in names if n not in self._fresh_reports]
        if not stale:
            return

        def refresh() -> None:
            for name in stale:
                self.execute(f"REFRESH MATERIALIZED VIEW {self.sql.q(name)}")

        self._ddl(f"refreshing the reports {', '.join(stale)}", refresh)

    def _refuse_table(self, name: str, kind: str | None) -> None:
        if kind in ("r", "p"):
            raise WarehouseError(f"{self.schema}.{name} in PostgreSQL {self.where} is a table, not a view",
                                 hint="a view or report may not share its name with a gold table; rename one")

    def close(self) -> None:
        con = self.__dict__.get("con")
        if con is not None and not con.closed:
            with contextlib.suppress(Exception):
                con.close()

    def _scrub(self, exc: BaseException) -> str:
        """The error text, one line, without the password (libpq never prints it; a DSN in a message might)."""
        return redaction.redact(" ".join(str(exc).split()))


# -- connection settings --------------------------------------------------------------------------------------
def _conninfo(config: PostgresWarehouseConfig) -> tuple[str, str]:
    """The libpq connection string: ``dsn`` with the set fields on top (libpq's ``PG*`` variables fill the rest),
    and the password (to keep it out of messages)."""
    given = conninfo_to_dict(config.dsn or "")
    fields: dict[str, Any] = {k: v for k, v in {
        "host": config.host, "port": config.port, "dbname": config.dbname, "user": config.user,
        "sslmode": config.sslmode,
    }.items() if v is not None}
    if config.password is not None:
        fields["password"] = config.password.get_secret_value()
    if "connect_timeout" not in given:
        fields["connect_timeout"] = config.connect_timeout
    if "application_name" not in given:
        fields["application_name"] = APPLICATION
    fields.update({k: v for k, v in KEEPALIVES.items() if k not in given})
    secret = str(fields.get("password") or given.get("password") or "")
    return make_conninfo(config.dsn or "", **fields), secret


def _describe(conninfo: str) -> tuple[str, str]:
    """``(host:port/dbname, user)`` as libpq will resolve them (settings, then ``PG*``, then defaults)."""
    params = conninfo_to_dict(conninfo)
    host = params.get("host") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = params.get("user") or os.environ.get("PGUSER") or _os_user()
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user
    return f"{host}:{port}/{dbname}", str(user)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


def _step(sql: str) -> str:
    """A statement's verb and object (``MERGE INTO x``, ``COPY _lf_stage_x``), to say where a load failed."""
    words: list[str] = []
    for word in sql.split():
        if word.startswith("(") or (word in ("AS", "ON", "FROM", "CASCADE") and len(words) > 1) or len(words) == 4:
            break
        if word not in ("IF", "NOT", "EXISTS"):
            words.append(word)
    return " ".join(words)


def _version_text(num: int) -> str:
    return f"{num // 10000}.{num % 10000}" if num >= 100000 else f"{num // 10000}.{num // 100 % 100}"


# -- Arrow -> COPY (CSV) -------------------------------------------------------------------------------------
def copyable(table: pa.Table) -> pa.Table:
    """Columns in the form PostgreSQL's CSV input reads back exactly: timestamps with a time zone in UTC (the
    writer appends ``Z``), binary as bytea hex (``\\x...``), dictionaries and views decoded."""
    for i, field in enumerate(table.schema):
        column, dtype = table.column(i), field.type
        if pa.types.is_dictionary(dtype):
            column = column.cast(dtype.value_type)
            dtype = dtype.value_type
        if pa.types.is_timestamp(dtype) and dtype.tz and dtype.tz not in ("UTC", "+00:00", "Z"):
            column = column.cast(pa.timestamp(dtype.unit, "UTC"))
        elif pa.types.is_string_view(dtype):
            column = column.cast(pa.string())
        elif pa.types.is_binary_view(dtype) or pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype) \
                or pa.types.is_fixed_size_binary(dtype):
            column = pa.array([None if v is None else "\\x" + v.hex() for v in column.to_pylist()], pa.string())
        else:
            if column is table.column(i):
                continue
        table = table.set_column(i, pa.field(field.name, column.type), column)
    return table


def csv_chunks(table: pa.Table, rows: int = COPY_ROWS) -> Iterator[memoryview]:
    """``table`` as PostgreSQL CSV in chunks of ``rows`` rows: every string quoted (``""`` is the empty
    string), NULL an unquoted empty field."""
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed", delimiter=",")
    for batch in copyable(table).to_batches(max_chunksize=rows):
        sink = pa.BufferOutputStream()
        pacsv.write_csv(batch, sink, options)
        yield memoryview(sink.getvalue())


# -- result rows -> Arrow ------------------------------------------------------------------------------------
_OIDS: dict[int, pa.DataType] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 26: pa.int64(), 700: pa.float32(),
    701: pa.float64(), 25: pa.string(), 1043: pa.string(), 1042: pa.string(), 19: pa.string(), 114: pa.string(),
    3802: pa.string(), 1082: pa.date32(), 1114: pa.timestamp("us"), 1184: pa.timestamp("us", "UTC"),
    17: pa.binary(), 1083: pa.time64("us"), 1186: pa.duration("us"),
}
NUMERIC = 1700
UUID = 2950


def to_arrow(values: list[Any], oid: int, precision: int | None, scale: int | None) -> pa.Array:
    """One result column as Arrow: PostgreSQL's type decides (numeric(p, s) -> decimal(p, s); numeric without
    a precision -> double; timestamptz -> timestamp UTC; unknown types by their values, else as text)."""
    if oid == NUMERIC:
        if precision is not None and scale is not None and precision > 0:
            dtype = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
            return pa.array(values, dtype)
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    dtype = _OIDS.get(oid)
    if dtype is not None:
        return pa.array(values, dtype)
    if oid == UUID:
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())

