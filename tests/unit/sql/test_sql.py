"""The one quoting module (issue 21, point 6): any name survives as an identifier of every dialect, any string as
a literal, whatever quotes, backslashes, backticks or control characters it holds."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

import lakeforge
from lakeforge.sql import DATABRICKS, DUCKDB, SPARK, NoLiteral, ident, literal, literal_node

DIALECTS = ("duckdb", "postgres", "snowflake", "spark", "databricks")
NASTY = ["", "a'b", 'a"b', "a`b", "a\\b", "a\\'b", "\\", "'", "a\nb\r\t", "a\x00b", "é\u2028☃", "''", "``", '""']


@settings(max_examples=200, deadline=None)
@given(name=st.text())
@pytest.mark.parametrize("dialect", DIALECTS)
def test_ident_round_trips_through_sqlglot(dialect: str, name: str) -> None:
    select = sqlglot.parse_one(f"SELECT 1 AS {ident(name, dialect=dialect)}", read=dialect)
    assert isinstance(select, sqlglot.exp.Select)
    assert select.expressions[0].alias == name


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", NASTY)
def test_ident_of_nasty_names(dialect: str, name: str) -> None:
    select = sqlglot.parse_one(f"SELECT 1 AS {ident(name, dialect=dialect)}", read=dialect)
    assert select.expressions[0].alias == name


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@settings(max_examples=300, deadline=None)
@given(value=st.text())
def test_literal_of_any_string_evaluates_to_it_in_duckdb(con: duckdb.DuckDBPyConnection, value: str) -> None:
    row = con.execute(f"SELECT {literal(value, dialect='duckdb')}").fetchone()
    assert row is not None and row[0] == value


@settings(max_examples=200, deadline=None)
@given(value=st.text())
@pytest.mark.parametrize("dialect", DIALECTS)
def test_literal_of_any_string_parses_back_in_sqlglot(dialect: str, value: str) -> None:
    """sqlglot's tokenizer reads each dialect's escapes (backslashes in Spark and Snowflake, doubled quotes in the
    others): the literal parses back to the same text."""
    select = sqlglot.parse_one(f"SELECT {literal(value, dialect=dialect)}", read=dialect)
    node = select.expressions[0]
    assert isinstance(node, sqlglot.exp.Literal) and node.is_string
    assert node.this == value


@pytest.mark.parametrize("value", [v for v in NASTY if v])  # (DuckDB has no empty column name)
def test_ident_and_literal_in_duckdb(con: duckdb.DuckDBPyConnection, value: str) -> None:
    cursor = con.execute(f"SELECT {literal(value, dialect='duckdb')} AS {ident(value, dialect='duckdb')}")
    assert cursor.description is not None and cursor.description[0][0] == value
    assert cursor.fetchone() == (value,)


def test_identifier_quotes_per_dialect() -> None:
    assert ident('we"ird', dialect="duckdb") == '"we""ird"'
    assert ident("we`ird", dialect="spark") == "`we``ird`"
    assert ident("x", dialect="databricks") == "`x`"
    assert ident("x", dialect="snowflake") == '"x"'
    assert ident("x", dialect="mysql") == "`x`"  # a dialect of no table: sqlglot renders it


def test_string_literal_escapes_per_dialect() -> None:
    assert literal("it's", dialect="duckdb") == "'it''s'"
    assert literal("it's", dialect="postgres") == "'it''s'"
    assert literal("a\\b", dialect="duckdb") == "'a\\b'"
    assert literal("it's a\\b", dialect="spark") == "'it\\'s a\\\\b'"
    assert literal("it's", dialect="snowflake") == "'it\\'s'"


def test_scalar_literals() -> None:
    assert literal(None, dialect="duckdb") == "NULL"
    assert literal(True, dialect="spark") == "TRUE" and literal(False, dialect="duckdb") == "FALSE"
    assert literal(42, dialect="duckdb") == "42" and literal(-1.5, dialect="spark") == "-1.5"
    assert literal(decimal.Decimal("1.10"), dialect="duckdb") == "1.10"
    assert literal(dt.date(2024, 2, 29), dialect="spark") == "DATE '2024-02-29'"
    assert literal(dt.datetime(2024, 1, 2, 3, 4, 5), dialect="duckdb") == "TIMESTAMP '2024-01-02 03:04:05'"
    aware = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert literal(aware, dialect="duckdb") == "TIMESTAMPTZ '2024-01-02 03:04:05+00:00'"
    assert literal(aware, dialect="spark") == "TIMESTAMP '2024-01-02 03:04:05+00:00'"
    for bad in (float("nan"), float("inf"), decimal.Decimal("NaN"), object(), b"x"):
        with pytest.raises(NoLiteral):
            literal(bad, dialect="duckdb")
        with pytest.raises(NoLiteral):
            literal_node(bad)


@pytest.mark.parametrize("value", [None, True, 7, -2.5, decimal.Decimal("1.10"), "it's \\ `x`", dt.date(2024, 2, 29),
                                   dt.datetime(2024, 1, 2, 3, 4, 5)])
def test_literal_node_evaluates_like_literal(con: duckdb.DuckDBPyConnection, value: object) -> None:
    text = f"SELECT {literal_node(value).sql(dialect='duckdb')}, {literal(value, dialect='duckdb')}"
    row = con.execute(text).fetchone()
    assert row is not None and row[0] == row[1] == value


def test_date_and_timestamp_literals_evaluate_in_duckdb(con: duckdb.DuckDBPyConnection) -> None:
    day, moment = dt.date(2024, 2, 29), dt.datetime(2024, 1, 2, 3, 4, 5, 678901)
    row = con.execute(f"SELECT {literal(day, dialect='duckdb')}, {literal(moment, dialect='duckdb')}").fetchone()
    assert row == (day, moment)


def test_import_loads_no_heavy_module() -> None:
    """A low layer: importing it (every command may) pulls in neither sqlglot nor the project."""
    src = str(Path(lakeforge.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src}
    code = ("import json, sys, lakeforge; before = set(sys.modules); import lakeforge.sql\n"
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    added = set(json.loads(proc.stdout))
    assert "sqlglot" not in added
    assert not {m for m in added if m.startswith("lakeforge.") and m != "lakeforge.sql"}


def test_bound_quoting_is_the_functions() -> None:
    assert DUCKDB.ident('a"b') == ident('a"b', dialect="duckdb")
    assert SPARK.literal("it's") == literal("it's", dialect="spark")
    assert DATABRICKS.ident("a`b") == "`a``b`"
