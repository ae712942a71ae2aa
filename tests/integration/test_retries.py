"""Retries of real failures: a PostgreSQL backend terminated mid-load is retried within the same run; a user error
(bad SQL) fails at once; the event log records every stage's attempts."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from lakeforge.errors import ModelError
from lakeforge.pipeline import events
from lakeforge.project import Project
from tests.conftest import write_project
from tests.integration.test_warehouse_postgres import BLOCKED, blocked_run, connect, waiting_backend

FAST_RETRY = {"retry": {"attempts": 4, "backoff_seconds": 0.1, "backoff_max_seconds": 1}}


def postgres_example(root: Path, dsn: str) -> Project:
    Project.init(root).generate(machines=12, days=3, seed=7, files=6)
    path = root / "lakeforge.yml"
    config = yaml.safe_load(path.read_text())
    config["warehouse"] = {"type": "postgres", "dsn": dsn}
    config["orchestration"] = FAST_RETRY
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Project(root)


@pytest.mark.postgres
def test_a_terminated_warehouse_backend_is_retried_within_the_same_run(tmp_path: Path, postgres_dsn: str) -> None:
    project = postgres_example(tmp_path / "demo", postgres_dsn)
    try:
        assert project.run().status == "succeeded"
        project.generate(machines=12, days=2, seed=8, files=3, start="2024-01-04")  # the next load MERGEs
        thread, outcome, locker = blocked_run(project, postgres_dsn)
        try:
            pid = waiting_backend(postgres_dsn, thread)
            with connect(postgres_dsn) as killer:  # the first attempt's connection dies inside its transaction
                terminated = killer.execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                                            "WHERE application_name = 'lakeforge' AND pid = %s", [pid]).fetchall()
            assert terminated == [(True,)]
        finally:
            with contextlib.suppress(psycopg.Error):
                locker.rollback()  # the second attempt may take the lock now
                locker.close()
        thread.join(timeout=120)
        assert not thread.is_alive(), "the run hangs"
        assert "error" not in outcome, outcome.get("error")
        result = outcome["result"]
        assert result.status == "succeeded"
        attempts = {s.name: s.attempts for s in result.stages}
        assert attempts["warehouse"] == 2
        assert all(n == 1 for name, n in attempts.items() if name != "warehouse"), attempts
        logged = {r["name"]: r["attempts"] for r in events.read(project, event="stage").to_pylist()
                  if r["run_id"] == result.run_id}
        assert logged == attempts
        run_row = next(r for r in events.read(project, event="run").to_pylist() if r["run_id"] == result.run_id)
        assert run_row["status"] == "succeeded"

        checks = project.verify_warehouse()
        assert checks and all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]
        with connect(postgres_dsn) as con:
            loads = con.execute("SELECT source_version, run_id FROM gold._lakeforge_loads "
                                "WHERE table_name = %s", [BLOCKED]).fetchall()
        assert loads == [(project.catalog.version(f"gold.{BLOCKED}"), result.run_id)]
    finally:
        project.close()


def test_a_user_error_fails_after_exactly_one_attempt(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", {
        "name": "bad_sql", "dialect": "duckdb", "orchestration": FAST_RETRY,
        "sources": {"events": {"format": "jsonl", "schema_hints": {"id": "bigint", "v": "double"}}},
    }, {
        "silver.events": "SELECT id, v FROM bronze.events",
        "gold.totals": "SELECT id % 3 AS bucket, sum(no_such_column) AS total FROM silver.events GROUP BY 1",
    })
    (root / "landing" / "events").mkdir(parents=True)
    (root / "landing" / "events" / "a.jsonl").write_text("".join(f'{{"id": {i}, "v": {i}.5}}\n' for i in range(20)))
    with Project(root) as project:
        started = time.perf_counter()
        with pytest.raises(ModelError) as caught:
            project.run()
        assert time.perf_counter() - started < 10  # no backoff waits
        run = caught.value.run  # type: ignore[attr-defined]
        assert (run.status, run.failed_stage, run.failed_attempts) == ("failed", "gold.totals", 1)
        assert [(s.name, s.attempts) for s in run.stages] == [("ingest:events", 1), ("silver.events", 1)]
        rows = [r for r in events.read(project).to_pylist() if r["run_id"] == run.run_id]
        failed = [(r["name"], r["status"], r["attempts"]) for r in rows if r["event"] == "stage"]
        assert failed == [("ingest:events", "ok", 1), ("silver.events", "ok", 1), ("gold.totals", "failed", 1)]
        assert "no_such_column" in next(r["error"] for r in rows if r["name"] == "gold.totals")
        assert next(r["status"] for r in rows if r["event"] == "run") == "failed"
