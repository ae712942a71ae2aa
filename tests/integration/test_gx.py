"""A Great Expectations (GX 1.x) suite imported as lakeforge rules counts exactly what GX counts.

GX runs on a pandas DataFrame through an ephemeral context (no files, no network); lakeforge runs the imported
rules (action warn) in a silver model over the same rows. Row-level rules: lakeforge's failed count equals GX's
``unexpected_count``. Table-level rules (row count, column aggregates): the verdicts agree.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlglot

from lakeforge.models.model import parse_model
from lakeforge.project import Project
from lakeforge.quality.gx import import_suite, merge_into_header

N = 3000
HINTS = {"id": "bigint", "machine": "bigint", "site": "bigint", "ts": "timestamp", "volt": "double",
         "rotate": "double", "a": "double", "b": "double"}
COLUMNS = ["id", "machine", "site", "line", "ts", "volt", "rotate", "a", "b", "status", "code", "name", "comment",
           "label", "label2"]


def dataset(n: int = N, seed: int = 11) -> list[dict[str, Any]]:
    """Telemetry-like rows with nulls, out-of-range values, duplicates and bad patterns."""
    rng = np.random.default_rng(seed)

    def nulls(values: list[Any], rate: float) -> list[Any]:
        mask = rng.random(len(values)) < rate
        return [None if m else v for v, m in zip(values, mask, strict=True)]

    ids = np.arange(n)
    dup = rng.choice(n, size=40, replace=False)
    ids[dup] = rng.choice(n, size=40)
    volt = rng.normal(230, 40, n).round(2)
    volt[rng.choice(n, size=60, replace=False)] *= rng.choice([-1, 3], size=60)
    codes = [f"M{i:03d}" for i in rng.integers(0, 1000, n)]
    for i in rng.choice(n, size=300, replace=False):
        codes[i] = str(rng.choice(["X12", "m001", "M1", "xxM123yy", " M001", "M002 ", "Mé12", "M12\u0301"]))
    letters = np.array(list("abcdefgé"))
    names = ["".join(rng.choice(letters, size=int(k))) for k in rng.integers(1, 12, n)]
    a = rng.normal(10, 3, n).round(1)
    b = rng.normal(8, 3, n).round(1)
    b[rng.choice(n, size=50, replace=False)] = a[rng.choice(n, size=50, replace=False)]
    labels = [str(x) for x in rng.choice(["p", "q", "r"], n)]
    labels2 = [x if rng.random() > 0.1 else "z" for x in labels]
    start = np.datetime64("2024-01-01T00:00:00")
    ts = [str(start + np.timedelta64(int(s), "s")).replace("T", " ") for s in rng.integers(0, 9 * 86400, n)]
    columns: dict[str, list[Any]] = {
        "id": [int(x) for x in ids],
        "machine": nulls([int(x) for x in rng.integers(1, 26, n)], 0.05),
        "site": nulls([int(x) for x in rng.integers(0, 40, n)], 0.05),
        "line": nulls([f"L{x}" for x in rng.integers(0, 60, n)], 0.05),
        "ts": nulls(ts, 0.02),
        "volt": nulls([float(x) for x in volt], 0.03),
        "rotate": nulls([float(x) for x in rng.integers(0, 501, n)], 0.03),
        "a": nulls([float(x) for x in a], 0.05),
        "b": nulls([float(x) for x in b], 0.05),
        "status": nulls([str(x) for x in rng.choice(["ok", "warn", "error", "weird", "deleted"], n,
                                                     p=[0.7, 0.1, 0.1, 0.05, 0.05])], 0.04),
        "code": nulls(codes, 0.03),
        "name": nulls(names, 0.03),
        "comment": [None if rng.random() > 0.02 else "checked" for _ in range(n)],
        "label": nulls(labels, 0.05),
        "label2": nulls(labels2, 0.05),
    }
    return [{c: columns[c][i] for c in COLUMNS} for i in range(n)]


def build_suite(gxe: Any) -> list[Any]:
    """At least one of every mapped kind, plus some GX cannot give us rules for."""
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="ts"),
        gxe.ExpectColumnValuesToNotBeNull(column="machine", mostly=0.9),
        gxe.ExpectColumnValuesToBeNull(column="comment"),
        gxe.ExpectColumnValuesToBeBetween(column="volt", min_value=0, max_value=400),
        gxe.ExpectColumnValuesToBeBetween(column="rotate", min_value=0, max_value=500, strict_min=True,
                                          strict_max=True, mostly=0.95),
        gxe.ExpectColumnValuesToBeBetween(column="volt", min_value=100.5),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "warn", "error"]),
        gxe.ExpectColumnValuesToBeInSet(column="machine", value_set=list(range(1, 21))),
        gxe.ExpectColumnValuesToNotBeInSet(column="status", value_set=["deleted", "weird"]),
        gxe.ExpectColumnValuesToMatchRegex(column="code", regex=r"M\d{3}"),
        gxe.ExpectColumnValuesToNotMatchRegex(column="code", regex=r"^\s|\s$"),
        gxe.ExpectColumnValuesToMatchRegexList(column="code", regex_list=[r"^M\d{3}$", r"^X"], match_on="any"),
        gxe.ExpectColumnValuesToMatchRegexList(column="code", regex_list=[r"M", r"\d"], match_on="all"),
        gxe.ExpectColumnValuesToNotMatchRegexList(column="code", regex_list=[r"\s", r"^m"]),
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToBeUnique(column="line"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["site", "line"]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["site", "line"], ignore_row_if="any_value_is_missing"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="name", min_value=3, max_value=8),
        gxe.ExpectColumnValueLengthsToBeBetween(column="code", min_value=4, strict_min=True),
        gxe.ExpectColumnValueLengthsToEqual(column="code", value=4),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="a", column_B="b"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="a", column_B="b", or_equal=True,
                                                    ignore_row_if="either_value_is_missing"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="b", column_B="a", ignore_row_if="neither"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="label", column_B="label2"),
        gxe.ExpectTableRowCountToBeBetween(min_value=1000, max_value=10_000),
        gxe.ExpectTableRowCountToBeBetween(max_value=N, strict_max=True),
        gxe.ExpectTableRowCountToEqual(value=N),
        gxe.ExpectColumnMinToBeBetween(column="volt", min_value=0),
        gxe.ExpectColumnMaxToBeBetween(column="rotate", min_value=400, max_value=500),
        gxe.ExpectColumnMeanToBeBetween(column="volt", min_value=200, max_value=260),
        gxe.ExpectColumnMedianToBeBetween(column="a", max_value=5),
        gxe.ExpectColumnSumToBeBetween(column="rotate", min_value=1),
        gxe.ExpectColumnStdevToBeBetween(column="b", min_value=2, max_value=4),
        # no lakeforge rule for these
        gxe.ExpectColumnValuesToBeOfType(column="volt", type_="float64"),
        gxe.ExpectColumnKLDivergenceToBeLessThan(column="a", partition_object={"bins": [0, 10, 20],
                                                                                "weights": [0.5, 0.5]},
                                                 threshold=0.1),
        gxe.ExpectColumnValuesToBeIncreasing(column="id"),
    ]


UNSUPPORTED = {"expect_column_values_to_be_of_type", "expect_column_kl_divergence_to_be_less_than",
               "expect_column_values_to_be_increasing"}


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"GX tried to reach the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def raised(info: Any) -> bool:
    """GX's exception_info is flat when all went well, and keyed by metric when one raised."""
    if not isinstance(info, dict):
        return False
    return bool(info.get("raised_exception")) or any(raised(v) for v in info.values())


def run_gx(rows: list[dict[str, Any]], tmp_path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The suite's JSON and, per expectation id, GX's success and unexpected_count on ``rows``."""
    import great_expectations as gx  # a hard requirement here: the test fails without it
    import great_expectations.expectations as gxe
    import pandas as pd

    context = gx.get_context(mode="ephemeral")
    suite = context.suites.add(gx.ExpectationSuite(name="telemetry", expectations=build_suite(gxe)))
    document = suite.to_json_dict()
    (tmp_path / "suite.json").write_text(json.dumps(document, indent=2))

    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["ts"] = pd.to_datetime(frame["ts"])
    asset = context.data_sources.add_pandas("lakeforge").add_dataframe_asset("telemetry")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
    validation = batch.validate(suite, result_format="BASIC")
    outcome: dict[str, dict[str, Any]] = {}
    for item in validation.results:
        config = item.expectation_config
        assert config is not None and config.id is not None
        assert not raised(item.exception_info), (config.type, item.exception_info)
        outcome[config.id] = {"type": config.type, "success": item.success,
                              "unexpected_count": item.result.get("unexpected_count")}
    return dict(document), outcome


@pytest.mark.slow
def test_an_imported_gx_suite_counts_what_gx_counts(make_project: Callable[..., Project], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    block_network(monkeypatch)
    rows = dataset()
    document, gx_results = run_gx(rows, tmp_path)
    monkeypatch.undo()

    result = import_suite(tmp_path / "suite.json", action="warn")
    assert {u["type"] for u in result.unsupported} == UNSUPPORTED
    assert all(u["reason"] for u in result.unsupported)
    assert len(result.expectations) + len(result.unsupported) == len(document["expectations"]) == len(gx_results)
    assert sorted(n.split(":")[0] for n in result.notes) == ["machine_not_null", "rotate_between"]

    project = make_project({"sources": {"telemetry": {"format": "jsonl", "schema_hints": HINTS}}}, {
        "silver.x": result.header() + f"SELECT {', '.join(COLUMNS)} FROM bronze.telemetry\n"})
    folder = project.landing.local_path("telemetry")
    folder.mkdir(parents=True)
    (folder / "rows.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    run = project.run()
    stage = next(s for s in run.stages if s.name == "silver.x")
    assert stage.rows_in == N
    failed = {r.rule: r.failed for r in stage.rules}
    assert set(failed) == set(result.origins)

    mismatches, checked = [], 0
    for rule, origin in result.origins.items():
        gx_result = gx_results[origin["id"]]
        assert gx_result["type"] == origin["type"]
        if origin["scope"] == "row":
            ok = failed[rule] == gx_result["unexpected_count"]
        else:
            ok = (failed[rule] == 0) == gx_result["success"] and failed[rule] in (0, N)
        checked += 1
        if not ok:
            mismatches.append((rule, failed[rule], gx_result))
    assert not mismatches, mismatches
    assert checked >= 30
    # the data is dirty enough that most row-level rules find something, and table-level verdicts go both ways
    row_level = [r for r, o in result.origins.items() if o["scope"] == "row"]
    assert sum(1 for r in row_level if failed[r]) >= len(row_level) - 2
    table_level = {failed[r] == 0 for r, o in result.origins.items() if o["scope"] == "table"}
    assert table_level == {True, False}


# -- the JSON mapping alone (no GX needed) ----------------------------------------------------------------------

SUITE = {
    "name": "hand_written",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "ts"}, "id": "1"},
        {"expectation_type": "expect_column_values_to_be_between",  # GX 0.x spelling
         "kwargs": {"column": "v", "min_value": 0, "max_value": 10, "strict_max": True, "mostly": 0.9}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "v", "min_value": 0, "max_value": 10}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "code", "regex": r"^M\d+'"}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "code", "regex": r"(?<=M)\d"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "2nd id!"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "s", "value_set": ["a", None]}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "s", "value_set": {"$PARAMETER": "x"}}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "v", "row_condition": 'col("x")>1',
                                                                   "condition_parser": "great_expectations"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "v", "made_up": 3}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "strict_min": True}},
        {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "v", "type_": "int"}},
        {"type": "expect_something_new", "kwargs": {}},
    ],
}


def test_the_mapping_names_rules_and_lists_what_it_cannot_map() -> None:
    result = import_suite(SUITE)
    assert result.suite == "hand_written"
    assert [e.name for e in result.expectations] == [
        "ts_not_null", "v_between", "v_between_2", "code_matches", "id_unique", "_2nd_id_unique", "s_in_set",
        "row_count_between"]
    by_name = {e.name: e for e in result.expectations}
    assert by_name["ts_not_null"].not_null == "ts"
    assert by_name["v_between"].expr == "`v` IS NULL OR (`v` >= 0 AND `v` < 10)"
    assert by_name["v_between_2"].in_range is not None  # a plain range is the built-in type
    assert by_name["code_matches"].expr == r"`code` IS NULL OR REGEXP_LIKE(CAST(`code` AS STRING), '^M\\d+\'')"
    assert by_name["s_in_set"].in_set is not None and by_name["s_in_set"].in_set.values == ["a"]
    assert by_name["row_count_between"].row_count is not None and by_name["row_count_between"].row_count.min == 2
    assert all(e.action == "warn" for e in result.expectations)
    assert result.notes == [
        "v_between: mostly=0.9 ignored (GX would pass with up to 10% of non-null rows failing; lakeforge counts "
        "every failing row and applies `warn` to each)"]
    reasons = {u["index"]: u["reason"] for u in result.unsupported}
    assert sorted(reasons) == [4, 8, 9, 10, 12, 13]
    assert "RE2" in reasons[4] and "$PARAMETER" in reasons[8] and "row_condition" in reasons[9]
    assert "made_up" in reasons[10] and "contract" in reasons[12] and "no lakeforge mapping" in reasons[13]
    assert result.origins["ts_not_null"] == {"index": 0, "id": "1", "type": "expect_column_values_to_not_be_null",
                                             "scope": "row"}
    assert import_suite(SUITE, action="quarantine").expectations[0].action == "quarantine"
    with pytest.raises(ValueError, match="action"):
        import_suite(SUITE, action="explode")


def test_the_rules_mean_the_same_in_every_dialect_and_follow_gx_null_semantics() -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("""CREATE TABLE t AS SELECT * FROM (VALUES
        (1, 5.0, 'M12', 'a', 1.0, 0.0), (2, NULL, 'xM123', NULL, NULL, 1.0), (2, 10.0, NULL, 'b', NULL, NULL),
        (3, 11.0, 'M1\\', 'a', 2.0, 2.0), (NULL, -1.0, 'm1', 'c', 3.0, NULL), (NULL, 0.0, ' M9', 'b', 1.0, 5.0)
        ) AS v(id, v, code, s, a, b)""")
    suite = {"expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "v", "min_value": 0, "max_value": 10,
                                                                  "strict_min": True}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "code", "regex": r"M\d+\\?$"}},
        {"type": "expect_column_values_to_not_match_regex", "kwargs": {"column": "code", "regex": r"^\s"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_not_be_in_set", "kwargs": {"column": "s", "value_set": ["c", None]}},
        {"type": "expect_column_pair_values_a_to_be_greater_than_b", "kwargs": {"column_A": "a", "column_B": "b"}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["id", "s"],
                                                                    "ignore_row_if": "never"}},
        {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "code", "max_value": 3}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "v", "min_value": 4}},
    ]}
    # what GX (pandas) reports as unexpected_count on these rows; the mean (5.0) passes: no row fails
    expected = [3, 1, 1, 2, 1, 4, 0, 1, 0]

    def failures(dialect: str) -> list[int]:
        rules = import_suite(suite, dialect=dialect).expectations
        assert len(rules) == len(expected)
        duck = [sqlglot.parse_one(r.expr, read=dialect).sql(dialect="duckdb") if r.expr else r.duckdb_sql()
                for r in rules]
        flags = ", ".join(f"coalesce(({p}), false) AS r{i}" for i, p in enumerate(duck))  # as the engine does
        counts = ", ".join(f"count(*) FILTER (WHERE NOT r{i})" for i in range(len(duck)))
        return list(con.execute(f"SELECT {counts} FROM (SELECT {flags} FROM t)").fetchone() or ())

    for dialect in ("databricks", "spark", "duckdb"):
        assert failures(dialect) == expected, dialect


def test_the_header_reads_back_and_merges_into_a_model(tmp_path: Path) -> None:
    suite = {"expectations": [
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "c", "regex": "^a: #'\"\\d+-- $"},
         "description": "two\nlines, é"},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "s", "value_set": ["yes", "no", 1, 2.5]}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["a", "b c"]}},
    ]}
    result = import_suite(suite)
    path = tmp_path / "x.sql"
    path.write_text(result.header() + "SELECT 1 AS x\n")
    assert parse_model(path, name="silver.x", dialect="databricks").config.expectations == result.expectations

    original = ("-- kind: incremental\n-- unique_key: [id]\n-- expectations:\n--   - {name: c_matches, expr: id > 0}\n"
                "\nSELECT id, c, s, a, `b c`\nFROM bronze.t -- a comment\n")
    again = import_suite(suite, existing=["c_matches"])
    assert [e.name for e in again.expectations] == ["c_matches_2", "s_in_set", "a_b_c_unique"]
    merged = merge_into_header(original, again)
    assert merged.endswith("\n\nSELECT id, c, s, a, `b c`\nFROM bronze.t -- a comment\n")
    path.write_text(merged)
    model = parse_model(path, name="silver.x", dialect="databricks")
    assert model.config.kind == "incremental" and model.config.unique_key == ["id"]
    assert model.config.expectations[1:] == again.expectations
    assert model.config.expectations[0].expr == "id > 0"
    with pytest.raises(ValueError, match="already in the model"):
        merge_into_header(merged, again)
