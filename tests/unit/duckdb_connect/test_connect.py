"""The one DuckDB connection factory (issue 21, point 4): every setting of the engine reaches the connection,
its cursors and the other connections of the same database, and a value DuckDB refuses names its setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import lakeforge
from lakeforge.config import DuckDBEngineConfig
from lakeforge.duckdb_connect import DEFAULTS, Settings, connect
from lakeforge.errors import ConfigError

SETTINGS = "SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('TimeZone')"


def _settings(con: duckdb.DuckDBPyConnection) -> tuple[str, int, str]:
    limit, threads, zone = con.execute(SETTINGS).fetchall()[0]
    return str(limit), int(threads), str(zone)


def test_the_engine_settings_reach_the_connection_and_its_cursors(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    settings = DuckDBEngineConfig(threads=1, memory_limit="300MB", temp_directory=str(spill))
    with connect(settings=settings) as con:
        assert _settings(con) == ("286.1 MiB", 1, "UTC")  # DuckDB shows 300 MB in MiB
        assert con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0] == str(spill)
        cursor = con.cursor()  # a plain SET TimeZone would leave a cursor in the machine's zone
        assert _settings(cursor) == ("286.1 MiB", 1, "UTC")
        cursor.close()


def test_a_file_database_keeps_them_for_every_connection(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    first = connect(path, settings=Settings(threads=2, memory_limit="200MB"))
    try:
        second = connect(path, settings=Settings(threads=2, memory_limit="200MB"))
        assert _settings(second) == ("190.7 MiB", 2, "UTC")
        second.close()
        first.execute("SET lock_configuration=true")  # as the web app's read-only warehouse does
        locked = connect(path, settings=Settings(memory_limit="1GB"))  # left as its first connection set it
        assert _settings(locked) == ("190.7 MiB", 2, "UTC")
        locked.close()
    finally:
        first.close()


def test_defaults_leave_duckdbs_own_limits_but_set_utc() -> None:
    plain = duckdb.connect()
    try:
        default_limit, default_threads = plain.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads')").fetchall()[0]
    finally:
        plain.close()
    with connect(settings=DEFAULTS) as con:
        assert _settings(con) == (default_limit, default_threads, "UTC")


def test_a_value_duckdb_refuses_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"engine\.memory_limit '4 lots' is refused by DuckDB"):
        connect(settings=Settings(memory_limit="4 lots"))


def test_importing_the_factory_imports_neither_duckdb_nor_pydantic() -> None:
    """The explorer's sandbox process and a run with nothing to do import it: it must stay light."""
    src = str(Path(lakeforge.__file__).resolve().parents[1])
    code = "import json, sys, lakeforge.duckdb_connect; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": src})
    assert proc.returncode == 0, proc.stderr
    loaded = {name.split(".")[0] for name in json.loads(proc.stdout)}
    assert not loaded & {"duckdb", "pydantic", "pyarrow"}
