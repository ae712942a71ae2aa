"""Dashboards benchmark (imported by bench/run.py; alone: ``bench/run.py --only dashboards``).

Each dashboard's queries, exactly as its page runs them (:func:`lakeforge.web.queries.run_dashboard` through the
web app's :class:`~lakeforge.web.store.Store`), on ``machines`` machines x ``days`` days of hourly telemetry
(1000 x 365: ~8.76M rows of ``fact_telemetry_hourly``), built through the real pipeline (generate of Parquet,
one reading an hour, then ``lakeforge run``; the example project without ``machine_features`` and the ML stage,
which the dashboards do not read). Then, at full size and with the ML stage's columns:

- ``machine_risk``: a score for every machine-hour (~8.76M rows) and ``anomalies``: ~1% of machine-hours, made in
  the warehouse by SQL (the benchmark times reading them, not making them);
- the event log: a year of hourly runs (copies of the real run's rows, shifted by an hour each, 1% failed, 0.2%
  crashed), as the operations page would read after a year in production.

Timed: the snapshot build (once per warehouse load); then ``repeat`` rounds (round-robin, so other load on the
machine hits every case alike), each running every dashboard with several filter sets (no filter, a site, a
model, a month, all three; the equipment page on a different machine each round, over the year (daily values)
and over two weeks (hourly values)), and in the same round a reference on the warehouse: a full scan of the
fact table (``SELECT count(*), sum(readings), avg(vibration_avg)``) on a read-only connection like the web
app's. Reported: p50/p95 per dashboard (over all its cases), per case and per query, and p95 over the
reference's p50 (ratios compare across machines). ``page`` adds rendering the HTML. Target: every dashboard's
p95 under 100 ms.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import reports  # type: ignore[import-not-found]  # bench/reports.py, beside this file
from deltalake import DeltaTable, write_deltalake

from lakeforge.generate import generate
from lakeforge.pipeline import events
from lakeforge.project import Project
from lakeforge.web import pages, queries
from lakeforge.web.queries import Filters
from lakeforge.web.store import Store, connect_duckdb

TARGET_MS = 100.0
FACT = "fact_telemetry_hourly"
REFERENCE = f"SELECT count(*), sum(readings), avg(vibration_avg) FROM {FACT}"
ML_TABLES = (
    """CREATE OR REPLACE TABLE machine_risk AS
    SELECT machine_id, hour, p AS p_failure_24h, p * 0.4 AS p_comp1, p * 0.3 AS p_comp2, p * 0.2 AS p_comp3,
           p * 0.1 AS p_comp4, CASE WHEN p < 0.3 THEN 'none' ELSE 'comp' || (1 + machine_id % 4) END
             AS predicted_component,
           'pdm_failure_24h' AS model_name, '1' AS model_version, hour + INTERVAL 1 HOUR AS scored_at,
           'bench' AS run_id
    FROM (SELECT machine_id, hour,
                 least(1.0, (hash(machine_id, hour) % 1000) / 1000.0 * vibration_avg / 60.0) AS p
          FROM fact_telemetry_hourly)""",
    """CREATE OR REPLACE TABLE anomalies AS
    SELECT machine_id, sensor, hour AS ts, CASE WHEN sensor = 'multivariate' THEN NULL ELSE vibration_avg END AS value,
           0.8 + (hash(machine_id, hour, 's') % 200) / 1000.0 AS score, 'far from the rolling median' AS reason,
           'bench' AS detector, 'bench' AS run_id
    FROM (SELECT machine_id, hour, vibration_avg,
                 ['volt_avg', 'rotate_avg', 'pressure_avg', 'vibration_avg', 'multivariate'][
                   CAST(1 + hash(hour, machine_id) % 5 AS BIGINT)] AS sensor
          FROM fact_telemetry_hourly WHERE hash(machine_id, hour, 'a') % 100 = 0)""",
)


def _build(path: Path, *, machines: int, days: int, memory_limit: str | None) -> dict[str, float]:
    """The example project at size, through generate and ``lakeforge run`` (no machine_features, no ML stage)."""
    reports._project(path, memory_limit=memory_limit)
    (path / "models" / "gold" / "machine_features.sql").unlink(missing_ok=True)
    config = path / "lakeforge.yml"
    text = config.read_text()
    if "\nml:" in text:  # the dashboards read the ML tables; making them is the ML benchmark's business
        config.write_text(text[:text.index("\nml:") + 1])
    started = time.perf_counter()
    generated = generate(path / "landing", machines=machines, days=days, readings_per_hour=1, fmt="parquet",
                         files=12, seed=3)
    generate_seconds = time.perf_counter() - started
    print(f"dashboards: generated {generated.rows:,} rows in {generate_seconds:.1f}s", file=sys.stderr, flush=True)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lakeforge.cli", "run", "--json", "--project", str(path)],
                          capture_output=True, text=True)
    pipeline_seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"lakeforge run failed:\n{proc.stderr[-3000:]}")
    print(f"dashboards: lakeforge run in {pipeline_seconds:.1f}s", file=sys.stderr, flush=True)
    return {"generate_seconds": round(generate_seconds, 2), "pipeline_seconds": round(pipeline_seconds, 2)}


def _add_ml_tables(warehouse: Path) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(warehouse))
    try:
        con.execute("SET TimeZone='UTC'")
        for sql in ML_TABLES:
            con.execute(sql)
        con.execute("CHECKPOINT")
        return {"machine_risk_rows": int(con.execute("SELECT count(*) FROM machine_risk").fetchall()[0][0]),
                "anomaly_rows": int(con.execute("SELECT count(*) FROM anomalies").fetchall()[0][0])}
    finally:
        con.close()


def _add_event_log_year(project: Project, *, hours: int = 365 * 24, seed: int = 5) -> dict[str, int]:
    """A year of hourly runs ending now: the real run's rows, shifted back an hour per run."""
    log = events.read(project)
    real = log.filter(pc.equal(log["event"], "run")).to_pylist()
    if not real:
        raise SystemExit("dashboards: the event log has no run to copy")
    run_id = real[0]["run_id"]
    rows = log.filter(pc.equal(log["run_id"], run_id))
    first = pc.min(rows["started_at"]).as_py()
    now = dt.datetime.now(dt.UTC).replace(minute=5, second=0, microsecond=0)
    rng = random.Random(seed)
    copies = []
    for k in range(1, hours + 1):
        shift = pa.scalar(int((now - dt.timedelta(hours=k) - first).total_seconds() * 1e6), pa.duration("us"))
        status = "failed" if rng.random() < 0.01 else "crashed" if rng.random() < 0.002 else None
        table = rows.set_column(rows.schema.get_field_index("run_id"), "run_id",
                                pa.array([f"bench-{k:05d}"] * rows.num_rows))
        for column in ("started_at", "ended_at"):
            index = table.schema.get_field_index(column)
            table = table.set_column(index, column, pc.add(table[column], shift).cast(events.TS))
        if status is not None:
            is_run = pc.equal(table["event"], "run")
            index = table.schema.get_field_index("status")
            table = table.set_column(index, "status", pc.if_else(is_run, pa.scalar(status), table["status"]))
        copies.append(table)
    year = pa.concat_tables(copies).cast(events.SCHEMA)
    uri = project.lakehouse.join("_lakeforge", "event_log")
    write_deltalake(uri, year, mode="append", storage_options=project.lakehouse.storage_options)
    total = DeltaTable(uri, storage_options=project.lakehouse.storage_options).to_pyarrow_table().num_rows
    return {"event_log_rows": total, "runs_in_event_log": hours + len(real)}


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(values, 50)) * 1000, 2),
            "p95_ms": round(float(np.percentile(values, 95)) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2)}


def _cases(project: Project, store: Store) -> list[tuple[str, str, Filters, bool]]:
    """(dashboard, case, filters, per machine): what the rounds run."""
    snapshot = store.refresh()
    last = snapshot.last_date or dt.date.today()
    month = Filters(start=last - dt.timedelta(days=29), end=last)
    with snapshot.cursor() as cursor:
        site = int(cursor.execute("SELECT site_id FROM machines GROUP BY 1 ORDER BY count(*) DESC, 1").fetchall()[0][0])
        model = str(cursor.execute("SELECT model FROM machines GROUP BY 1 ORDER BY count(*) DESC, 1").fetchall()[0][0])
    all_three = Filters(site=site, model=model, start=month.start, end=month.end)
    today = dt.datetime.now(dt.UTC).date()
    return [
        ("executive", "year", Filters(), False),
        ("executive", "site", Filters(site=site), False),
        ("executive", "model", Filters(model=model), False),
        ("executive", "month", month, False),
        ("executive", "site+model+month", all_three, False),
        ("fleet", "year", Filters(), False),
        ("fleet", "site", Filters(site=site), False),
        ("ops", "last 7 days", Filters(), False),
        ("ops", "90 days", Filters(start=today - dt.timedelta(days=89), end=today), False),
        ("ops", "year", Filters(start=today - dt.timedelta(days=365), end=today), False),
        ("ops", "site", Filters(site=site), False),
        ("equipment", "year (daily)", Filters(), True),
        ("equipment", "two weeks (hourly)", Filters(start=last - dt.timedelta(days=13), end=last), True),
        ("equipment", "site+month", Filters(site=site, start=month.start, end=month.end), True),
    ]


def _render(project: Project, name: str, dashboard: queries.Dashboard, machine: int | None) -> str:
    ctx = pages.Context(project=project.config.name, path="/", filters=dashboard.filters,
                        options={"site": [], "model": []})
    if name == "executive":
        return pages.executive(dashboard, ctx)
    if name == "fleet":
        return pages.fleet(dashboard, ctx)
    if name == "equipment":
        return pages.equipment(dashboard, ctx, machine or 1)
    slo = project.config.monitoring.slo
    return pages.operations(dashboard, ctx, targets={"success_rate": slo.success_rate,
                                                     "freshness_minutes": slo.freshness_minutes,
                                                     "dq_accuracy": slo.dq_accuracy, "cost_per_gb": slo.cost_per_gb},
                            sla=lambda _: slo.freshness_minutes)


def timings(work: Path, *, machines: int = 1000, days: int = 365, repeat: int = 30,
            memory_limit: str | None = None, reuse: bool = False) -> dict[str, Any]:
    path = work / "dashboards-project"
    built: dict[str, Any] = {}
    if not (reuse and (path / "warehouse.duckdb").exists()):
        built = _build(path, machines=machines, days=days, memory_limit=memory_limit)
        built |= _add_ml_tables(path / "warehouse.duckdb")
        with Project(path) as project:
            built |= _add_event_log_year(project)
    project = Project(path)
    store = Store(project, background=False)
    try:
        started = time.perf_counter()
        snapshot = store.refresh()
        snapshot_seconds = time.perf_counter() - started
        started = time.perf_counter()
        store.events.refresh(force=True)
        event_rows = store.events.rows
        events_seconds = time.perf_counter() - started
        cases = _cases(project, store)
        with snapshot.cursor() as cursor:
            machine_ids = [int(r[0]) for r in cursor.execute("SELECT machine_id FROM machines").fetchall()]
        rng = random.Random(11)
        totals: dict[str, list[float]] = defaultdict(list)
        per_case: dict[tuple[str, str], list[float]] = defaultdict(list)
        per_page: dict[str, list[float]] = defaultdict(list)
        per_query: dict[tuple[str, str], list[float]] = defaultdict(list)
        reference: list[float] = []
        problems: set[str] = set()
        con = connect_duckdb(store.source.duckdb_path, settings=store.source.settings)  # type: ignore[arg-type]
        try:
            hourly_rows = int(con.execute(f"SELECT count(*) FROM {FACT}").fetchall()[0][0])
            for round_no in range(repeat + 1):  # the first round warms caches and is not counted
                round_times: list[tuple[str, str, float, float, dict[str, float]]] = []
                started = time.perf_counter()
                con.execute(REFERENCE).fetchall()
                scan = time.perf_counter() - started
                for name, case, filters, per_machine in cases:
                    machine = rng.choice(machine_ids) if per_machine else None
                    started = time.perf_counter()
                    dashboard = queries.run_dashboard(store, name, filters, machine=machine)
                    took = time.perf_counter() - started
                    _render(project, name, dashboard, machine)
                    page = time.perf_counter() - started
                    for query, answer in dashboard.results.items():
                        if answer.error:
                            problems.add(f"{name}/{query}: {answer.error}")
                    round_times.append((name, case, took, page, {q: r.seconds for q, r in dashboard.results.items()}))
                if round_no == 0:
                    continue
                reference.append(scan)
                for name, case, took, page, parts in round_times:
                    totals[name].append(took)
                    per_case[(name, case)].append(took)
                    per_page[name].append(page)
                    for query, seconds in parts.items():
                        per_query[(name, query)].append(seconds)
        finally:
            con.close()
        snapshot_bytes = snapshot.path.stat().st_size if snapshot.path else 0
        held = snapshot.warehouse_seconds
        tables = sorted(snapshot.tables)
    finally:
        store.close()
        project.close()
    if problems:
        raise SystemExit("dashboards: queries failed:\n" + "\n".join(sorted(problems)))
    ref = _ms(reference)
    result: dict[str, Any] = {
        "date": dt.date.today().isoformat(), "machines": machines, "days": days, "hourly_rows": hourly_rows,
        **built, "event_log_rows": event_rows, "snapshot_tables": tables,
        "snapshot_seconds": round(snapshot_seconds, 2), "snapshot_warehouse_seconds": round(held, 2),
        "snapshot_mb": round(snapshot_bytes / 1e6, 1),
        "event_log_load_seconds": round(events_seconds, 2), "repeat": repeat, "memory_limit": memory_limit,
        "reference_query": REFERENCE, "reference_p50_ms": ref["p50_ms"], "reference_p95_ms": ref["p95_ms"],
        "target_ms": TARGET_MS, "dashboards": {},
    }
    for name in ("executive", "fleet", "ops", "equipment"):
        figures = _ms(totals[name])
        result["dashboards"][name] = {
            **figures,
            "p95_vs_reference_p50": round(figures["p95_ms"] / ref["p50_ms"], 2) if ref["p50_ms"] else None,
            "page_p95_ms": _ms(per_page[name])["p95_ms"],
            "under_target": figures["p95_ms"] < TARGET_MS,
            "cases": {case: _ms(v) for (n, case), v in per_case.items() if n == name},
            "queries": {query: _ms(v) for (n, query), v in per_query.items() if n == name},
        }
    result["all_under_target"] = all(d["under_target"] for d in result["dashboards"].values())
    return result


if __name__ == "__main__":  # bench/run.py --only dashboards is the usual way
    print(json.dumps(timings(Path(__file__).resolve().parent / ".work", reuse="--reuse" in sys.argv), indent=1,
                     default=str))
