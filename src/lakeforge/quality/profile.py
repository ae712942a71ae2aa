"""Column profiles of a table at a version: null rate, distinct count, min and max, quantiles, histogram."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

import pyarrow as pa
import pyarrow.types as pat

from lakeforge.sql import DUCKDB

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
BINS = 10

# a histogram's bin: [from, to) and its count (``from`` is a keyword: the functional form)
HistogramBin = TypedDict("HistogramBin", {"from": float, "to": float, "count": int})


class ColumnProfile(TypedDict):
    name: str
    type: str
    null_rate: float
    distinct: int
    min: object  # the column's own type (a number, a string, a date ...): JSON prints it as text where it must
    max: object
    quantiles: NotRequired[dict[str, float]]  # p5 .. p95 (numeric columns; a Decimal for a decimal column)
    histogram: NotRequired[list[HistogramBin]]  # numeric columns with values


class TableProfile(TypedDict):
    """``lakeforge profile``: a table at a version, per column."""

    table: str
    version: int
    rows: int
    columns: list[ColumnProfile]


def profile_sql(schema: pa.Schema, relation: str) -> tuple[str, list[str]]:
    """One aggregate query over ``relation`` computing every column's figures in a single scan."""
    parts = ["count(*) AS __rows"]
    numeric = []
    for i, field in enumerate(schema):
        col = DUCKDB.ident(field.name)
        parts += [f"count({col}) AS c{i}_n", f"count(DISTINCT {col}) AS c{i}_d"]
        if pat.is_nested(field.type) or pat.is_binary(field.type):
            continue
        parts += [f"min({col}) AS c{i}_min", f"max({col}) AS c{i}_max"]
        if pat.is_integer(field.type) or pat.is_floating(field.type) or pat.is_decimal(field.type):
            numeric.append(field.name)
            qs = ", ".join(str(q) for q in QUANTILES)
            parts.append(f"quantile_cont({col}, [{qs}]) AS c{i}_q")
    return f"SELECT {', '.join(parts)} FROM {relation}", numeric


def histogram_sql(column: str, relation: str, low: float, high: float) -> str:
    col = DUCKDB.ident(column)
    width = (high - low) / BINS or 1.0
    return (f"SELECT least(floor(({col} - {low}) / {width}), {BINS - 1})::INT AS bin, count(*) AS n "
            f"FROM {relation} WHERE {col} IS NOT NULL GROUP BY 1 ORDER BY 1")


def assemble(schema: pa.Schema, row: dict[str, Any], histograms: dict[str, list[HistogramBin]]
             ) -> list[ColumnProfile]:
    rows = int(row["__rows"])
    columns = []
    for i, field in enumerate(schema):
        non_null = int(row[f"c{i}_n"])
        entry: ColumnProfile = {
            "name": field.name, "type": str(field.type),
            "null_rate": round(1 - non_null / rows, 6) if rows else 0.0,
            "distinct": int(row[f"c{i}_d"]),
            "min": row.get(f"c{i}_min"), "max": row.get(f"c{i}_max"),
        }
        if row.get(f"c{i}_q") is not None:
            entry["quantiles"] = {f"p{round(q * 100)}": v for q, v in zip(QUANTILES, row[f"c{i}_q"], strict=True)}
        if field.name in histograms:
            entry["histogram"] = histograms[field.name]
        columns.append(entry)
    return columns
