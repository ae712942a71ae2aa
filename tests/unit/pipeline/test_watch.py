"""Continuous mode (lakeforge.pipeline.watch): a run first, then a run whenever files wait; a failing run is
reported and watching goes on; it stops after max_runs or idle_timeout."""

from __future__ import annotations

from lakeforge.errors import LakeforgeError
from lakeforge.pipeline.watch import Outcome, watch
from lakeforge.results import RunResult


def _result(run_id: str) -> RunResult:
    return RunResult(run_id=run_id, status="succeeded", started_at="2026-12-07T00:00:00+00:00", seconds=0.0,
                     stages=[], bytes_processed=0)


def test_runs_first_then_only_when_files_wait_and_a_failure_does_not_stop_it() -> None:
    waiting = iter([{}, {"telemetry": 2}, {}, {"telemetry": 1}])
    runs: list[str] = []
    seen: list[Outcome] = []

    def run() -> RunResult:
        runs.append(f"r{len(runs)}")
        if len(runs) == 2:
            raise LakeforgeError("the store is down", hint="wait")
        return _result(runs[-1])

    done = watch(run=run, backlog=lambda: next(waiting, {}), interval=0.0, max_runs=3, on_run=seen.append)
    assert done == 3 and runs == ["r0", "r1", "r2"]
    assert isinstance(seen[1], LakeforgeError) and [getattr(o, "run_id", None) for o in seen] == ["r0", None, "r2"]


def test_stops_after_idle_timeout_without_files() -> None:
    polls: list[int] = []

    def backlog() -> dict[str, int]:
        polls.append(1)
        return {}

    assert watch(run=lambda: _result("only"), backlog=backlog, interval=0.001, idle_timeout=0.02) == 1
    assert polls  # it looked for files before giving up
