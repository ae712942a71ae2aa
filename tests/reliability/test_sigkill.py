"""SIGKILL at random moments in every stage of ``lakeforge run`` (ingest, transform, warehouse load), with reruns.

Builds on tests/integration/test_kill.py (kills triggered by disk events, a random delay after them), but aims
each kill at a stage and counts where it landed. The child prints a line when each stage ends, so the test knows
which stage runs: it waits for the start of the stage it aims at (the run's crash marker for ingestion, or a
new batch manifest; the end of ingestion for the models; the end of the last model for the warehouse load),
sleeps a random part of that stage's last measured duration, and kills. Where the kill really landed is read
after the process died, from the stages it had finished: a kill is counted in a stage only if that stage had
begun and not ended. The loop goes on until every stage has its quota (quick: 3, full: 18 each).

New files land before every run (and a bad file now and then), so every run has work in every stage. Every
``complete_every``-th run is left to finish (the rerun that resumes what the kills left) and the state is then
checked exactly; after every kill the invariants that hold at any instant are checked (no id twice, the warehouse
equal to the gold version its ledger names). At the end: one more run, then a run that has nothing to do, the
exact state against the landing files, and every killed run that had started in the event log as ``crashed``.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import (
    STAGE_GROUPS,
    DuckDBWarehouse,
    Lake,
    Landing,
    LocalStore,
    Run,
    Settings,
    assert_consistent_now,
    assert_crashes_logged,
    assert_exact,
    make_project,
    run_ok,
    seed,
    stage_group,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
SEED = 20241126


def landed(run: Run, order: list[str], *, started: bool) -> str:
    """The stage a dead run was in: the first of ``order`` it had not finished (``start-up`` before its marker,
    ``finishing`` after the last stage: the run record and the event log)."""
    if not started:
        return "start-up"
    for stage in order:
        if stage not in run.finished:
            return stage_group(stage)
    return "finishing"


@pytest.mark.timeout(3600)
def test_sigkill_in_every_stage_then_rerun_loses_and_doubles_nothing(tmp_path: Path, mode: Settings,
                                                                      record: dict[str, Any]) -> None:
    rng = random.Random(seed(SEED))
    record["seed"] = seed(SEED)
    project = make_project(tmp_path / "kill", max_files_per_batch=2)
    landing = Landing(LocalStore(project / "landing"))
    lake = Lake(str(project / "lakehouse"), LocalStore(project / "lakehouse"))
    warehouse = DuckDBWarehouse(project / "warehouse.duckdb")
    runs_dir = project / "lakehouse" / "_lakeforge" / "runs"
    checkpoints = project / "lakehouse" / "_lakeforge" / "checkpoints" / "events"

    landing.good(6)
    first = run_ok(project)
    order = list(first.finished)  # the stages in run order
    assert order[0] == "ingest:events" and order[-1] == "warehouse", order
    models = [s for s in order if stage_group(s) == "transform"]
    duration = {"ingest": first.finished["ingest:events"], "transform": sum(first.finished[m] for m in models),
                "warehouse": first.finished["warehouse"]}
    assert_exact(lake, landing, warehouse)

    kills: Counter[str] = Counter()  # where each kill landed
    aimed: Counter[tuple[str, str]] = Counter()  # (aimed at, landed in)
    killed_ids: set[str] = set()
    completed = exact_checks = 0
    log: list[dict[str, Any]] = []
    quota = mode.kills_per_stage
    limit = 6 * quota * len(STAGE_GROUPS) + 20
    iteration = 0
    while min(kills[s] for s in STAGE_GROUPS) < quota:
        iteration += 1
        assert iteration <= limit, f"kills did not reach every stage: {dict(kills)} after {iteration} runs"
        landing.good(rng.randint(3, 6))
        if rng.random() < 0.3:
            landing.bad(rng.choice(["empty", "malformed", "wrong_type"]))
        if iteration % mode.complete_every == 0:  # a rerun left to finish: resumes what the kills left
            done = run_ok(project)
            completed += 1
            assert not [ln for ln in done.err if ln.startswith(("error", "warning"))], done.stderr
            duration.update({"ingest": done.finished["ingest:events"],
                             "transform": sum(done.finished.get(m, 0.0) for m in models) or duration["transform"],
                             "warehouse": done.finished["warehouse"] or duration["warehouse"]})
            assert_exact(lake, landing, warehouse)
            exact_checks += 1
            log.append({"run": iteration, "aimed": None, "landed": "finished", "seconds": round(done.seconds, 2)})
            continue
        target = rng.choice([s for s in STAGE_GROUPS if kills[s] < quota])
        markers_before = lake.markers()
        manifests_before = len(list(checkpoints.glob("batch-*.json")))

        def new_marker(before: set[str] = markers_before) -> bool:
            return bool({p.name for p in runs_dir.glob("*.started")} - {f"{m}.started" for m in before})

        run = Run(project)
        if target == "ingest":
            if rng.random() < 0.5:  # right after the k-th new batch manifest: before (or at) its commit
                k = rng.randint(1, 2)
                run.wait_for(lambda n=manifests_before + k: len(list(checkpoints.glob("batch-*.json"))) >= n)
                time.sleep(rng.uniform(0, 0.03))
            else:  # anywhere in the stage: from the run's marker on
                run.wait_for(new_marker)
                time.sleep(rng.uniform(0, 0.9 * duration["ingest"]))
        elif target == "transform":
            run.wait_stage("ingest:events")
            time.sleep(rng.uniform(0, 0.9 * duration["transform"]))
        else:
            run.wait_stage(models[-1])
            time.sleep(rng.uniform(0, 0.9 * duration["warehouse"]))
        was_killed = run.kill()
        assert was_killed or run.proc.returncode == 0, run.stderr[-3000:]
        started = bool(lake.markers() - markers_before)
        where = landed(run, order, started=started) if was_killed else "finished"
        if was_killed:
            kills[where] += 1
            aimed[(target, where)] += 1
            killed_ids |= lake.markers() - markers_before
        else:
            completed += 1
        for stage in order:  # measured durations steer the next kills
            if stage in run.finished and stage_group(stage) != "transform":
                duration[stage_group(stage)] = run.finished[stage] or duration[stage_group(stage)]
        assert_consistent_now(lake, warehouse)
        log.append({"run": iteration, "aimed": target, "landed": where, "seconds": round(run.seconds, 2)})

    final = run_ok(project)
    assert final.finished, final.stderr
    idle = run_ok(project, "--json")
    assert idle.json()["status"] == "nothing_to_do", idle.stdout
    counts = assert_exact(lake, landing, warehouse)
    crashed = assert_crashes_logged(lake, killed_ids)

    total = sum(kills.values())
    record.update({
        "kills": total, "kills_by_stage": {s: kills[s] for s in (*STAGE_GROUPS, "start-up", "finishing")},
        "aimed_vs_landed": {f"{a} -> {b}": n for (a, b), n in sorted(aimed.items())},
        "runs": len(log) + 3, "runs_finished": completed + 3, "exact_checks": exact_checks + 2,
        "crashed_runs_logged": crashed, "landing_files": len(landing.files),
        "bad_files": sum(1 for e in landing.files.values() if e.kind != "good"), **counts,
    })
    print(f"\n{total} kills in {len(log)} runs: {dict(kills)}; aimed -> landed {dict(aimed)}")
    assert all(kills[s] >= quota for s in STAGE_GROUPS)
    if mode.mode == "full":
        assert total >= 50


HOOK = '''
import os
import signal

from lakeforge.lakehouse import catalog

_merge = catalog.Catalog.merge


def merge(self, name, *args, **kwargs):
    if name == "silver.events":  # silver's quarantine is committed, its table not yet: die here
        os.kill(os.getpid(), signal.SIGKILL)
    return _merge(self, name, *args, **kwargs)


catalog.Catalog.merge = merge
'''


def test_a_kill_between_a_models_quarantine_and_table_commits_then_new_files_quarantines_nothing_twice(
        tmp_path: Path, record: dict[str, Any]) -> None:
    """The window the random kills above found (a row twice in quarantine.silver_events): a run dies after silver's
    quarantine commit and before its table commit, files land, the next run reads a wider range. Aimed at with
    a test-only hook (a ``sitecustomize`` that SIGKILLs the run at silver's merge)."""
    project = make_project(tmp_path / "window")
    landing = Landing(LocalStore(project / "landing"))
    lake = Lake(str(project / "lakehouse"), LocalStore(project / "lakehouse"))
    warehouse = DuckDBWarehouse(project / "warehouse.duckdb")
    landing.good(2, rows=20)
    run_ok(project)
    landing.good(1, rows=20)
    landing.bad("wrong_type")
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(HOOK)
    killed = Run(project, env={**os.environ, "PYTHONPATH": str(tmp_path / "hook")})
    assert killed.wait() == -9, killed.stderr
    assert "silver.events" not in killed.finished and "ingest:events" in killed.finished
    landing.good(1, rows=20)  # the next run reads a wider range than the killed one
    rerun = run_ok(project)
    assert rerun.finished["silver.events"] >= 0
    counts = assert_exact(lake, landing, warehouse)
    quarantine = lake.table("quarantine.silver_events")
    assert quarantine is not None and quarantine.num_rows == 1, quarantine
    record.update({"window": "after silver's quarantine commit, before its table commit", **counts})
