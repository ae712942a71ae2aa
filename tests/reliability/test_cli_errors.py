"""Without --debug every failure is one ``error:`` line and a ``fix:`` line with a nonzero exit, never a traceback
(issue 20, point 7): a lakehouse the run cannot write, a warehouse another process holds, an error lakeforge did
not expect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakeforge import cli
from lakeforge.project import Project

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


def _lakeforge(*args: str, wrap: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(wrap or []), sys.executable, "-m", "lakeforge.cli", *args], capture_output=True,
                          text=True, timeout=300)


def _one_error(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.startswith(("error:", "fix:"))]
    assert [line.split(":")[0] for line in lines] == ["error", "fix"], proc.stderr
    return lines


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "plant"
    Project.init(root).generate(machines=2, days=1, seed=5, files=1)
    return root


def _read_only(folder: Path, command: list[str]) -> list[str]:
    """``command`` run with ``folder`` read-only: a read-only bind mount in a mount namespace of its own when this
    is root (to whom permissions are no obstacle), else the folder's write permission taken away."""
    if os.geteuid() == 0:
        script = f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command]
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)
    return command


def test_a_lakehouse_the_run_cannot_write(project: Path) -> None:
    assert _lakeforge("run", "--project", str(project)).returncode == 0
    lakehouse = project / "lakehouse"
    command = [sys.executable, "-m", "lakeforge.cli", "run", "--project", str(project)]
    try:
        proc = subprocess.run(_read_only(lakehouse, command), capture_output=True, text=True, timeout=300)
    finally:
        for path in [lakehouse, *lakehouse.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
    error, fix = _one_error(proc)
    assert error.startswith(f"error: cannot write the lakehouse at {lakehouse}") and (
        "Read-only file system" in error or "Permission denied" in error)
    assert "writable folder" in fix


def test_query_on_a_warehouse_another_process_holds(project: Path) -> None:
    assert _lakeforge("run", "--project", str(project)).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(120)", str(project / "warehouse.duckdb")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        proc = _lakeforge("query", "SELECT count(*) FROM dim_machine", "--project", str(project))
    finally:
        holder.kill()
        holder.wait()
    error, fix = _one_error(proc)
    assert error.startswith(f"error: cannot open the warehouse {project / 'warehouse.duckdb'}")
    assert "another lakeforge process may be writing it" in fix
    assert _lakeforge("query", "SELECT count(*) AS n FROM dim_machine", "--project", str(project)).returncode == 0


def test_an_unexpected_error_is_one_line_and_how_to_report_it(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    def boom(self: Project, **_: object) -> None:
        raise RuntimeError("the flux capacitor\nsecond line")

    monkeypatch.setattr(Project, "status", boom)
    monkeypatch.setattr(sys, "argv", ["lakeforge", "status", "--project", str(project)])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error: unexpected RuntimeError: the flux capacitor\n" in err and "second line" not in err
    assert "fix: this is a bug in lakeforge: run the command again with --debug" in err
    cli.STATE["debug"] = False
    monkeypatch.setattr(sys, "argv", ["lakeforge", "--debug", "status", "--project", str(project)])
    with pytest.raises(RuntimeError, match="flux capacitor"):  # --debug: the exception itself
        cli.main()
    cli.STATE["debug"] = False
