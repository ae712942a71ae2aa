"""Each incremental strategy on the shapes users write, on both engines: after every run the tables equal what a
full refresh of the same inputs stores (tests/integration/test_incremental_property.py generates such cases;
these are the named ones, each a bug an incremental engine can have)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lakeforge.errors import ModelError
from lakeforge.project import Project
from tests.conftest import ENGINES

CONFIG = {"dialect": "databricks", "sources": {
    "readings": {"format": "jsonl", "schema_hints": {"machine_id": "bigint", "ts": "timestamp", "v": "double"}},
    "machines": {"format": "jsonl", "schema_hints": {"machine_id": "bigint", "model": "string"}}}}
SILVER = {
    "silver.readings": """
        -- kind: incremental
        -- unique_key: [machine_id, ts]
        -- on_conflict: keep_first
        -- order_by: [_batch_id, _source_file]
        SELECT machine_id, ts, v, _batch_id, _source_file FROM bronze.readings
    """,
    "silver.machines": """
        -- kind: incremental
        -- unique_key: [machine_id]
        -- order_by: [_batch_id, _source_file]
        SELECT machine_id, model, _batch_id, _source_file FROM bronze.machines
    """,
}
DAILY_BY_MODEL = """
    -- kind: incremental
    -- unique_key: [machine_id, day]
    SELECT t.machine_id, CAST(t.ts AS DATE) AS day, m.model, count(*) AS readings, avg(t.v) AS v
    FROM silver.readings AS t LEFT JOIN silver.machines AS m ON m.machine_id = t.machine_id
    GROUP BY t.machine_id, CAST(t.ts AS DATE), m.model
"""


class Scenario:
    """A project of ``CONFIG`` and some models, files landed one by one, compared with a full refresh."""

    def __init__(self, make_project: Callable[..., Project], models: dict[str, str]) -> None:
        self.project = make_project(CONFIG, {**SILVER, **models})
        self.files = 0

    def land(self, source: str, rows: list[dict[str, Any]]) -> None:
        folder = self.project.landing.local_path(source)
        folder.mkdir(parents=True, exist_ok=True)
        self.files += 1
        (folder / f"f{self.files:03d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def run(self) -> dict[str, str]:
        """An incremental run; returns each model's strategy, after checking every table against a full refresh
        of a copy of the project."""
        result = self.project.run()
        strategies = {s.name: s.strategy for s in result.stages if s.kind == "model" and s.status == "ok"}
        copy = self.project.path.parent / f"{self.project.path.name}-full"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(self.project.path, copy)
        with Project(copy, engine=self.project.engine.capabilities.name) as full:
            full.run(full_refresh=True)
            for model in self.project.graph().ordered():
                exists = self.project.catalog.exists(model.name)
                assert exists == full.catalog.exists(model.name), model.name
                if exists:
                    assert rows(self.project, model.name) == rows(full, model.name), model.name
        return strategies


def rows(project: Project, name: str) -> list[tuple[Any, ...]]:
    table = project.table(name)
    columns = sorted(table.column_names)
    found = [tuple(round(v, 9) if isinstance(v, float) else v for v in (r[c] for c in columns))
             for r in table.to_pylist()]
    return sorted(found, key=lambda r: tuple((v is None, str(v)) for v in r))


def day(hour: int, minute: int = 0, *, machine: int = 1, v: float | None = None, date: str = "2024-01-01"
        ) -> dict[str, Any]:
    return {"machine_id": machine, "ts": f"{date} {hour:02d}:{minute:02d}:00", "v": float(hour) if v is None else v}


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_an_aggregate_over_a_join_recomputes_the_late_rows_group_from_every_input(
        make_project: Callable[..., Project]) -> None:
    """The issue's case: 24 readings of a day, then a late one; the day's row must count 25 (merging the late
    row's partial aggregate stored `readings 1`)."""
    scenario = Scenario(make_project, {"gold.pdm_daily": DAILY_BY_MODEL})
    scenario.land("machines", [{"machine_id": 1, "model": "A"}])
    scenario.land("readings", [day(h) for h in range(24)])
    scenario.run()
    scenario.land("readings", [day(5, 30, v=200.0)])
    assert scenario.run()["gold.pdm_daily"] == "groups"
    (stored,) = scenario.project.table("gold.pdm_daily").to_pylist()
    assert stored["readings"] == 25 and stored["v"] == pytest.approx((sum(range(24)) + 200) / 25)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_a_group_that_having_now_filters_out_is_deleted(make_project: Callable[..., Project]) -> None:
    scenario = Scenario(make_project, {"gold.quiet": """
        -- kind: incremental
        -- unique_key: [machine_id]
        SELECT machine_id, count(*) AS n FROM silver.readings GROUP BY machine_id HAVING count(*) < 3
    """})
    scenario.land("readings", [day(1), day(2), day(1, machine=2)])
    scenario.run()
    scenario.land("readings", [day(3)])  # machine 1 now has 3 readings: no longer quiet
    assert scenario.run()["gold.quiet"] == "groups"
    assert scenario.project.table("gold.quiet").to_pylist() == [{"machine_id": 2, "n": 1}]


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_window_functions_recompute_the_partitions_new_rows_touch(make_project: Callable[..., Project]) -> None:
    scenario = Scenario(make_project, {
        "gold.latest": """
            -- kind: incremental
            -- unique_key: [machine_id]
            SELECT machine_id, ts, v FROM silver.readings
            QUALIFY row_number() OVER (PARTITION BY machine_id ORDER BY ts DESC) = 1
        """,
        "gold.numbered": """
            -- kind: incremental
            -- unique_key: [machine_id, ts]
            SELECT machine_id, ts, row_number() OVER (PARTITION BY machine_id ORDER BY ts) AS n,
                   sum(v) OVER (PARTITION BY machine_id ORDER BY ts) AS running
            FROM silver.readings
        """})
    scenario.land("readings", [day(h, machine=m) for h in (3, 6) for m in (1, 2)])
    scenario.run()
    scenario.land("readings", [day(1), day(9)])  # machine 1: an earlier and a later reading
    strategies = scenario.run()
    assert strategies["gold.latest"] == strategies["gold.numbered"] == "partitions"
    latest = {r["machine_id"]: r["ts"].hour for r in scenario.project.table("gold.latest").to_pylist()}
    assert latest == {1: 9, 2: 6}


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_a_changed_dimension_row_reaches_every_model_that_joins_it(make_project: Callable[..., Project]) -> None:
    scenario = Scenario(make_project, {
        "gold.pdm_daily": DAILY_BY_MODEL,
        "gold.enriched": """
            -- kind: incremental
            -- unique_key: [machine_id, ts]
            SELECT r.machine_id, r.ts, r.v, m.model FROM silver.readings AS r
            JOIN silver.machines AS m ON m.machine_id = r.machine_id
        """})
    scenario.land("machines", [{"machine_id": 1, "model": "A"}, {"machine_id": 2, "model": "B"}])
    scenario.land("readings", [day(h, machine=m) for h in range(3) for m in (1, 2)])
    scenario.run()
    scenario.land("machines", [{"machine_id": 1, "model": "A2"}])  # late master data
    strategies = scenario.run()
    assert strategies["gold.enriched"] == strategies["gold.pdm_daily"] == "full"
    models = {r["machine_id"]: r["model"] for r in scenario.project.table("gold.enriched").to_pylist()}
    assert models == {1: "A2", 2: "B"}


def test_an_append_over_updated_rows_recomputes_instead_of_appending_them_again(
        make_project: Callable[..., Project]) -> None:
    scenario = Scenario(make_project, {
        "gold.hourly": """
            -- kind: incremental
            -- unique_key: [machine_id, hour]
            SELECT machine_id, date_trunc('HOUR', ts) AS hour, count(*) AS n FROM silver.readings
            GROUP BY machine_id, date_trunc('HOUR', ts)
        """,
        "gold.busy_hours": """
            -- kind: incremental
            SELECT machine_id, hour, n FROM gold.hourly WHERE n > 1
        """})
    scenario.land("readings", [day(1), day(1, 10), day(2)])
    scenario.run()
    scenario.land("readings", [day(1, 20), day(2, 10), day(3)])  # updates two stored hours, adds one
    strategies = scenario.run()
    assert strategies == {"silver.readings": "merge", "gold.hourly": "groups", "gold.busy_hours": "full"}
    assert sorted(r["n"] for r in scenario.project.table("gold.busy_hours").to_pylist()) == [2, 3]


def test_a_late_reading_moves_no_row_of_another_group(make_project: Callable[..., Project]) -> None:
    """Upstream updates (a keep-last silver row replaced by a later file) move a row from one group to another:
    both groups are recomputed, from both images of the update."""
    scenario = Scenario(make_project, {
        "silver.latest_reading": """
            -- kind: incremental
            -- unique_key: [machine_id]
            -- order_by: [_batch_id]
            SELECT machine_id, ts, v, _batch_id FROM silver.readings
        """,
        "gold.by_hour": """
            -- kind: incremental
            -- unique_key: [hour]
            SELECT date_trunc('HOUR', ts) AS hour, count(*) AS machines FROM silver.latest_reading
            GROUP BY date_trunc('HOUR', ts)
        """})
    scenario.land("readings", [day(1, machine=1), day(1, machine=2)])
    scenario.run()
    scenario.land("readings", [day(4, machine=1)])  # machine 1's latest moves from hour 1 to hour 4
    assert scenario.run()["gold.by_hour"] == "groups"
    assert sorted((r["hour"].hour, r["machines"]) for r in scenario.project.table("gold.by_hour").to_pylist()) == [
        (1, 1), (4, 1)]


def test_an_edited_model_and_its_downstream_are_rebuilt_and_plan_says_why(
        make_project: Callable[..., Project]) -> None:
    scenario = Scenario(make_project, {
        "gold.daily": """
            -- kind: incremental
            -- unique_key: [machine_id, day]
            SELECT machine_id, CAST(ts AS DATE) AS day, count(*) AS n, sum(v) AS v FROM silver.readings
            GROUP BY machine_id, CAST(ts AS DATE)
        """,
        "gold.busy_days": """
            -- kind: incremental
            -- unique_key: [machine_id, day]
            SELECT machine_id, day, n FROM gold.daily WHERE n > 1
        """})
    scenario.land("readings", [day(1), day(2), day(3, machine=2)])
    scenario.run()
    path = scenario.project.path / "models" / "gold" / "daily.sql"
    original = path.read_text()
    path.write_text(original.replace("FROM silver", "-- a comment, and new lines\n  FROM\n   silver"))  # same rows
    plan = {m["name"]: m for m in scenario.project.plan()["models"]}
    assert not plan["gold.daily"]["run"] and scenario.project.modified() == set()
    path.write_text(original.replace("sum(v) AS v", "sum(v) * 2 AS v"))
    plan = {m["name"]: m for m in scenario.project.plan()["models"]}
    assert plan["gold.daily"]["reason"] == "changed: SQL edited" and plan["gold.daily"]["changed"] == ["SQL edited"]
    assert plan["gold.busy_days"]["reason"] == "upstream gold.daily rebuilt"
    assert plan["gold.daily"]["recompute"] == "the whole table" and not plan["silver.readings"]["run"]
    assert scenario.project.modified() == {"gold.daily"}
    assert [m.name for m in scenario.project.select(["state:modified+"])] == ["gold.daily", "gold.busy_days"]
    assert scenario.run() == {"gold.daily": "full", "gold.busy_days": "full"}
    assert sorted(r["v"] for r in scenario.project.table("gold.daily").to_pylist()) == [6.0, 6.0]
    assert scenario.project.modified() == set() and scenario.project.select(["state:modified+"]) == []
    header = scenario.project.path / "models" / "gold" / "busy_days.sql"
    header.write_text(header.read_text().replace("-- unique_key: [machine_id, day]",
                                                 "-- unique_key: [machine_id, day]\n-- description: busy days"))
    assert scenario.project.modified() == set()  # a description changes no row
    header.write_text(header.read_text().replace("-- kind: incremental", "-- kind: incremental\n"
                                                 "-- expectations:\n--   - {name: many, expr: n > 2, action: drop}"))
    plan = {m["name"]: m for m in scenario.project.plan()["models"]}
    assert plan["gold.busy_days"]["reason"] == "changed: expectations changed"


def test_a_header_that_demands_a_wrong_strategy_is_refused_with_file_line_and_fix(
        make_project: Callable[..., Project]) -> None:
    scenario = Scenario(make_project, {"gold.counts": """
        -- kind: append
        -- description: appends partial counts
        SELECT machine_id,
               count(*) AS n
        FROM silver.readings
        GROUP BY machine_id
    """})
    scenario.land("readings", [day(1)])
    path: Path = scenario.project.path / "models" / "gold" / "counts.sql"
    for attempt in (scenario.project.plan, scenario.project.run):
        with pytest.raises(ModelError) as caught:
            attempt()
        text = str(caught.value)
        assert f"{path}, line 6" in text and "`append` strategy" in text and "aggregate" in text
        assert "fix: use `kind: incremental`" in text
