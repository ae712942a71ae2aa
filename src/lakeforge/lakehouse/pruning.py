"""Which files of a Delta table a MERGE needs: the target predicate that lets delta-rs skip the others.

delta-rs prunes a merge's target files only by predicates on the target alone: its own pruning from the source's
statistics is off in the streamed execution it uses by default, and a range ``min..max`` of the source keys would
span the whole table when the source's rows are spread over its history (a late file over 1% of the hours). So
the merge condition carries, beside the key equalities, the ranges the source's key values lie in
(:func:`key_ranges`): every target row that equals a source row on the keys lies in them, so the condition means
the same, and a file whose statistics lie outside them is neither read nor rewritten.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import DeltaTable

MAX_RANGES = 64  # ranges per key column; the source's values beyond that are joined across their smallest gaps


def _prunable(type_: pa.DataType) -> bool:
    """Types whose file statistics are exact enough to skip by (strings' are truncated)."""
    return pa.types.is_integer(type_) or pa.types.is_date(type_) or pa.types.is_timestamp(type_)


def key_ranges(data: pa.Table, keys: list[str], *, schema: pa.Schema | None = None, alias: str = "t",
               limit: int = MAX_RANGES) -> str:
    """A predicate over the target (``alias``) that every row whose ``keys`` equal a row's of ``data`` satisfies:
    per key column of integers, dates or timestamps without nulls in ``data``, its distinct values as at most
    ``limit`` closed ranges (adjacent integers and dates in one; beyond ``limit``, neighbours across the smallest
    gaps joined), ``(t.k >= a AND t.k <= b) OR ...``; the columns' predicates joined with AND. ``""`` when no
    column gives one. ``schema``: the target's; a column of another type there is left out. A timestamp's lower
    bound is floored to the millisecond: Delta keeps its statistics in milliseconds (a file's maximum floored), so
    the bound never excludes a file that holds the value."""
    parts = []
    for key, ranges in _key_ranges(data, keys, schema=schema, limit=limit).items():
        name = f"{alias}.`{key}`"
        parts.append("(" + " OR ".join(
            f"{name} = {_literal(low)}" if low == high else f"({name} >= {_literal(low)} AND {name} <= "
            f"{_literal(high)})" for low, high in ranges) + ")")
    return " AND ".join(parts)


def key_filter(data: pa.Table, keys: list[str], *, schema: pa.Schema | None = None,
               limit: int = MAX_RANGES) -> pc.Expression | None:
    """:func:`key_ranges` as an Arrow dataset filter (None: no range), by which a scan skips row groups."""
    found: pc.Expression | None = None
    for key, ranges in _key_ranges(data, keys, schema=schema, limit=limit).items():
        type_ = data[key].type
        field = pc.field(key)
        either: pc.Expression | None = None
        for low, high in ranges:
            one = (field >= pa.scalar(low, type_)) & (field <= pa.scalar(high, type_))
            either = one if either is None else either | one
        if either is not None:
            found = either if found is None else found & either
    return found


def _key_ranges(data: pa.Table, keys: list[str], *, schema: pa.Schema | None, limit: int
                ) -> dict[str, list[tuple[Any, Any]]]:
    found = {}
    for key in keys:
        if key not in data.column_names or not data.num_rows:
            continue
        column = data[key]
        if column.null_count or not _prunable(column.type):
            continue
        if schema is not None and (schema.get_field_index(key) < 0 or schema.field(key).type != column.type):
            continue
        ranges = _ranges(column, limit=limit)
        if ranges:
            found[key] = ranges
    return found


def absent(dataset: pads.FileSystemDataset, data: pa.Table, keys: list[str]) -> tuple[pa.Table, int] | None:
    """The rows of ``data`` whose ``keys`` no row of ``dataset`` (the target) has, and the target files read: an
    insert-only MERGE without its join over every column of the files it touches. Only the key columns are read,
    of the files and row groups whose statistics overlap :func:`key_filter`'s ranges, and probe a hash table of
    ``data``'s keys (the small side). None when it cannot tell here (a key column with nulls in ``data``, where a
    MERGE compares null-safe; types an Arrow join does not take)."""
    if not isinstance(dataset, pads.FileSystemDataset) or any(
            k not in data.column_names or data[k].null_count for k in keys):
        return None
    schema = dataset.schema
    if any(schema.get_field_index(k) < 0 for k in keys):
        return None
    where = key_filter(data, keys, schema=schema)
    fragments = list(dataset.get_fragments(filter=where) if where is not None else dataset.get_fragments())
    groups = [g for f in fragments for g in f.split_by_row_group(filter=where)] if where is not None else fragments
    try:
        stored = pads.FileSystemDataset(groups, schema, dataset.format, dataset.filesystem).to_table(columns=keys)
        stored = pa.table({k: stored[k].cast(data[k].type) for k in keys})
        fresh = stored.join(data, keys=keys, join_type="right anti", use_threads=False)
    except pa.ArrowException:
        return None
    return fresh.select(data.column_names), len(fragments)


def _ranges(column: pa.ChunkedArray, *, limit: int) -> list[tuple[Any, Any]]:
    """The column's distinct values as sorted closed ranges ``(low, high)``, at most ``limit`` of them."""
    values = pc.unique(column)
    values = values.take(pc.sort_indices(values))
    lows, highs = values.to_pylist(), values.to_pylist()
    if pa.types.is_timestamp(values.type):
        lows = pc.floor_temporal(values, unit="millisecond").to_pylist()
        if values.type.unit == "ns":  # (Python's datetime holds microseconds)
            highs = pc.ceil_temporal(values, unit="microsecond").cast(pa.timestamp("us", values.type.tz)).to_pylist()
    if any(v is None for v in highs) or any(v is None for v in lows):  # (a value Python cannot hold: no ranges)
        return []
    step = 1 if pa.types.is_integer(values.type) else dt.timedelta(days=1) if pa.types.is_date(values.type) else None
    gaps = [lows[i] - highs[i - 1] for i in range(1, len(highs))]
    joined = {i for i, gap in enumerate(gaps, start=1) if step is not None and gap <= step}
    apart = sorted((i for i in range(1, len(highs)) if i not in joined), key=lambda i: gaps[i - 1], reverse=True)
    joined |= set(apart[limit - 1:])
    ranges: list[tuple[Any, Any]] = []
    for i, (low, high) in enumerate(zip(lows, highs, strict=True)):
        if i in joined:
            ranges[-1] = (ranges[-1][0], high)
        else:
            ranges.append((low, high))
    return ranges


def _literal(value: Any) -> str:
    """A SQL literal delta-rs (DataFusion) compares with the column: numbers bare, dates and timestamps quoted
    ISO text (a timezone-aware one with its offset)."""
    if isinstance(value, dt.datetime | dt.date):
        return f"'{value.isoformat()}'"
    return str(int(value))


def _plain(type_: pa.DataType) -> pa.DataType:
    if type_ in (pa.string_view(), pa.large_string()):
        return pa.string()
    if type_ in (pa.binary_view(), pa.large_binary()):
        return pa.binary()
    return type_


def same_types(table: DeltaTable, data: pa.Table) -> bool:
    """Whether ``data``'s columns have the table's types (an append then writes what a merge would)."""
    schema = pa.schema(table.schema().to_arrow())
    return all(_plain(schema.field(f.name).type) == _plain(f.type) for f in data.schema
               if schema.get_field_index(f.name) >= 0)


def may_match(table: DeltaTable, data: pa.Table, keys: list[str]) -> bool:
    """Whether some file of ``table`` may hold a row whose ``keys`` equal a row's of ``data``, by the files'
    min/max statistics of the key columns that are integers, dates or timestamps and have no nulls in ``data``.
    A file without statistics may always match."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if not actions.num_rows:
        return False
    possible = pa.array([True] * actions.num_rows)
    for key in keys:
        if key not in data.column_names or f"min.{key}" not in actions.column_names:
            continue
        column = data[key]
        type_ = actions[f"min.{key}"].type
        if column.null_count or not (pa.types.is_integer(type_) or pa.types.is_temporal(type_)):
            continue
        try:
            bounds = pc.min_max(column.cast(type_))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        low, high = bounds["min"], bounds["max"]
        mins, maxs = actions[f"min.{key}"], actions[f"max.{key}"]
        if pa.types.is_timestamp(type_):  # Delta keeps timestamp statistics in milliseconds: a max is floored
            maxs = pc.add(maxs, pa.scalar(dt.timedelta(milliseconds=1), pa.duration(type_.unit)))
        overlaps = pc.and_(pc.less_equal(mins, high), pc.greater_equal(maxs, low)).fill_null(True)
        if f"null_count.{key}" in actions.column_names:  # a file of nulls only never equals a value
            only_nulls = pc.equal(actions[f"null_count.{key}"], actions["num_records"]).fill_null(False)
            overlaps = pc.and_(overlaps, pc.invert(only_nulls))
        possible = pc.and_(possible, overlaps)
    return bool(pc.any(possible).as_py())
