"""Lost warehouse connections: the project loads a real PostgreSQL server (tests/postgres_server.py), and a thread
terminates lakeforge's backends (``pg_terminate_backend``) at random moments of the load, several times per run,
run after run. Extends tests/integration/test_retries.py (one termination at a known point) to many at random
points: between statements, inside the load's transaction, during COPY, MERGE or the ledger update.

A run either succeeds (its warehouse stage retried the load: ``attempts`` > 1) or fails with a clear error and
the next run finishes. After every run: each warehouse table equal to the gold version its ledger names (a load
is applied whole or not at all), no key twice. At the end: the warehouse equal to gold, gold equal to what the
landing files imply, and ``lakeforge warehouse verify`` happy.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.reliability.harness import (
    GOLD,
    Lake,
    Landing,
    LocalStore,
    Run,
    Settings,
    assert_clear_error,
    assert_consistent_now,
    assert_exact,
    make_project,
    run_ok,
    seed,
    sort_rows,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.postgres]
SEED = 5432
RETRY = {"attempts": 4, "backoff_seconds": 0.1, "backoff_max_seconds": 0.5}


class PostgresWarehouse:
    """The warehouse as the checks read it: the gold schema and the ledger."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True, application_name="lakeforge-tests") as con:
            try:
                return con.execute(sql).fetchall()
            except psycopg.errors.UndefinedTable:
                return []

    def rows(self, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
        return sorted(self._query(f"SELECT {', '.join(columns)} FROM gold.{table.split('.')[-1]}"))

    def ledger(self) -> dict[str, int]:
        return {f"gold.{t}": int(v) for t, v in self._query("SELECT table_name, source_version FROM "
                                                            "gold._lakeforge_loads")}

    def doubled(self, table: str, key: str) -> int:
        found = self._query(f"SELECT count(*) - count(DISTINCT {key}) FROM gold.{table.split('.')[-1]}")
        return int(found[0][0]) if found else 0


class Terminator(threading.Thread):
    """Terminates lakeforge's backends at random points of a run's load, up to ``per_run`` times: it watches
    pg_stat_activity without pause and, each time a backend moves on to another statement or state (connected,
    COPY, MERGE, the ledger, idle in its transaction, COMMIT), terminates it with probability ``chance``."""

    def __init__(self, dsn: str, rng: random.Random, per_run: int, chance: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.dsn, self.rng, self.per_run, self.chance = dsn, rng, per_run, chance
        self.done = threading.Event()
        self.terminated: list[dict[str, Any]] = []

    def run(self) -> None:
        seen: set[tuple[Any, ...]] = set()
        with psycopg.connect(self.dsn, autocommit=True, application_name="lakeforge-tests") as con:
            while not self.done.is_set() and len(self.terminated) < self.per_run:
                found = con.execute("SELECT pid, state, left(query, 60), query_start FROM pg_stat_activity WHERE "
                                    "application_name = 'lakeforge' AND datname = current_database()").fetchall()
                for pid, state, query, started in found:
                    if (pid, state, query, started) in seen:
                        continue
                    seen.add((pid, state, query, started))
                    if self.rng.random() >= self.chance:
                        continue
                    hit = con.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()
                    if hit and hit[0]:
                        self.terminated.append({"state": state, "query": " ".join(str(query).split())[:40]})
                if not found:
                    time.sleep(0.002)


@pytest.mark.timeout(1800)
def test_warehouse_connections_killed_mid_load_change_nothing_twice(tmp_path: Path, postgres_dsn: str,
                                                                    mode: Settings, record: dict[str, Any]) -> None:
    rng = random.Random(seed(SEED))
    record["seed"] = seed(SEED)
    project = make_project(tmp_path / "pg", max_files_per_batch=4, warehouse={"type": "postgres", "dsn": postgres_dsn},
                           orchestration={"retry": RETRY})
    landing = Landing(LocalStore(project / "landing"))
    lake = Lake(str(project / "lakehouse"), LocalStore(project / "lakehouse"))
    warehouse = PostgresWarehouse(postgres_dsn)
    landing.good(5)
    run_ok(project)
    assert_exact(lake, landing, warehouse)

    terminations: list[dict[str, Any]] = []
    succeeded = failed = retried = 0
    errors: list[str] = []
    for _ in range(mode.pg_runs):
        landing.good(rng.randint(3, 6))
        killer = Terminator(postgres_dsn, rng, rng.randint(1, mode.pg_terminations_per_run))
        killer.start()
        run = Run(project, "--json")
        run.wait()
        killer.done.set()
        killer.join(timeout=30)
        terminations += killer.terminated
        if run.proc.returncode == 0:
            succeeded += 1
            stages = {s["name"]: s["attempts"] for s in run.json()["stages"]}
            retried += stages["warehouse"] - 1
            assert all(n == 1 for name, n in stages.items() if name != "warehouse"), stages
            if killer.terminated:
                assert stages["warehouse"] > 1, f"backends died but the load was not retried: {killer.terminated}"
        else:
            failed += 1
            errors.append(assert_clear_error(run, r"warehouse", r"fix: ")[:300])
        assert_consistent_now(lake, warehouse)  # each table: exactly the gold version the ledger names
        assert not any(warehouse.doubled(t, c[0]) for t, c in GOLD.items())

    final = run_ok(project)
    assert_exact(lake, landing, warehouse)
    verify = Run(project, command="warehouse verify")
    assert verify.wait() == 0, verify.stdout + verify.stderr
    for table, columns in GOLD.items():
        assert warehouse.rows(table, columns) == sort_rows(lake.table(table), columns)
    assert terminations, "no backend was ever terminated: the case tested nothing"
    record.update({"runs": mode.pg_runs, "backends_terminated": len(terminations),
                   "terminated_while": sorted({f"{t['state']}: {t['query']}" for t in terminations})[:20],
                   "runs_succeeded_after_retrying": succeeded, "load_retries": retried,
                   "runs_failed_then_rerun": failed, "errors_shown": errors,
                   "final_run_stages": list(final.finished)})
    print(f"\n{len(terminations)} backends terminated in {mode.pg_runs} runs; {retried} load retries; "
          f"{failed} runs failed, then rerun")
