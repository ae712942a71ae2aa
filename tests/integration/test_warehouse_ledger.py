"""The warehouse ledger knows which Delta table each version came from, on every target.

A lakehouse deleted and built again restarts its Delta versions at 0: a ledger keyed by version alone would
skip the new tables (their versions not above the old ones) or read a change feed of another table, and the
warehouse would silently keep the old rows. The ledger keeps the Delta table's id; another id is loaded in full.
A ledger written before ids were kept gains the column, and each of its tables is loaded in full once.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakeforge.pipeline import warehouse as warehouse_stage
from lakeforge.project import Project
from lakeforge.warehouses.base import LEDGER
from lakeforge.workspace import Workspace

TARGETS = [pytest.param("duckdb"), pytest.param("postgres", marks=pytest.mark.postgres),
           pytest.param("snowflake", marks=pytest.mark.snowflake)]


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Project]:
    """The example project, small, loading into the target named by the test's ``target``."""
    target = request.node.callspec.params["target"]
    root = tmp_path / "demo"
    Project.init(root).generate(machines=6, days=2, seed=7, files=3)
    with ExitStack() as stack:
        if target != "duckdb":
            config = yaml.safe_load((root / "lakeforge.yml").read_text())
            if target == "postgres":
                config["warehouse"] = {"type": "postgres", "dsn": request.getfixturevalue("postgres_dsn")}
            else:
                from tests.snowflake_fake import fake_snowflake, snowflake_config

                stack.enter_context(fake_snowflake(tmp_path / "fakesnow"))
                config["warehouse"] = snowflake_config()
            (root / "lakeforge.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        opened = stack.enter_context(Project(root))
        yield opened


def loads(project: Project) -> dict[str, str]:
    """Gold table -> what this load did with it (``full``, ``incremental``; absent when skipped)."""
    stage = warehouse_stage.load(project.workspace, run_id="test", models=project.graph().ordered())
    if stage.status == "skipped":
        return {}
    return dict(re.findall(r"(\w+) \((\w+), v\d+\)", stage.detail))


def ledger_ids(project: Project) -> dict[str, str | None]:
    warehouse = project.warehouse(read_only=True)
    try:
        return {name: loaded.source_id for name, loaded in warehouse.ledger().items()}
    finally:
        warehouse.close()


def assert_equal_to_gold(project: Project) -> None:
    checks = project.verify_warehouse()
    assert checks and all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]


def execute(project: Project, sql: str) -> None:
    """One statement on the project's warehouse, through its own connection (to age its ledger)."""
    warehouse: Any = project.warehouse()
    try:
        if warehouse.capabilities.name == "duckdb":
            warehouse.con.execute(sql)
        else:
            warehouse.execute(sql)
            if warehouse.capabilities.name == "postgres":
                warehouse.execute("COMMIT")
    finally:
        warehouse.close()


@pytest.mark.parametrize("target", TARGETS)
def test_a_lakehouse_created_again_is_loaded_in_full(project: Project, target: str) -> None:
    assert project.run().status == "succeeded"
    assert_equal_to_gold(project)
    before = ledger_ids(project)
    assert before and all(before.values()), before

    shutil.rmtree(project.path / "lakehouse")  # built again from the landing zone, plus a new day
    project.generate(machines=4, days=1, seed=9, files=1, start="2024-03-01")
    assert project.run().status == "succeeded"

    # every gold table is a new Delta table: loaded in full from it, none skipped, none read as a change feed
    after = ledger_ids(project)
    assert set(after) == set(before)
    assert all(after[name] and after[name] != before[name] for name in before), (before, after)
    assert_equal_to_gold(project)
    assert loads(project) == {}  # and the ledger now holds the new tables' versions: nothing more to load


@pytest.mark.parametrize("target", TARGETS)
def test_a_ledger_without_ids_gains_them_with_one_full_load(project: Project, target: str) -> None:
    assert project.run().status == "succeeded"
    gold = set(ledger_ids(project))
    execute(project, f"ALTER TABLE {LEDGER} DROP COLUMN source_id")  # as an older lakeforge left it
    assert ledger_ids(project) == dict.fromkeys(gold)  # read only: read as unknown, not changed
    assert_equal_to_gold(project)  # verify takes an older ledger at its word

    done = loads(project)
    assert set(done) == {name.split(".", 1)[1] for name in gold} and set(done.values()) == {"full"}, done
    assert all(ledger_ids(project).values())
    assert_equal_to_gold(project)
    assert loads(project) == {}


@pytest.mark.parametrize("target", TARGETS)
def test_an_older_ledger_and_tables_new_to_the_warehouse(project: Project, target: str) -> None:
    """The first load after an upgrade may be of a table the warehouse does not have yet (a new gold model): its
    ledger row, with the Delta id, goes into a ledger that had no such column."""
    assert project.run().status == "succeeded"
    gold = set(ledger_ids(project))
    execute(project, f"ALTER TABLE {LEDGER} DROP COLUMN source_id")
    cascade = " CASCADE" if target == "postgres" else ""  # the reports' views go with them (made again)
    for name in gold:
        execute(project, f"DROP TABLE {name.split('.', 1)[1]}{cascade}")

    done = loads(project)
    assert set(done) == {name.split(".", 1)[1] for name in gold} and set(done.values()) == {"full"}, done
    assert all(ledger_ids(project).values())
    assert_equal_to_gold(project)


def test_verify_names_a_copy_loaded_from_another_table(tmp_path: Path) -> None:
    """The ledger's table is not gold's (the lakehouse was replaced, not yet reloaded): verify says so, even
    where the rows happen to be equal, and names the fix."""
    from typer.testing import CliRunner

    from lakeforge.cli import app

    root, twin = tmp_path / "demo", tmp_path / "twin"
    Project.init(root).generate(machines=6, days=2, seed=7, files=3)
    shutil.copytree(root, twin)  # the same project and landing files
    for path in (root, twin):
        with Project(path) as project:
            assert project.run().status == "succeeded"
    shutil.rmtree(root / "lakehouse")
    shutil.copytree(twin / "lakehouse", root / "lakehouse")  # gold built by another run: other Delta tables

    with Project(root) as project:
        checks = {c["table"]: c for c in project.verify_warehouse()}
    assert checks and all(c["stale_source"] and not c["ok"] for c in checks.values()), checks
    out = CliRunner().invoke(app, ["warehouse", "verify", "--project", str(root)])
    assert out.exit_code == 3  # a check failing
    assert "loaded from another Delta table" in out.stdout and "lakeforge run" in out.stdout

    with Project(root) as project:  # the fix it names
        assert project.run().status == "succeeded"
        assert_equal_to_gold(project)


def test_a_warehouse_nothing_touched_is_not_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a load, a run with nothing new for the DuckDB warehouse skips its stage without opening the file;
    a new report, a write to the file by anything else, or a new gold version each open it again (a load of new
    versions leaves the reports' views standing, as the last load made them)."""
    root = tmp_path / "demo"
    Project.init(root).generate(machines=6, days=2, seed=7, files=3)
    with Project(root) as project:
        assert project.run().status == "succeeded"
        opened: list[bool] = []
        real = Workspace.warehouse
        monkeypatch.setattr(Workspace, "warehouse", lambda self, **k: opened.append(True) or real(self, **k))

        def stage() -> tuple[str, str]:
            found = next(s for s in project.run().stages if s.name == "warehouse")
            return found.status, found.detail

        assert stage() == ("skipped", "gold unchanged") and not opened
        (root / "reports" / "hours.sql").write_text("SELECT count(*) AS hours FROM gold.fact_telemetry_hourly\n")
        assert stage() == ("skipped", "gold unchanged") and opened  # the new report is made
        assert project.report("hours").to_pylist()[0]["hours"] > 0
        opened.clear()
        assert stage() == ("skipped", "gold unchanged") and not opened

        execute(project, "DROP VIEW hours")  # another writer: the file is not the one the last load left
        opened.clear()
        assert stage() == ("skipped", "gold unchanged") and opened
        assert project.report("hours").to_pylist()[0]["hours"] > 0

        hours = project.report("hours").to_pylist()[0]["hours"]
        project.generate(machines=6, days=1, seed=8, files=1, start="2024-01-03")
        opened.clear()
        status, detail = stage()
        assert status == "ok" and "fact_telemetry_hourly" in detail and opened
        assert_equal_to_gold(project)
        assert project.report("hours").to_pylist()[0]["hours"] > hours  # the views stood over the reloaded tables
        opened.clear()
        assert stage() == ("skipped", "gold unchanged") and not opened
