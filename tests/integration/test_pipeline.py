"""The example project end to end: counts, incrementality, late data, bad input. Tests that take ``engine`` run
on DuckDB and on Spark (the engine suite)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from lakeforge.errors import ExpectationFailed, LakeforgeError, ModelError
from lakeforge.pipeline import warehouse as warehouse_stage
from lakeforge.pipeline.progress import LogReporter
from lakeforge.pipeline.runner import last_run
from lakeforge.project import Project
from tests.conftest import ENGINES, landing_lines

on_every_engine = pytest.mark.parametrize("engine", ENGINES, indirect=True)


def rows(project: Project, name: str) -> int:
    return project.catalog.dataset(name).count_rows()


def stage(result: object, name: str):  # type: ignore[no-untyped-def]
    return next(s for s in result.stages if s.name == name)  # type: ignore[attr-defined]


@on_every_engine
def test_every_stage_balances_and_nothing_is_lost(example: Project) -> None:
    result = example.run()
    assert result.status == "succeeded"
    for s in result.stages:
        assert s.balanced(), s
    landing = example.landing.local_path()
    for source in ("telemetry", "errors", "failures", "maintenance"):
        ingest = stage(result, f"ingest:{source}")
        assert ingest.rows_in == landing_lines(landing / source), source
        assert rows(example, f"bronze.{source}") == ingest.rows_out
    silver = stage(result, "silver.telemetry")
    bronze_rows = rows(example, "bronze.telemetry")
    assert silver.rows_in == bronze_rows
    assert rows(example, "silver.telemetry") == silver.rows_out
    assert rows(example, "quarantine.silver_telemetry") == silver.rows_quarantined
    assert silver.rows_quarantined > 0 and silver.dropped_by["duplicate_key"] > 0
    # every reading (machine, timestamp) of bronze is in silver or in quarantine, and silver has each once
    con = duckdb.connect()
    con.register("b", example.catalog.dataset("bronze.telemetry"))
    con.register("s", example.catalog.dataset("silver.telemetry"))
    con.register("q", example.catalog.dataset("quarantine.silver_telemetry"))
    lost = con.sql("SELECT count(*) FROM (SELECT DISTINCT machine_id, ts FROM b EXCEPT "
                   "(SELECT machine_id, ts FROM s UNION SELECT machine_id, ts FROM q))").fetchall()[0][0]
    assert lost == 0
    assert con.sql("SELECT count(*) - count(DISTINCT (machine_id, ts)) FROM s").fetchall()[0][0] == 0
    reasons = {r for (rs,) in con.sql("SELECT _failed_rules FROM q").fetchall() for r in rs}
    rule_names = {r.rule for r in silver.rules}
    assert reasons and reasons <= rule_names


def test_second_run_does_nothing_and_says_so(example: Project) -> None:
    assert example.run().status == "succeeded"
    versions = {n: example.catalog.version(n) for n in example.catalog.names()}
    again = example.run()
    assert again.status == "nothing_to_do", [(s.name, s.strategy, s.detail) for s in again.stages if s.did_work]
    assert all(s.status == "skipped" for s in again.stages)
    assert {n: example.catalog.version(n) for n in example.catalog.names()} == versions
    assert last_run(example)["status"] == "nothing_to_do"  # type: ignore[index]


def test_gold_and_warehouse_match_an_independent_computation(example: Project) -> None:
    example.run()
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.register("s", example.catalog.dataset("silver.telemetry"))
    expected = con.sql("SELECT machine_id, date_trunc('hour', ts) AS hour, count(*) AS readings, "
                       "round(avg(vibration), 9) AS v, max(temperature) AS t FROM s GROUP BY ALL "
                       "ORDER BY ALL").to_arrow_table().to_pylist()
    got = example.query("SELECT machine_id, hour, readings, round(vibration_avg, 9) AS v, "
                        "temperature_max AS t FROM fact_telemetry_hourly ORDER BY ALL").to_pylist()
    assert got == expected
    gold = example.query("SELECT count(*) AS n FROM gold.fact_telemetry_hourly").to_pylist()[0]["n"]
    assert gold == len(expected)
    kpi = example.query("SELECT sum(failures) AS f FROM fleet_kpi_daily").to_pylist()[0]["f"]
    assert kpi == rows(example, "silver.failures") > 0


@on_every_engine
def test_incremental_runs_equal_a_full_refresh(example: Project) -> None:
    example.run()
    example.generate(machines=12, days=2, seed=8, files=3, start="2024-01-04")
    second = example.run()
    assert stage(second, "gold.fact_telemetry_hourly").strategy == "groups"
    assert stage(second, "silver.telemetry").strategy == "merge"
    example.generate(machines=12, days=1, seed=9, files=2, start="2024-01-02")  # overlaps: late data
    example.run()
    # averages are compared to 9 decimals: summation order differs between incremental and full runs
    query = ("SELECT machine_id, hour, readings, round(volt_avg, 9) AS volt, round(vibration_std, 9) AS vib_std, "
             "pressure_max, temperature_max FROM gold.fact_telemetry_hourly ORDER BY machine_id, hour")
    incremental = example.query(query)
    warehouse_incremental = example.query(query.replace("gold.", ""))
    refreshed = example.run(full_refresh=True)
    assert stage(refreshed, "gold.fact_telemetry_hourly").strategy == "full"
    assert example.query(query).equals(incremental)
    assert warehouse_incremental.equals(incremental)


@on_every_engine
def test_late_rows_correct_the_hour_they_belong_to(example: Project) -> None:
    example.run()
    sql = ("SELECT readings, vibration_max FROM fact_telemetry_hourly "
           "WHERE machine_id = 3 AND hour = TIMESTAMPTZ '2024-01-01 05:00:00+00'")
    before = example.query(sql).to_pylist()[0]
    late = {"ts": "2024-01-01 05:59:30", "machine_id": 3, "volt": 170.0, "rotate": 450.0, "pressure": 100.0,
            "vibration": 199.5, "temperature": 70.0}
    path = example.landing.local_path() / "telemetry" / "late-arrival.jsonl"
    path.write_text(json.dumps(late) + "\n")
    result = example.run()
    assert stage(result, "gold.fact_telemetry_hourly").rows_written == 1
    after = example.query(sql).to_pylist()[0]
    assert after["readings"] == before["readings"] + 1
    assert after["vibration_max"] == 199.5


@on_every_engine
def test_a_file_that_cannot_be_parsed_is_quarantined_and_the_rest_proceeds(example: Project) -> None:
    bad = example.landing.local_path() / "telemetry" / "broken.jsonl"
    bad.write_text('{"ts": "2024-01-01 00:00:00", "machine_id": 1}\n{"ts": "2024-01-01 00:10:00", "machi\n')
    (example.landing.local_path() / "telemetry" / "empty.jsonl").write_text("")
    (example.landing.local_path() / "telemetry" / "garbage.parquet").write_bytes(b"PAR1 not really parquet")
    result = example.run()
    ingest = stage(result, "ingest:telemetry")
    assert ingest.balanced()
    quarantined = example.table("quarantine.bronze_telemetry").to_pylist()
    by_file = {q["_source_file"]: q for q in quarantined}
    assert len(by_file) == len(quarantined) == 3
    broken = by_file["telemetry/broken.jsonl"]  # row level: its first line was ingested
    assert broken["_line"] == 2 and "malformed JSON" in broken["_reason"] and broken["_rows"] == 1
    assert by_file["telemetry/empty.jsonl"]["_reason"].startswith("empty file")
    assert by_file["telemetry/empty.jsonl"]["_rows"] == 0
    garbage = by_file["telemetry/garbage.parquet"]  # file level
    assert garbage["_line"] is None and garbage["_rows"] == 1 and "parquet" in garbage["_reason"].lower()
    assert ingest.rows_quarantined == 2
    assert ingest.files_quarantined == 2  # empty.jsonl (no rows) and garbage.parquet; broken.jsonl by line
    line = io.StringIO()
    LogReporter(line).finish(ingest)
    assert ", 2 quarantined, 2 files quarantined whole [files]" in line.getvalue()
    assert ingest.rows_out == rows(example, "bronze.telemetry") > 0
    assert example.status()["quarantine_rows"] >= 2


@on_every_engine
def test_rerun_after_a_crash_between_manifest_and_commit_ingests_exactly_once(
    example: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = type(example.run_catalog)  # the engine's own: delta-rs for DuckDB, delta-spark for Spark
    real_write = writer.write
    calls = {"n": 0}

    def crashing_write(self: object, name: str, *args: object, **kwargs: object) -> None:
        if name == "bronze.telemetry":
            calls["n"] += 1
            raise RuntimeError("simulated crash before the Delta commit")
        real_write(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "write", crashing_write)
    with pytest.raises(LakeforgeError, match="simulated crash"):
        example.run()
    assert calls["n"] == 1
    monkeypatch.setattr(writer, "write", real_write)
    result = example.run()
    assert rows(example, "bronze.telemetry") == landing_lines(example.landing.local_path() / "telemetry")
    assert stage(result, "ingest:telemetry").rows_out == rows(example, "bronze.telemetry")
    assert example.run().status == "nothing_to_do"


SOURCES = {"events": {"format": "jsonl"}}


def write_events(project: Project, rows_: list[dict[str, object]], name: str = "a.jsonl") -> None:
    folder = project.landing.root / "events"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows_))


@on_every_engine
def test_a_failing_model_names_the_model_the_error_and_its_line(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project({"sources": SOURCES, "dialect": "duckdb"}, {
        "silver.events": """
            -- kind: materialized
            SELECT
              id,
              no_such_column + 1 AS x
            FROM bronze.events
        """,
    })
    write_events(project, [{"id": 1}])
    with pytest.raises(ModelError) as info:
        project.run()
    text = str(info.value)
    assert "silver.events" in text and "no_such_column" in text and "line 4" in text
    assert not project.catalog.exists("silver.events")
    record = last_run(project)
    assert record is not None and record["status"] == "failed" and record["failed_stage"] == "silver.events"


@on_every_engine
def test_expectation_actions_and_counts(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project({"sources": SOURCES}, {
        "silver.events": """
            -- kind: incremental
            -- unique_key: [id]
            -- expectations:
            --   - {name: id_present, expr: id IS NOT NULL, action: quarantine}
            --   - {name: positive, expr: v > 0, action: drop}
            --   - {name: small, expr: v < 100, action: warn}
            SELECT try_cast(id AS INT) AS id, try_cast(v AS DOUBLE) AS v FROM bronze.events
        """,
    })
    write_events(project, [{"id": 1, "v": 5}, {"id": 2, "v": -1}, {"id": None, "v": 3}, {"id": 3, "v": 500},
                           {"id": 1, "v": 5}])
    result = project.run()
    s = stage(result, "silver.events")
    assert (s.rows_in, s.rows_out, s.rows_dropped, s.rows_quarantined) == (5, 2, 2, 1)
    assert s.dropped_by == {"expectation:positive": 1, "duplicate_key": 1}
    counts = {r.rule: (r.passed, r.failed) for r in s.rules}
    # (a NULL id also fails the built-in null_key rule of a model with a unique_key)
    assert counts == {"id_present": (4, 1), "positive": (4, 1), "small": (4, 1), "null_key": (4, 1)}
    assert sorted(r["id"] for r in project.table("silver.events").to_pylist()) == [1, 3]
    quarantined = project.table("quarantine.silver_events").to_pylist()
    assert quarantined[0]["_failed_rules"] == ["id_present", "null_key"] and quarantined[0]["_run_id"] == result.run_id


@on_every_engine
def test_dedup_prefers_a_passing_row_then_the_order_and_groups_null_keys(make_project) -> None:  # type: ignore[no-untyped-def]
    """The dedup ranks only keys that come more than once (DuckDB) or every row (Spark): either way a row that
    no quarantine or drop rule stops wins over an earlier one that is stopped, ``order_by`` decides the rest, a
    null key part is one key, and a dropped row counts against the first drop rule it failed."""
    project = make_project({"sources": SOURCES}, {
        "silver.events": """
            -- kind: incremental
            -- unique_key: [id, part]
            -- order_by: [seq]
            -- on_conflict: update
            -- expectations:
            --   - {name: ok, expr: v <> 'bad', action: quarantine}
            --   - {name: positive, expr: n > 0, action: drop}
            --   - {name: even, expr: n % 2 = 0, action: drop}
            SELECT try_cast(id AS INT) AS id, part, try_cast(seq AS INT) AS seq, v, try_cast(n AS INT) AS n
            FROM bronze.events
        """,
    })
    write_events(project, [
        {"id": 1, "part": "a", "seq": 3, "v": "bad", "n": 2},    # the latest of key (1, a), but quarantined
        {"id": 1, "part": "a", "seq": 1, "v": "x", "n": 2},      # loses to seq 2
        {"id": 1, "part": "a", "seq": 2, "v": "y", "n": 2},      # kept: the latest that passes
        {"id": 2, "part": None, "seq": 1, "v": "p", "n": 2},     # (2, null) twice: one key
        {"id": 2, "part": None, "seq": 5, "v": "q", "n": 2},     # kept
        {"id": 3, "part": "b", "seq": 1, "v": "z", "n": -501},   # fails both drop rules: counts for `positive`
        {"id": 3, "part": "b", "seq": 0, "v": "w", "n": 8},      # kept although older: the other is dropped
        {"id": 4, "part": "c", "seq": 1, "v": "u", "n": 2},      # a key that comes once
    ])
    s = stage(project.run(), "silver.events")
    assert (s.rows_in, s.rows_out, s.rows_quarantined) == (8, 4, 1)
    assert s.dropped_by == {"expectation:positive": 1, "duplicate_key": 2}
    counts = {r.rule: r.failed for r in s.rules}
    assert counts == {"ok": 1, "positive": 1, "even": 1}
    kept = sorted((r["id"], r["part"], r["v"]) for r in project.table("silver.events").to_pylist())
    assert kept == [(1, "a", "y"), (2, None, "q"), (3, "b", "w"), (4, "c", "u")]


@on_every_engine
def test_fail_action_commits_nothing(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project({"sources": SOURCES}, {
        "silver.events": """
            -- expectations:
            --   - {name: id_present, expr: id IS NOT NULL, action: fail}
            SELECT id FROM bronze.events
        """,
    })
    write_events(project, [{"id": 1}, {"id": None}])
    with pytest.raises(ExpectationFailed, match=r"id_present.*1 of 2 rows; nothing was committed"):
        project.run()
    assert not project.catalog.exists("silver.events")


def test_query_is_read_only_and_reaches_every_layer(example: Project) -> None:
    example.run()
    with pytest.raises(LakeforgeError, match="read-only"):
        example.query("DELETE FROM fact_telemetry_hourly")
    with pytest.raises(LakeforgeError, match="read-only"):
        example.query("CREATE TABLE x AS SELECT 1")
    n = example.query("SELECT (SELECT count(*) FROM bronze.telemetry) > (SELECT count(*) FROM silver.telemetry) "
                      "AS more").to_pylist()
    assert n == [{"more": True}]
    with pytest.raises(LakeforgeError, match="query failed"):
        example.query("SELECT * FROM no_such_table")


def test_warehouse_loads_are_idempotent(example: Project) -> None:
    example.run()
    wh = example.path / "warehouse.duckdb"
    con = duckdb.connect(str(wh))
    before = con.sql("SELECT count(*) FROM fact_telemetry_hourly").fetchall()[0][0]
    # pretend the ledger lost the last load of a keyed table: reloading must not duplicate rows
    con.execute("UPDATE _lakeforge_loads SET source_version = source_version - 1 "
                "WHERE table_name = 'fact_errors'")
    con.close()
    stage_ = warehouse_stage.load(example.workspace, run_id="retry", models=example.graph().ordered())
    assert stage_.status == "ok"
    con = duckdb.connect(str(wh), read_only=True)
    assert con.sql("SELECT count(*) FROM fact_telemetry_hourly").fetchall()[0][0] == before
    assert con.sql("SELECT count(*) FROM fact_errors").fetchall()[0][0] == rows(example, "gold.fact_errors")
    con.close()
    assert warehouse_stage.load(example.workspace, run_id="again", models=example.graph().ordered()).status == "skipped"


def test_lakehouse_tables_are_readable_by_polars_and_pyarrow(example: Project) -> None:
    polars = pytest.importorskip("polars")
    example.run()
    frame = polars.read_delta(example.catalog.uri("gold.fact_telemetry_hourly"))
    assert frame.height == rows(example, "gold.fact_telemetry_hourly")
    assert isinstance(example.table("gold.dim_machine"), pa.Table)


def test_status_reports_tables_versions_freshness_and_backlog(example: Project) -> None:
    status = example.status()
    assert status["backlog"]["telemetry"]["files"] == 6 and status["tables"] == []
    example.run()
    status = example.status()
    by_name = {t["name"]: t for t in status["tables"]}
    assert by_name["silver.telemetry"]["rows"] == rows(example, "silver.telemetry")
    assert by_name["silver.telemetry"]["layer"] == "silver"
    assert by_name["gold.fact_telemetry_hourly"]["freshness_seconds"] >= 0
    assert status["backlog"]["telemetry"] == {"files": 0, "bytes": 0, "changed_after_ingest": 0}
    assert status["last_run"]["status"] == "succeeded"


def test_init_refuses_to_overwrite_a_project(tmp_path: Path) -> None:
    Project.init(tmp_path / "p")
    with pytest.raises(LakeforgeError, match="already exists"):
        Project.init(tmp_path / "p")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_every_generator_format_flows_through(tmp_path: Path, fmt: str) -> None:
    with Project.init(tmp_path / fmt) as project:
        project.generate(machines=6, days=2, seed=3, files=4, fmt=fmt)
        result = project.run()
        assert result.status == "succeeded"
        assert all(s.balanced() for s in result.stages)
        ingest = stage(result, "ingest:telemetry")
        assert ingest.rows_quarantined == 0 and ingest.rows_out == rows(project, "bronze.telemetry")
        if fmt == "csv":
            assert ingest.rows_in == landing_lines(project.landing.root / "telemetry", header=True)
        silver = rows(project, "silver.telemetry")
        assert silver == stage(result, "silver.telemetry").rows_out > 6 * 2 * 24 * 6 * 0.95
        hourly = project.query("SELECT count(*) AS n FROM fact_telemetry_hourly").to_pylist()[0]["n"]
        assert hourly == 6 * 2 * 24


def test_a_load_spanning_several_updates_of_a_key_keeps_one_row_per_key(example: Project) -> None:
    example.run()
    folder = example.landing.local_path("telemetry")
    for i, vibration in enumerate((150.0, 160.0)):  # the same hour is updated in two gold versions
        late = {"ts": f"2024-01-01 05:5{i}:30", "machine_id": 3, "volt": 170.0, "rotate": 450.0,
                "pressure": 100.0, "vibration": vibration, "temperature": 70.0}
        (folder / f"late-{i}.jsonl").write_text(json.dumps(late) + "\n")
        example.run()
    con = duckdb.connect(str(example.path / "warehouse.duckdb"))
    con.execute("UPDATE _lakeforge_loads SET source_version = source_version - 2 "
                "WHERE table_name = 'fact_telemetry_hourly'")
    con.close()
    assert warehouse_stage.load(example.workspace, run_id="replay", models=example.graph().ordered()).status == "ok"
    got = example.query("SELECT count(*) AS n, count(DISTINCT (machine_id, hour)) AS k, "
                        "max(vibration_max) AS v FROM fact_telemetry_hourly").to_pylist()[0]
    assert got["n"] == got["k"] == rows(example, "gold.fact_telemetry_hourly")
    assert got["v"] == 160.0


def test_an_aggregate_over_rows_that_move_between_groups_stays_right(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project({"dialect": "duckdb", "sources": {"src": {"format": "jsonl",
                                                                    "schema_hints": {"k": "bigint"}}}}, {
        "silver.latest": """
            -- kind: incremental
            -- unique_key: [k]
            -- order_by: [_batch_id]
            SELECT k, status, _batch_id FROM bronze.src
        """,
        "gold.by_status": """
            -- kind: incremental
            -- unique_key: [status]
            SELECT status, count(*) AS n FROM silver.latest GROUP BY status
        """,
    })
    landing = project.landing.local_path("src")
    landing.mkdir(parents=True)
    (landing / "a.jsonl").write_text('{"k": 1, "status": "open"}\n{"k": 2, "status": "open"}\n')
    project.run()
    (landing / "b.jsonl").write_text('{"k": 1, "status": "closed"}\n')
    project.run()
    got = project.query("SELECT status, n FROM by_status ORDER BY status").to_pylist()
    assert got == [{"status": "closed", "n": 1}, {"status": "open", "n": 1}]


def test_plan_says_what_would_run_and_why_without_running(example: Project) -> None:
    plan = example.plan()
    assert {s["name"]: s["run"] for s in plan["sources"]}["telemetry"] is True
    by_name = {m["name"]: m for m in plan["models"]}
    assert by_name["silver.telemetry"]["run"] and "bronze.telemetry" in by_name["silver.telemetry"]["reason"]
    assert by_name["gold.fleet_kpi_daily"]["run"]
    assert example.catalog.names() == []  # nothing ran
    example.run()
    plan = example.plan()
    assert not any(m["run"] for m in plan["models"]) and not any(s["run"] for s in plan["sources"])
    assert {m["reason"] for m in plan["models"]} == {"upstream unchanged"}
    plan = example.plan(select=["silver.telemetry+"], full_refresh=True)
    names = [m["name"] for m in plan["models"]]
    assert names[0] == "silver.telemetry" and "gold.fact_telemetry_hourly" in names
    assert "silver.machines" not in names
    assert plan["models"][0]["reason"] == "full refresh asked for"


def test_select_runs_a_subgraph_and_full_refresh_only_what_is_selected(example: Project) -> None:
    example.run()
    versions = {n: example.catalog.version(n) for n in example.catalog.names()}
    result = example.run(select=["gold.fact_telemetry_hourly"], full_refresh=True)
    ran = [s.name for s in result.stages if s.kind == "model" and s.did_work]
    assert ran == ["gold.fact_telemetry_hourly"]
    assert example.catalog.version("silver.telemetry") == versions["silver.telemetry"]
    result = example.run(select=["+gold.dim_machine"])
    assert [s.name for s in result.stages if s.kind == "model"] == ["silver.machines", "silver.sites",
                                                                   "gold.dim_machine"]
    with pytest.raises(LakeforgeError, match="matches no model"):
        example.run(select=["gold.nope"])


def test_views_are_not_stored_and_read_like_tables(example: Project) -> None:
    models = example.path / "models"
    (models / "silver" / "hot_readings.sql").write_text(
        "-- kind: view\nSELECT machine_id, ts, temperature FROM silver.telemetry WHERE temperature > 75\n")
    (models / "gold" / "hot_hours.sql").write_text(
        "-- kind: materialized\nSELECT machine_id, date_trunc('HOUR', ts) AS hour, count(*) AS n\n"
        "FROM silver.hot_readings GROUP BY 1, 2\n")
    (models / "gold" / "busiest_machines.sql").write_text(
        "-- kind: view\nSELECT machine_id, sum(readings) AS readings FROM gold.fact_telemetry_hourly GROUP BY 1\n")
    result = example.run()
    assert stage(result, "silver.hot_readings").status == "skipped"
    assert not example.catalog.exists("silver.hot_readings")
    hot = example.query("SELECT count(*) AS n FROM silver.hot_readings").to_pylist()[0]["n"]
    direct = example.query("SELECT count(*) AS n FROM silver.telemetry WHERE temperature > 75").to_pylist()[0]["n"]
    assert hot == direct > 0
    assert example.query("SELECT sum(n) AS n FROM hot_hours").to_pylist()[0]["n"] == hot
    busiest = example.query("SELECT sum(readings) AS r FROM busiest_machines").to_pylist()[0]["r"]  # warehouse
    assert busiest == rows(example, "silver.telemetry")
    assert example.run().status == "nothing_to_do"


def test_append_reads_only_new_rows_and_materialized_aggregates_refresh_by_group(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project({"sources": {"src": {"format": "jsonl", "schema_hints": {"k": "bigint"}}}}, {
        "silver.events": "-- kind: append\nSELECT k, v FROM bronze.src\n",
        "gold.per_k": ("-- kind: materialized\n-- unique_key: [k]\n"
                       "SELECT k, count(*) AS n FROM silver.events GROUP BY k\n"),
        "gold.total": "-- kind: materialized\nSELECT count(*) AS n FROM silver.events\n",
    })
    landing = project.landing.local_path("src")
    landing.mkdir(parents=True)
    (landing / "a.jsonl").write_text('{"k": 1, "v": "a"}\n{"k": 2, "v": "b"}\n')
    project.run()
    (landing / "b.jsonl").write_text('{"k": 1, "v": "c"}\n')
    result = project.run()
    assert stage(result, "silver.events").strategy == "append" and stage(result, "silver.events").rows_in == 1
    assert stage(result, "gold.per_k").strategy == "groups" and stage(result, "gold.per_k").rows_written == 1
    assert stage(result, "gold.total").strategy == "full"
    assert sorted((r["k"], r["n"]) for r in project.table("gold.per_k").to_pylist()) == [(1, 2), (2, 1)]
    assert project.table("gold.total").to_pylist() == [{"n": 3}]
