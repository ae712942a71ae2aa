"""The Snowflake warehouse, on fakesnow (tests/snowflake_fake.py: Snowflake SQL run by DuckDB behind the
connector's API, with the patches it needs): full then incremental loads equal gold; a batch that fails after
its COPY changes nothing and its rerun loads it once; a replayed batch leaves the table as it was; duplicate
keys in a batch resolve to the last row; values round trip; the SQL sent (golden files)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import snowflake.connector
import yaml

from lakeforge.config.models import SnowflakeWarehouseConfig
from lakeforge.errors import WarehouseError
from lakeforge.pipeline import warehouse as warehouse_stage
from lakeforge.project import Project
from lakeforge.warehouses.snowflake import SnowflakeWarehouse
from lakeforge.warehouses.sql import LoadPlan
from tests.conftest import REPO, write_project
from tests.golden import GOLDEN_CONFIG, GOLDEN_MODELS, REPORT_SQL, check, land, stable
from tests.snowflake_fake import fake_snowflake, snowflake_config

pytestmark = pytest.mark.snowflake

GOLDEN = REPO / "tests" / "golden" / "snowflake"
FACTS = {"fact_errors", "fact_failures", "fact_maintenance", "fact_telemetry_daily", "fact_telemetry_hourly"}


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[Path]:
    with fake_snowflake(tmp_path / "fakesnow") as path:
        yield path


@pytest.fixture
def telemetry(tmp_path: Path, fake: Path) -> Iterator[Project]:
    """The example project (small), loading into the fake Snowflake."""
    Project.init(tmp_path / "demo").generate(machines=12, days=3, seed=7, files=6)
    path = tmp_path / "demo" / "lakeforge.yml"
    config = yaml.safe_load(path.read_text())
    config["warehouse"] = snowflake_config()
    # one attempt: these tests check what the NEXT run does after a load died (a retry within the run is
    # tests/integration/test_retries.py)
    config["orchestration"] = {"retry": {"attempts": 1}}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    project = Project(tmp_path / "demo")
    yield project
    project.close()


def open_warehouse(*, read_only: bool = False, **config: Any) -> SnowflakeWarehouse:
    cfg = SnowflakeWarehouseConfig.model_validate(snowflake_config(**config))
    return SnowflakeWarehouse(cfg, base_dir=Path("."), read_only=read_only, project="test")


def ledger() -> dict[str, dict[str, Any]]:
    warehouse = open_warehouse(read_only=True)
    try:
        return {r["table_name"]: r for r in warehouse.query("SELECT * FROM _lakeforge_loads").to_pylist()}
    finally:
        warehouse.close()


def rows(sql: str) -> list[dict[str, Any]]:
    warehouse = open_warehouse(read_only=True)
    try:
        return warehouse.query(sql).to_pylist()
    finally:
        warehouse.close()


def sorted_rows(table: str) -> list[tuple[Any, ...]]:
    return sorted((tuple(r.values()) for r in rows(f"SELECT * FROM {table}")), key=repr)


def assert_equal_to_gold(project: Project) -> None:
    checks = project.verify_warehouse()
    gold = {m.name for m in project.graph().ordered() if m.layer == "gold" and m.config.kind != "view"}
    assert {c["table"] for c in checks} == gold
    assert all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]


def more_landing_files(project: Project) -> None:
    """Three more days of the same fleet: new rows in every fact table (incremental loads)."""
    project.generate(machines=12, days=2, seed=7, files=3, start="2024-01-04")


# -- the fake's patches (tests/snowflake_fake.py) ----------------------------------------------------------------
def test_the_fake_copies_a_staged_file_once_and_merges_in_a_transaction(fake: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1, 2], "v": ["a", "b"]}), tmp_path / "batch-1.parquet")
    con = snowflake.connector.connect(account="fake", user="fake", password="fake", database="LF", schema="FAKE")
    cur = con.cursor()
    try:
        for sql in ("CREATE DATABASE IF NOT EXISTS LF", "CREATE SCHEMA IF NOT EXISTS LF.FAKE", "USE SCHEMA LF.FAKE",
                    "CREATE STAGE s", "CREATE TABLE staged (id BIGINT, v VARCHAR)",
                    "CREATE TABLE target (id BIGINT, v VARCHAR)", "INSERT INTO target VALUES (1, 'old')",
                    f"PUT 'file://{tmp_path}/batch-1.parquet' @s/t/ AUTO_COMPRESS = FALSE OVERWRITE = FALSE"):
            cur.execute(sql)
        copy = ("COPY INTO staged FROM @s/t/ FILES = ('batch-1.parquet') FILE_FORMAT = (TYPE = PARQUET) "
                "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE")
        assert [r[1:4] for r in cur.execute(copy).fetchall()] == [("LOADED", 2, 2)]  # patch 2
        assert [r[1:4] for r in cur.execute(copy).fetchall()] == [("LOAD_SKIPPED", 0, 0)]  # load history
        cur.execute("BEGIN")
        merged = cur.execute("MERGE INTO target AS t USING staged AS s ON t.id = s.id WHEN MATCHED THEN UPDATE "
                             "SET v = s.v WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)").fetchall()
        cur.execute("COMMIT")  # patch 1: native MERGE in a transaction; its count is DuckDB's single column
        assert merged == [(2,)]
        assert cur.execute("SELECT id, v FROM target ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
        assert cur.execute("SELECT * FROM target").fetch_arrow_all().column_names == ["ID", "V"]  # patch 4
    finally:
        con.close()


# -- 1. full, then incremental ------------------------------------------------------------------------------------
def test_full_then_incremental_loads_equal_gold(telemetry: Project) -> None:
    first = telemetry.run()
    assert first.status == "succeeded"
    loaded = ledger()
    gold = {t.split(".")[1] for t in warehouse_stage.tables(telemetry.workspace, telemetry.graph().ordered())
            if telemetry.catalog.exists(t)}
    assert "anomalies" in gold and set(loaded) == gold and {r["load_mode"] for r in loaded.values()} == {"full"}
    assert all(r["row_count"] == telemetry.catalog.info(f"gold.{t}").rows for t, r in loaded.items())
    assert_equal_to_gold(telemetry)

    more_landing_files(telemetry)
    second = telemetry.run()
    assert second.status == "succeeded"
    loaded = ledger()
    modes = {t: r["load_mode"] for t, r in loaded.items()}
    # dim_date is keyed by date: the new days merged in
    assert {t for t, mode in modes.items() if mode == "incremental"} == FACTS | {"anomalies", "dim_date"}, modes
    assert all(r["run_id"] == second.run_id and r["source_version"] == telemetry.catalog.version(f"gold.{t}")
               for t, r in loaded.items())
    detail = next(s for s in second.stages if s.name == "warehouse").detail
    assert "fact_telemetry_hourly (incremental, v1)" in detail
    assert_equal_to_gold(telemetry)
    assert rows("SELECT count(*) AS n FROM _lf_stage_fact_telemetry_hourly") == [{"n": 0}]  # staging cleared

    assert telemetry.run().status in {"succeeded", "nothing_to_do"}  # nothing new: every load skipped
    assert ledger() == loaded


# -- 2. a failed batch changes nothing; a replayed one leaves the table as it was --------------------------------
def test_a_merge_failing_after_copy_changes_nothing_and_the_rerun_loads_once(
        telemetry: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry.run()
    more_landing_files(telemetry)
    before, target_before = ledger(), sorted_rows("fact_telemetry_hourly")

    sent: list[str] = []
    failures = {"left": 1}
    original = SnowflakeWarehouse._execute

    def flaky(self: SnowflakeWarehouse, sql: str) -> None:
        sent.append(sql)
        if sql.startswith("MERGE INTO fact_telemetry_hourly ") and failures["left"]:
            failures["left"] -= 1
            raise snowflake.connector.errors.OperationalError(msg="connection reset (simulated)", errno=250003)
        original(self, sql)

    monkeypatch.setattr(SnowflakeWarehouse, "_execute", flaky)
    with pytest.raises(WarehouseError) as caught:
        telemetry.run()
    error = caught.value
    assert "gold.fact_telemetry_hourly (version 1)" in error.message and "LF.GOLD.fact_telemetry_hourly" in \
        error.message and "simulated" in error.message
    assert error.hint and "unchanged" in error.hint
    assert any(s.startswith("COPY INTO _lf_stage_fact_telemetry_hourly") for s in sent)
    assert "ROLLBACK" in sent

    after = ledger()
    assert after["fact_telemetry_hourly"] == before["fact_telemetry_hourly"]
    assert sorted_rows("fact_telemetry_hourly") == target_before
    staged = rows("SELECT count(*) AS n FROM _lf_stage_fact_telemetry_hourly")[0]["n"]
    assert staged > 0  # the batch waits in staging for the rerun

    copied = [s for s in sent if s.startswith("COPY INTO _lf_stage_fact_telemetry_hourly")]
    sent.clear()
    rerun = telemetry.run()
    assert rerun.status == "succeeded"
    # the same file, found in the stage and in the staging table's load history: not copied again
    recopied = [s for s in sent if s.startswith("COPY INTO _lf_stage_fact_telemetry_hourly")]
    assert recopied == copied and not any("FORCE" in s for s in recopied)
    assert ledger()["fact_telemetry_hourly"]["load_mode"] == "incremental"
    assert_equal_to_gold(telemetry)
    counts = rows("SELECT count(*) AS n, (SELECT count(*) FROM (SELECT DISTINCT machine_id, hour "
                  "FROM fact_telemetry_hourly)) AS k FROM fact_telemetry_hourly")[0]
    assert counts["n"] == counts["k"] == telemetry.catalog.info("gold.fact_telemetry_hourly").rows
    assert rows("SELECT count(*) AS n FROM _lf_stage_fact_telemetry_hourly") == [{"n": 0}]


def test_a_replayed_batch_leaves_the_table_identical(telemetry: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry.run()
    more_landing_files(telemetry)
    telemetry.run()
    table = "fact_telemetry_hourly"
    expected = sorted_rows(table)
    checksums = {c["table"]: c for c in telemetry.verify_warehouse()}

    sent: list[str] = []
    original = SnowflakeWarehouse._execute

    def spy(self: SnowflakeWarehouse, sql: str) -> None:
        sent.append(sql)
        original(self, sql)

    monkeypatch.setattr(SnowflakeWarehouse, "_execute", spy)
    for change, mode in ((f"DELETE FROM _lakeforge_loads WHERE table_name = '{table}'", "full"),
                         (f"UPDATE _lakeforge_loads SET source_version = 0 WHERE table_name = '{table}'",
                          "incremental")):
        warehouse = open_warehouse()
        warehouse.execute(change)  # the ledger forgets the last load: the next run replays it
        warehouse.close()
        sent.clear()
        telemetry.run()
        assert ledger()[table]["load_mode"] == mode
        assert sorted_rows(table) == expected
        assert {c["table"]: c for c in telemetry.verify_warehouse()} == checksums
        if mode == "incremental":  # the same batch as the second run: its file is copied again, merged again
            assert any(s.startswith(f"MERGE INTO {table} ") for s in sent)
            assert any(s.startswith(f"COPY INTO _lf_stage_{table} ") and s.endswith("FORCE = TRUE") for s in sent)


# -- 3. duplicate keys in a batch ---------------------------------------------------------------------------------
def plan(mode: str, ids: list[int], values: list[str], *, version: int, create: bool = False) -> LoadPlan:
    data = pa.table({"id": pa.array(ids, pa.int64()), "value": pa.array(values, pa.string())})
    return LoadPlan(gold_table="gold.items", target="items", mode=mode, from_version=version - 1,
                    to_version=version, keys=["id"], cluster_by=[], data=data, create=create, run_id=f"run-{version}")


def test_duplicate_keys_in_a_batch_resolve_to_the_last_row(fake: Path) -> None:
    warehouse = open_warehouse()
    try:
        assert warehouse.apply(plan("full", [1, 2, 2], ["a", "b-old", "b"], version=0, create=True)) == 2
        assert warehouse.apply(plan("incremental", [1, 3, 1, 3, 1], ["x", "z-old", "y", "z", "last"],
                                    version=1)) == 2
        got = warehouse.query("SELECT id, value FROM items ORDER BY id").to_pylist()
        assert got == [{"id": 1, "value": "last"}, {"id": 2, "value": "b"}, {"id": 3, "value": "z"}]
        assert warehouse.loaded_versions() == {"gold.items": 1}
    finally:
        warehouse.close()


# -- values round trip ---------------------------------------------------------------------------------------------
def test_values_round_trip(fake: Path) -> None:
    utc = dt.UTC
    data = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "small": pa.array([7, None, -7], pa.int32()),
        "ts": pa.array([dt.datetime(2024, 1, 1, 1, 2, 3, 456789), None, dt.datetime(1999, 12, 31, 23, 59, 59)],
                       pa.timestamp("us")),
        "ts_utc": pa.array([dt.datetime(2024, 6, 30, 12, 0, 0, 1, tzinfo=utc), dt.datetime(1970, 1, 1, tzinfo=utc),
                            None], pa.timestamp("us", "UTC")),
        "day": pa.array([dt.date(2024, 2, 29), None, dt.date(1900, 1, 1)], pa.date32()),
        "value": pa.array([1.5, None, -0.0], pa.float64()),
        "amount": pa.array([None, Decimal("12345.67"), Decimal("-0.01")], pa.decimal128(10, 2)),
        "flag": pa.array([True, None, False]),
        "text": pa.array(["plain", "it's \"quoted\"; ünï", None]),
        "blob": pa.array([b"\x00\xff", None, b""], pa.binary()),
    })
    load = LoadPlan(gold_table="gold.typed", target="typed", mode="full", from_version=-1, to_version=0,
                    keys=["id"], cluster_by=["day"], data=data, create=True, run_id="run-0")
    warehouse = open_warehouse()
    try:
        warehouse.apply(load)
        got = warehouse.query("SELECT * FROM typed ORDER BY id")
    finally:
        warehouse.close()
    assert got.column_names == data.column_names
    assert got.to_pylist() == data.to_pylist()


# -- connection and open ------------------------------------------------------------------------------------------
def test_read_only_on_a_schema_never_loaded_says_run_first(fake: Path) -> None:
    with pytest.raises(WarehouseError) as caught:
        open_warehouse(read_only=True, schema="NEVER_LOADED")
    assert "LF.NEVER_LOADED" in caught.value.message and "lakeforge run" in (caught.value.hint or "")


def test_a_failing_connection_names_what_was_tried_but_not_the_password(
        fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: Any) -> None:
        raise snowflake.connector.errors.DatabaseError(f"250001: could not connect ({kwargs['password']})")

    monkeypatch.setattr(snowflake.connector, "connect", refuse)
    with pytest.raises(WarehouseError) as caught:
        open_warehouse(account="xy12345", user="loader", password="hunter2-secret")
    message = str(caught.value)
    assert "xy12345" in message and "loader" in message and "LF.GOLD" in message
    assert "hunter2-secret" not in message


# -- 4. golden SQL ------------------------------------------------------------------------------------------------
_NORMALIZE = [
    (re.compile(r"'file://[^']*/(lakeforge-snowflake-[^/']*)/"), "'file://<tmp>/"),
    (re.compile(r"-[0-9a-f]{16}\.parquet"), "-<digest>.parquet"),
]


def golden(name: str, statements: list[str]) -> None:
    """``statements`` against tests/golden/snowflake/<name>.sql."""
    text = ""
    for statement in statements:
        for pattern, replacement in _NORMALIZE:
            statement = pattern.sub(replacement, statement)
        text += stable(statement) + ";\n"
    check(GOLDEN / f"{name}.sql", text)


def test_golden_sql(tmp_path: Path, fake: Path) -> None:
    project = Project(write_project(tmp_path / "golden", GOLDEN_CONFIG, GOLDEN_MODELS))  # duckdb warehouse
    warehouse = open_warehouse()
    try:
        land(project, "a.csv", ["1,north,1.5,2024-01-01 00:00:00", "2,south,2.5,2024-01-01 01:00:00",
                                "3,north,,2024-01-01 02:00:00"])
        project.run()
        result = warehouse.load("gold.readings", catalog=project.catalog, keys=["id"], run_id="run-1",
                                cluster_by=["site"])
        assert (result.mode, result.rows) == ("full", 3)
        golden("full_load", warehouse.statements)

        land(project, "b.csv", ["3,north,3.5,2024-01-01 02:00:00", "4,east,4.5,2024-01-02 00:00:00"])
        project.run()
        start = len(warehouse.statements)
        result = warehouse.load("gold.readings", catalog=project.catalog, keys=["id"], run_id="run-2",
                                cluster_by=["site"])
        assert (result.mode, result.rows) == ("incremental", 2)
        golden("incremental_load", warehouse.statements[start:])
        assert warehouse.query("SELECT id, value FROM readings ORDER BY id").to_pylist() == [
            {"id": 1, "value": 1.5}, {"id": 2, "value": 2.5}, {"id": 3, "value": 3.5}, {"id": 4, "value": 4.5}]
    finally:
        warehouse.close()
        project.close()

    # reports: made in one session (current: no refresh), kept unchanged by the next one (refreshed)
    sent = []
    for reports, name in (("dynamic_table", "site_summary"), ("materialized_view", "site_summary_mv"),
                          ("view", "site_summary_view")):
        for _session in range(2):
            warehouse = open_warehouse(reports=reports, compute_warehouse="LOAD_WH")
            try:
                start = len(warehouse.statements)
                warehouse.create_report(name, REPORT_SQL)
                warehouse.refresh_reports([name])
                sent += warehouse.statements[start:]
                assert warehouse.query(f"SELECT * FROM {name} ORDER BY site").to_pylist() == [
                    {"site": "east", "readings": 1, "value_avg": 4.5},
                    {"site": "north", "readings": 2, "value_avg": 2.5},
                    {"site": "south", "readings": 1, "value_avg": 2.5}]
            finally:
                warehouse.close()
        golden(f"reports_{reports}", sent)
        sent = []
    warehouse = open_warehouse()
    try:
        start = len(warehouse.statements)
        warehouse.create_view("north_readings", "SELECT id, value FROM readings WHERE site = 'north'")
        golden("view", warehouse.statements[start:])
    finally:
        warehouse.close()


def test_a_report_older_than_a_recreated_table_is_made_again(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fakesnow dates every table 1970: the age check itself is stubbed here (Snowflake: information_schema)."""
    warehouse = open_warehouse(reports="dynamic_table", compute_warehouse="LOAD_WH")
    try:
        warehouse.apply(plan("full", [1], ["a"], version=0, create=True))
        warehouse.create_report("item_count", "SELECT count(*) AS n FROM items")
        warehouse.create_report("item_count", "SELECT count(*) AS n FROM items")  # unchanged: kept
        monkeypatch.setattr(SnowflakeWarehouse, "_newer_than", lambda self, created: False)
        warehouse.create_report("item_count", "SELECT count(*) AS n FROM items")  # a table is newer: made again
        made = [s for s in warehouse.statements if s.startswith("CREATE OR REPLACE DYNAMIC TABLE item_count ")]
        assert len(made) == 2
    finally:
        warehouse.close()


def test_a_dynamic_table_needs_a_compute_warehouse(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNOWFLAKE_WAREHOUSE", raising=False)
    warehouse = open_warehouse(reports="dynamic_table")
    try:
        with pytest.raises(WarehouseError) as caught:
            warehouse.create_report("site_summary", REPORT_SQL)
        assert "SNOWFLAKE_WAREHOUSE" in (caught.value.hint or "")
    finally:
        warehouse.close()
