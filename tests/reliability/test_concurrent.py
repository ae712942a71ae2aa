"""Concurrent runs: several ``lakeforge run`` processes started at once against one project, round after round, with
``lakeforge status`` reading meanwhile. One run at a time does the work; every other one is refused at once with
the lock message (exit 1, ``error: another lakeforge run holds the lock ...`` and what to do); the readers never
fail; the runs that did work never overlap (their intervals in the event log); and the final state is exact.

(tests/integration/test_recovery.py holds two runs at a known point with a test hook; here nothing is held:
the processes race as scheduled runs do.)
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import (
    DuckDBWarehouse,
    Lake,
    Landing,
    LocalStore,
    Run,
    Settings,
    assert_clear_error,
    assert_exact,
    make_project,
    run_ok,
    seed,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
SEED = 777
LOCKED = r"error: another lakeforge run holds the lock on .*_lakeforge"
WAIT = r"fix: wait for it to finish; runs of one lakehouse are one at a time"


@pytest.mark.timeout(1800)
def test_runs_started_at_once_one_works_the_others_are_refused_clearly(tmp_path: Path, mode: Settings,
                                                                         record: dict[str, Any]) -> None:
    rng = random.Random(seed(SEED))
    project = make_project(tmp_path / "concurrent", max_files_per_batch=2)
    landing = Landing(LocalStore(project / "landing"))
    lake = Lake(str(project / "lakehouse"), LocalStore(project / "lakehouse"))
    warehouse = DuckDBWarehouse(project / "warehouse.duckdb")
    landing.good(4)
    run_ok(project)  # the tables exist: readers have something to read

    outcomes = {"worked": 0, "nothing_to_do": 0, "refused": 0, "readers_ok": 0}
    for _ in range(mode.concurrent_rounds):
        landing.good(rng.randint(14, 20))  # several batches: the winner holds the lock for a while
        landing.bad(rng.choice(["empty", "malformed", "wrong_type"]))
        runs = [Run(project, "--json") for _ in range(mode.concurrent_processes)]
        readers = [Run(project, "--json", command="status") for _ in range(2)]
        for run in runs:
            run.wait()
        for reader in readers:
            assert reader.wait() == 0, reader.stderr[-3000:]
            assert reader.json()["project"] == "reliability"
            outcomes["readers_ok"] += 1
        refused = 0
        for run in runs:
            if run.proc.returncode == 0:
                status = run.json()["status"]
                assert status in ("succeeded", "nothing_to_do"), run.stdout
                outcomes["worked" if status == "succeeded" else "nothing_to_do"] += 1
            else:
                assert_clear_error(run, LOCKED, WAIT)
                refused += 1
        outcomes["refused"] += refused
        assert refused >= 1, "runs started together all got the lock one after the other: no contention tested"
        assert refused < len(runs), "every run was refused: nobody did the work"
        assert_exact(lake, landing, warehouse)

    # the runs that held the lock never overlapped
    runs_logged = sorted((r["started_at"], r["ended_at"]) for r in lake.events()
                         if r["event"] == "run" and r["status"] in ("succeeded", "nothing_to_do", "failed"))
    for (_, ended), (started, _) in itertools.pairwise(runs_logged):
        assert ended <= started + dt.timedelta(seconds=1), "two runs held the lock at the same time"
    assert not [r for r in lake.events() if r["event"] == "run" and r["status"] == "failed"]
    idle = run_ok(project, "--json")
    assert idle.json()["status"] == "nothing_to_do"
    counts = assert_exact(lake, landing, warehouse)
    record.update({"processes_per_round": mode.concurrent_processes, "rounds": mode.concurrent_rounds,
                   "status_readers": 2 * mode.concurrent_rounds, **outcomes, **counts})
