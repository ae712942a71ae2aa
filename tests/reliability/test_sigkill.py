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

import json
import os
import random
import threading
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


class Appender:
    """A gateway that appends to two files all day (JSON lines; CSV with a header), a line at a time in one to
    three writes, so that a run often finds a partial last line. Seeded; pauses anywhere, even mid-line."""

    def __init__(self, folder: Path, rng: random.Random) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.files = {"jsonl": folder / "day.jsonl", "csv": folder / "day.csv"}
        self.files["csv"].write_bytes(b"id,v\n")
        self.files["jsonl"].write_bytes(b"")
        self.rng = rng
        self.next_id = 0
        self.running, self.paused, self.idle = threading.Event(), threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._write, daemon=True)

    def start(self) -> None:
        self.running.set()
        self.thread.start()

    def pause(self) -> None:
        self.idle.clear()
        self.paused.set()
        assert self.idle.wait(30)

    def resume(self) -> None:
        self.paused.clear()

    def stop(self) -> None:
        """Stopped at a line's end: every line written is complete."""
        self.running.clear()
        self.paused.clear()
        self.thread.join(30)

    def _line(self) -> tuple[str, bytes]:
        i, self.next_id = self.next_id, self.next_id + 1
        if i % 2:
            return "csv", f"{i},{i / 4}\n".encode()
        return "jsonl", json.dumps({"id": i, "v": i / 4}).encode() + b"\n"

    def _write(self) -> None:
        while self.running.is_set():
            kind, line = self._line()
            cuts = sorted(self.rng.sample(range(1, len(line)), self.rng.randint(0, 2)))
            for piece in (line[a:b] for a, b in zip([0, *cuts], [*cuts, len(line)], strict=True)):
                while self.paused.is_set():
                    self.idle.set()
                    time.sleep(0.001)
                with self.files[kind].open("ab") as fh:
                    fh.write(piece)
                time.sleep(self.rng.uniform(0, 0.004))

    def complete_ids(self) -> Counter[int]:
        """The ids of the complete lines written so far (a partial last line is not one yet)."""
        ids: Counter[int] = Counter()
        for kind, path in self.files.items():
            data = path.read_bytes()
            body = data[:data.rfind(b"\n") + 1].decode().splitlines()
            for text in body[1:] if kind == "csv" else body:
                ids[int(json.loads(text)["id"]) if kind == "jsonl" else int(text.split(",")[0])] += 1
        return ids


def assert_ranges_tile(lake: Lake) -> None:
    """Each growing file's committed ranges follow one another from byte 0: no byte twice, none skipped."""
    ends: dict[str, int] = {}
    for manifest in sorted(lake.manifests(), key=lambda m: int(m["batch_id"])):
        for info in manifest["files"]:
            start = manifest.get("starts", {}).get(info["path"], 0)
            assert start == ends.get(info["path"], 0), (manifest["batch_id"], info, ends)
            ends[info["path"]] = info["size"]


@pytest.mark.timeout(1800)
def test_sigkill_while_a_gateway_appends_to_growing_files_takes_every_line_exactly_once(
        tmp_path: Path, mode: Settings, record: dict[str, Any]) -> None:
    """growing: true under kills: a writer appends lines (often caught half written) to a JSON-lines and a CSV file
    while runs are SIGKILLed at random moments of ingestion (right after a new batch manifest, or anywhere from
    the run's start); every few runs one is left to finish with the writer paused (anywhere, mid-line too) and
    bronze must then hold exactly the complete lines written, each once. At the end every line, once."""
    rng = random.Random(seed(SEED + 20))
    record["seed"] = seed(SEED + 20)
    source = {"format": "auto", "growing": True, "max_line_bytes": 1024,
              "schema_hints": {"id": "bigint", "v": "double"}}
    project = make_project(tmp_path / "growing", sources={"events": source})
    lake = Lake(str(project / "lakehouse"), LocalStore(project / "lakehouse"))
    runs_dir = project / "lakehouse" / "_lakeforge" / "runs"
    checkpoints = project / "lakehouse" / "_lakeforge" / "checkpoints" / "events"
    writer = Appender(project / "landing" / "events", random.Random(rng.random()))
    writer.start()
    time.sleep(0.2)
    first = run_ok(project)
    ingest_seconds = max(first.finished.get("ingest:events", 0.5), 0.2)
    kills = exact_checks = in_ingest = 0
    iteration = 0
    while kills < 3 * mode.kills_per_stage or in_ingest < mode.kills_per_stage:
        iteration += 1
        assert iteration <= 12 * mode.kills_per_stage + 10, f"{kills} kills after {iteration} runs"
        if iteration % mode.complete_every == 0:
            writer.pause()
            run_ok(project)
            assert Counter(lake.table("bronze.events")["id"].to_pylist()) == writer.complete_ids()
            assert_ranges_tile(lake)
            exact_checks += 1
            writer.resume()
            continue
        markers = {p.name for p in runs_dir.glob("*.started")}
        manifests = len(list(checkpoints.glob("batch-*.json")))
        run = Run(project)
        if rng.random() < 0.5:
            run.wait_for(lambda n=manifests + 1: len(list(checkpoints.glob("batch-*.json"))) >= n)
            time.sleep(rng.uniform(0, 0.03))
        else:
            run.wait_for(lambda m=markers: bool({p.name for p in runs_dir.glob("*.started")} - m))
            time.sleep(rng.uniform(0, 1.5 * ingest_seconds))
        was_killed = run.kill()
        assert was_killed or run.proc.returncode == 0, run.stderr[-3000:]
        kills += was_killed
        in_ingest += was_killed and "ingest:events" not in run.finished
        assert_consistent_now(lake, DuckDBWarehouse(project / "warehouse.duckdb"))
    writer.stop()
    run_ok(project)
    idle = run_ok(project, "--json")
    assert idle.json()["status"] == "nothing_to_do", idle.stdout
    written = writer.complete_ids()
    assert written == Counter(range(writer.next_id)) and max(written.values()) == 1
    assert Counter(lake.table("bronze.events")["id"].to_pylist()) == written
    assert_ranges_tile(lake)
    batches = len(lake.manifests())
    assert in_ingest >= mode.kills_per_stage
    record.update({"kills": kills, "kills_in_ingest": in_ingest, "runs": iteration + 3,
                   "exact_checks": exact_checks + 1, "lines": writer.next_id, "batches": batches})
    print(f"\n{kills} kills ({in_ingest} in ingestion) in {iteration} runs; {writer.next_id} lines appended, each "
          f"once in bronze ({batches} batches)")
