"""Standard reports benchmark (imported by bench/run.py).

The example project's reports (``reports/*.sql``: views in the DuckDB warehouse over the gold star schema) on
``machines`` machines x ``days`` days of hourly telemetry (1000 x 365: ~8.76M rows of fact_telemetry_hourly),
built through the real pipeline (generate -> ``lakeforge run``). Each report is read whole (``SELECT *``,
every row fetched as Arrow) ``repeat`` times over one read-only connection, round-robin with a reference query
in the same connection: a full scan of the fact table that touches every row. A report's figure is its best
time and its ratio to the reference's best (the ratio is what compares across machines). Each report is also
read once, cold, through the public API (``Project(path).report(name)``: opening the project and the
warehouse, planning the view, reading it). Target: every report under 1 s.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from lakeforge.generate import generate
from lakeforge.project import Project

TARGET_SECONDS = 1.0
FACT = "fact_telemetry_hourly"
REFERENCE = f"SELECT count(*), sum(readings), avg(vibration_avg) FROM {FACT}"


def _project(path: Path, *, memory_limit: str | None) -> Path:
    """The whole example project (every source, model and report), with the bench's engine memory limit."""
    if path.exists():
        shutil.rmtree(path)
    Project.init(path).close()
    if memory_limit:
        config_file = path / "lakeforge.yml"
        config = config_file.read_text()
        engine = f"engine: {{type: duckdb, memory_limit: {memory_limit}}}"
        if "engine: {type: duckdb}" not in config:
            raise SystemExit(f"{config_file}: no `engine: {{type: duckdb}}` line to set the memory limit on")
        config_file.write_text(config.replace("engine: {type: duckdb}", engine))
    return path


def _read(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[float, int]:
    """Seconds to run ``sql`` and fetch every row as Arrow, and the rows fetched."""
    started = time.perf_counter()
    table = con.sql(sql).to_arrow_table()
    return time.perf_counter() - started, table.num_rows


def timings(work: Path, *, machines: int = 1000, days: int = 365, repeat: int = 5,
            memory_limit: str | None = None) -> dict[str, Any]:
    path = _project(work / "reports-project", memory_limit=memory_limit)
    started = time.perf_counter()
    generated = generate(path / "landing", machines=machines, days=days, readings_per_hour=1, fmt="parquet",
                         files=12, seed=3)
    generate_seconds = time.perf_counter() - started
    print(f"reports: generated {generated.rows:,} rows in {generate_seconds:.1f}s", file=sys.stderr, flush=True)

    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lakeforge.cli", "run", "--json", "--project", str(path)],
                          capture_output=True, text=True)
    pipeline_seconds = time.perf_counter() - started
    records = sorted((path / "lakehouse" / "_lakeforge" / "runs").glob("*.json"))
    record = json.loads(records[-1].read_text()) if records else {"status": "no run record"}
    if proc.returncode != 0 or record["status"] != "succeeded":
        raise SystemExit(f"lakeforge run failed ({record['status']}): {record.get('error')}\n{proc.stderr[-2000:]}")
    print(f"reports: lakeforge run in {pipeline_seconds:.1f}s", file=sys.stderr, flush=True)

    names = [r.name for r in Project(path).reports()]
    # Cold, through the public API, before any other connection holds the database (DuckDB would share it).
    api: dict[str, float] = {}
    for name in names:
        started = time.perf_counter()
        Project(path).report(name)
        api[name] = time.perf_counter() - started

    con = duckdb.connect(str(path / "warehouse.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone='UTC'")  # as the warehouse's own connection (Project.report) does
        hourly_rows = int(con.execute(f"SELECT count(*) FROM {FACT}").fetchall()[0][0])
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        missing = sorted(set(names) - views)
        if missing:
            raise SystemExit(f"reports missing from the warehouse: {missing}")
        queries = {"__reference__": REFERENCE} | {name: f"SELECT * FROM {name}" for name in names}
        seconds: dict[str, list[float]] = {q: [] for q in queries}
        rows: dict[str, int] = {}
        for _ in range(repeat):  # round-robin, so load from other jobs on the machine hits every query alike
            for key, sql in queries.items():
                took, rows[key] = _read(con, sql)
                seconds[key].append(took)
    finally:
        con.close()

    reference = min(seconds["__reference__"])
    per_report = {}
    for name in names:
        best = min(seconds[name])
        per_report[name] = {
            "best_seconds": round(best, 4),
            "median_seconds": round(statistics.median(seconds[name]), 4),
            "ratio_to_reference": round(best / reference, 2),
            "rows": rows[name],
            "api_seconds": round(api[name], 4),
            "under_target": best < TARGET_SECONDS,
        }
    return {
        "date": dt.date.today().isoformat(),
        "machines": machines,
        "days": days,
        "hourly_rows": hourly_rows,
        "generate_seconds": round(generate_seconds, 2),
        "pipeline_seconds": round(pipeline_seconds, 2),
        "repeat": repeat,
        "memory_limit": memory_limit,
        "reference_query": REFERENCE,
        "reference_seconds": round(reference, 4),
        "reference_median_seconds": round(statistics.median(seconds["__reference__"]), 4),
        "target_seconds": TARGET_SECONDS,
        "all_under_target": all(r["under_target"] for r in per_report.values()),
        "reports": per_report,
    }
