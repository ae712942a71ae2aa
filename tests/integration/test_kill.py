"""Exactly once under SIGKILL: kill ``lakeforge run`` at random moments many times, rerun, count every row.

The landing zone grows between kills, so discovery, batching, the quarantine of files that cannot be parsed,
the models' incremental strategies and the warehouse load are all interrupted at some point. Each kill is
triggered either by a timer or by an event seen on disk (the run taking its lock, a new batch manifest, a Delta
commit of bronze, silver or gold) plus a random delay, so kills land in every stage, not only in start-up.
After every kill bronze and silver must already be free of duplicates and the warehouse equal to the gold
version its ledger names; after a final run the lakehouse must hold every landing row exactly once, and gold
and the warehouse must equal an aggregate computed directly from the landing files.

A second test hits the narrowest window on purpose: a kill while DuckDB creates the warehouse file.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from tests.conftest import write_project

SEED = 20240611
INITIAL_FILES = 40
ROWS_PER_FILE = 250
ITERATIONS = 24
COMPLETE_EVERY = 6  # every 6th run is left to finish: recovery runs, and kills must not only hit fresh state
TRIGGERS = ["timer", "started", "manifest", "last bronze commit", "silver commit", "gold commit"]

CONFIG: dict[str, object] = {
    "name": "kill",
    "dialect": "duckdb",
    "sources": {
        "events": {
            "format": "jsonl",
            "max_files_per_batch": 3,
            "schema_hints": {"id": "bigint", "v": "double"},
        },
    },
}
MODELS = {
    "silver.events": """
        -- kind: incremental
        -- unique_key: [id]
        -- on_conflict: keep_first
        -- order_by: [_batch_id, _source_file]
        SELECT id, v, _batch_id, _source_file FROM bronze.events
    """,
    "gold.totals": """
        -- kind: incremental
        -- unique_key: [bucket]
        SELECT id % 10 AS bucket, count(*) AS n, sum(v) AS total FROM silver.events GROUP BY id % 10
    """,
}


def lakeforge_run(project: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lakeforge.cli", "run", "--project", str(project), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_to_completion(project: Path) -> dict[str, Any]:
    proc = lakeforge_run(project, "--json")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


class Landing:
    """Files with globally unique ids (``v`` a multiple of 0.5, so float sums are exact), written whole.

    Some files cannot be read as they are: empty ones, and malformed ones (good lines around one broken line).
    Whether a malformed file is quarantined whole or only its broken line, every line must end up exactly once
    in bronze or in quarantine."""

    def __init__(self, project: Path) -> None:
        self.folder = project / "landing" / "events"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, list[tuple[int, float]]] = {}  # path relative to the landing zone -> rows
        self.bad: dict[str, tuple[int, list[tuple[int, float]]]] = {}  # path -> (non-empty lines, good rows)
        self.next_id = 0
        self.next_bad_id = -1

    def _write(self, text: str) -> str:
        name = f"part-{len(self.files) + len(self.bad):05d}.jsonl"
        tmp = self.folder / f".tmp-{name}"  # hidden names are never listed: the file appears whole
        tmp.write_text(text)
        os.replace(tmp, self.folder / name)
        return f"events/{name}"

    @staticmethod
    def _lines(rows: list[tuple[int, float]]) -> str:
        return "".join(json.dumps({"id": i, "v": v}) + "\n" for i, v in rows)

    def add(self, count: int) -> None:
        for _ in range(count):
            rows = [(i, (i % 97) * 0.5) for i in range(self.next_id, self.next_id + ROWS_PER_FILE)]
            self.next_id += ROWS_PER_FILE
            self.files[self._write(self._lines(rows))] = rows

    def add_bad(self, kind: str) -> None:
        if kind == "empty":
            self.bad[self._write("")] = (0, [])
            return
        rows = [(i, 0.5) for i in range(self.next_bad_id, self.next_bad_id - 38, -1)]
        self.next_bad_id -= 38
        self.bad[self._write(self._lines(rows[:19]) + '{"id": 0, "v": \n' + self._lines(rows[19:]))] = (39, rows)

    def paths(self) -> set[str]:
        return {*self.files, *self.bad}

    def rows(self) -> pa.Table:
        return pa.table({
            "id": pa.array([i for rows in self.files.values() for i, _ in rows], pa.int64()),
            "v": pa.array([v for rows in self.files.values() for _, v in rows], pa.float64()),
            "_source_file": [path for path, rows in self.files.items() for _ in rows],
        })


def delta(project: Path, name: str) -> DeltaTable | None:
    path = project / "lakehouse" / name.replace(".", "/")
    return DeltaTable(str(path)) if DeltaTable.is_deltatable(str(path)) else None


def commits(project: Path, name: str) -> int:
    log = project / "lakehouse" / name.replace(".", "/") / "_delta_log"
    return len(list(log.glob("[0-9]*.json"))) if log.is_dir() else 0


def manifests(project: Path) -> list[Path]:
    return sorted((project / "lakehouse" / "_lakeforge" / "checkpoints" / "events").glob("batch-*.json"))


def state(project: Path, landing: Landing) -> dict[str, int]:
    """How far each stage got: the numbers a run advances (read only while no run is going)."""
    batches = [json.loads(m.read_text()) for m in manifests(project)]
    recorded = {f["path"] for m in batches for f in m["files"]}
    bronze, silver, gold, quarantine = (delta(project, n) for n in (
        "bronze.events", "silver.events", "gold.totals", "quarantine.bronze_events"))

    def txn(table: DeltaTable | None, app: str) -> int:
        found = table.transaction_version(app) if table is not None else None
        return -1 if found is None else int(found)

    warehouse = -1
    try:  # (a file the kill left unreadable is for the next run to cope with, and the test to report)
        con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
    except duckdb.Error:
        pass
    else:
        try:
            loaded = con.execute("SELECT source_version FROM _lakeforge_loads WHERE source_table = 'gold.totals'"
                                 ).fetchall()
            warehouse = int(loaded[0][0]) if loaded else -1
        except duckdb.CatalogException:
            pass
        finally:
            con.close()
    committed = txn(bronze, "lakeforge:ingest:events")
    quarantined = txn(quarantine, "lakeforge:ingest:events")
    return {
        "backlog": len(landing.paths() - recorded),
        "manifests": len(batches),
        # batches a crash left half done: rows not committed, or bad files (lines) not yet quarantined
        "pending": sum(1 for m in batches if m["batch_id"] > committed
                       or ((m.get("bad") or m.get("bad_lines")) and m["batch_id"] > quarantined)),
        "bronze_version": bronze.version() if bronze is not None else -1,
        "silver_consumed": txn(silver, "lakeforge:bronze.events"),
        "silver_version": silver.version() if silver is not None else -1,
        "gold_consumed": txn(gold, "lakeforge:silver.events"),
        "gold_version": gold.version() if gold is not None else -1,
        "warehouse": warehouse,
    }


def phase(before: dict[str, int], after: dict[str, int]) -> str:
    """The stage a kill most likely interrupted: the first one the lakehouse shows as behind."""
    if after == before:
        return "before any progress"
    if after["backlog"] or after["pending"]:
        return "ingest"
    if after["silver_consumed"] < after["bronze_version"]:
        return "silver"
    if after["gold_consumed"] < after["silver_version"]:
        return "gold"
    if after["warehouse"] < after["gold_version"]:
        return "warehouse"
    return "after the last stage"


def consistent_so_far(project: Path, warehouse_version: int) -> None:
    """Invariants at every instant, not only at the end: no id twice in bronze or silver, and the warehouse
    equal to gold as of the version its ledger says it loaded."""
    con = duckdb.connect()
    for name in ("bronze.events", "silver.events"):
        table = delta(project, name)
        if table is None:
            continue
        con.register("t", table.to_pyarrow_dataset())
        n, distinct = con.execute("SELECT count(*), count(DISTINCT id) FROM t").fetchall()[0]
        assert n == distinct, f"{name} has {n - distinct} duplicate rows after a kill"
        con.unregister("t")
    con.close()
    if warehouse_version < 0:
        return
    gold = DeltaTable(str(project / "lakehouse" / "gold" / "totals"), version=warehouse_version)
    want = sorted(tuple(r.values()) for r in gold.to_pyarrow_table(columns=["bucket", "n", "total"]).to_pylist())
    con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
    try:
        got = con.execute("SELECT bucket, n, total FROM totals ORDER BY ALL").fetchall()
    finally:
        con.close()
    assert got == want, f"the warehouse differs from gold v{warehouse_version}, which its ledger says it loaded"


def wait_for(proc: subprocess.Popen[str], probe: Callable[[], int], at_least: int, timeout: float = 60) -> bool:
    """Poll until ``probe()`` reaches ``at_least`` (True), or the run ends or the time is up (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if probe() >= at_least:
            return True
        time.sleep(0.002)
    return False


def calibrate(tmp_path: Path) -> tuple[float, float]:
    """Seconds of one run with nothing to do (start-up) and of one full run, on a copy of the project."""
    copy = write_project(tmp_path / "calibration", CONFIG, MODELS)
    Landing(copy).add(INITIAL_FILES)
    started = time.perf_counter()
    assert run_to_completion(copy)["status"] == "succeeded"
    full = time.perf_counter() - started
    started = time.perf_counter()
    assert run_to_completion(copy)["status"] == "nothing_to_do"
    idle = time.perf_counter() - started
    shutil.rmtree(copy)
    return idle, full


def kill_loop(project: Path, landing: Landing, *, idle: float, full: float) -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    lock = project / "lakehouse" / "_lakeforge" / "run.lock"
    log: list[dict[str, Any]] = []
    triggers: list[str] = []
    for iteration in range(ITERATIONS):
        if iteration % COMPLETE_EVERY == COMPLETE_EVERY - 1:
            trigger = "complete"
        else:
            if not triggers:  # every kind of kill comes up equally often, in a random order
                triggers = rng.sample(TRIGGERS, len(TRIGGERS))
            trigger = triggers.pop()
        # new files arrive between crashes (so discovery happens after them too); always when a kill cannot
        # land in ingestion otherwise, and after a kill before the warehouse load, so that gold moves on by more
        # than one version before the warehouse catches up
        behind = bool(log) and log[-1]["phase"] == "warehouse"
        if iteration and (rng.random() < 0.6 or behind
                          or (trigger != "complete" and not state(project, landing)["backlog"])):
            landing.add(rng.randint(2, 12))
            if rng.random() < 0.3 or not landing.bad:
                landing.add_bad(rng.choice(["empty", "malformed"]) if landing.bad else "malformed")
        before = state(project, landing)
        new_batches = -(-before["backlog"] // 3) + before["pending"]
        lock_mtime = lock.stat().st_mtime_ns if lock.exists() else 0
        started = time.perf_counter()
        proc = lakeforge_run(project)
        if trigger == "timer":
            # from the middle of start-up (imports) to beyond a whole run of the initial landing zone
            time.sleep(rng.uniform(0.5 * idle, full * 1.1))
        elif trigger == "started":  # the run took its lock (opening it touches it): start-up is over
            wait_for(proc, lambda: lock.stat().st_mtime_ns if lock.exists() else 0, lock_mtime + 1)
            time.sleep(rng.uniform(0, max(0.05, full - idle)))
        elif trigger == "manifest" and new_batches:  # right after the k-th new manifest: before its commit
            wait_for(proc, lambda: len(manifests(project)), before["manifests"] + rng.randint(1, new_batches))
            time.sleep(rng.uniform(0, 0.03))
        elif trigger == "last bronze commit":  # ingestion is (about) done: silver is next
            wait_for(proc, lambda: commits(project, "bronze.events"), commits(project, "bronze.events") + new_batches)
            time.sleep(rng.uniform(0, 0.03))
        elif trigger in ("silver commit", "gold commit"):  # right after a model's commit: the next stage
            table = "silver.events" if trigger == "silver commit" else "gold.totals"
            wait_for(proc, lambda t=table: commits(project, t), commits(project, table) + 1)
            time.sleep(rng.uniform(0, 0.02))
        if trigger != "complete" and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # (if it exited meanwhile, it is a zombie: the kill is harmless)
        _, err = proc.communicate(timeout=120)
        elapsed = time.perf_counter() - started
        killed = proc.returncode == -signal.SIGKILL
        assert killed or proc.returncode == 0, err
        after = state(project, landing)
        consistent_so_far(project, after["warehouse"])
        log.append({"trigger": trigger, "killed": killed, "seconds": round(elapsed, 3),
                    "phase": phase(before, after) if killed else "finished"})
        print(f"  run {iteration:2d}: {trigger:18s} {'killed' if killed else 'finished'} after {elapsed:.3f}s  "
              f"({log[-1]['phase']})")
    return log


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_at_random_moments_then_rerun_ingests_every_row_exactly_once(tmp_path: Path) -> None:
    idle, full = calibrate(tmp_path)
    print(f"\ncalibration: start-up {idle:.2f}s, full run {full:.2f}s")
    project = write_project(tmp_path / "proj", CONFIG, MODELS)
    landing = Landing(project)
    landing.add(INITIAL_FILES)
    log = kill_loop(project, landing, idle=idle, full=full)
    final = run_to_completion(project)
    assert final["status"] in ("succeeded", "nothing_to_do")
    again = run_to_completion(project)
    assert again["status"] == "nothing_to_do", again

    killed = [entry for entry in log if entry["killed"]]
    print(f"{len(killed)} of {len(log)} runs killed; kills by phase: {dict(Counter(e['phase'] for e in killed))}; "
          f"{len(landing.files)} good files ({sum(len(r) for r in landing.files.values())} rows), "
          f"{len(landing.bad)} bad files")
    mid_work = [entry for entry in killed if entry["phase"] != "before any progress"]
    assert len(killed) >= 5 and len(mid_work) >= 3, log
    assert len(log) - len(killed) >= 3, log

    con = duckdb.connect()
    for name in ("bronze.events", "silver.events", "gold.totals", "quarantine.bronze_events"):
        table = delta(project, name)
        assert table is not None, name
        con.register(name.split(".")[0], table.to_pyarrow_dataset())

    # every file named by exactly one manifest, and its rows in exactly one batch
    named = Counter(f["path"] for m in manifests(project) for f in json.loads(m.read_text())["files"])
    assert named == Counter(landing.paths()), "a file is named by no manifest, or by more than one"
    assert con.execute("SELECT count(*) FROM (SELECT _source_file FROM bronze GROUP BY 1 "
                       "HAVING count(DISTINCT _batch_id) > 1)").fetchall()[0][0] == 0

    # bronze: every row of the good files exactly once, under its own file
    con.register("good", landing.rows())
    good_paths = pa.table({"path": list(landing.files)})
    con.register("good_paths", good_paths)
    differ = con.execute("SELECT count(*) FROM ((SELECT id, v, _source_file FROM bronze WHERE _source_file IN "
                         "(SELECT path FROM good_paths) EXCEPT ALL SELECT * FROM good) UNION ALL "
                         "(SELECT * FROM good EXCEPT ALL SELECT id, v, _source_file FROM bronze))").fetchall()[0][0]
    assert differ == 0, f"{differ} rows of good files lost or duplicated in bronze"
    per_file = dict(con.execute("SELECT _source_file, count(*) FROM bronze GROUP BY 1").fetchall())
    assert {p: n for p, n in per_file.items() if p in landing.files} == {p: len(r) for p, r in landing.files.items()}

    # files that cannot be read: each line once, in bronze or in quarantine; a file's good lines all or none
    columns = [row[0] for row in con.execute("DESCRIBE quarantine").fetchall()]
    entry_key = "_source_file, _line" if "_line" in columns else "_source_file"
    assert con.execute(f"SELECT count(*) - count(DISTINCT ({entry_key})) FROM quarantine").fetchall()[0][0] == 0
    quarantined = dict(con.execute("SELECT _source_file, sum(_rows) FROM quarantine GROUP BY 1").fetchall())
    assert set(quarantined) == set(landing.bad), "a bad file is missing from quarantine, or a good one is in it"
    kept: list[tuple[int, float, str]] = []
    for path, (lines, rows) in landing.bad.items():
        got = sorted(con.execute("SELECT id, v FROM bronze WHERE _source_file = ?", [path]).fetchall())
        assert got in ([], sorted(rows)), f"{path}: some but not all of its good lines are in bronze"
        assert len(got) + quarantined[path] == lines, f"{path}: lines lost or counted twice"
        kept += [(i, v, path) for i, v in got]

    # silver: each id of bronze once, with the batch that ingested it
    expected = pa.concat_tables([landing.rows(), pa.table({
        "id": pa.array([k[0] for k in kept], pa.int64()), "v": pa.array([k[1] for k in kept], pa.float64()),
        "_source_file": pa.array([k[2] for k in kept], pa.string())})])
    con.register("expected", expected)
    total = expected.num_rows
    assert con.execute("SELECT count(*), count(DISTINCT id) FROM bronze").fetchall()[0] == (total, total)
    assert con.execute("SELECT count(*), count(DISTINCT id) FROM silver").fetchall()[0] == (total, total)
    assert con.execute("SELECT count(*) FROM silver s JOIN bronze b USING (id) "
                       "WHERE s._batch_id <> b._batch_id OR s._source_file <> b._source_file OR s.v <> b.v"
                       ).fetchall()[0][0] == 0

    # gold and the warehouse: the aggregate computed directly from the landing files
    want = con.execute("SELECT id % 10 AS bucket, count(*) AS n, sum(v) AS total FROM expected "
                       "GROUP BY ALL ORDER BY bucket").fetchall()
    assert con.execute("SELECT bucket, n, total FROM gold ORDER BY bucket").fetchall() == want
    con.close()
    warehouse = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
    try:
        rows, keys = warehouse.execute("SELECT count(*), count(DISTINCT bucket) FROM totals").fetchall()[0]
        assert rows == keys, f"the warehouse holds {rows - keys} extra rows for keys it already has"
        assert warehouse.execute("SELECT bucket, n, total FROM totals ORDER BY bucket").fetchall() == want
    finally:
        warehouse.close()


@pytest.mark.slow
def test_a_run_killed_while_it_creates_the_warehouse_file_does_not_break_the_next_run(tmp_path: Path) -> None:
    """The narrowest window of the random kills above, aimed at: DuckDB creates a new database file, then writes
    its headers, and a kill in between leaves an empty file. The next run must not fail on it (forever)."""
    project = write_project(tmp_path / "proj", CONFIG, MODELS)
    Landing(project).add(3)
    warehouse = project / "warehouse.duckdb"
    assert run_to_completion(project)["status"] == "succeeded"
    for _ in range(3):  # every run opens the warehouse, creating the file if it is missing
        for path in project.glob("warehouse.duckdb*"):
            path.unlink()
        proc = lakeforge_run(project)
        while not warehouse.exists() and proc.poll() is None:
            pass  # busy: the window is microseconds wide
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=120)
        assert killed, "the run finished before the warehouse file appeared"
        assert run_to_completion(project)["status"] == "succeeded"
    # the state such a kill leaves, made on purpose (the kills above do not always land in the window)
    for path in project.glob("warehouse.duckdb*"):
        path.unlink()
    warehouse.touch()
    assert run_to_completion(project)["status"] == "succeeded"
    gold = delta(project, "gold.totals")
    assert gold is not None
    want = sorted(tuple(row.values()) for row in gold.to_pyarrow_table(columns=["bucket", "n", "total"]).to_pylist())
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("SELECT bucket, n, total FROM totals ORDER BY ALL").fetchall() == want
    finally:
        con.close()
