"""The web app's read-only DuckDB connection to the warehouse (the pages' queries and the explorer's sandbox), and
the web app's DuckDB settings (:func:`web_settings`).

A module of its own, importing only DuckDB and :mod:`lakeforge.duckdb_connect` (the standard library): the
explorer runs each query in a child process (:mod:`lakeforge.web.sandbox`) that opens the warehouse through
:func:`connect_duckdb` and should start fast.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from lakeforge.duckdb_connect import DuckDBSettings, Settings, connect
from lakeforge.errors import LakeforgeError

MEMORY_LIMIT = "2GB"  # the web app's DuckDB memory limit when lakeforge.yml's engine sets none


def web_settings(settings: DuckDBSettings, *, memory_limit: str | None = None) -> Settings:
    """The DuckDB settings of the web app's connections: the engine's of lakeforge.yml (``settings``), with
    ``memory_limit`` when given (``WebSettings``), else the engine's, else :data:`MEMORY_LIMIT`: DuckDB's own
    default (80% of RAM) is too much for a server beside the pipeline, and the explorer's sandbox needs a limit to
    size its process by (:mod:`lakeforge.web.sandbox`)."""
    return Settings.of(settings, memory_limit=memory_limit or settings.memory_limit or MEMORY_LIMIT)


WEB_DEFAULTS = Settings(memory_limit=MEMORY_LIMIT)  # for a caller without a project (benchmarks, tests)


class Unavailable(LakeforgeError):
    """The warehouse cannot be read right now (a run is loading it, or it does not exist yet)."""


_CONNECT = threading.Lock()
_RESTRICTIONS = ("SET python_enable_replacements=false", "SET enable_external_access=false",
                 "SET lock_configuration=true")


def connect_duckdb(path: Path, *, settings: DuckDBSettings = WEB_DEFAULTS) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the DuckDB warehouse that cannot read or write any other file, attach a
    database, install or load an extension, change a setting, or read Python objects by name (DuckDB's
    replacement scans of the caller's variables). ``settings``: :func:`web_settings`.

    DuckDB shares one database instance between the connections of a process to the same file: the first web
    connection configures it (the factory's settings: UTC, threads, memory limit; then
    ``enable_external_access=false`` and ``lock_configuration=true``); later ones find it locked and check it is
    so."""
    with _CONNECT:
        try:
            con = connect(path, settings=settings, read_only=True)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            raise Unavailable(f"the warehouse {path.name} cannot be opened now: {str(exc).splitlines()[0]}",
                              hint="a run is probably loading it; try again when it is done") from None
        try:
            locked, external, python = con.execute(
                "SELECT current_setting('lock_configuration'), current_setting('enable_external_access'), "
                "current_setting('python_enable_replacements')").fetchall()[0]
            if not locked:
                for statement in _RESTRICTIONS:
                    con.execute(statement)
            elif external or python:  # locked by someone else with files allowed: not ours to use
                raise Unavailable(f"the warehouse {path.name} is open in this process with external access on",
                                  hint="restart lakeforge serve")
        except BaseException:
            con.close()
            raise
    return con
