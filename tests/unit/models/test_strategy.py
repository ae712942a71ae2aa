"""The strategy each SQL shape gets (docs/transforms.md, "SQL shapes and their strategies"): a strategy only when
it provably equals a recomputation, else the whole table with the reason; a header that demands a wrong one is
refused with the file, the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeforge.errors import ConfigError, ModelError
from lakeforge.models.model import parse_model
from lakeforge.models.strategy import analyze

COLUMNS = {"silver.readings": ["machine_id", "ts", "v"], "silver.machines": ["machine_id", "model", "site"]}

# (header, SQL, strategy, a word of the reason or of the key)
SHAPES = [
    ("", "SELECT machine_id, ts, v * 2 AS v2 FROM silver.readings WHERE v > 0", "append", "row-wise"),
    ("unique_key: [machine_id, ts]", "SELECT * FROM silver.readings", "merge", "keyed"),
    ("unique_key: [machine_id, ts]",
     "SELECT machine_id, r.ts, m.model FROM silver.readings AS r JOIN silver.machines AS m USING (machine_id)",
     "full", "unique_key machine_id"),
    ("unique_key: [machine_id, ts]",
     "SELECT r.machine_id, r.ts, m.model FROM silver.readings r LEFT JOIN silver.machines m ON m.machine_id = "
     "r.machine_id", "merge", "keyed"),
    ("unique_key: [model, ts]",
     "SELECT m.model, r.ts FROM silver.readings r JOIN silver.machines m ON m.machine_id = r.machine_id",
     "full", "unique_key model"),
    ("unique_key: [machine_id, hour]",
     "SELECT machine_id, date_trunc('HOUR', ts) AS hour, count(*) AS n FROM silver.readings GROUP BY 1, 2",
     "groups", "GROUP BY determines"),
    ("unique_key: [machine_id, hour]",
     "SELECT machine_id, date_trunc('HOUR', ts) AS hour, avg(v) AS v FROM silver.readings GROUP BY machine_id, hour",
     "groups", "GROUP BY determines"),
    ("unique_key: [machine_id, day]",
     "SELECT t.machine_id, CAST(t.ts AS DATE) AS day, m.model, count(*) AS n FROM silver.readings AS t "
     "LEFT JOIN silver.machines AS m ON m.machine_id = t.machine_id GROUP BY t.machine_id, CAST(t.ts AS DATE), "
     "m.model", "groups", "from every input"),
    ("unique_key: [machine_id]",
     "SELECT machine_id, CAST(ts AS DATE) AS day, count(*) AS n FROM silver.readings GROUP BY machine_id, "
     "CAST(ts AS DATE)", "full", "splits a unique_key"),
    ("unique_key: [site]",
     "SELECT m.site, count(*) AS n FROM silver.readings r JOIN silver.machines m ON m.machine_id = r.machine_id "
     "GROUP BY m.site", "full", "does not determine"),
    ("unique_key: [machine_id]",
     "SELECT machine_id, count(*) AS n FROM silver.readings GROUP BY machine_id HAVING count(*) > 2",
     "groups", "GROUP BY determines"),
    ("unique_key: [day]", "SELECT DISTINCT CAST(ts AS DATE) AS day, year(ts) AS y FROM silver.readings", "full",
     "splits"),
    ("unique_key: [ts]", "SELECT DISTINCT ts, year(ts) AS y FROM silver.readings", "groups", "GROUP BY determines"),
    ("", "SELECT machine_id, count(*) AS n FROM silver.readings GROUP BY machine_id", "full", "without unique_key"),
    ("unique_key: [n]", "SELECT count(*) AS n FROM silver.readings", "full", "one group"),
    ("unique_key: [machine_id, ts]",
     "SELECT machine_id, ts, sum(v) OVER (PARTITION BY machine_id ORDER BY ts) AS running FROM silver.readings",
     "partitions", "PARTITION BY (machine_id)"),
    ("unique_key: [machine_id]",
     "SELECT machine_id, ts FROM silver.readings QUALIFY row_number() OVER (PARTITION BY machine_id ORDER BY ts "
     "DESC) = 1", "partitions", "PARTITION BY (machine_id)"),
    ("unique_key: [machine_id, ts]",
     "SELECT machine_id, ts, avg(v) OVER w AS a FROM silver.readings WINDOW w AS (PARTITION BY machine_id "
     "ORDER BY ts ROWS 2 PRECEDING)", "partitions", "PARTITION BY (machine_id)"),
    ("unique_key: [machine_id, ts]",
     "SELECT machine_id, ts, row_number() OVER (ORDER BY ts) AS n FROM silver.readings", "full", "PARTITION BY"),
    ("unique_key: [ts]",
     "SELECT ts, row_number() OVER (PARTITION BY machine_id ORDER BY ts) AS n FROM silver.readings", "full",
     "unique_key contains"),
    ("unique_key: [machine_id]",
     "SELECT machine_id, sum(v) OVER (PARTITION BY machine_id) AS s FROM silver.readings GROUP BY machine_id, v",
     "full", "window functions over an aggregate"),
    ("", "SELECT machine_id FROM silver.readings UNION ALL SELECT machine_id FROM silver.machines", "full",
     "UNION"),
    ("", "SELECT machine_id, ts FROM silver.readings LIMIT 10", "full", "LIMIT"),
    ("", "SELECT machine_id, rand() AS r FROM silver.readings", "full", "rand()"),
    ("", "SELECT machine_id, current_timestamp() AS at FROM silver.readings", "full", "another value"),
    ("", "SELECT machine_id FROM silver.readings WHERE v > (SELECT avg(v) FROM silver.readings)", "full",
     "read more than once"),
    ("", "WITH r AS (SELECT * FROM silver.readings) SELECT machine_id FROM r", "full", "CTE or subquery"),
    ("unique_key: [machine_id]\n-- scd: 2\n-- updated_at: ts", "SELECT machine_id, ts, model FROM silver.machines",
     "scd2", "version"),
    ("expectations: [{name: once, unique: [machine_id, ts], action: quarantine}]",
     "SELECT machine_id, ts FROM silver.readings", "full", "judges a run's rows together"),
    ("expectations: [{name: typical, expr: 'v < 3 * avg(v) OVER ()', action: drop}]",
     "SELECT machine_id, ts, v FROM silver.readings", "full", "expectation typical"),
    ("expectations: [{name: once, unique: [machine_id, ts], action: warn}, {name: v, expr: v > 0, action: drop}]",
     "SELECT machine_id, ts, v FROM silver.readings", "append", "row-wise"),
]


def _model(tmp_path: Path, header: str, sql: str, *, kind: str = "incremental", name: str = "gold.m") -> Path:
    path = tmp_path / f"{name.replace('.', '_')}.sql"
    lines = [f"-- kind: {kind}"] + ([f"-- {header}"] if header else []) + [sql]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("header", "sql", "strategy", "word"), SHAPES)
def test_each_sql_shape_gets_the_strategy_that_equals_a_recomputation(
        tmp_path: Path, header: str, sql: str, strategy: str, word: str) -> None:
    model = parse_model(_model(tmp_path, header, sql), name="gold.m", dialect="databricks")
    shape = analyze(model, columns=COLUMNS.get)
    assert (shape.strategy, word in shape.reason or word in ", ".join(shape.keys)) == (strategy, True), shape.reason


def test_unknown_columns_of_a_join_are_never_taken_for_the_drivers(tmp_path: Path) -> None:
    """Without the tables' columns, an unqualified column of a joined query may be either table's: no proof."""
    sql = ("SELECT machine_id, CAST(ts AS DATE) AS day, count(*) AS n FROM silver.readings r JOIN silver.machines m "
           "ON m.machine_id = r.machine_id GROUP BY machine_id, CAST(ts AS DATE)")
    model = parse_model(_model(tmp_path, "unique_key: [machine_id, day]", sql), name="gold.m", dialect="databricks")
    assert analyze(model).strategy == "full"
    qualified = sql.replace("machine_id, CAST(ts", "r.machine_id, CAST(r.ts").replace("BY machine_id",
                                                                                     "BY r.machine_id")
    model = parse_model(_model(tmp_path, "unique_key: [machine_id, day]", qualified), name="gold.m",
                        dialect="databricks")
    assert analyze(model).strategy == "groups"


@pytest.mark.parametrize(("kind", "header", "sql", "line", "fix"), [
    ("append", "", "SELECT machine_id,\n  count(*) AS n\nFROM silver.readings\nGROUP BY machine_id", 5,
     "use `kind: incremental`"),
    ("merge", "unique_key: [model]",
     "SELECT m.model, r.ts\nFROM silver.readings r JOIN silver.machines m ON m.machine_id = r.machine_id", 3,
     "key the model by columns"),
    ("incremental", "unique_key: [machine_id]\n-- strategy: groups",
     "SELECT machine_id, v\nFROM silver.readings\nWHERE v > 0", 4, "GROUP BY the unique_key"),
    ("incremental", "unique_key: [ts]\n-- strategy: partitions",
     "SELECT ts,\n  row_number() OVER (ORDER BY ts) AS n\nFROM silver.readings", 5, "PARTITION BY columns"),
    ("append", "", "SELECT machine_id,\n  rand() AS r FROM silver.readings", 3, "use `kind: incremental`"),
])
def test_a_header_demanding_a_wrong_strategy_is_an_error_with_file_line_and_fix(
        tmp_path: Path, kind: str, header: str, sql: str, line: int, fix: str) -> None:
    path = _model(tmp_path, header, sql, kind=kind)
    model = parse_model(path, name="gold.m", dialect="databricks")
    with pytest.raises(ModelError) as caught:
        analyze(model, columns=COLUMNS.get)
    assert f"({path}, line {line})" in caught.value.message and fix in (caught.value.hint or "")


def test_a_demanded_strategy_the_sql_allows_is_used_and_full_always_is(tmp_path: Path) -> None:
    sql = "SELECT machine_id, count(*) AS n FROM silver.readings GROUP BY machine_id"
    groups = parse_model(_model(tmp_path, "unique_key: [machine_id]\n-- strategy: groups", sql), name="gold.m",
                         dialect="databricks")
    assert analyze(groups).strategy == "groups"
    full = parse_model(_model(tmp_path, "unique_key: [machine_id]\n-- strategy: full", sql), name="gold.m",
                       dialect="databricks")
    assert analyze(full).strategy == "full"
    materialized = parse_model(_model(tmp_path, "", "SELECT machine_id FROM silver.readings", kind="materialized"),
                               name="gold.m", dialect="databricks")
    assert analyze(materialized).strategy == "full"  # no key: nothing to merge on, recomputed as materialized says


def test_kind_and_strategy_that_disagree_are_a_header_error(tmp_path: Path) -> None:
    path = _model(tmp_path, "strategy: merge", "SELECT machine_id FROM silver.readings", kind="append")
    with pytest.raises(ConfigError, match="kind: append is strategy: append; remove one of them"):
        parse_model(path, name="gold.m", dialect="databricks")


def test_the_fingerprint_ignores_layout_comments_and_documentation_but_not_rows(tmp_path: Path) -> None:
    def fingerprint(text: str) -> dict[str, str]:
        path = tmp_path / "m.sql"
        path.write_text(text)
        return parse_model(path, name="gold.m", dialect="databricks").fingerprint()

    base = fingerprint("-- kind: incremental\n-- unique_key: [a]\nSELECT a, b FROM silver.x WHERE b > 1\n")
    assert fingerprint("-- kind: incremental\n-- unique_key: [a]\n-- description: docs\n-- owner: me\n"
                       "-- cluster_by: [a]\nselect a,\n   b  -- why\nfrom silver.x\nwhere b > 1;\n") == base
    edited = fingerprint("-- kind: incremental\n-- unique_key: [a]\nSELECT a, b FROM silver.x WHERE b > 2\n")
    assert [k for k in base if base[k] != edited[k]] == ["sql"]
    keyed = fingerprint("-- kind: incremental\n-- unique_key: [a, b]\nSELECT a, b FROM silver.x WHERE b > 1\n")
    assert [k for k in base if base[k] != keyed[k]] == ["unique_key"]
