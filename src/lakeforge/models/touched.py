"""Which stored rows a change touches, and which driver rows recompute them.

A ``groups`` or ``partitions`` recomputation (and a ``merge`` after driver rows were updated or deleted) reads the
driver's rows whose key (or partition) expressions equal, null-safe, those of a changed row; a range the engine
pushes into the scan keeps that read proportional to the change (:func:`bounds`). What it no longer produces is
deleted (:func:`gone`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from lakeforge.engines.base import Engine, Relation
from lakeforge.models.model import Model, _databricks_int
from lakeforge.sql import ident

if TYPE_CHECKING:
    from lakeforge.lakehouse import Catalog

def touched(engine: Engine, driver: str, full: Relation, changes: Relation,
            keys: dict[str, exp.Expr], *, columns: list[str] | None = None) -> Relation:
    """Rows of ``driver`` in the groups (or partitions) that ``changes`` touch: those whose ``keys`` expressions
    equal, null-safe, those of a changed row (a NULL key is a group too); only ``columns`` of them (None: all),
    so that the scan reads no other column (see :func:`read_by`)."""
    dialect = engine.capabilities.dialect
    select = ", ".join(ident(c, dialect=dialect) for c in columns or []) or "*"
    exprs = [_on_driver(e, dialect) for e in keys.values()]
    engine.register("__lf_changes", changes)
    engine.register("__lf_full", full)
    ranges = bounds(engine, keys)
    listed = ", ".join(f"{e} AS __lf_k{i}" for i, e in enumerate(exprs))
    same = " AND ".join(exp.NullSafeEQ(this=exp.maybe_parse(e, dialect=dialect),
                                       expression=exp.column(f"__lf_k{i}", table="c")).sql(dialect=dialect)
                        for i, e in enumerate(exprs))
    return engine.query(
        f"SELECT {select} FROM __lf_full WHERE {ranges}EXISTS (SELECT 1 FROM (SELECT DISTINCT {listed} "
        f"FROM __lf_changes) AS c WHERE {same})",
        relations={},
    )


def read_by(model: Model, columns: list[str]) -> list[str] | None:
    """The driver's ``columns`` that the model's SQL may read: those named anywhere in it (any identifier: a
    column, a ``USING`` list, an alias; more than it reads, never less). None (all of them) when it reads columns
    it does not name: ``*``, ``NATURAL JOIN``, DuckDB's ``COLUMNS(...)``. Its rules and dedup judge its output,
    which these columns make."""
    tree = model.tree
    for node in tree.walk():
        star = isinstance(node, exp.Star) and not isinstance(node.parent, exp.AggFunc)  # (count(*) reads none)
        if star or (isinstance(node, exp.Join) and node.method.upper() == "NATURAL"):
            return None
        if isinstance(node, exp.Columns) or (isinstance(node, exp.Anonymous) and str(node.name).lower() == "columns"):
            return None
    named = {i.name.lower() for i in tree.find_all(exp.Identifier)}
    return [c for c in columns if c.lower() in named]


_TRUNCATIONS = (exp.TimestampTrunc, exp.DateTrunc, exp.TsOrDsToDate, exp.Date)
_WIDTHS = {"SECOND": dt.timedelta(seconds=1), "MINUTE": dt.timedelta(minutes=1), "HOUR": dt.timedelta(hours=1),
           "DAY": dt.timedelta(days=1), "WEEK": dt.timedelta(days=7)}
MAX_BUCKETS = 256  # touched time buckets read as ranges of their own; beyond, from the lowest one on


def bounds(engine: Engine, keys: dict[str, exp.Expr]) -> str:
    """Column ranges that every row of a touched group lies in, as ``col >= lit AND ...`` (or ``""``): plain
    comparisons of a column with a constant, which the engine pushes into the scan, so that the driver's files
    (row groups) outside the range are skipped and the work follows the new rows, not the table's size.

    A key that is a column ``c``: ``c BETWEEN min AND max`` of the changes. A key that truncates a timestamp or date
    column to a fixed width (``date_trunc('HOUR', ts)``, ``CAST(ts AS DATE)``, ``to_date(ts)``): the touched buckets
    themselves, ``(ts >= b AND ts < b + width) OR ...``, when there are at most ``MAX_BUCKETS`` of them (a late file
    spread over the history reads only its hours); else, or for a truncation of another width, ``ts >= min(key)``,
    since a truncation is never above its input. Other keys add nothing (the groups are still found, by a full
    read)."""
    dialect = engine.capabilities.dialect
    wanted: list[tuple[str, str, str]] = []  # (column, bound kind, aggregate SQL over the changes)
    buckets: dict[str, tuple[str, dt.timedelta]] = {}  # column -> (bucket SQL, width)
    for expression in keys.values():
        bare = _unqualified(expression)
        if isinstance(bare, exp.Column):
            name = bare.sql(dialect=dialect)
            wanted += [(name, ">=", f"min({name})"), (name, "<=", f"max({name})")]
            continue
        columns = list(bare.find_all(exp.Column))
        truncation = isinstance(bare, _TRUNCATIONS) or (isinstance(bare, exp.Cast) and bare.to.is_type("date"))
        if truncation and len(columns) == 1 and bare.this == columns[0]:
            name = columns[0].sql(dialect=dialect)
            wanted.append((name, ">=", f"min({bare.sql(dialect=dialect)})"))
            wanted.append((name, "type", f"min({name})"))  # the column's type, to cast the bound to it
            unit = bare.args.get("unit")
            width = _WIDTHS.get(unit.name.upper()) if isinstance(unit, exp.Expr) else (
                None if isinstance(bare, exp.TimestampTrunc | exp.DateTrunc) else _WIDTHS["DAY"])
            if width is not None:
                buckets[name] = (bare.sql(dialect=dialect), width)
    if not wanted:
        return ""
    select = ", ".join(f"{agg} AS b{i}" for i, (_, _, agg) in enumerate(wanted))
    row = engine.to_arrow(engine.query(f"SELECT {select} FROM __lf_changes", relations={}))
    types = {column: row.schema.field(f"b{i}").type for i, (column, kind, _) in enumerate(wanted) if kind == "type"}
    conditions = []
    for i, (column, kind, _) in enumerate(wanted):
        value = row.column(f"b{i}")[0].as_py() if row.num_rows else None
        type_ = types.get(column, row.schema.field(f"b{i}").type)
        if kind == "type" or value is None or not (pa.types.is_integer(type_) or pa.types.is_temporal(type_)
                                                   or pa.types.is_string(type_)):
            continue
        value = _as_column_value(value, type_)
        if value is None:
            continue
        exact = _bucket_ranges(engine, column, type_, *buckets[column]) if column in buckets and kind == ">=" else None
        conditions.append(exact or f"{column} {kind} {exp.convert(value).sql(dialect=dialect)}")
    return "".join(f"{c} AND " for c in conditions)


def _as_column_value(value: Any, type_: pa.DataType) -> Any:
    """A bound computed over the changes, as a value of the column's type (None when it cannot be: no range rather
    than a wrong one). A date bound of a timestamp column starts at midnight (both engines' sessions are in UTC)."""
    if pa.types.is_timestamp(type_) and type(value) is dt.date:
        value = dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC if type_.tz else None)
    if isinstance(value, dt.datetime) and pa.types.is_timestamp(type_) and bool(type_.tz) != bool(value.tzinfo):
        return None
    return value


def _bucket_ranges(engine: Engine, column: str, type_: pa.DataType, bucket: str, width: dt.timedelta) -> str | None:
    """``(col >= b AND col < b + width) OR ...`` over the distinct buckets the changes touch (adjacent ones joined),
    or None when there are more than ``MAX_BUCKETS`` or a bucket is not a value of the column's type."""
    dialect = engine.capabilities.dialect
    found = engine.to_arrow(engine.query(
        f"SELECT DISTINCT {bucket} AS b FROM __lf_changes WHERE {bucket} IS NOT NULL LIMIT {MAX_BUCKETS + 1}",
        relations={}))
    if not found.num_rows or found.num_rows > MAX_BUCKETS:
        return None
    starts = sorted(_as_column_value(v, type_) for v in found.column("b").to_pylist())
    if any(v is None or not isinstance(v, dt.datetime | dt.date) for v in starts):
        return None
    ranges: list[list[Any]] = []
    for start in starts:
        if ranges and ranges[-1][1] >= start:
            ranges[-1][1] = start + width
        else:
            ranges.append([start, start + width])
    parts = [f"({column} >= {exp.convert(low).sql(dialect=dialect)} AND {column} < "
             f"{exp.convert(high).sql(dialect=dialect)})" for low, high in ranges]
    return "(" + " OR ".join(parts) + ")"


def _unqualified(expression: exp.Expr) -> exp.Expr:
    copy = expression.copy()
    for column in copy.find_all(exp.Column):
        column.set("table", None)
    return copy


def gone(engine: Engine, model: Model, kept: Relation, *, images: Relation, by: dict[str, exp.Expr],
         partitions: bool, catalog: Catalog) -> Relation:
    """The keys of stored rows that a recomputation replaces and that are no longer in its result (a group that a
    HAVING now filters out, a partition row a QUALIFY no longer keeps, the group a moved row left)."""
    dialect = engine.capabilities.dialect
    keys = model.config.unique_key
    names = ", ".join(ident(k, dialect=dialect) for k in keys)
    engine.register("__lf_kept", kept)
    engine.register("__lf_changes", images)
    touched = ", ".join(f"{_on_driver(e, dialect)} AS {ident(c, dialect=dialect)}" for c, e in by.items())
    if not partitions:  # the touched keys themselves
        sql = f"SELECT DISTINCT {touched} FROM __lf_changes EXCEPT SELECT {names} FROM __lf_kept"
    else:  # the stored rows of the touched partitions
        engine.register("__lf_target", catalog.dataset(model.name))
        same = " AND ".join(exp.NullSafeEQ(this=exp.column(c, table="t", quoted=True),
                                           expression=exp.column(c, table="c", quoted=True)).sql(dialect=dialect)
                            for c in by)
        sql = (f"SELECT {names} FROM __lf_target AS t WHERE EXISTS (SELECT 1 FROM (SELECT DISTINCT {touched} "
               f"FROM __lf_changes) AS c WHERE {same}) EXCEPT SELECT {names} FROM __lf_kept")
    return engine.query(sql, relations={})


def _on_driver(expression: exp.Expr, dialect: str) -> str:
    """An expression over the driver's columns, as the model's SQL computes it in the engine's dialect."""
    bare = _unqualified(expression)
    if dialect == "duckdb":
        bare = bare.transform(_databricks_int)
    return bare.sql(dialect=dialect)


