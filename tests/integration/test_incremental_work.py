"""Work proportional to the new rows: merges that cannot touch old files append, and an incremental aggregate
reads its driver only in the range the new rows can touch; the results always equal a full recomputation."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from sqlglot import exp, parse_one

from lakeforge.config.models import DuckDBEngineConfig
from lakeforge.engines.duckdb import DuckDBEngine
from lakeforge.models.touched import bounds
from lakeforge.project import Project

UTC = dt.UTC


def _readings(start: dt.datetime, n: int, *, machine: int = 1, step: dt.timedelta = dt.timedelta(minutes=10),
              v: float = 1.0) -> pa.Table:
    return pa.table({"machine_id": pa.array([machine] * n, pa.int64()),
                     "ts": pa.array([start + i * step for i in range(n)], pa.timestamp("us", "UTC")),
                     "v": pa.array([v] * n, pa.float64())})


@pytest.fixture
def catalog_project(make_project: Callable[..., Project]) -> Project:
    return make_project({"sources": {}}, {})


def test_a_merge_of_keys_no_file_can_hold_is_an_append(catalog_project: Project) -> None:
    catalog = catalog_project.catalog
    day1 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    catalog.write("silver.r", _readings(day1, 144), mode="overwrite")
    later = catalog.merge("silver.r", _readings(day1 + dt.timedelta(days=1), 144), keys=["machine_id", "ts"],
                          update=False)
    assert later.get("appended") is True and later["num_target_rows_inserted"] == 144
    # keys inside the old range: the stored keys are looked up, the existing key is not inserted twice
    again = catalog.merge("silver.r", _readings(day1 + dt.timedelta(hours=5), 2, v=9.0), keys=["machine_id", "ts"],
                          update=False)
    assert again["num_target_rows_inserted"] == 0
    assert catalog.dataset("silver.r").count_rows() == 288
    # another machine in the same hours: machine_id's range is disjoint, so no file can hold the keys
    other = catalog.merge("silver.r", _readings(day1, 3, machine=7), keys=["machine_id", "ts"], update=False)
    assert other.get("appended") is True and catalog.dataset("silver.r").count_rows() == 291


def test_a_timestamp_key_a_microsecond_past_the_files_millisecond_statistics_still_matches(
        catalog_project: Project) -> None:
    """Delta keeps timestamp statistics in milliseconds: a file's max is floored, so a key up to 1 ms above it
    may be in the file; it must be merged (here: updated), never appended as a second row."""
    catalog = catalog_project.catalog
    last = dt.datetime(2024, 1, 1, 0, 0, 0, 500, tzinfo=UTC)  # 0.5 ms past the second
    catalog.write("silver.r", _readings(last - dt.timedelta(minutes=10), 2), mode="overwrite")
    result = catalog.merge("silver.r", _readings(last, 1, v=5.0), keys=["machine_id", "ts"], update=True)
    assert "appended" not in result and result["num_target_rows_updated"] == 1
    rows = catalog.table("silver.r").to_pyarrow_table().sort_by("ts").to_pylist()
    assert [r["v"] for r in rows] == [1.0, 5.0]


def test_a_null_key_is_compared_null_safe(catalog_project: Project) -> None:
    catalog = catalog_project.catalog
    table = pa.table({"k": pa.array([1, None], pa.int64()), "v": pa.array(["a", "b"])})
    catalog.write("silver.n", table, mode="overwrite")
    result = catalog.merge("silver.n", pa.table({"k": pa.array([None], pa.int64()), "v": pa.array(["c"])}),
                           keys=["k"], update=True)
    assert result["num_target_rows_updated"] == 1
    assert sorted(catalog.table("silver.n").to_pyarrow_table().to_pylist(), key=lambda r: r["v"]) == [
        {"k": 1, "v": "a"}, {"k": None, "v": "c"}]


def test_the_range_an_aggregate_reads_is_the_one_its_new_rows_can_touch() -> None:
    engine = DuckDBEngine(DuckDBEngineConfig())
    changes = pa.table({"machine_id": pa.array([3, 5], pa.int64()),
                        "ts": pa.array([dt.datetime(2024, 3, 2, 7, 15), dt.datetime(2024, 3, 4, 1, 0)],
                                       pa.timestamp("us", "UTC")),
                        "site": pa.array(["b", "a"])})
    engine.register("__lf_changes", changes)

    def keys(*sql: str) -> dict[str, exp.Expr]:
        return {f"k{i}": parse_one(s, read="databricks") for i, s in enumerate(sql)}

    hourly = bounds(engine, keys("machine_id", "date_trunc('HOUR', ts)"))

    def at(text: str) -> str:
        return f"CAST('{text}+00:00' AS TIMESTAMPTZ)"

    # the touched hours themselves: a late reading does not make the run read everything after it
    assert hourly == ("machine_id >= 3 AND machine_id <= 5 AND "
                      f"((ts >= {at('2024-03-02 07:00:00')} AND ts < {at('2024-03-02 08:00:00')}) OR "
                      f"(ts >= {at('2024-03-04 01:00:00')} AND ts < {at('2024-03-04 02:00:00')})) AND ")
    daily = bounds(engine, keys("CAST(ts AS DATE)"))
    assert daily == (f"((ts >= {at('2024-03-02 00:00:00')} AND ts < {at('2024-03-03 00:00:00')}) OR "
                     f"(ts >= {at('2024-03-04 00:00:00')} AND ts < {at('2024-03-05 00:00:00')})) AND ")
    assert bounds(engine, keys("to_date(ts)")) == daily
    # the weeks of Monday 2024-02-26 and of Monday 2024-03-04: adjacent, read as one range
    weekly = bounds(engine, keys("date_trunc('WEEK', ts)"))
    assert weekly == f"((ts >= {at('2024-02-26 00:00:00')} AND ts < {at('2024-03-11 00:00:00')})) AND "
    # months have no fixed width: from the lowest touched month on
    assert bounds(engine, keys("date_trunc('MONTH', ts)")) == f"ts >= {at('2024-03-01 00:00:00')} AND "
    assert bounds(engine, keys("site")) == "site >= 'a' AND site <= 'b' AND "
    assert bounds(engine, keys("machine_id % 10")) == ""  # not a truncation: no range, the groups still found


def test_late_and_new_rows_recompute_their_groups_as_a_full_refresh_would(
        make_project: Callable[..., Project]) -> None:
    project = make_project({"dialect": "databricks", "sources": {"src": {
        "format": "jsonl", "schema_hints": {"machine_id": "bigint", "ts": "timestamp", "v": "double"}}}}, {
        "silver.readings": """
            -- kind: incremental
            -- unique_key: [machine_id, ts]
            -- on_conflict: keep_first
            -- order_by: [_batch_id, _source_file]
            SELECT machine_id, ts, v, _batch_id, _source_file FROM bronze.src
        """,
        "gold.hourly": """
            -- kind: incremental
            -- unique_key: [machine_id, hour]
            SELECT machine_id, date_trunc('HOUR', ts) AS hour, count(*) AS n, sum(v) AS v FROM silver.readings
            GROUP BY machine_id, date_trunc('HOUR', ts)
        """,
        "gold.daily": """
            -- kind: incremental
            -- unique_key: [date]
            SELECT CAST(ts AS DATE) AS date, count(*) AS n, max(v) AS v_max FROM silver.readings
            GROUP BY CAST(ts AS DATE)
        """,
    })
    landing: Path = project.landing.local_path("src")
    landing.mkdir(parents=True)

    def land(name: str, rows: list[tuple[int, str, float]]) -> None:
        (landing / name).write_text("".join(json.dumps({"machine_id": m, "ts": t, "v": v}) + "\n"
                                            for m, t, v in rows))

    land("a.jsonl", [(m, f"2024-01-0{d} {h:02d}:{mi}0:00", float(m * h)) for m in (1, 2) for d in (1, 2)
                     for h in range(24) for mi in range(6)])
    project.run()
    # a new day, a late reading in an old hour, a duplicate of an old reading (dropped), a new machine
    land("b.jsonl", [(1, "2024-01-03 00:00:00", 1.0), (1, "2024-01-03 23:50:00", 2.0),
                     (2, "2024-01-01 05:05:00", 100.0), (1, "2024-01-02 10:00:00", -1.0),
                     (9, "2024-01-02 23:59:59", 7.0)])
    second = project.run()
    strategies = {s.name: s.strategy for s in second.stages if s.kind == "model"}
    assert strategies == {"silver.readings": "merge", "gold.hourly": "groups", "gold.daily": "groups"}
    incremental = {t: project.table(t).sort_by([(c, "ascending") for c in project.table(t).column_names[:2]])
                   for t in ("gold.hourly", "gold.daily")}
    assert incremental["gold.daily"].to_pylist()[0]["n"] == 2 * 144 + 1  # the late reading counted, once
    project.run(full_refresh=True)
    for name, table in incremental.items():
        assert project.table(name).sort_by([(c, "ascending") for c in table.column_names[:2]]).equals(table), name


def test_a_run_that_loads_nothing_leaves_the_warehouse_file_alone_and_a_changed_report_is_replaced(
        example: Project) -> None:
    """Replacing an unchanged view is a change to DuckDB's catalog, which makes the close checkpoint the whole file
    (seconds on a large warehouse): views carry a digest of their SQL and are replaced only when it differs."""
    report = example.path / "reports" / "newest_hour.sql"
    report.write_text("SELECT max(hour) AS newest, 1 AS edition FROM gold.fact_telemetry_hourly\n")
    example.run()
    assert example.report("newest_hour").to_pylist()[0]["edition"] == 1
    warehouse = example.path / "warehouse.duckdb"
    before = (warehouse.stat().st_mtime_ns, warehouse.read_bytes())
    assert example.run().status == "nothing_to_do"
    assert (warehouse.stat().st_mtime_ns, warehouse.read_bytes()) == before
    report.write_text("SELECT max(hour) AS newest, 2 AS edition FROM gold.fact_telemetry_hourly\n")
    example.run()
    assert example.report("newest_hour").to_pylist()[0]["edition"] == 2
