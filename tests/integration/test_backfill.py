"""``lakeforge backfill --from D1 --to D2``: the rows of the window recomputed from upstream as it is now, replaced
in one commit per model, idempotently; rows outside the window untouched; the warehouse reloaded.

The reference is a second project run once from a copy of the same landing files (a fresh full computation):
after corrupting silver and gold inside (and outside) the window, a backfill must give back, inside the window,
exactly what the fresh project holds, and leave every row outside the window as it was (corruption included).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

from lakeforge.cli import app
from lakeforge.errors import ConfigError, LakeforgeError
from lakeforge.pipeline import events
from lakeforge.pipeline import warehouse as warehouse_stage
from lakeforge.pipeline.backfill import Window
from lakeforge.pipeline.runner import run_lock
from lakeforge.project import Project
from lakeforge.warehouses.verify import checksums

DAY = "2024-01-02"  # the example's landing zone holds 2024-01-01 .. 2024-01-03
WINDOW = Window(dt.date(2024, 1, 2), dt.date(2024, 1, 2))
ARRIVAL = ("_ingested_at", "valid_from")  # when a row arrived: differs between two projects, by design
# the models a default backfill windows, with their window column
WINDOWED = {
    "silver.errors": "ts", "silver.failures": "ts", "silver.maintenance": "ts", "silver.telemetry": "ts",
    "gold.dim_machine": "install_date", "gold.fact_errors": "ts", "gold.fact_failures": "ts",
    "gold.fact_maintenance": "ts", "gold.fact_telemetry_daily": "date", "gold.fact_telemetry_hourly": "hour",
    "gold.dim_date": "date", "gold.fact_site_daily": "date", "gold.fleet_kpi_daily": "date",
    "gold.machine_features": "hour",
}


def fresh_copy(project: Project, root: Path) -> Project:
    """The example project again, with a copy of the same landing files, run once: a full computation."""
    Project.init(root)
    shutil.copytree(project.path / "landing", root / "landing", dirs_exist_ok=True)
    fresh = Project(root)
    assert fresh.run().status == "succeeded"
    return fresh


def table(project: Project, name: str) -> pa.Table:
    return DeltaTable(str(project.lakehouse.local_path(name.replace(".", "/")))).to_pyarrow_table()


def part(data: pa.Table, column: str, *, inside: bool) -> pa.Table:
    mask = WINDOW.mask(data[column], data.schema.field(column).type)
    return data.filter(mask if inside else pc.invert(mask))


def rows(data: pa.Table, *, drop: tuple[str, ...] = (), digits: int | None = None) -> list[tuple[Any, ...]]:
    """The rows as sorted tuples (floats rounded to ``digits`` when comparing two separate computations)."""
    names = [c for c in data.column_names if c not in drop]
    found = []
    for row in data.select(names).to_pylist():
        values = tuple(round(v, digits) if digits is not None and isinstance(v, float) else v for v in row.values())
        found.append(values)
    return sorted(found, key=repr)


def checksum(project: Project, data: pa.Table) -> tuple[int, int]:
    found = checksums(project.local_engine, data, columns=data.column_names, partition="'all'")
    return found.get("all", (0, 0))


def corrupt(project: Project) -> None:
    """Silver and gold damaged inside the window, and one gold row outside it."""
    silver = DeltaTable(str(project.lakehouse.local_path("silver/telemetry")))
    silver.delete(f"machine_id = 7 AND {WINDOW.predicate('ts', pa.timestamp('us', 'UTC'))}")
    hourly = DeltaTable(str(project.lakehouse.local_path("gold/fact_telemetry_hourly")))
    hourly.update(updates={"readings": "-1", "volt_avg": "0.0"},
                  predicate=f"machine_id = 3 AND {WINDOW.predicate('hour', pa.timestamp('us', 'UTC'))}")
    hourly.delete(f"machine_id = 5 AND {WINDOW.predicate('hour', pa.timestamp('us', 'UTC'))}")
    hourly.update(updates={"readings": "-2"}, predicate="machine_id = 4 AND hour = '2024-01-03T10:00:00Z'")
    daily = DeltaTable(str(project.lakehouse.local_path("gold/fact_telemetry_daily")))
    daily.update(updates={"volt_avg": "0.0"}, predicate=f"date = '{DAY}'")
    bogus = part(table(project, "gold.fleet_kpi_daily"), "date", inside=True)
    DeltaTable(str(project.lakehouse.local_path("gold/fleet_kpi_daily"))).merge(
        bogus, "false", source_alias="s", target_alias="t").when_not_matched_insert_all().execute()  # a duplicate


def test_backfill_repairs_the_window_equal_to_a_fresh_computation_and_leaves_the_rest(
        example: Project, tmp_path: Path) -> None:
    assert example.run().status == "succeeded"
    fresh = fresh_copy(example, tmp_path / "fresh")
    before = {name: table(example, name) for name in WINDOWED}
    corrupt(example)
    damaged = {name: table(example, name) for name in WINDOWED}
    assert part(damaged["gold.fact_telemetry_hourly"], "hour", inside=True).num_rows < 288

    result = example.backfill(start=DAY, end=DAY)

    assert (result["from"], result["to"], result["status"]) == (DAY, DAY, "succeeded")
    assert [i["model"] for i in result["models"]] == [m.name for m in example.graph().ordered() if m.name in WINDOWED]
    assert {i["model"]: i["column"] for i in result["models"]} == WINDOWED
    assert {s["model"] for s in result["skipped"]} == {"silver.machines", "silver.sites", "gold.dim_site"}
    assert all("selected explicitly" in s["reason"] for s in result["skipped"])
    items = {i["model"]: i for i in result["models"]}
    hourly = items["gold.fact_telemetry_hourly"]
    assert hourly["rows_written"] == 12 * 24 and hourly["rows_deleted"] == 12 * 24 - 24  # machine 5's day was gone
    assert items["gold.fleet_kpi_daily"]["rows_deleted"] == 2 and items["gold.fleet_kpi_daily"]["rows_written"] == 1
    assert items["silver.telemetry"]["upstream_filters"] == {"bronze.telemetry": "ts"}
    assert items["gold.fact_site_daily"]["upstream_filters"] == {"gold.fact_telemetry_daily": "date"}  # not the dim

    for name, column in WINDOWED.items():
        after = table(example, name)
        inside = part(after, column, inside=True)
        # inside the window: what a full computation from the same landing files gives ...
        assert rows(inside, drop=ARRIVAL, digits=9) == rows(
            part(table(fresh, name), column, inside=True), drop=ARRIVAL, digits=9), name
        # ... and what this project held before the damage (float sums may differ in the last bit: row order)
        assert rows(inside, digits=9) == rows(part(before[name], column, inside=True), digits=9), name
        # outside: untouched, the damage outside the window included
        outside = part(after, column, inside=False)
        assert rows(outside) == rows(part(damaged[name], column, inside=False)), name
        assert checksum(example, outside) == checksum(example, part(damaged[name], column, inside=False)), name
    still = part(table(example, "gold.fact_telemetry_hourly"), "hour", inside=False)
    assert pc.sum(pc.equal(still["readings"], -2)).as_py() == 1  # the row outside the window stays as it was

    checks = example.verify_warehouse()
    assert checks and all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]

    # the same backfill again: identical tables, the same rows replaced by themselves
    snapshot = {name: table(example, name) for name in WINDOWED}
    again = example.backfill(start=DAY, end=DAY)
    for item in again["models"]:
        assert item["rows_deleted"] == item["rows_written"] == items[item["model"]]["rows_written"], item
    for name in WINDOWED:
        now = table(example, name)
        assert rows(now) == rows(snapshot[name]), name
        assert checksum(example, now) == checksum(example, snapshot[name]), name
    assert all(c["ok"] for c in example.verify_warehouse())

    # logged like a run, under the run lock
    logged = [r for r in events.read(example, event="run").to_pylist() if r["run_id"] in
              (result["run_id"], again["run_id"])]
    assert [(r["status"], r["detail"]) for r in logged] == [("succeeded", f"backfill {DAY}..{DAY}")] * 2
    stages = {r["name"] for r in events.read(example, event="stage").to_pylist() if r["run_id"] == result["run_id"]}
    assert stages == {*WINDOWED, "warehouse"}

    # gold had not consumed the damage done to silver: the next run recomputes what reads silver.telemetry
    nxt = example.run()
    assert {"gold.fact_telemetry_hourly", "gold.fact_telemetry_daily"} <= {
        s.name for s in nxt.stages if s.kind == "model" and s.status == "ok"}
    assert all(c["ok"] for c in example.verify_warehouse())


def test_backfill_then_new_data_then_run_equals_a_fresh_project(example: Project, tmp_path: Path) -> None:
    """A backfill keeps incremental runs exact: data arriving afterwards lands as in a project never backfilled."""
    example.run()
    example.backfill(start="2024-01-01", end=DAY)
    # models up to date before the backfill, whose changed upstream was backfilled by the column they read it
    # by, recorded the new upstream versions: the next run has nothing to redo for them
    redone = example.run()
    assert {s.name for s in redone.stages if s.kind == "model" and s.status == "ok"} == {
        "gold.fleet_kpi_daily", "gold.machine_features"}  # they read backfilled tables in full: recomputed
    example.generate(machines=12, days=2, seed=7, files=3, start="2024-01-03")  # more rows for the 3rd, the 4th
    assert example.run().status == "succeeded"
    fresh = fresh_copy(example, tmp_path / "fresh")
    # (machines change between the two landings: which version is current depends on the batches they came in,
    # so the tables over silver.machines differ between the projects with or without a backfill)
    for name in set(WINDOWED) - {"gold.dim_machine", "gold.fact_site_daily"}:
        assert rows(table(example, name), drop=(*ARRIVAL, "_batch_id"), digits=9) == rows(
            table(fresh, name), drop=(*ARRIVAL, "_batch_id"), digits=9), name
    assert all(c["ok"] for c in example.verify_warehouse())


def test_explicit_selection_recomputes_dimensions_in_full(example: Project) -> None:
    example.run()
    sites = table(example, "gold.dim_site")
    DeltaTable(str(example.lakehouse.local_path("gold/dim_site"))).update(updates={"region": "'nowhere'"})
    result = example.backfill(start=DAY, end=DAY, select=["gold.dim_site", "gold.fact_telemetry_daily"])
    assert [(i["model"], i["column"], i["strategy"]) for i in result["models"]] == [
        ("gold.dim_site", "*", "full"), ("gold.fact_telemetry_daily", "date", "window")]
    assert result["models"][0]["rows_deleted"] == result["models"][0]["rows_written"] == sites.num_rows
    assert rows(table(example, "gold.dim_site")) == rows(sites)
    assert result["skipped"] == []


@pytest.mark.parametrize(("start", "end", "said"), [
    ("2024-01-03", "2024-01-02", "is before --from"),
    ("2024-13-01", "2024-12-31", "is not a date"),
    ("yesterday", "2024-01-02", "is not a date"),
    ("", "2024-01-02", "--from and --to"),
])
def test_bad_ranges_are_config_errors_with_the_fix(example: Project, start: str, end: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        example.backfill(start=start, end=end)
    assert said in caught.value.message and caught.value.hint


def test_a_backfill_never_overlaps_a_run(example: Project) -> None:
    example.run()
    with run_lock(example), pytest.raises(LakeforgeError, match="holds the lock"):
        example.backfill(start=DAY, end=DAY)


def test_a_backfill_is_a_run_session_with_the_observers_and_the_runs_messages(
        example: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfill shares the run's session (issue 21): the observers (lineage, alerts) see it, and an error lakeforge
    did not expect is reported and recorded as a run's is."""
    from lakeforge.pipeline.hooks import Observer

    example.run()
    seen: list[str] = []

    class Watch(Observer):
        def run_started(self, run_id: str) -> None:
            seen.append("run_started")

        def stage_finished(self, stage: Any) -> None:
            seen.append(f"finished {stage.name}")

        def stage_failed(self, name: str, kind: str, error: BaseException) -> None:
            seen.append(f"failed {name}")

        def run_finished(self, result: Any) -> None:
            seen.append(f"run_finished {result.status}")

    monkeypatch.setattr(Project, "observers", lambda self: [Watch()])
    done = example.backfill(start=DAY, end=DAY, select=["gold.fact_telemetry_daily"])
    assert seen[0] == "run_started" and seen[-1] == f"run_finished {done['status']}"
    assert "finished gold.fact_telemetry_daily" in seen and "finished warehouse" in seen
    seen.clear()

    def broken(*_: Any, **__: Any) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(warehouse_stage, "load", broken)
    with pytest.raises(LakeforgeError, match=r"internal error in warehouse: KeyError") as caught:
        example.backfill(start=DAY, end=DAY, select=["gold.fact_telemetry_daily"])
    assert seen[-2:] == ["failed warehouse", "run_finished failed"]
    record = json.loads((example.path / "lakehouse" / "_lakeforge" / "runs" / f"{caught.value.run.run_id}.json")
                        .read_text())
    assert record["failed_stage"] == "warehouse" and record["backfill"] == {"from": DAY, "to": DAY}


def test_cli_backfill_json_and_text(example: Project) -> None:
    example.run()
    runner = CliRunner()
    done = runner.invoke(app, ["backfill", "--project", str(example.path), "--from", DAY, "--to", DAY,
                               "--select", "gold.fact_telemetry_hourly", "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert (data["from"], data["to"]) == (DAY, DAY)
    assert data["models"] == [{"model": "gold.fact_telemetry_hourly", "column": "hour", "strategy": "window",
                               "rows_deleted": 288, "rows_written": 288,
                               "upstream_filters": {"silver.telemetry": "ts"},
                               "seconds": data["models"][0]["seconds"]}]
    text = runner.invoke(app, ["backfill", "--project", str(example.path), "--from", DAY, "--to", DAY,
                               "--select", "gold.fact_telemetry_hourly"])
    assert text.exit_code == 0, text.output
    assert f"gold.fact_telemetry_hourly: 288 rows replaced by 288 (hour in {DAY} .. {DAY})" in " ".join(
        text.stdout.split())


SYNTHETIC = {
    "silver.events": """
        -- kind: incremental
        -- unique_key: [id, ts]
        SELECT id, ts, v FROM bronze.events
    """,
    "gold.deltas": """
        -- kind: materialized
        -- unique_key: [id, ts]
        SELECT id, ts, v - lag(v) OVER (PARTITION BY id ORDER BY ts) AS dv FROM silver.events
    """,
    "gold.naive_daily": """
        -- kind: incremental
        -- unique_key: [id, day]
        SELECT id, CAST(date_trunc('day', ts) AS TIMESTAMP) AS day, sum(v) AS total
        FROM silver.events GROUP BY id, CAST(date_trunc('day', ts) AS TIMESTAMP)
    """,
    "gold.monthly": """
        -- kind: materialized
        SELECT date_trunc('month', ts) AS month, count(*) AS n, sum(v) AS total FROM silver.events GROUP BY 1
    """,
}


def test_the_upstream_is_read_in_the_window_only_where_that_gives_the_same_rows(make_project: Any) -> None:
    """A window function needs the rows before the window, a monthly aggregate the whole month: their upstream is
    read in full, and the rows of the window still come out as a full computation gives them. A naive timestamp
    (no time zone) is windowed like an aware one."""
    project = make_project({"dialect": "duckdb", "sources": {"events": {
        "format": "jsonl", "schema_hints": {"id": "bigint", "ts": "timestamp", "v": "double"}}}}, SYNTHETIC)
    folder = project.path / "landing" / "events"
    folder.mkdir(parents=True)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    lines = [json.dumps({"id": i, "ts": (start + dt.timedelta(hours=6 * k)).isoformat(), "v": (k * 7 + i) % 13 / 2})
             for k in range(4 * 34) for i in range(3)]  # 2024-01-01 .. 2024-02-03, every 6 hours
    (folder / "part-0.jsonl").write_text("\n".join(lines) + "\n")
    assert project.run().status == "succeeded"
    before = {name: table(project, name) for name in ("gold.deltas", "gold.naive_daily", "gold.monthly")}
    for name, update in (("gold.deltas", {"dv": "999.0"}), ("gold.naive_daily", {"total": "-1.0"}),
                         ("gold.monthly", {"n": "0"})):
        DeltaTable(str(project.lakehouse.local_path(name.replace(".", "/")))).update(updates=update)

    result = project.backfill(start="2024-01-10", end="2024-02-01", select=["gold.*"])
    filters = {i["model"]: i["upstream_filters"] for i in result["models"]}
    assert filters == {"gold.deltas": {}, "gold.naive_daily": {"silver.events": "ts"}, "gold.monthly": {}}
    window = Window(dt.date(2024, 1, 10), dt.date(2024, 2, 1))
    for name, column in (("gold.deltas", "ts"), ("gold.naive_daily", "day"), ("gold.monthly", "month")):
        after = table(project, name)
        mask = window.mask(after[column], after.schema.field(column).type)
        old = before[name].filter(window.mask(before[name][column], before[name].schema.field(column).type))
        assert rows(after.filter(mask)) == rows(old), name  # e.g. the first row of the window has its lag
        assert after.filter(mask).num_rows == old.num_rows > 0, name
    assert after.filter(mask)["month"].to_pylist() == [dt.datetime(2024, 2, 1, tzinfo=dt.UTC)]  # only February's row
    assert pa.types.is_timestamp(table(project, "gold.naive_daily").schema.field("day").type)
    assert table(project, "gold.naive_daily").schema.field("day").type.tz is None
