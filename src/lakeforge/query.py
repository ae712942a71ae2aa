"""``lakeforge query``: read-only SQL over the warehouse, with the lakehouse tables addressable as ``bronze.x``,
``silver.x``, ``gold.x`` and lakeforge's event log as ``_lakeforge.event_log`` (DuckDB warehouse); on Snowflake
or PostgreSQL it runs in the warehouse's own SQL.

The statement is written in the project's dialect, as the models are (Databricks SQL by default: backticks,
``max_by``, ``date_add``), and transpiled by sqlglot; ``dialect="duckdb"`` (``--dialect duckdb``) passes DuckDB
SQL through unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakeforge.config import DuckDBWarehouseConfig
from lakeforge.errors import ConfigError, LakeforgeError
from lakeforge.lakehouse import LAYERS
from lakeforge.models.model import replace_views
from lakeforge.sql import DUCKDB
from lakeforge.workspace import Workspace

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlglot import exp


def query(workspace: Workspace, sql: str, *, dialect: str | None = None) -> pa.Table:
    """Read-only SQL over the warehouse; lakehouse tables are addressable as ``bronze.x``, ``gold.x`` ...
    ``dialect``: the SQL's (default: the project's, ``dialect:`` of lakeforge.yml)."""
    import sqlglot
    from sqlglot import exp

    read = dialect or workspace.config.dialect
    statements = _parse_read_only(sql, dialect=read)
    if read != "duckdb":
        sql = statements[0].sql(dialect="duckdb")
    views = {m.name: m for m in workspace.models() if m.config.kind == "view"}
    if views:  # a view is its query, in DuckDB SQL here
        statements = [replace_views(statements[0], lambda n: sqlglot.parse_one(
            views[n].duckdb_sql(), read="duckdb"), set(views))]
        sql = statements[0].sql(dialect="duckdb")
    wanted = {f"{t.db}.{t.name}" for s in statements for t in s.find_all(exp.Table)
              if t.db in LAYERS and not t.catalog}
    logs = {f"{t.db}.{t.name}" for s in statements for t in s.find_all(exp.Table)
            if t.db == "_lakeforge" and not t.catalog}
    if not isinstance(workspace.config.warehouse, DuckDBWarehouseConfig):
        return _query_remote(workspace, statements[0], wanted=wanted)
    from lakeforge.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine(workspace.duckdb_settings)
    try:
        wh = workspace.path / workspace.config.warehouse.path
        if wh.exists():
            import duckdb

            from lakeforge.warehouses.duckdb.warehouse import busy
            try:
                engine.execute(f"ATTACH {DUCKDB.literal(str(wh))} AS warehouse (READ_ONLY)")
            except duckdb.IOException as exc:
                raise busy(wh, exc) from None
            engine.execute("USE warehouse")
        relations: dict[str, Any] = {name: workspace.catalog.dataset(name) for name in sorted(wanted)}
        if logs:  # lakeforge's own tables: _lakeforge.event_log
            from lakeforge.pipeline import events

            relations.update({name: events.read(workspace) for name in logs if name == events.EVENT_LOG})
        try:
            return engine.query_arrow(sql, relations=relations)
        except Exception as exc:  # duckdb errors: report as ours
            raise LakeforgeError(f"query failed: {str(exc).splitlines()[0]}",
                                 hint="check table and column names with `lakeforge status`") from None
    finally:
        engine.close()

def _query_remote(workspace: Workspace, statement: exp.Expr, *, wanted: set[str]) -> pa.Table:
    """A query on a Snowflake or PostgreSQL warehouse: written in DuckDB SQL, run in the warehouse's."""
    if wanted:
        raise ConfigError(f"the warehouse is {workspace.config.warehouse.type}: a query there cannot read the "
                          f"lakehouse tables {', '.join(sorted(wanted))}",
                          hint="query the warehouse's own tables (gold tables by their name, without `gold.`)")
    warehouse = workspace.warehouse(read_only=True)
    try:
        return warehouse.query(statement.sql(dialect=warehouse.capabilities.dialect))
    finally:
        warehouse.close()


def _parse_read_only(sql: str, *, dialect: str) -> list[exp.Expr]:
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as exc:
        other = "duckdb" if dialect != "duckdb" else "databricks"
        raise LakeforgeError(f"query does not parse as {dialect} SQL: {str(exc).splitlines()[0]}",
                             hint=f"write {dialect} SQL (the project's dialect, as in the models), e.g. SELECT * "
                                  f"FROM fact_telemetry_hourly LIMIT 5, or pass --dialect {other}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query | exp.Describe):
        raise LakeforgeError("lakeforge query is read-only: one SELECT (or WITH ... SELECT / DESCRIBE) statement",
                             hint="change data through models and `lakeforge run`, not through query")
    return statements
