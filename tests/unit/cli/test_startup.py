"""The fixed cost of a process: ``import lakeforge.cli`` (what every command pays, ``--help`` included) imports
none of the heavy libraries; each command imports what it uses when it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lakeforge

HEAVY = ("duckdb", "deltalake", "sqlglot", "pyarrow", "pandas", "numpy", "mlflow", "sklearn", "lightgbm", "fastapi",
         "pyspark", "pydantic", "yaml")
SRC = str(Path(lakeforge.__file__).resolve().parents[1])  # this checkout's lakeforge, in the child too


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, *args, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_cli_import_loads_no_heavy_module() -> None:
    proc = _python("import json, sys, lakeforge.cli; print(json.dumps(sorted(sys.modules)))")
    assert proc.returncode == 0, proc.stderr
    loaded = {name.split(".")[0] for name in json.loads(proc.stdout)}
    assert sorted(loaded & set(HEAVY)) == []


def test_help_works_without_heavy_modules() -> None:
    code = ("import json, sys\nfrom lakeforge.cli import main\nsys.argv = ['lakeforge', '--help']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "sys.stderr.write(json.dumps(sorted(sys.modules)))")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and "run" in proc.stdout and "Scaffold the equipment-telemetry" in proc.stdout
    loaded = {name.split(".")[0] for name in json.loads(proc.stderr)}
    assert sorted(loaded & set(HEAVY)) == []


def test_command_help_works() -> None:
    for command in (["run"], ["ml", "train"], ["deploy", "databricks"]):
        proc = subprocess.run([sys.executable, "-m", "lakeforge.cli", *command, "--help"], capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "--project" in proc.stdout
