"""The one way lakeforge opens DuckDB.

Every DuckDB connection lakeforge opens (the engine's, the warehouse's, the web app's, the helpers') comes from
:func:`connect`, with the engine settings of ``lakeforge.yml`` (``threads``, ``memory_limit``,
``temp_directory``) and the time zone UTC: a limit set there holds for all of them, and timestamps read the same
everywhere. What a call site needs beyond that stays at the site, on top (the web explorer's
``enable_external_access=false``, the warehouse's ``preserve_insertion_order=false``).

The module imports only the standard library, and DuckDB when a connection is opened: a run with nothing to do
never imports DuckDB, and the explorer's sandbox process, which opens the warehouse for each query, starts fast.
For the same reason :func:`connect` reads the settings through :class:`DuckDBSettings` (what
``DuckDBEngineConfig`` has), so that the sandbox is handed them as a plain :class:`Settings` instead of importing
pydantic (0.17 s a query).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lakeforge.errors import ConfigError
from lakeforge.sql import DUCKDB

if TYPE_CHECKING:
    import duckdb


class DuckDBSettings(Protocol):
    """What :func:`connect` reads of the settings: ``DuckDBEngineConfig`` (``engine:`` of lakeforge.yml) has it,
    and so does :class:`Settings`."""

    @property
    def threads(self) -> int | None: ...

    @property
    def memory_limit(self) -> str | None: ...

    @property
    def temp_directory(self) -> str | None: ...


@dataclass(frozen=True)
class Settings:
    """The settings as plain values: for a process that should not import pydantic (the explorer's sandbox), and
    for a call site that changes one of the configured ones (:meth:`of`). ``None`` leaves DuckDB's default."""

    threads: int | None = None
    memory_limit: str | None = None
    temp_directory: str | None = None

    @classmethod
    def of(cls, settings: DuckDBSettings, **changes: Any) -> Settings:
        """``settings`` copied, with ``changes`` (e.g. ``threads=1``) applied."""
        plain = cls(threads=settings.threads, memory_limit=settings.memory_limit,
                    temp_directory=settings.temp_directory)
        return replace(plain, **changes)


DEFAULTS = Settings()  # DuckDB's threads, memory limit and temporary directory: for a site that holds no data


def connect(path: str | Path | None = None, *, settings: DuckDBSettings,
            read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the DuckDB file ``path`` (``None``: a new in-memory database) with ``settings`` and UTC
    applied (:func:`configure`). The settings are given on every call, never taken from a default, so that no
    site forgets the configured limits."""
    import duckdb

    con = duckdb.connect(":memory:" if path is None else str(path), read_only=read_only)
    try:
        configure(con, settings=settings)
    except BaseException:
        con.close()
        raise
    return con


def configure(con: duckdb.DuckDBPyConnection, *, settings: DuckDBSettings) -> None:
    """Apply ``settings`` and UTC to ``con``'s database.

    These settings belong to the database instance, which DuckDB shares between the connections of a process to
    the same file. So a database whose configuration is locked (the web app's read-only warehouse: its first
    connection locks it) is left as that connection set it, and the temporary directory is set only when it
    differs: DuckDB refuses to switch one it has spilled to. ``SET GLOBAL TimeZone`` reaches the connection's
    cursors too (a plain ``SET TimeZone`` is the session's own: a cursor would read in the machine's zone)."""
    locked, temp = con.execute(
        "SELECT current_setting('lock_configuration'), current_setting('temp_directory')").fetchall()[0]
    if locked:
        return
    con.execute("SET GLOBAL TimeZone='UTC'")
    if settings.threads is not None:
        _set(con, "threads", str(int(settings.threads)))
    if settings.memory_limit:
        _set(con, "memory_limit", DUCKDB.literal(settings.memory_limit))
    if settings.temp_directory and os.path.abspath(settings.temp_directory) != temp:
        _set(con, "temp_directory", DUCKDB.literal(os.path.abspath(settings.temp_directory)))


def _set(con: duckdb.DuckDBPyConnection, name: str, value: str) -> None:
    """``SET name=value``; a value DuckDB refuses names the setting of lakeforge.yml it came from."""
    import duckdb

    try:
        con.execute(f"SET {name}={value}")
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"engine.{name} {value} is refused by DuckDB: {first}",
                          hint="fix engine: in lakeforge.yml, e.g. memory_limit: 4GB, threads: 4") from None


