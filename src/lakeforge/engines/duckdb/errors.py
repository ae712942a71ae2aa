"""DuckDB's errors, mapped once where DuckDB is called: the engine's models and the warehouse file.

- Another process holds the database file's write lock: DuckDB raises an ``IOException`` ("Could not set lock on
  file ... Conflicting lock is held in <program> (PID n)"), or a ``ConnectionException`` when this very process has
  the file open with another configuration (the dashboards' read-only copy). Both pass when the holder lets go:
  transient.
- DuckDB read an Arrow stream it was given (a Delta table of the lakehouse) and the stream failed: DuckDB raises an
  ``InvalidInputException`` "reading the stream registered as 'x' failed: <the stream's error>". The stream's
  error is the object store's, quoted: :func:`lakeforge.storage.errors.failure_in` decides.
- Anything else (SQL, types, constraints, out of memory, a file that is not a DuckDB database) is permanent.

DuckDB is imported where it is called (a run with nothing to do never imports it), so here as well.
"""

from __future__ import annotations

import re

from lakeforge.storage.errors import Failure, failure_in

_STREAM = re.compile(r"reading the stream registered as '[^']*' failed: (.*)", re.DOTALL)


def locked(exc: BaseException) -> bool:
    """The database file is held by another process (its lock), or by this one with another configuration."""
    import duckdb

    if isinstance(exc, duckdb.IOException):
        return "Could not set lock on file" in str(exc)
    return isinstance(exc, duckdb.ConnectionException) and "different configuration" in str(exc)


def stream_failure(exc: BaseException) -> Failure | None:
    """What the storage said when an Arrow stream DuckDB was reading failed; None when that is not what failed.
    (DuckDB's result read as an Arrow stream in turn brings DuckDB's error as Arrow's: an ``OSError`` with its
    text.)"""
    import duckdb
    import pyarrow as pa

    if not isinstance(exc, duckdb.InvalidInputException | OSError | pa.ArrowException):
        return None
    found = _STREAM.search(str(exc))
    return failure_in(found.group(1)) if found else None


def transient(exc: BaseException) -> bool:
    """Whether DuckDB's error may go away when the same work is tried again."""
    if locked(exc):
        return True
    failed = stream_failure(exc)
    return failed is not None and failed.transient
