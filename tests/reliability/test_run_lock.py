"""One run at a time per lakehouse, whatever happens to the lock file; a run is logged as crashed only when its
process is gone (issue 20, point 4)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakeforge.errors import RunLocked
from lakeforge.pipeline import events
from lakeforge.project import Project

HOLDER = """
import sys, time
from lakeforge.pipeline.runner import run_lock
from lakeforge.project import Project
with run_lock(Project(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


@pytest.fixture()
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "locked"
    Project.init(root).generate(machines=2, days=1, seed=3, files=1)
    with Project(root) as found:
        yield found


@pytest.fixture()
def holder(project: Project) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the run lock (as a run under way does)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(project.path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


def test_the_lock_holds_when_its_file_is_deleted(project: Project, holder: subprocess.Popen[str]) -> None:
    lock = project.path / "lakehouse" / "_lakeforge" / "run.lock"
    assert lock.exists()
    with pytest.raises(RunLocked, match="holds the lock"):
        project.run()
    lock.unlink()
    with pytest.raises(RunLocked, match="holds the lock"):  # a new file is not a new lock
        project.run()
    assert not project.catalog.exists("bronze.telemetry")
    holder.kill()
    holder.wait()
    assert project.run().status == "succeeded"  # the lock goes with its process


def _marker(project: Project, run_id: str, **fields: object) -> None:
    project.lakehouse.write_json_atomic(f"{events.MARKERS}/{run_id}.started",
                                        {"run_id": run_id, "started_at": "2026-12-07T00:00:00+00:00", **fields})


def test_a_marker_is_crashed_only_when_its_process_is_gone(project: Project,
                                                           holder: subprocess.Popen[str]) -> None:
    host = socket.gethostname()
    start = events.process_start(holder.pid)
    assert start is not None
    _marker(project, "running", pid=holder.pid, host=host, process_start=start)
    _marker(project, "reused-pid", pid=holder.pid, host=host, process_start=start + "0")  # another process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _marker(project, "dead", pid=int(dead.stdout), host=host, process_start="x")
    _marker(project, "old-marker", pid=int(dead.stdout), host=host)  # written before markers named the start
    assert sorted(events.log_crashed(project)) == ["dead", "old-marker", "reused-pid"]
    left = [info.path.rsplit("/", 1)[-1] for info in project.lakehouse.list_files(events.MARKERS)]
    assert left == ["running.started"]
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert events.log_crashed(project) == ["running"]


def test_a_run_marks_its_process(project: Project) -> None:
    events.mark_started(project, "me", "2026-12-07T00:00:00+00:00")
    marker = project.lakehouse.read_json(f"{events.MARKERS}/me.started")
    assert marker["pid"] == os.getpid() and marker["process_start"] == events.process_start(os.getpid())
    assert events.alive({**marker, "pid": os.getppid(), "process_start": events.process_start(os.getppid())})
