"""SQL quoting and literals, one place for every dialect lakeforge writes (issue 21).

Identifiers and literals built by hand in many modules drifted apart (DuckDB's ``"..."`` against Spark's
backticks, ``''`` against ``\\'``): a name or value with a quote, a backslash or a backtick then broke one engine
but not the other. Everything that splices a name or a value into SQL text goes through :func:`ident` and
:func:`literal` here.

A low layer: nothing of the project is imported, and sqlglot only lazily (for a dialect not in the tables
below), so importing this module costs nothing at startup.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlglot import exp

# The identifier quote of each dialect (doubled inside a name).
_IDENT_QUOTES = {"duckdb": '"', "postgres": '"', "snowflake": '"', "spark": "`", "databricks": "`"}
# Dialects whose string literals read backslash escapes: a backslash and a quote are escaped with one; the others
# follow standard SQL (a quote doubled, a backslash is itself).
_BACKSLASH_STRINGS = frozenset({"spark", "databricks", "snowflake"})
# The type keyword of a zone-aware timestamp literal (a naive one is ``TIMESTAMP`` everywhere).
_ZONED = {"duckdb": "TIMESTAMPTZ", "postgres": "TIMESTAMPTZ", "snowflake": "TIMESTAMP_TZ"}


class NoLiteral(ValueError):
    """A value that has no SQL literal (NaN, infinity, an object of no SQL type)."""


@dataclass(frozen=True)
class Quoting:
    """:func:`ident` and :func:`literal` bound to one dialect, for code that writes a whole statement in it (an
    engine, an export): short call sites, and a callable ``ident`` to hand on."""

    dialect: str

    def ident(self, name: str) -> str:
        return ident(name, dialect=self.dialect)

    def literal(self, value: object) -> str:
        return literal(value, dialect=self.dialect)


def ident(name: str, *, dialect: str) -> str:
    """``name`` as a quoted identifier of ``dialect``: always quoted, so case, spaces, reserved words and quote
    characters in a column name survive as they are."""
    quote = _IDENT_QUOTES.get(dialect)
    if quote is None:
        return _sqlglot_ident(name, dialect)
    return quote + name.replace(quote, quote + quote) + quote


def string(value: str, *, dialect: str) -> str:
    """``value`` as a string literal of ``dialect``."""
    if dialect in _BACKSLASH_STRINGS:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if dialect in _IDENT_QUOTES:
        return "'" + value.replace("'", "''") + "'"
    from sqlglot import exp

    return exp.Literal.string(value).sql(dialect=dialect)


def literal(value: object, *, dialect: str) -> str:
    """``value`` as a SQL literal of ``dialect``: None, bools, numbers, dates, timestamps and strings (anything
    else raises :class:`NoLiteral` rather than splicing its ``str()``, which would hide a bug)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | decimal.Decimal):
        if not math.isfinite(value):
            raise NoLiteral(f"value {value!r} has no SQL literal")
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, dt.datetime):
        return _timestamp(value, dialect=dialect)
    if isinstance(value, dt.date):
        return f"DATE {string(value.isoformat(), dialect=dialect)}"
    if isinstance(value, str):
        return string(value, dialect=dialect)
    raise NoLiteral(f"value {value!r} ({type(value).__name__}) has no SQL literal")


def literal_node(value: object) -> exp.Expr:
    """The literal of ``value`` as a sqlglot node, for SQL built as a tree and rendered per dialect by sqlglot
    (which then does the quoting); the same values as :func:`literal`, the same :class:`NoLiteral` otherwise."""
    from sqlglot import exp

    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.true() if value else exp.false()
    if isinstance(value, int | float | decimal.Decimal):
        return exp.Literal.number(literal(value, dialect="duckdb"))
    if isinstance(value, dt.datetime | dt.date):
        kind = "DATE" if not isinstance(value, dt.datetime) else "TIMESTAMPTZ" if value.tzinfo else "TIMESTAMP"
        text = value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
        return exp.cast(exp.Literal.string(text), exp.DataType.build(kind))
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise NoLiteral(f"value {value!r} ({type(value).__name__}) has no SQL literal")


def ident_node(name: str) -> exp.Identifier:
    """``name`` as a quoted sqlglot identifier, for SQL built as a tree: rendered, it is what :func:`ident` writes
    for the dialect (the quote doubled inside a name)."""
    from sqlglot import exp

    return exp.to_identifier(name, quoted=True)


def _timestamp(value: dt.datetime, *, dialect: str) -> str:
    """A naive timestamp as ``TIMESTAMP '...'``; a zone-aware one keeps its offset (Spark's TIMESTAMP reads it)."""
    text = string(value.isoformat(sep=" "), dialect=dialect)
    if value.tzinfo is None:
        return f"TIMESTAMP {text}"
    return f"{_ZONED.get(dialect, 'TIMESTAMP')} {text}"


def _sqlglot_ident(name: str, dialect: str) -> str:
    from sqlglot import exp

    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)


DUCKDB = Quoting("duckdb")
SPARK = Quoting("spark")
DATABRICKS = Quoting("databricks")
