"""The explorer's query in a child process: the server's memory and time stay bounded whatever the query does.

DuckDB's ``memory_limit`` bounds its operators, not the strings a projection makes: ``SELECT repeat('x',
2000000) FROM range(500)`` builds one 1 GB vector before the first row can be fetched (measured: the server grew
from 376 MB to 4.3 GB and took 44.6 s). So each explorer query on a DuckDB warehouse runs here, in a process of
its own, which

- opens the warehouse through :func:`.readonly.connect_duckdb` (so :func:`lakeforge.duckdb_connect.connect`) with
  the web app's DuckDB settings (:func:`.readonly.web_settings`: the engine's of lakeforge.yml), then limits its
  own data segment (``RLIMIT_DATA``) to the memory limit DuckDB took from them plus :data:`HEADROOM`, so a query
  that builds more dies alone, with "the query needed more memory";
- fetches the result in small batches and stops at the row limit or at ``max_bytes`` of Arrow data, whichever
  comes first (the answer says which);
- writes the rows it kept to stdout as an Arrow IPC stream, and how it ended as one JSON line on stderr.

The parent (:func:`run`) kills it at the timeout, so the limit covers running, fetching and sending alike, and
reads at most ``max_bytes`` (plus the stream's framing) back.
"""

from __future__ import annotations

import json
import pickle
import re
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeforge.duckdb_connect import Settings

HEADROOM = 1 << 30  # bytes above DuckDB's memory limit for the interpreter, DuckDB's vectors and the batches
BATCH_ROWS = 64  # rows per fetched batch: the byte limit is checked this often
_UNITS = {"": 1, "b": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50}


@dataclass(frozen=True)
class Request:
    path: str  # the DuckDB warehouse file
    sql: str  # the checked and wrapped query
    params: dict[str, Any]
    rows: int  # rows to fetch at most (the limit plus one)
    max_bytes: int
    settings: Settings  # the web app's DuckDB settings (a plain copy: the child does not import pydantic)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    kind: str = ""  # when not ok: "failed" (DuckDB's error), "memory", "timeout", "unavailable"
    message: str = ""
    bytes_capped: bool = False  # the rows stop at max_bytes, not at the row limit
    ipc: bytes = b""


def memory_bytes(limit: str) -> int:
    """DuckDB's memory limit (``2GB``, ``512MiB``) in bytes."""
    found = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", limit)
    if not found or found.group(2).lower() not in _UNITS:
        raise ValueError(f"not a memory size: {limit!r} (e.g. 2GB, 512MB)")
    return int(float(found.group(1)) * _UNITS[found.group(2).lower()])


def run(request: Request, *, timeout: float) -> Outcome:
    """Run ``request`` in a child process, killed after ``timeout`` seconds."""
    try:
        proc = subprocess.run([sys.executable, "-m", "lakeforge.web.sandbox"], input=pickle.dumps(request),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Outcome(ok=False, kind="timeout")
    last = proc.stderr.decode(errors="replace").rstrip().rpartition("\n")[2]
    try:
        told = json.loads(last)
    except ValueError:  # killed (the kernel, the data limit in C++ code) before it could say
        told = {"ok": False, "kind": "memory" if proc.returncode else "failed", "message": last[-300:]}
    return Outcome(ok=bool(told.get("ok")), kind=str(told.get("kind", "")), message=str(told.get("message", "")),
                   bytes_capped=bool(told.get("bytes_capped")), ipc=proc.stdout if told.get("ok") else b"")


def _within(batch: Any, room: int) -> Any:
    """The longest head of ``batch`` whose Arrow data fits in ``room`` bytes (maybe no row)."""
    lo, hi = 0, batch.num_rows  # the head of lo rows fits; of hi + 1 does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if batch.slice(0, mid).nbytes <= room else (lo, mid - 1)
    return batch.slice(0, lo)


def _execute(request: Request) -> dict[str, Any]:
    import duckdb
    import pyarrow as pa

    from lakeforge.web.readonly import Unavailable, connect_duckdb

    try:
        con = connect_duckdb(Path(request.path), settings=request.settings)
    except Unavailable as exc:
        return {"ok": False, "kind": "unavailable", "message": exc.message}
    try:
        _cap(con)
        reader = con.sql(request.sql, params=request.params or None).to_arrow_reader(batch_size=BATCH_ROWS)
        kept, rows, size, capped = [], 0, 0, False
        for batch in reader:
            batch = batch.slice(0, max(0, request.rows - rows))
            if size + batch.nbytes > request.max_bytes:
                batch = _within(batch, request.max_bytes - size)
                capped = True
            kept.append(batch)
            rows, size = rows + batch.num_rows, size + batch.nbytes
            if capped or rows >= request.rows:
                break
        with pa.ipc.new_stream(sys.stdout.buffer, reader.schema) as out:
            for batch in kept:
                out.write_batch(batch)
        return {"ok": True, "bytes_capped": capped}
    except duckdb.OutOfMemoryException as exc:
        return {"ok": False, "kind": "memory", "message": str(exc).splitlines()[0]}
    except MemoryError:
        return {"ok": False, "kind": "memory", "message": "out of memory"}
    except duckdb.Error as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return {"ok": False, "kind": "failed", "message": lines[0] if lines else type(exc).__name__}
    finally:
        con.close()


def _cap(con: Any) -> None:
    """Limit this process's data segment to DuckDB's memory limit plus :data:`HEADROOM`. The limit is read back
    from DuckDB, which parses every way lakeforge.yml may write it (``4GB``, ``4g``, ``50%``), before the query
    runs: opening the warehouse allocates little."""
    limit = memory_bytes(str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]))
    cap = limit + HEADROOM if limit < 2**62 else resource.RLIM_INFINITY  # 2**62 and more: DuckDB's "no limit"
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))


def main() -> None:
    request: Request = pickle.loads(sys.stdin.buffer.read())
    told = _execute(request)
    sys.stdout.flush()
    sys.stderr.write("\n" + json.dumps(told) + "\n")


if __name__ == "__main__":
    main()
