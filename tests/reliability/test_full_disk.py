"""A full disk under the lakehouse folder: a small tmpfs is mounted at ``<project>/lakehouse`` (root only: the
case fails, and says so, when it cannot mount), filled until only a few bytes to a few hundred KB are free, and a
run with new files is started. It either fits, or fails with a clear error: no space left on device, which
stage and which table it was writing, what to do (free space, rerun) — never a traceback or an "internal error".
Either way no Delta table is corrupt (every table reads whole, every commit file is complete JSON), bronze and
silver hold no id twice and the warehouse equals the gold version its ledger names. Then the space is freed
and the next run finishes with the exact state. The tmpfs is unmounted in any case.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
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
    assert_consistent_now,
    assert_exact,
    deltas_readable,
    make_project,
    run_ok,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
SIZE = "40m"
TABLES = ("bronze.events", "quarantine.bronze_events", "silver.events", "quarantine.silver_events", "gold.totals",
          "gold.files", "_lakeforge.event_log")
FILLER = "_filler"  # a leading underscore: never a table, never listed


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.fail(f"mounting a tmpfs at {path} needs root (CAP_SYS_ADMIN); run the reliability suite as root "
                    "(`sudo make reliability`) — the full-disk case has no honest stand-in without it", pytrace=False)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "lakeforge-full-disk",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {path}: {mounted.stderr.strip()}", pytrace=False)
    try:
        yield
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)  # a process still holds a file: detach it


def free(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def fill(path: Path, leave: int) -> None:
    """Write a filler file until at most ``leave`` bytes are free (0: until the disk refuses)."""
    with open(path / FILLER, "ab") as fh:
        chunk = b"\0" * (1 << 20)
        while free(path) - leave >= len(chunk):
            fh.write(chunk)
            fh.flush()
        with contextlib.suppress(OSError):
            while free(path) > leave:
                fh.write(b"\0" * 4096)
                fh.flush()


@pytest.mark.timeout(1800)
def test_a_full_lakehouse_disk_fails_clearly_corrupts_nothing_and_the_rerun_finishes(
        tmp_path: Path, mode: Settings, record: dict[str, Any]) -> None:
    project = make_project(tmp_path / "disk", max_files_per_batch=3)
    lakehouse = project / "lakehouse"
    landing = Landing(LocalStore(project / "landing"))
    lake = Lake(str(lakehouse), LocalStore(lakehouse))
    warehouse = DuckDBWarehouse(project / "warehouse.duckdb")
    outcomes: list[dict[str, Any]] = []
    with tmpfs(lakehouse, SIZE):
        landing.good(4)
        landing.bad("malformed")
        run_ok(project)
        assert_exact(lake, landing, warehouse)
        for level in mode.disk_levels:
            landing.good(9, rows=3000)
            landing.bad("wrong_type")
            fill(lakehouse, level)
            left = free(lakehouse)
            run = Run(project)
            run.wait()
            if run.proc.returncode == 0:
                outcome: dict[str, Any] = {"free_bytes": left, "outcome": "fitted"}
            else:
                error = assert_clear_error(run, r"no space left on device", r"fix: free space on that volume",
                                           r"run `lakeforge run` again")
                stage = re.match(r"error: no space left on device: (.+?) could not write", error)
                assert stage, error
                if stage.group(1) != "the run":  # a stage: the table it wrote is named
                    assert re.search(r"could not write (bronze\.events|silver\.\w+|gold\.\w+|the warehouse)", error)
                outcome = {"free_bytes": left, "outcome": "failed clearly", "stage": stage.group(1),
                           "error": error[:220], "stages_done": list(run.finished)}
            deltas_readable(lake, TABLES)  # nothing half-written is visible
            assert_consistent_now(lake, warehouse)
            (lakehouse / FILLER).unlink()
            rerun = run_ok(project)  # space again: the next run finishes the work
            outcome["rerun_stages"] = [s for s, _ in rerun.finished.items()]
            assert_exact(lake, landing, warehouse)
            outcomes.append(outcome)
        idle = run_ok(project, "--json")
        assert idle.json()["status"] == "nothing_to_do"
        counts = assert_exact(lake, landing, warehouse)
    assert any(o["outcome"] == "failed clearly" for o in outcomes), outcomes
    record.update({"tmpfs_size": SIZE, "levels": outcomes, **counts})
    print("\n" + "\n".join(str(o) for o in outcomes))
