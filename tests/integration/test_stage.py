"""Where the DuckDB engine stages a model's rows (memory, or a compressed temporary DuckDB file) changes nothing
in what a model produces; ``stage: auto`` goes to disk only when the estimated rows outgrow the memory limit."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
from typing import Literal

import pyarrow as pa
import pytest

from lakeforge.config.models import DuckDBEngineConfig
from lakeforge.engines.duckdb.engine import DISK_STAGE, STAGE, DuckDBEngine
from lakeforge.quality import Expectation

ROWS = 300_000
SQL = "SELECT id, seq, v, v * 2 AS v2, label FROM bronze.t"


def _bronze() -> pa.Table:
    ids = [i % (ROWS // 3) for i in range(ROWS)]  # every key three times
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "seq": pa.array(range(ROWS), pa.int64()),
        "v": pa.array([None if i % 97 == 0 else float(i % 500) for i in range(ROWS)], pa.float64()),
        "label": pa.array([f"machine-{i % 1000:04d}-a-long-label" for i in range(ROWS)]),
    })


RULES = [
    (Expectation(name="v_present", expr="v IS NOT NULL", action="quarantine"), "v IS NOT NULL"),
    (Expectation(name="v_small", expr="v < 450", action="drop"), "v < 450"),
    (Expectation(name="v_even", expr="v % 2 = 0", action="warn"), "v % 2 = 0"),
]


def _run(stage: Literal["auto", "memory", "disk"], memory_limit: str | None = None
         ) -> tuple[DuckDBEngine, str, tuple[object, ...], list[dict[str, object]], list[dict[str, object]]]:
    engine = DuckDBEngine(DuckDBEngineConfig(stage=stage, memory_limit=memory_limit, threads=2))
    out = engine.run_model(SQL, model="silver.t", relations={"bronze.t": _bronze()}, expectations=RULES,
                           unique_key=["id"], order_by=["seq"], keep="last")
    used = engine._stage
    counts = (out.rows_in, out.rows_kept, out.rows_quarantined, out.rows_dropped, out.dropped_by,
              [(r.rule, r.failed) for r in out.rules])
    kept = sorted(out.kept().read_all().to_pylist(), key=lambda r: r["id"])
    quarantined = sorted(out.quarantined().read_all().to_pylist(), key=lambda r: (r["id"], r["seq"]))
    assert out.release is not None
    out.release()
    return engine, used, counts, kept, quarantined


def _stage_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "lakeforge-stage-*")))


def test_a_disk_stage_gives_the_rows_and_counts_of_a_memory_stage_and_leaves_no_file() -> None:
    before = _stage_dirs()
    memory, used_m, counts_m, kept_m, quarantined_m = _run("memory")
    disk, used_d, counts_d, kept_d, quarantined_d = _run("disk")
    assert (used_m, used_d) == (STAGE, DISK_STAGE)
    assert counts_d == counts_m
    assert kept_d == kept_m and quarantined_d == quarantined_m
    # the same outcome worked out in Python: per key, the latest row that neither rule stops
    passing: dict[int, dict[str, object]] = {}
    for row in _bronze().to_pylist():
        stopped = row["v"] is None or row["v"] >= 450
        if not stopped and (row["id"] not in passing or row["seq"] > passing[row["id"]]["seq"]):
            passing[row["id"]] = row
    assert [(r["id"], r["seq"]) for r in kept_m] == sorted((k, r["seq"]) for k, r in passing.items())
    nulls = sum(1 for i in range(ROWS) if i % 97 == 0)
    assert counts_m[:4] == (ROWS, len(passing), nulls, ROWS - len(passing) - nulls)
    assert len(quarantined_m) == nulls  # a null fails all three rules, and is quarantined, not dropped
    assert all(r["_failed_rules"] == ["v_present", "v_small", "v_even"] for r in quarantined_m)
    assert _stage_dirs() == before  # the temporary file went with the stage
    for engine in (memory, disk):
        engine.close()


def test_auto_stages_on_disk_only_when_the_estimate_outgrows_twice_the_memory_limit() -> None:
    relations = {"bronze.t": _bronze()}
    before = _stage_dirs()
    roomy = DuckDBEngine(DuckDBEngineConfig())  # DuckDB's default limit: 80% of the machine's memory
    roomy.bind(relations)
    estimate = roomy._stage_estimate(SQL, relations)
    assert ROWS * 80 < estimate < ROWS * 120  # 4 fixed-width columns, one string, the mask
    assert roomy._stage_on(estimate) == STAGE
    tight = DuckDBEngine(DuckDBEngineConfig(memory_limit="8MB"))  # 2 x 8 MB < 300k rows of ~90 bytes
    tight.bind(relations)
    assert abs(tight._memory_limit() - 8 * 10**6) < 0.1 * 8 * 10**6  # DuckDB shows it as "7.6 MiB"
    assert tight._stage_on(tight._stage_estimate(SQL, relations)) == DISK_STAGE
    pinned = DuckDBEngine(DuckDBEngineConfig(memory_limit="8MB", stage="memory"))
    pinned.bind(relations)
    assert pinned._stage_on(pinned._stage_estimate(SQL, relations)) == STAGE
    for engine in (roomy, tight, pinned):
        engine.close()
    assert _stage_dirs() == before


def test_a_model_error_on_a_disk_stage_names_the_model_and_cleans_up() -> None:
    from lakeforge.errors import ModelError

    before = _stage_dirs()
    engine = DuckDBEngine(DuckDBEngineConfig(stage="disk"))
    with pytest.raises(ModelError, match=r"model silver\.t failed: .*no_such_column"):
        engine.run_model("SELECT id, no_such_column FROM bronze.t", model="silver.t",
                         relations={"bronze.t": _bronze()}, expectations=RULES, unique_key=["id"],
                         order_by=["seq"], keep="last")
    engine.close()
    assert _stage_dirs() == before


def test_a_disk_stage_left_by_a_killed_process_is_removed_by_the_next_one() -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    left = tempfile.mkdtemp(prefix=f"lakeforge-stage-{int(gone.stdout)}-")
    (open(os.path.join(left, "stage.duckdb"), "wb")).close()
    mine = tempfile.mkdtemp(prefix=f"lakeforge-stage-{os.getpid()}-")  # a live process's: kept
    engine, used, *_ = _run("disk")
    engine.close()
    assert used == DISK_STAGE
    assert not os.path.exists(left) and os.path.isdir(mine)
    os.rmdir(mine)
