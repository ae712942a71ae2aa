"""A merge reads and rewrites the files its keys can be in, not the table (issue 19: a late file over a few hours
of the history costs about what those hours cost)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakeforge.lakehouse.pruning import key_ranges
from lakeforge.models.model import parse_model
from lakeforge.models.touched import read_by
from lakeforge.project import Project

UTC = dt.UTC
DAY1 = dt.datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 30
MACHINES = 4


def _day(day: int, *, v: float = 1.0, minute: int = 0) -> pa.Table:
    """A reading of every machine every hour of one day."""
    times = [DAY1 + dt.timedelta(days=day, hours=h, minutes=minute) for h in range(24)]
    return pa.table({"machine_id": pa.array([m for m in range(MACHINES) for _ in times], pa.int64()),
                     "ts": pa.array([t for _ in range(MACHINES) for t in times], pa.timestamp("us", "UTC")),
                     "v": pa.array([v] * (MACHINES * len(times)), pa.float64())})


@pytest.fixture
def lake(make_project: Callable[..., Project]) -> Project:
    """A table of one file per day (as daily runs leave it)."""
    project = make_project({"sources": {}}, {})
    for day in range(DAYS):
        project.catalog.write("silver.r", _day(day), mode="overwrite" if day == 0 else "append")
    return project


def _late(days: list[int], *, v: float, minute: int = 0) -> pa.Table:
    """The readings of every machine at 03:00 (+ ``minute``) of each of ``days`` (spread over the history)."""
    at = [DAY1 + dt.timedelta(days=d, hours=3, minutes=minute) for d in days]
    return pa.table({"machine_id": pa.array([m for m in range(MACHINES) for _ in at], pa.int64()),
                     "ts": pa.array([t for _ in range(MACHINES) for t in at], pa.timestamp("us", "UTC")),
                     "v": pa.array([v] * (MACHINES * len(at)), pa.float64())})


def test_a_late_update_reads_and_rewrites_only_the_files_of_its_hours(lake: Project) -> None:
    catalog = lake.catalog
    late = _late([2, 15, 27], v=9.0)
    files = len(catalog.table("silver.r").file_uris())
    result = catalog.merge("silver.r", late, keys=["machine_id", "ts"], update=True)
    assert files == DAYS
    assert result["num_target_files_scanned"] <= 3 and result["num_target_files_removed"] <= 3
    assert result["num_target_rows_updated"] == late.num_rows and result["num_target_rows_inserted"] == 0
    rows = catalog.table("silver.r").to_pyarrow_table()
    assert rows.num_rows == DAYS * 24 * MACHINES
    assert sorted(rows.filter(pc.equal(rows["v"], 9.0))["ts"].to_pylist()) == sorted(late["ts"].to_pylist())


def test_a_late_insert_reads_the_keys_of_its_hours_files_only_and_inserts_new_keys_once(lake: Project) -> None:
    catalog = lake.catalog
    stored = _late([4, 20], v=5.0)  # keys the table holds: kept as they are (insert only)
    new = _late([4, 20, 29], v=7.0, minute=5)  # readings at :05, which no stored one has
    result = catalog.merge("silver.r", pa.concat_tables([stored, new]), keys=["machine_id", "ts"], update=False)
    assert result["num_target_files_scanned"] <= 3
    assert result["num_target_rows_inserted"] == new.num_rows
    rows = catalog.table("silver.r").to_pyarrow_table()
    assert rows.num_rows == DAYS * 24 * MACHINES + new.num_rows
    assert not pc.any(pc.equal(rows["v"], 5.0)).as_py()


def test_a_key_with_nulls_in_the_source_is_merged_null_safe_without_a_range() -> None:
    data = pa.table({"k": pa.array([1, None], pa.int64()), "d": pa.array([dt.date(2024, 1, 1)] * 2)})
    assert key_ranges(data, ["k"]) == ""
    assert key_ranges(data, ["k", "d"]) == "(t.`d` = '2024-01-01')"


def test_ranges_join_adjacent_values_and_stay_within_the_limit() -> None:
    data = pa.table({"k": pa.array([1, 2, 3, 10, 11, 40, 100], pa.int64())})
    assert key_ranges(data, ["k"]) == ("((t.`k` >= 1 AND t.`k` <= 3) OR (t.`k` >= 10 AND t.`k` <= 11) OR "
                                       "t.`k` = 40 OR t.`k` = 100)")
    assert key_ranges(data, ["k"], limit=2) == "((t.`k` >= 1 AND t.`k` <= 40) OR t.`k` = 100)"
    stamps = pa.table({"ts": pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, 1500)], pa.timestamp("us", "UTC"))})
    # the lower bound floored to the millisecond (Delta's statistics), the upper one exact
    assert key_ranges(stamps, ["ts"]) == ("((t.`ts` >= '2024-01-01T00:00:00.001000+00:00' AND "
                                          "t.`ts` <= '2024-01-01T00:00:00.001500+00:00'))")


@pytest.mark.parametrize(("sql", "read"), [
    ("SELECT machine_id, date_trunc('hour', ts) AS hour, count(*) AS n FROM silver.r GROUP BY 1, 2",
     ["machine_id", "ts"]),
    ("SELECT * FROM silver.r", None),
    ("SELECT r.* FROM silver.r AS r", None),
    ("SELECT machine_id, v FROM silver.r NATURAL JOIN silver.m", None),
    ("SELECT r.machine_id, m.site FROM silver.r AS r JOIN silver.m AS m USING (v)", ["machine_id", "v"]),
])
def test_a_recompute_reads_the_driver_columns_the_sql_names(tmp_path: Path, sql: str, read: list[str] | None
                                                            ) -> None:
    path = tmp_path / "x.sql"
    path.write_text(f"-- kind: incremental\n{sql}\n")
    model = parse_model(path, name="gold.x", dialect="duckdb")
    assert read_by(model, ["machine_id", "ts", "v", "_source_file"]) == read
