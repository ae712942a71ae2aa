"""The SQL explorer: one read-only query over the warehouse, with a row limit and a timeout.

Two guards, either of which is enough on its own:

1. :func:`guard` reads the SQL with sqlglot before anything runs and refuses, with one line saying why, anything
   that is not exactly one ``SELECT``, ``WITH ... SELECT`` or ``VALUES`` query: other statements (``COPY``,
   ``ATTACH``, ``DETACH``, ``INSTALL``, ``LOAD``, ``PRAGMA``, ``SET``, ``CREATE``, ``INSERT``, ``UPDATE``,
   ``DELETE``, ``DROP``, ``EXPORT``/``IMPORT``, ``CALL`` ...), several statements, ``SELECT ... INTO``, functions
   that read files or run SQL given as text (``read_csv``, ``read_parquet``, ``read_json``, ``read_text``,
   ``glob``, ``parquet_scan``, ``query`` ...), table functions other than ``range``/``generate_series``/
   ``unnest`` and DuckDB's catalog listings, string literals used as tables (``FROM 'x.csv'``), and tables the
   warehouse does not have. The query that runs is sqlglot's rendering of what was checked, not the text sent.
2. On DuckDB the query runs on a connection of its own to the warehouse file opened ``read_only`` with
   ``enable_external_access=false`` and ``lock_configuration=true`` (:func:`.store.connect_duckdb`): DuckDB
   itself refuses to write, to touch any other file, to attach, to install or load extensions, or to change a
   setting.

The query is wrapped as ``SELECT * FROM (query) LIMIT limit + 1`` (so the page can say more rows exist). On
DuckDB it runs in a child process (:mod:`lakeforge.web.sandbox`) with a data-segment limit, fetched in small
batches up to the row limit or ``max_bytes`` of Arrow data, and killed at the timeout (running, fetching and
sending alike): the server's memory and time stay bounded whatever the query builds. On Snowflake and
PostgreSQL the same guard applies and the query, written in DuckDB's SQL, is transpiled by sqlglot and run
through ``Warehouse.query`` with the row limit, then cut to ``max_bytes``; the timeout there is the login's own
statement timeout.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from lakeforge.errors import LakeforgeError
from lakeforge.web import sandbox
from lakeforge.web.readonly import Unavailable

if TYPE_CHECKING:
    from lakeforge.web.store import Store

DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
DEFAULT_TIMEOUT = 10.0
MAX_BYTES = 16 * 2**20  # of Arrow data in an answer: a page or a CSV export, not a data extract
READ_ONLY = "the explorer runs one read-only SELECT, WITH ... SELECT or VALUES query"

_FIRST_WORDS = {"SELECT", "WITH", "VALUES", "FROM", "("}
# statement classes refused wherever they appear in the tree (a CTE holding an INSERT, ...)
_STATEMENTS = tuple(getattr(exp, name) for name in (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Copy", "Attach", "Detach", "Install",
    "Command", "Pragma", "Set", "Use", "Transaction", "Commit", "Rollback", "Into", "Describe", "LoadData",
    "Summarize", "Analyze", "Grant", "Revoke", "TruncateTable", "Export") if hasattr(exp, name))
# functions that read files, reach other systems, run SQL given as text, or read the server's environment
_FUNCTIONS = {"glob", "read_text", "read_blob", "sniff_csv", "query", "query_table", "getenv", "current_setting",
              "load_extension", "st_read", "checkpoint", "force_checkpoint", "duckdb_secrets", "duckdb_settings",
              "duckdb_extensions", "which_secret", "from_csv_auto", "csv_scan", "json_scan", "parquet_scan"}
_FUNCTION_PREFIXES = ("read_", "parquet_", "iceberg_", "delta_", "sqlite_", "postgres_", "mysql_", "pragma_",
                      "ducklake_", "http_", "s3_")
_TABLE_FUNCTIONS = {"range", "generate_series", "unnest", "duckdb_tables", "duckdb_views", "duckdb_columns"}
_PATH_LIKE = re.compile(r"[/\\:~]|\.[A-Za-z0-9]{1,8}$")
PARAMETERS = ("site", "model", "start", "end")  # bound to the page's filters when the query names them


class Refused(LakeforgeError):
    """The explorer will not run this SQL (the message says why, in one line)."""


class QueryFailed(LakeforgeError):
    """The SQL was allowed but failed, or ran past the timeout."""


@dataclass
class Answer:
    table: pa.Table  # at most ``limit`` rows, at most ``max_bytes`` of Arrow data
    truncated: bool  # the query had more rows than shown
    seconds: float
    sql: str  # what ran (sqlglot's rendering of the checked query, wrapped with the limit)
    limit: int
    truncated_by: str | None = None  # "rows" (the row limit) or "bytes" (the byte limit)
    max_bytes: int = 0

    def to_dict(self, *, rows: int | None = None) -> dict[str, Any]:
        from lakeforge.web.queries import clean

        shown = self.table if rows is None else self.table.slice(0, rows)
        return {"columns": self.table.column_names, "types": [str(t) for t in self.table.schema.types],
                "rows": [[clean(v) for v in r.values()] for r in shown.to_pylist()], "row_count": self.table.num_rows,
                "truncated": self.truncated, "truncated_by": self.truncated_by, "limit": self.limit,
                "max_bytes": self.max_bytes, "seconds": round(self.seconds, 4)}


def _name(function: exp.Func) -> str:
    return (function.name if isinstance(function, exp.Anonymous) else function.sql_name()).lower()


def _forbidden_function(name: str) -> bool:
    return name in _FUNCTIONS or name.startswith(_FUNCTION_PREFIXES) or name.endswith("_scan")


def guard(sql: str, *, tables: set[str] | None = None, dialect: str = "duckdb") -> exp.Expr:
    """The one read-only query in ``sql``, checked; :class:`Refused` says why it is not allowed.

    ``tables``: the warehouse's tables and views (lower case); a table outside them (and the query's own CTEs)
    is refused. ``None`` skips that check (warehouses whose catalog is not listed)."""
    text = sql.strip()
    if not text:
        raise Refused("there is no query", hint="write a SELECT, e.g. SELECT * FROM dim_machine LIMIT 10")
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(text)
    except Exception as exc:
        raise Refused(f"the SQL could not be read: {str(exc).splitlines()[0]}", hint=READ_ONLY) from None
    statements: list[list[Any]] = [[]]  # tokens per statement
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    statements = [s for s in statements if s]
    if len(statements) != 1:
        raise Refused(f"one statement at a time: this SQL holds {len(statements)}", hint=READ_ONLY)
    first = statements[0][0].text.upper()
    if first not in _FIRST_WORDS:
        raise Refused(f"{first} statements are not allowed: {READ_ONLY}", hint="the explorer cannot write, "
                      "attach databases, load extensions, change settings or read files")
    for before, token in zip(statements[0], statements[0][1:], strict=False):
        if before.token_type in (TokenType.FROM, TokenType.JOIN) and token.token_type == TokenType.STRING:
            raise Refused(f"reading files is not allowed: FROM '{token.text}' would read a file",
                          hint="query the warehouse's tables by name, e.g. FROM dim_machine")
    try:
        parsed = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as exc:
        problem = exc.errors[0].get("description") if exc.errors else str(exc).splitlines()[0]
        raise Refused(f"the SQL does not parse: {problem}", hint=READ_ONLY) from None
    if len(parsed) != 1:
        raise Refused(f"one statement at a time: this SQL holds {len(parsed)}", hint=READ_ONLY)
    tree = parsed[0]
    if not isinstance(tree, exp.Query | exp.Values):
        raise Refused(f"{first} ... is not a query: {READ_ONLY}")
    for node in tree.walk():
        if isinstance(node, _STATEMENTS):
            what = "SELECT ... INTO" if isinstance(node, exp.Into) else node.key.upper()
            raise Refused(f"{what} is not allowed inside a query: {READ_ONLY}")
        if isinstance(node, exp.Func) and _forbidden_function(_name(node)):
            raise Refused(f"the function {_name(node)}() is not allowed: it reads files, other systems or the "
                          "server's settings", hint="the explorer reads the warehouse's tables only")
    for placeholder in tree.find_all(exp.Placeholder):
        if placeholder.name not in PARAMETERS:
            raise Refused(f"unknown parameter ${placeholder.name or '?'}",
                          hint="the explorer binds $site, $model, $start and $end to the filters")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Func):
            name = _name(table.this)
            if name not in _TABLE_FUNCTIONS:
                allowed = ", ".join(sorted(_TABLE_FUNCTIONS))
                raise Refused(f"the table function {name}() is not allowed",
                              hint=f"the explorer reads the warehouse's tables (and {allowed})")
            continue
        name, schema = table.name, table.db.lower()
        if _PATH_LIKE.search(name):
            raise Refused(f"reading files is not allowed: {name!r} is not a table of the warehouse",
                          hint="query the warehouse's tables by name, e.g. FROM dim_machine")
        if schema == "information_schema" or (not schema and name.lower() in ctes):
            continue
        if schema not in ("", "main") or (tables is not None and name.lower() not in tables):
            where = f"{schema}.{name}" if schema else name
            shown = ", ".join(sorted(tables or ())[:12])
            raise Refused(f"there is no table or view {where} in the warehouse",
                          hint=f"the warehouse has: {shown}" if shown else "run `lakeforge run` to load it")
    return tree


def clamp_limit(value: str | int | None) -> int:
    try:
        limit = int(value) if value not in (None, "") else DEFAULT_LIMIT
    except (TypeError, ValueError):
        raise Refused(f"the row limit {value!r} is not a number", hint=f"e.g. {DEFAULT_LIMIT}") from None
    if limit < 1 or limit > MAX_LIMIT:
        raise Refused(f"the row limit must be between 1 and {MAX_LIMIT:,}, not {limit:,}")
    return limit


def wrap(tree: exp.Expr, *, limit: int) -> str:
    """The checked query with the row limit (one row more, to tell whether there were more)."""
    return f"SELECT * FROM ({tree.sql(dialect='duckdb')}) AS lf_result LIMIT {limit + 1}"


def run(store: Store, sql: str, *, limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT,
        params: dict[str, Any] | None = None, max_bytes: int = MAX_BYTES) -> Answer:
    """Check ``sql`` (:func:`guard`) and run it on the warehouse, read-only, with the limits: ``limit`` rows,
    ``max_bytes`` of Arrow data, ``timeout`` seconds. ``params``: values of ``$site``, ``$model``, ``$start``,
    ``$end`` (the filters), bound when named."""
    source = store.source
    with store.warehouse() as handle:
        duck = isinstance(handle, duckdb.DuckDBPyConnection)
        tables = source.tables(handle) if duck else None
        tree = guard(sql, tables=tables)
        wrapped = wrap(tree, limit=limit)
        named = {p.name for p in tree.find_all(exp.Placeholder)}
        bound = {k: v for k, v in (params or {}).items() if k in named}
        started = time.perf_counter()
        if duck:
            assert source.duckdb_path is not None
            table, capped = _sandboxed(sandbox.Request(
                path=str(source.duckdb_path), sql=wrapped, params=bound, rows=limit + 1, max_bytes=max_bytes,
                settings=source.settings), timeout=timeout)
        else:
            try:
                table = source.query(handle, wrapped, bound)
            except Exception as exc:
                raise QueryFailed(f"the query failed: {_one_line(exc)}",
                                  hint="the query is written in DuckDB's SQL and transpiled") from None
            table, capped = _head(table, max_bytes)
        seconds = time.perf_counter() - started
    truncated = "bytes" if capped else "rows" if table.num_rows > limit else None
    return Answer(table=table.slice(0, limit) if table.num_rows > limit else table, truncated=truncated is not None,
                  truncated_by=truncated, seconds=seconds, sql=wrapped, limit=limit, max_bytes=max_bytes)


def _sandboxed(request: sandbox.Request, *, timeout: float) -> tuple[pa.Table, bool]:
    """The query's rows from the sandbox process, and whether the byte limit cut them."""
    outcome = sandbox.run(request, timeout=timeout)
    if outcome.ok:
        return pa.ipc.open_stream(outcome.ipc).read_all(), outcome.bytes_capped
    if outcome.kind == "timeout":
        raise QueryFailed(f"the query ran longer than {timeout:g} s and was stopped",
                          hint="filter on fewer rows or aggregate, e.g. GROUP BY date")
    if outcome.kind == "memory":
        raise QueryFailed(f"the query needed more memory than the explorer allows ({request.settings.memory_limit} and "
                          f"{sandbox.HEADROOM >> 20} MB for its results) and was stopped",
                          hint="select fewer or shorter values, or aggregate")
    if outcome.kind == "unavailable":
        raise Unavailable(outcome.message, hint="a run is probably loading it; try again when it is done")
    raise QueryFailed(f"the query failed: {outcome.message}", hint="check table and column names "
                      "(the list of tables is beside the editor)")


def _head(table: pa.Table, max_bytes: int) -> tuple[pa.Table, bool]:
    """The longest head of ``table`` within ``max_bytes`` of Arrow data, and whether it is shorter."""
    if table.nbytes <= max_bytes:
        return table, False
    lo, hi = 0, table.num_rows
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if table.slice(0, mid).nbytes <= max_bytes else (lo, mid - 1)
    return table.slice(0, lo), True


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def to_csv(table: pa.Table) -> bytes:
    """The rows as CSV (a header line, then one line per row)."""
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    return buffer.getvalue()


def catalog(store: Store) -> list[dict[str, Any]]:
    """The warehouse's tables and views with their columns (the list beside the editor)."""
    with store.warehouse() as handle:
        if isinstance(handle, duckdb.DuckDBPyConnection):
            rows = handle.execute(
                "SELECT t.table_name, t.table_type, list(c.column_name ORDER BY c.ordinal_position) "
                "FROM information_schema.tables AS t JOIN information_schema.columns AS c "
                "ON c.table_catalog = t.table_catalog AND c.table_schema = t.table_schema "
                "AND c.table_name = t.table_name "
                "WHERE t.table_schema = 'main' AND t.table_catalog = current_database() "
                "GROUP BY ALL ORDER BY t.table_name").fetchall()
            return [{"name": r[0], "kind": "view" if r[1] == "VIEW" else "table", "columns": list(r[2])}
                    for r in rows]
        names = sorted(store.source.tables(handle))
        return [{"name": n, "kind": "table", "columns": []} for n in names]
