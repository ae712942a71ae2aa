"""The run lock and crash recovery, with real ``lakeforge run`` processes.

Runs are stopped at a known point by a test-only hook: a ``sitecustomize`` on the child's PYTHONPATH makes the
run wait, right after it took the lock or before a given stage, until a gate file exists (it writes
``<gate>.paused`` with its pid when it waits). Nothing else of lakeforge is replaced.

1. Two runs started at the same time on one project: one takes the lock and does the work, the other exits 1
   with the lock message; every landed row is in bronze once.
2. A run killed with SIGKILL mid-run (during ingestion, or between the silver and gold models), new files
   landing meanwhile, then an ordinary ``lakeforge run``: it succeeds, the event log has the killed run as
   ``crashed`` (its run_id from its marker) and the new one ``succeeded``, ``crashed_runs`` names it, and the
   lakehouse equals a fresh project's run over the same landing files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakeforge.pipeline import events
from lakeforge.project import Project

HOOK = textwrap.dedent('''
    """Test hook (tests/integration/test_recovery.py): wait at a known point of a run until a gate file exists."""
    import os
    import pathlib
    import time

    GATE = os.environ.get("LAKEFORGE_TEST_GATE")
    AT = os.environ.get("LAKEFORGE_TEST_PAUSE_AT", "lock")

    def _wait() -> None:
        pathlib.Path(GATE + ".paused").write_text(str(os.getpid()))
        while not os.path.exists(GATE):
            time.sleep(0.01)

    if GATE:
        from lakeforge.pipeline import events, runner
        from lakeforge.workspace import Workspace

        if AT == "lock":  # the run holds the lock and has left its marker
            _mark_started = events.mark_started

            def mark_started(*args, **kwargs):
                _mark_started(*args, **kwargs)
                _wait()

            events.mark_started = mark_started
        elif AT.startswith("ingest:"):
            _ingestor = Workspace.ingestor

            def ingestor(self, name, *, engine=None):
                if engine is not None and name == AT.split(":", 1)[1]:
                    _wait()
                return _ingestor(self, name, engine=engine)

            Workspace.ingestor = ingestor
        else:  # a model
            _run_model = runner.run_model

            def run_model(model, **kwargs):
                if model.name == AT:
                    _wait()
                return _run_model(model, **kwargs)

            runner.run_model = run_model
''')
DATA = ("ts", "machine_id", "volt", "rotate", "pressure", "vibration", "temperature", "humidity", "model", "age",
        "site_id", "install_date", "site_name", "region", "timezone", "error_id", "component", "reason",
        "_rescued_data", "_source_file")
ARRIVAL = {"_ingested_at", "_batch_id", "valid_from", "valid_to", "is_current"}
LOCKED = "another lakeforge run holds the lock"


def lakeforge_run(project: Path, *, gate: Path | None = None, at: str = "lock") -> subprocess.Popen[str]:
    env = dict(os.environ)
    if gate is not None:
        hook = gate.parent / "hook"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(HOOK)
        env["PYTHONPATH"] = os.pathsep.join([str(hook), *filter(None, [env.get("PYTHONPATH")])])
        env["LAKEFORGE_TEST_GATE"] = str(gate)
        env["LAKEFORGE_TEST_PAUSE_AT"] = at
    return subprocess.Popen([sys.executable, "-m", "lakeforge.cli", "run", "--project", str(project), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def paused(gate: Path, procs: list[subprocess.Popen[str]], timeout: float = 60) -> int:
    """The pid of the run waiting at the gate."""
    marker = Path(str(gate) + ".paused")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text():
            return int(marker.read_text())
        if all(proc.poll() is not None for proc in procs):
            raise AssertionError([proc.communicate() for proc in procs])
        time.sleep(0.01)
    raise AssertionError("no run reached the gate")


def table(project: Path, name: str) -> pa.Table | None:
    path = str(project / "lakehouse" / name.replace(".", "/"))
    return DeltaTable(path).to_pyarrow_table() if DeltaTable.is_deltatable(path) else None


def bag(data: pa.Table, *, keep: tuple[str, ...] | None = None, drop: set[str] = ARRIVAL) -> Counter[tuple[Any, ...]]:
    names = [c for c in data.column_names if (keep is None or c in keep) and c not in drop]
    return Counter(tuple(round(v, 9) if isinstance(v, float) else v for v in row.values())
                   for row in data.select(names).to_pylist())


def fresh_run(project: Path, root: Path) -> Path:
    """A project never interrupted, over a copy of the same landing files."""
    Project.init(root)
    shutil.copytree(project / "landing", root / "landing", dirs_exist_ok=True)
    with Project(root) as fresh:
        assert fresh.run().status == "succeeded"
    return root


def test_two_runs_at_once_one_does_the_work_the_other_is_refused(example: Project, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    procs = [lakeforge_run(example.path, gate=gate) for _ in range(2)]
    try:
        winner = paused(gate, procs)
        loser = next(p for p in procs if p.pid != winner)
        _, err = loser.communicate(timeout=60)  # refused while the winner holds the lock
        assert loser.returncode == 1, err
        assert LOCKED in " ".join(err.split()), err
        assert next(p for p in procs if p.pid == winner).poll() is None
    finally:
        gate.touch()
    done = next(p for p in procs if p.pid == winner)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded" and result["crashed_runs"] == []

    runs = events.read(example, event="run").to_pylist()
    assert [(r["run_id"], r["status"]) for r in runs] == [(result["run_id"], "succeeded")]  # the loser: no run
    fresh = fresh_run(example.path, tmp_path / "fresh")
    for source in example.config.sources:
        ours, theirs = table(example.path, f"bronze.{source}"), table(fresh, f"bronze.{source}")
        assert ours is not None and theirs is not None
        # the same rows, as often as in the landing files (the generator lands some duplicates on purpose)
        assert bag(ours, keep=DATA) == bag(theirs, keep=DATA), source


@pytest.mark.parametrize("at", ["ingest:maintenance", "gold.fact_telemetry_hourly"])
def test_a_killed_run_is_logged_as_crashed_and_the_next_run_resumes_exactly_once(
        example: Project, tmp_path: Path, at: str) -> None:
    gate = tmp_path / "gate"
    proc = lakeforge_run(example.path, gate=gate, at=at)
    try:
        assert paused(gate, [proc]) == proc.pid
        markers = list((example.path / "lakehouse" / "_lakeforge" / "runs").glob("*.started"))
        assert len(markers) == 1
        killed = json.loads(markers[0].read_text())["run_id"]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    half = {name: table(example.path, name) for name in ("bronze.maintenance", "silver.telemetry",
                                                         "gold.fact_telemetry_hourly")}
    if at.startswith("ingest:"):
        assert half["bronze.maintenance"] is None and half["silver.telemetry"] is None
    else:
        assert half["silver.telemetry"] is not None and half["gold.fact_telemetry_hourly"] is None
    example.generate(machines=12, days=1, seed=7, files=2, start="2024-01-04")  # and files land meanwhile

    proc = lakeforge_run(example.path)  # an ordinary run: no manual step
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert result["crashed_runs"] == [killed]
    assert not list((example.path / "lakehouse" / "_lakeforge" / "runs").glob("*.started"))
    runs = {r["run_id"]: r for r in events.read(example, event="run").to_pylist()}
    assert {k: r["status"] for k, r in runs.items()} == {killed: "crashed", result["run_id"]: "succeeded"}
    assert "ended without finishing" in runs[killed]["error"]

    fresh = fresh_run(example.path, tmp_path / "fresh")
    for source in example.config.sources:
        ours, theirs = table(example.path, f"bronze.{source}"), table(fresh, f"bronze.{source}")
        assert ours is not None and theirs is not None
        assert bag(ours, keep=DATA) == bag(theirs, keep=DATA), source
    for name in ("silver.telemetry", "silver.errors", "silver.failures", "silver.maintenance", "silver.sites",
                 "gold.fact_telemetry_hourly", "gold.fact_telemetry_daily", "gold.fact_errors",
                 "gold.fact_failures", "gold.fact_maintenance", "gold.fleet_kpi_daily"):
        ours, theirs = table(example.path, name), table(fresh, name)
        assert ours is not None and theirs is not None
        assert bag(ours) == bag(theirs), name
    telemetry = table(example.path, "silver.telemetry")
    assert telemetry is not None
    assert max(Counter(zip(telemetry["machine_id"].to_pylist(), telemetry["ts"].to_pylist(),
                           strict=True)).values()) == 1
