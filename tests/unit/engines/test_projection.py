"""The typed/rescue projection of ingestion (lakeforge.engines.projection): DuckDB runs its rendering and gets what
a reference computed here in Python says, for random column names (quotes, backticks, spaces, any script), types
and values; the Spark rendering parses in sqlglot's Spark dialect and writes back the same (Spark itself computing
what DuckDB computes on the same rows: tests/integration/test_projection_spark.py, slow)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from lakeforge.engines.base import ReadPlan
from lakeforge.engines.projection import RESCUED, java_pattern, projection, raw_type, render, spark_type
from lakeforge.errors import ConfigError
from lakeforge.sql import ident, ident_node

TYPES = ("bigint", "int", "double", "boolean", "date", "timestamp", "timestamp_ntz", "string")
FORMAT = "%d/%m/%Y %H:%M:%S"
UTC = dt.UTC
RESERVED = {RESCUED.casefold(), "_source_file"}
ODD = "`\"' \\.-$[]{}#%\n"


@dataclass
class Case:
    """Raw text rows over ``columns``, a plan, and what the projection must give: each output column's values and
    the rescued objects."""

    columns: list[str]
    plan: ReadPlan
    timestamp_format: str | None
    rows: list[dict[str, str | None]]
    expected: dict[str, list[Any]] = field(default_factory=dict)
    rescued: list[dict[str, str] | None] = field(default_factory=list)


def names(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=1, max_size=8).filter(
        lambda n: n.casefold() not in RESERVED and not n.startswith("__lf_"))


ANY_NAME = names(st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from(ODD))
PLAIN_NAME = names(st.sampled_from("abcXYZ_0 `\"'.$"))  # for Spark, whose startup dominates: fewer surprises


def valid(type_name: str, timestamp_format: str | None) -> st.SearchStrategy[tuple[str, Any]]:
    """(text, the value it types to)."""
    if type_name in ("bigint", "int"):
        bits = 63 if type_name == "bigint" else 31
        return st.integers(-(2**bits), 2**bits - 1).map(lambda i: (str(i), i))
    if type_name == "double":
        return st.floats(allow_nan=False, allow_infinity=False).map(lambda f: (repr(f), f))
    if type_name == "boolean":
        return st.booleans().map(lambda b: (str(b).lower(), b))
    if type_name == "date":
        return st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)).map(lambda d: (d.isoformat(), d))
    if type_name.startswith("timestamp"):
        moments = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 12, 31))
        aware = type_name == "timestamp"
        if timestamp_format:
            return moments.map(lambda m: m.replace(microsecond=0)).map(
                lambda m: (m.strftime(timestamp_format), m.replace(tzinfo=UTC) if aware else m))
        return moments.map(lambda m: (m.isoformat(sep=" "), m.replace(tzinfo=UTC) if aware else m))
    return st.text(st.characters(exclude_categories=("Cs",))).map(lambda s: (s, s))


def misfit(type_name: str) -> st.SearchStrategy[str]:
    """Text that fits no type but string (a leading x: no number, boolean, date, "nan" or "inf")."""
    return st.text(st.sampled_from("xyz n/a-:.é\"'\\{}"), max_size=6).map(lambda s: "x" + s)


@st.composite
def cases(draw: st.DrawFn, *, name: st.SearchStrategy[str] = ANY_NAME, max_rows: int = 4) -> Case:
    columns = draw(st.lists(name, min_size=1, max_size=6, unique_by=str.casefold))
    roles = {c: draw(st.sampled_from(["typed", "typed", "typed", "rescue", "ignore", "plain"])) for c in columns}
    absent = [a for a in draw(st.lists(name, max_size=2, unique_by=str.casefold))
              if a.casefold() not in {c.casefold() for c in columns}]
    types = {c: draw(st.sampled_from(TYPES)) for c in [*columns, *absent] if roles.get(c, "typed") == "typed"}
    fmt = draw(st.sampled_from([None, FORMAT]))
    plan = ReadPlan(types=types, rescue=tuple(c for c in columns if roles[c] == "rescue"),
                    ignore=tuple(c for c in columns if roles[c] == "ignore"))
    case = Case(columns=columns, plan=plan, timestamp_format=fmt, rows=[])
    out = [c for c in columns if roles[c] in ("typed", "plain")] + absent
    case.expected = {c: [] for c in out}
    for _ in range(draw(st.integers(1, max_rows))):
        row, rescued = {}, {}
        for c in columns:
            kind = draw(st.sampled_from(["null", "valid", "valid", "misfit"]))
            if c in types and types[c] != "string" and kind != "null":
                text, value = (draw(misfit(types[c])), None) if kind == "misfit" else draw(valid(types[c], fmt))
                if kind == "misfit":
                    rescued[c] = text
            else:
                text = None if kind == "null" else draw(st.text(st.characters(exclude_categories=("Cs",))))
                value = text
                if c in plan.rescue and text is not None:
                    rescued[c] = text
            row[c] = text
            if c in case.expected:
                case.expected[c].append(value)
        for a in absent:
            case.expected[a].append(None)
        case.rows.append(row)
        case.rescued.append(rescued or None)
    return case


def text_table(case: Case) -> pa.Table:
    return pa.table({c: pa.array([r[c] for r in case.rows], pa.string()) for c in case.columns})


def built(case: Case) -> Any:
    return projection(dict.fromkeys(case.columns), case.plan, timestamp_format=case.timestamp_format)


def outcome(table: pa.Table) -> tuple[dict[str, list[Any]], list[dict[str, str] | None]]:
    """The typed columns and the rescued objects (parsed) of a result."""
    data = {n: table.column(n).to_pylist() for n in table.column_names if n != RESCUED}
    rescued = [None if r is None else json.loads(r) for r in table.column(RESCUED).to_pylist()]
    return data, rescued


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def run_duckdb(con: duckdb.DuckDBPyConnection, case: Case) -> pa.Table:
    con.register("__lf_raw", text_table(case))
    try:
        select = built(case).sql(dialect="duckdb", with_rescued=True)
        return con.sql(f"SELECT {', '.join(select)} FROM __lf_raw").to_arrow_table()
    finally:
        con.unregister("__lf_raw")


@settings(derandomize=True, database=None, deadline=None, max_examples=200,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cases())
def test_duckdb_rendering_types_and_rescues_as_the_reference(con: duckdb.DuckDBPyConnection, case: Case) -> None:
    table = run_duckdb(con, case)
    assert table.column_names == [*case.expected, RESCUED]
    data, rescued = outcome(table)
    assert data == case.expected
    assert rescued == case.rescued


@settings(derandomize=True, database=None, deadline=None, max_examples=200)
@given(cases())
def test_spark_rendering_parses_and_round_trips(case: Case) -> None:
    for dialect in ("spark", "databricks"):
        written = built(case).sql(dialect=dialect, with_rescued=True)
        parsed = [sqlglot.parse_one(sql, read=dialect) for sql in written]
        assert [p.sql(dialect=dialect) for p in parsed] == written
        assert [p.alias_or_name for p in parsed] == [*case.expected, RESCUED]


def test_a_plan_with_nothing_to_do_passes_the_columns_without_rescued_data() -> None:
    plain = projection({"a": None, "b`": None}, ReadPlan())
    assert plain.sql(dialect="spark") == ["`a`", "`b```"]
    assert plain.sql(dialect="duckdb", with_rescued=True)[-1] == 'CAST(NULL AS TEXT) AS "_rescued_data"'


def test_columns_already_of_their_type_are_kept_and_typed_timestamps_are_cast_not_parsed() -> None:
    raw = {"id": raw_type("BIGINT", dialect="duckdb"), "ts": raw_type("TIMESTAMP WITH TIME ZONE", dialect="duckdb"),
           "n": raw_type("INTEGER", dialect="duckdb"), "s": raw_type("VARCHAR", dialect="duckdb")}
    typed = projection(raw, ReadPlan(types={"id": "bigint", "ts": "timestamp", "n": "bigint", "s": "string"}),
                       timestamp_format="%d/%m/%Y")
    assert typed.sql(dialect="duckdb")[:4] == ['"id" AS "id"', '"ts" AS "ts"', 'TRY_CAST("n" AS BIGINT) AS "n"',
                                               '"s" AS "s"']
    assert raw_type("no such type(", dialect="spark") == exp.DataType(this=exp.DataType.Type.UNKNOWN)


@pytest.mark.parametrize("name", ["plain", "a b", "x`y", 'q"r', "it's", "back\\slash", "tab\tnew\nline", "ünï"])
@pytest.mark.parametrize("dialect", ["duckdb", "spark", "databricks"])
def test_names_are_quoted_as_lakeforge_sql_quotes_them(name: str, dialect: str) -> None:
    assert ident_node(name).sql(dialect=dialect) == ident(name, dialect=dialect)
    case = projection({name: None}, ReadPlan(types={name: "bigint"}))
    rescued = sqlglot.parse_one(render(case.rescued, dialect=dialect), read=dialect)
    assert {c.name for c in rescued.find_all(exp.Column)} == {name}
    assert name in {k.name for k in rescued.find_all(exp.Literal) if k.is_string}


@pytest.mark.parametrize(("strptime", "java"), [
    ("%Y-%m-%dT%H:%M:%S.%f", "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"),
    ("%d/%m/%Y %H:%M", "dd/MM/yyyy HH:mm"),
    ("%F %T%z", "yyyy-MM-dd HH:mm:ssXX"),
    ("%Y at %Hh", "yyyy' at 'HH'h'"),
    ("%Y'%m", "yyyy''''MM"),  # a quote: quoted, and doubled inside
    ("[%Y] 100%%", "'['yyyy'] 100%'"),  # Java's optional-section brackets are literal here
])
def test_strptime_to_java_pattern(strptime: str, java: str) -> None:
    assert java_pattern(strptime) == java


@pytest.mark.parametrize("bad", ["%U", "%Y-%W", "%Y%"])
def test_a_directive_spark_cannot_parse_is_refused_with_the_fix(bad: str) -> None:
    with pytest.raises(ConfigError, match="has no Spark equivalent") as caught:
        java_pattern(bad)
    assert "use the directives" in str(caught.value.hint) and "drop timestamp_format" in str(caught.value.hint)


def test_spark_types() -> None:
    assert [spark_type(t) for t in ("varchar", "string", "long", "timestamptz", "timestamp_ntz", "decimal(10,2)")] \
        == ["STRING", "STRING", "BIGINT", "TIMESTAMP", "TIMESTAMP_NTZ", "DECIMAL(10, 2)"]
