"""``warehouse: {type: postgres}`` against a real PostgreSQL server the tests start (tests/postgres_server.py).

Full then incremental loads (MERGE and INSERT ... ON CONFLICT), a retried batch, the server's backend killed
and the server restarted while a load waits inside its transaction, the SQL sent (golden files), and values of
every type coming back exactly as gold holds them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
import yaml

from lakeforge.config.models import PostgresWarehouseConfig
from lakeforge.errors import WarehouseError
from lakeforge.project import Project
from lakeforge.warehouses import create_warehouse
from lakeforge.warehouses.postgres import PostgresWarehouse
from tests.conftest import REPO, write_project
from tests.golden import GOLDEN_CONFIG, GOLDEN_MODELS, REPORT_SQL, check, land, stable
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres

GOLDEN = REPO / "tests" / "golden" / "postgres"
BLOCKED = "fact_telemetry_hourly"  # the target a test locks: tables before it in the load order are loaded first


# -- helpers ---------------------------------------------------------------------------------------------------
def telemetry_project(root: Path, dsn: str, **warehouse: Any) -> Project:
    """The example project (as tests/conftest.py's ``example``) with PostgreSQL as warehouse."""
    Project.init(root).generate(machines=12, days=3, seed=7, files=6)
    config_path = root / "lakeforge.yml"
    config = yaml.safe_load(config_path.read_text())
    config["warehouse"] = {"type": "postgres", "dsn": dsn, **warehouse}
    # one attempt: these tests check what the NEXT run does after a load died (a retry within the run is
    # tests/integration/test_retries.py)
    config["orchestration"] = {"retry": {"attempts": 1}}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Project(root)


@pytest.fixture
def telemetry(tmp_path: Path, postgres_dsn: str) -> Any:
    opened: list[Project] = []

    def make(**warehouse: Any) -> Project:
        project = telemetry_project(tmp_path / f"demo{len(opened)}", postgres_dsn, **warehouse)
        opened.append(project)
        return project

    yield make
    for project in opened:
        project.close()


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    kwargs.setdefault("autocommit", True)
    return psycopg.connect(dsn, application_name="lakeforge-tests", connect_timeout=5, **kwargs)


def ledger(dsn: str) -> dict[str, dict[str, Any]]:
    with connect(dsn) as con, con.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return {r["table_name"]: r for r in cur.execute("SELECT * FROM gold._lakeforge_loads").fetchall()}


def table_rows(dsn: str, table: str, keys: list[str]) -> list[tuple[Any, ...]]:
    with connect(dsn) as con:
        return con.execute(f"SELECT * FROM gold.{table} ORDER BY {', '.join(keys)}").fetchall()


def keyed(project: Project) -> dict[str, list[str]]:
    """The incremental gold tables with a unique key (the facts), and their keys: what loads incrementally (a
    materialized table, e.g. machine_features, is rewritten by each run, so it is reloaded in full)."""
    return {m.table: m.config.unique_key for m in project.models()
            if m.layer == "gold" and m.config.unique_key and m.config.kind == "incremental"}


def doubled_keys(project: Project, dsn: str) -> dict[str, int]:
    """Per keyed table, the number of keys held more than once (must be 0)."""
    found = {}
    with connect(dsn) as con:
        for table, keys in keyed(project).items():
            cols = ", ".join(keys)
            found[table] = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM gold.{table} GROUP BY {cols} "
                                       "HAVING count(*) > 1) AS d").fetchone()[0]  # type: ignore[index]
    return found


def assert_equal_to_gold(project: Project, dsn: str) -> None:
    checks = project.verify_warehouse()
    assert checks and all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]
    gold = {m.name.split(".", 1)[1] for m in project.models() if m.layer == "gold" and m.config.kind != "view"}
    assert {c["table"].split(".", 1)[1] for c in checks} == gold
    assert not any(doubled_keys(project, dsn).values()), doubled_keys(project, dsn)
    with connect(dsn) as con:
        for check in checks:
            rows = con.execute(f"SELECT count(*) FROM gold.{check['table'].split('.', 1)[1]}").fetchone()
            assert rows is not None and rows[0] == check["gold_rows"]


def assert_reports_current(project: Project, dsn: str) -> None:
    """Every report is in the warehouse (a materialized view, or a view when it is not materialized), and each
    materialized one holds what its query answers now: refreshed after the load."""
    reports = project.reports()
    assert reports
    with connect(dsn) as con:
        matviews = dict(con.execute("SELECT matviewname, definition FROM pg_matviews "
                                    "WHERE schemaname = 'gold'").fetchall())
        views = {r[0] for r in con.execute("SELECT viewname FROM pg_views WHERE schemaname = 'gold'").fetchall()}
        for report in reports:
            if not report.materialize:
                assert report.name in views
                continue
            query = matviews[report.name].strip().rstrip(";")
            stale = con.execute(f"SELECT count(*) FROM ((TABLE gold.{report.name} EXCEPT ALL ({query})) UNION ALL "
                                f"(({query}) EXCEPT ALL TABLE gold.{report.name})) AS d").fetchone()
            assert stale == (0,), report.name


def open_warehouse(dsn: str, **config: Any) -> PostgresWarehouse:
    warehouse = create_warehouse(PostgresWarehouseConfig(dsn=dsn, **config), base_dir=Path("."), project="test")
    assert isinstance(warehouse, PostgresWarehouse)
    return warehouse


# -- 1. full, then incremental ---------------------------------------------------------------------------------
@pytest.mark.parametrize("upsert", ["merge", "on_conflict"])
def test_full_then_incremental_loads_equal_gold(telemetry: Any, postgres_dsn: str, upsert: str) -> None:
    project = telemetry(upsert=upsert)
    project.run()
    first = ledger(postgres_dsn)
    facts = keyed(project)
    assert BLOCKED in facts and len(facts) >= 5
    assert {r["load_mode"] for r in first.values()} == {"full"} and len(first) > len(facts)
    assert_equal_to_gold(project, postgres_dsn)

    project.generate(machines=12, days=2, seed=8, files=3, start="2024-01-04")  # a second delivery
    project.run()
    second = ledger(postgres_dsn)
    assert {t: second[t]["load_mode"] for t in facts} == dict.fromkeys(facts, "incremental")
    assert all(second[t]["source_version"] == first[t]["source_version"] + 1 for t in facts)
    assert second[BLOCKED]["row_count"] > 0
    assert_equal_to_gold(project, postgres_dsn)
    assert_reports_current(project, postgres_dsn)

    project.generate(machines=12, days=1, seed=9, files=2, start="2024-01-02")  # late data: existing keys change
    project.run()
    third = ledger(postgres_dsn)
    assert third[BLOCKED]["load_mode"] == "incremental"
    assert third[BLOCKED]["source_version"] == second[BLOCKED]["source_version"] + 1
    assert_equal_to_gold(project, postgres_dsn)
    assert_reports_current(project, postgres_dsn)

    warehouse = open_warehouse(postgres_dsn, upsert=upsert)
    try:
        assert warehouse.use_merge is (upsert == "merge")
        assert warehouse.loaded_versions() == {r["source_table"]: r["source_version"] for r in third.values()}
    finally:
        warehouse.close()


# -- 2. a retried batch ----------------------------------------------------------------------------------------
def test_a_retried_batch_changes_nothing(telemetry: Any, postgres_dsn: str) -> None:
    project = telemetry()
    project.run()
    project.generate(machines=12, days=2, seed=8, files=3, start="2024-01-04")
    project.run()
    keys = keyed(project)[BLOCKED]
    before = table_rows(postgres_dsn, BLOCKED, keys)
    version = ledger(postgres_dsn)[BLOCKED]["source_version"]

    warehouse = open_warehouse(postgres_dsn)
    try:
        with connect(postgres_dsn) as con:  # the ledger forgets the last batch: it is applied again (MERGE)
            con.execute(f"UPDATE gold._lakeforge_loads SET source_version = {version - 1} "
                        f"WHERE table_name = '{BLOCKED}'")
        again = warehouse.load(f"gold.{BLOCKED}", catalog=project.catalog, keys=keys, run_id="retry-1")
        assert (again.mode, again.from_version, again.to_version) == ("incremental", version - 1, version)
        assert again.rows > 0
        assert table_rows(postgres_dsn, BLOCKED, keys) == before

        with connect(postgres_dsn) as con:  # the ledger forgets the table: it is loaded again in full
            con.execute(f"DELETE FROM gold._lakeforge_loads WHERE table_name = '{BLOCKED}'")
        again = warehouse.load(f"gold.{BLOCKED}", catalog=project.catalog, keys=keys, run_id="retry-2")
        assert (again.mode, again.to_version, again.rows) == ("full", version, len(before))
        assert table_rows(postgres_dsn, BLOCKED, keys) == before

        skipped = warehouse.load(f"gold.{BLOCKED}", catalog=project.catalog, keys=keys, run_id="retry-3")
        assert skipped.mode == "skipped"
    finally:
        warehouse.close()
    assert ledger(postgres_dsn)[BLOCKED]["run_id"] == "retry-2"
    assert_equal_to_gold(project, postgres_dsn)


# -- 3 and 4. the server fails while a load waits inside its transaction ---------------------------------------
def blocked_run(project: Project, dsn: str) -> tuple[threading.Thread, dict[str, Any], psycopg.Connection[Any]]:
    """``project.run()`` in a thread, its load of ``BLOCKED`` waiting for a lock another session holds."""
    locker = connect(dsn, autocommit=False)
    locker.execute(f"LOCK TABLE gold.{BLOCKED} IN ACCESS EXCLUSIVE MODE")
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = project.run()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="lakeforge-run", daemon=True)
    thread.start()
    return thread, outcome, locker


def waiting_backend(dsn: str, thread: threading.Thread, timeout: float = 120.0) -> int:
    """The pid of lakeforge's backend once it waits on a lock (pg_stat_activity, from a third session)."""
    deadline = time.monotonic() + timeout
    with connect(dsn) as con:
        while time.monotonic() < deadline:
            row = con.execute("SELECT pid, query FROM pg_stat_activity WHERE application_name = 'lakeforge' "
                              "AND datname = current_database() AND wait_event_type = 'Lock'").fetchone()
            if row is not None:
                assert BLOCKED in row[1], row  # waits in the load of the locked table
                return int(row[0])
            assert thread.is_alive(), "the run ended before its load blocked"
            time.sleep(0.05)
    raise AssertionError("the lakeforge backend never waited on the lock")


def failed_run_error(thread: threading.Thread, outcome: dict[str, Any], version: int) -> WarehouseError:
    thread.join(timeout=120)
    assert not thread.is_alive(), "the run hangs on a dead connection"
    error = outcome.get("error")
    assert isinstance(error, WarehouseError), outcome
    run = getattr(error, "run", None)
    if run is not None:
        assert run.failed_stage == "warehouse" and run.status == "failed"
    assert f"loading gold.{BLOCKED} (version {version}) into PostgreSQL 127.0.0.1:" in error.message
    assert f"gold.{BLOCKED} failed at MERGE INTO {BLOCKED}: " in error.message
    assert error.hint is not None and "resumes from the ledger" in error.hint
    return error


def test_killed_backend_mid_load_then_rerun(telemetry: Any, postgres_dsn: str,
                                            postgres_server: PostgresServer) -> None:
    project = telemetry()
    project.run()
    project.generate(machines=12, days=2, seed=8, files=3, start="2024-01-04")  # the next run MERGEs
    loaded = ledger(postgres_dsn)[BLOCKED]["source_version"]
    thread, outcome, locker = blocked_run(project, postgres_dsn)
    try:
        pid = waiting_backend(postgres_dsn, thread)
        os.kill(pid, signal.SIGKILL)  # the postmaster then resets every session, the locker's too
        error = failed_run_error(thread, outcome, project.catalog.version(f"gold.{BLOCKED}"))
        assert "closed the connection" in error.message or "terminat" in error.message, error.message
    finally:
        with contextlib.suppress(psycopg.Error):
            locker.close()
    postgres_server.wait_ready()  # crash recovery

    assert ledger(postgres_dsn)[BLOCKED]["source_version"] == loaded  # rolled back
    rerun = project.run()
    assert rerun.status == "succeeded"
    assert ledger(postgres_dsn)[BLOCKED]["source_version"] == project.catalog.version(f"gold.{BLOCKED}") > loaded
    assert_equal_to_gold(project, postgres_dsn)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_server_restart_during_a_run_then_rerun(telemetry: Any, postgres_dsn: str, postgres_server: PostgresServer,
                                                mode: str) -> None:
    project = telemetry()
    project.run()
    project.generate(machines=12, days=2, seed=8, files=3, start="2024-01-04")
    first = ledger(postgres_dsn)
    thread, outcome, locker = blocked_run(project, postgres_dsn)
    try:
        waiting_backend(postgres_dsn, thread)
        postgres_server.restart(mode)  # type: ignore[arg-type]
        error = failed_run_error(thread, outcome, project.catalog.version(f"gold.{BLOCKED}"))
    finally:
        with contextlib.suppress(psycopg.Error):
            locker.close()
    failed_run_id = error.run.run_id if getattr(error, "run", None) else None

    before = ledger(postgres_dsn)
    done = {t for t, r in before.items() if r["source_version"] > first[t]["source_version"]}
    assert BLOCKED not in done and "fact_errors" in done  # loaded before the restart, committed
    assert failed_run_id is None or {before[t]["run_id"] for t in done} == {failed_run_id}

    rerun = project.run()
    after = ledger(postgres_dsn)
    assert all(r["source_version"] == project.catalog.version(r["source_table"]) for r in after.values())
    assert {t: after[t] for t in done} == {t: before[t] for t in done}  # skipped: the ledger knew them
    assert {r["run_id"] for t, r in after.items() if t not in done} == {rerun.run_id}
    warehouse_stage = next(s for s in rerun.stages if s.name == "warehouse")
    assert not any(f"{t} (" in warehouse_stage.detail for t in done), warehouse_stage.detail
    assert_equal_to_gold(project, postgres_dsn)


# -- 5. golden SQL ------------------------------------------------------------------------------------------------
def golden(name: str, statements: list[str]) -> None:
    """``statements`` against tests/golden/postgres/<name>.sql."""
    check(GOLDEN / f"{name}.sql", "".join(f"{stable(s)};\n" for s in statements))


def test_golden_sql(tmp_path: Path, postgres_server: PostgresServer) -> None:
    project = Project(write_project(tmp_path / "golden", GOLDEN_CONFIG, GOLDEN_MODELS))  # duckdb warehouse
    dsn_merge, dsn_conflict = postgres_server.create_database(), postgres_server.create_database()
    opened: list[PostgresWarehouse] = []
    try:
        land(project, "a.csv", ["1,north,1.5,2024-01-01 00:00:00", "2,south,2.5,2024-01-01 01:00:00",
                                "3,north,,2024-01-01 02:00:00"])
        project.run()
        merge = open_warehouse(dsn_merge, upsert="merge")
        conflict = open_warehouse(dsn_conflict, upsert="on_conflict")
        opened += [merge, conflict]
        merge.load("gold.readings", catalog=project.catalog, keys=["id"], run_id="run-1", cluster_by=["site"])
        golden("full_load", merge.statements)
        conflict.load("gold.readings", catalog=project.catalog, keys=["id"], run_id="run-1", cluster_by=["site"])

        start = len(merge.statements)
        merge.create_view("north_readings", "SELECT id, value FROM readings WHERE site = 'north'")
        merge.create_report("site_summary", REPORT_SQL)
        reports = merge.statements[start:]

        land(project, "b.csv", ["3,north,3.5,2024-01-01 02:00:00", "4,east,4.5,2024-01-02 00:00:00"])
        project.run()
        for name, warehouse in (("incremental_merge", merge), ("incremental_on_conflict", conflict)):
            start = len(warehouse.statements)
            result = warehouse.load("gold.readings", catalog=project.catalog, keys=["id"], run_id="run-2",
                                    cluster_by=["site"])
            assert (result.mode, result.rows) == ("incremental", 2)
            golden(name, warehouse.statements[start:])
            assert warehouse.query("SELECT id, value FROM readings ORDER BY id").to_pylist() == [
                {"id": 1, "value": 1.5}, {"id": 2, "value": 2.5}, {"id": 3, "value": 3.5}, {"id": 4, "value": 4.5}]

        start = len(merge.statements)
        merge.create_view("north_readings", "SELECT id, value, site FROM readings WHERE site = 'north'")  # wider
        merge.create_view("north_readings", "SELECT id FROM readings WHERE site = 'north'")  # narrower: recreated
        merge.create_report("site_summary", REPORT_SQL)  # unchanged: kept
        merge.refresh_reports(["site_summary"])
        golden("reports", reports + merge.statements[start:])
        assert merge.query("SELECT * FROM site_summary ORDER BY site").to_pylist() == [
            {"site": "east", "readings": 1, "value_avg": 4.5}, {"site": "north", "readings": 2, "value_avg": 2.5},
            {"site": "south", "readings": 1, "value_avg": 2.5}]
        assert merge.query("SELECT * FROM north_readings ORDER BY id").column_names == ["id"]
    finally:
        for warehouse in opened:
            warehouse.close()
        project.close()
        postgres_server.drop_database(dsn_merge)
        postgres_server.drop_database(dsn_conflict)


# -- 6. types round trip --------------------------------------------------------------------------------------
UTC = dt.UTC


def typed(ids: list[int]) -> pa.Table:
    """Every scalar type a gold table holds, with the values CSV gets wrong when it is careless."""
    strings = ["", None, "a,b", 'say "hi"', "line1\nline2\r\nline3", " \\N \\. \\, ", "ünïcødé €😀", ",", '"', "NULL"]
    floats = [0.1, -0.0, 1e300, float("inf"), None, 5e-324, float("nan"), -float("inf"), 123456789.123456789, 1.0]
    stamps = [dt.datetime(2024, 1, 1, 0, 0, 0, 1), None, dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
              dt.datetime(1970, 1, 1), dt.datetime(2024, 2, 29, 12, 30), dt.datetime(9999, 12, 31, 23, 59, 59),
              dt.datetime(1900, 3, 1, 1, 2, 3, 456789), dt.datetime(2000, 1, 1), dt.datetime(2038, 1, 19, 3, 14, 8),
              dt.datetime(2024, 6, 30, 23, 59, 59, 500000)]
    dates = [d.date() if d else None for d in stamps]

    def cycle(values: list[Any]) -> list[Any]:  # consecutive ids take every value
        return [values[i % len(values)] for i in ids]

    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "small": pa.array(cycle([1, -2, None, 2**31 - 1, -(2**31)]), pa.int32()),
        "big": pa.array(cycle([2**63 - 1, -(2**63), 0, None]), pa.int64()),
        "x": pa.array(cycle(floats), pa.float64()),
        "s": pa.array(cycle(strings), pa.string()),
        "d": pa.array(cycle(dates), pa.date32()),
        "ts": pa.array(cycle(stamps), pa.timestamp("us")),
        "ts_utc": pa.array([None if s is None else s.replace(tzinfo=UTC) for s in cycle(stamps[::-1])],
                           pa.timestamp("us", "UTC")),
        "flag": pa.array(cycle([True, False, None]), pa.bool_()),
        "amount": pa.array(cycle([decimal.Decimal("12.345"), None, decimal.Decimal("-0.001")]), pa.decimal128(12, 3)),
    })


def comparable(table: pa.Table) -> list[dict[str, Any]]:
    """Rows by id; floats by their repr, so -0.0, nan and the last bit count."""
    rows = table.sort_by("id").to_pylist()
    return [{k: repr(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows]


def plain(dtype: pa.DataType) -> pa.DataType:
    return pa.string() if dtype in (pa.large_string(), pa.string_view()) else dtype


@pytest.mark.parametrize("upsert", ["merge", "on_conflict"])
def test_types_round_trip(tmp_path: Path, postgres_dsn: str, upsert: str) -> None:
    project = Project(write_project(tmp_path / "types", {"name": "types"}, {}))
    warehouse = open_warehouse(postgres_dsn, upsert=upsert)
    try:
        project.catalog.write("gold.types", typed(list(range(1, 21))), mode="overwrite")
        full = warehouse.load("gold.types", catalog=project.catalog, keys=["id"], run_id="t-1")
        assert (full.mode, full.rows) == ("full", 20)
        gold = project.catalog.table("gold.types").to_pyarrow_table()
        copy = warehouse.query("SELECT * FROM types")
        assert [(f.name, plain(f.type)) for f in copy.schema] == [(f.name, plain(f.type)) for f in gold.schema]
        assert comparable(copy) == comparable(gold)

        # new rows and changed rows: the change data feed, through COPY and the upsert
        project.catalog.write("gold.types", typed(list(range(21, 31))), mode="append")
        changed = typed(list(range(1, 6))).set_column(4, "s", pa.array(["", None, "x\ny", '""', ","], pa.string()))
        project.catalog.merge("gold.types", changed, keys=["id"], update=True)
        incremental = warehouse.load("gold.types", catalog=project.catalog, keys=["id"], run_id="t-2")
        assert (incremental.mode, incremental.rows) == ("incremental", 15)
        gold = project.catalog.table("gold.types").to_pyarrow_table()
        copy = warehouse.query("SELECT * FROM types")
        assert comparable(copy) == comparable(gold) and copy.num_rows == 30
        assert Counter(copy["s"].to_pylist())[""] == Counter(gold["s"].to_pylist())[""] > 0

        numbers = warehouse.query("SELECT sum(big) AS total, CAST(1.5 AS numeric(4, 2)) AS fixed, "
                                  "count(*) AS n, now() AS at FROM types")
        assert [plain(t) for t in numbers.schema.types] == [pa.float64(), pa.decimal128(4, 2), pa.int64(),
                                                           pa.timestamp("us", "UTC")]
    finally:
        warehouse.close()
        project.close()


# -- a statement PostgreSQL refuses ---------------------------------------------------------------------------------
def test_a_refused_load_rolls_back_and_the_next_one_succeeds(tmp_path: Path, postgres_dsn: str) -> None:
    project = Project(write_project(tmp_path / "refused", {"name": "refused"}, {}))
    warehouse = open_warehouse(postgres_dsn)
    try:
        project.catalog.write("gold.notes", pa.table({"id": [1, 2], "note": ["a", "b"]}), mode="overwrite")
        assert warehouse.load("gold.notes", catalog=project.catalog, keys=["id"], run_id="r-1").mode == "full"
        # PostgreSQL's text cannot hold NUL: COPY fails inside the transaction, on a live connection
        project.catalog.write("gold.notes", pa.table({"id": [3], "note": ["nul\x00here"]}), mode="append")
        with pytest.raises(WarehouseError) as caught:
            warehouse.load("gold.notes", catalog=project.catalog, keys=["id"], run_id="r-2")
        assert "loading gold.notes (version 1) into PostgreSQL" in caught.value.message
        assert "gold.notes failed at COPY _lf_stage_notes: " in caught.value.message
        assert warehouse.statements[-1] == "ROLLBACK" and warehouse.alive
        assert warehouse.query("SELECT * FROM notes ORDER BY id").to_pylist() == [
            {"id": 1, "note": "a"}, {"id": 2, "note": "b"}]
        assert warehouse.loaded_versions() == {"gold.notes": 0}

        project.catalog.merge("gold.notes", pa.table({"id": [3], "note": ["fixed"]}), keys=["id"], update=True)
        fixed = warehouse.load("gold.notes", catalog=project.catalog, keys=["id"], run_id="r-3")
        assert (fixed.mode, fixed.from_version, fixed.to_version, fixed.rows) == ("incremental", 0, 2, 1)
        assert warehouse.query("SELECT note FROM notes ORDER BY id")["note"].to_pylist() == ["a", "b", "fixed"]
    finally:
        warehouse.close()
        project.close()


# -- connection errors ------------------------------------------------------------------------------------------
def test_a_connection_error_names_the_server_not_the_password() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = PostgresWarehouseConfig(host="127.0.0.1", port=port, dbname="wh", user="loader",
                                     password="s3cret-pw", connect_timeout=2)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(WarehouseError) as caught:
        create_warehouse(config, base_dir=Path("."))
    assert time.monotonic() - started < 20
    message = str(caught.value)
    assert f"127.0.0.1:{port}/wh as user loader" in message and "PGHOST" in message
    assert "s3cret" not in message
