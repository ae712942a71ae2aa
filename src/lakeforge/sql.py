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

# The identifier quote of each dialect (doubled inside a name).
_IDENT_QUOTES = {"duckdb": '"', "postgres": '"', "snowflake": '"', "spark": "`", "databricks": "`"}
# Dialects whose string literals read backslash escapes: a backslash and a quote are escaped with one; the others
# follow standard SQL (a quote doubled, a backslash is itself).
_BACKSLASH_STRINGS = frozenset({"spark", "databricks", "snowflake"})
# The type keyword of a zone-aware timestamp literal (a naive one is ``TIMESTAMP`` everywhere).
_ZONED = {"duckdb": "TIMESTAMPTZ", "postgres": "TIMESTAMPTZ", "snowflake": "TIMESTAMP_TZ"}


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
    else raises TypeError rather than splicing its ``str()``, which would hide a bug)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | decimal.Decimal):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no SQL literal")
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, dt.datetime):
        return _timestamp(value, dialect=dialect)
    if isinstance(value, dt.date):
        return f"DATE {string(value.isoformat(), dialect=dialect)}"
    if isinstance(value, str):
        return string(value, dialect=dialect)
    raise TypeError(f"{value!r} ({type(value).__name__}) has no SQL literal")


def _timestamp(value: dt.datetime, *, dialect: str) -> str:
    """A naive timestamp as ``TIMESTAMP '...'``; a zone-aware one keeps its offset (Spark's TIMESTAMP reads it)."""
    text = string(value.isoformat(sep=" "), dialect=dialect)
    if value.tzinfo is None:
        return f"TIMESTAMP {text}"
    return f"{_ZONED.get(dialect, 'TIMESTAMP')} {text}"


def _sqlglot_ident(name: str, dialect: str) -> str:
    from sqlglot import exp

    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)
