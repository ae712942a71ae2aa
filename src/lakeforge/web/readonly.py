"""The web app's read-only DuckDB connection to the warehouse (the pages' queries and the explorer's sandbox).

A module of its own, importing only DuckDB: the explorer runs each query in a child process
(:mod:`lakeforge.web.sandbox`) that opens the warehouse through :func:`connect_duckdb` and should start fast.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from lakeforge.errors import LakeforgeError

MEMORY_LIMIT = "2GB"  # of the web app's read-only warehouse connections (the explorer's queries)


class Unavailable(LakeforgeError):
    """The warehouse cannot be read right now (a run is loading it, or it does not exist yet)."""


_CONNECT = threading.Lock()
_DUCKDB_SETTINGS = ("SET TimeZone='UTC'", "SET memory_limit='{memory_limit}'", "SET python_enable_replacements=false",
                    "SET enable_external_access=false", "SET lock_configuration=true")


def connect_duckdb(path: Path, *, memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the DuckDB warehouse that cannot read or write any other file, attach a
    database, install or load an extension, change a setting, or read Python objects by name (DuckDB's
    replacement scans of the caller's variables).

    DuckDB shares one database instance between the connections of a process to the same file: the first web
    connection configures it (UTC, memory limit, ``enable_external_access=false``, then
    ``lock_configuration=true``); later ones find it locked and check it is so."""
    with _CONNECT:
        try:
            con = duckdb.connect(str(path), read_only=True)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            raise Unavailable(f"the warehouse {path.name} cannot be opened now: {str(exc).splitlines()[0]}",
                              hint="a run is probably loading it; try again when it is done") from None
        try:
            locked, external, python = con.execute(
                "SELECT current_setting('lock_configuration'), current_setting('enable_external_access'), "
                "current_setting('python_enable_replacements')").fetchall()[0]
            if not locked:
                for statement in _DUCKDB_SETTINGS:
                    con.execute(statement.format(memory_limit=memory_limit))
            elif external or python:  # locked by someone else with files allowed: not ours to use
                raise Unavailable(f"the warehouse {path.name} is open in this process with external access on",
                                  hint="restart lakeforge serve")
        except BaseException:
            con.close()
            raise
    return con
