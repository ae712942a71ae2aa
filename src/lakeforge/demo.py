"""``lakeforge demo``: the example project end to end, with a summary a person can read."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lakeforge.config import CONFIG_FILE
from lakeforge.errors import LakeforgeError
from lakeforge.pipeline.progress import reporter_for
from lakeforge.project import Project


def run_demo(path: Path, *, machines: int, days: int, console: Console, progress: Console) -> None:
    started = time.perf_counter()
    project = Project(path) if (path / CONFIG_FILE).exists() else Project.init(path)
    console.print(f"[bold]lakeforge demo[/] in {project.path}")
    generated = project.generate(machines=machines, days=days)
    console.print(f"generated {generated['rows']:,} rows of telemetry, events and master data "
                  f"in {generated['files']} files")
    with project:
        result = project.run(reporter=reporter_for(progress, quiet=False))
        if project.config.ml.risk.enabled:
            _train_and_score(project, console=console, progress=progress)
    stages = Table("stage", "rows in", "rows out", "dropped", "quarantined", "seconds", title="stages")
    for s in result.stages:
        stages.add_row(s.name, f"{s.rows_in:,}", f"{s.rows_out:,}", f"{s.rows_dropped:,}",
                       f"{s.rows_quarantined:,}", f"{s.seconds:.2f}")
    console.print(stages)
    status = project.status()
    layers = Table("table", "rows", "version", title="tables")
    for t in status["tables"]:
        layers.add_row(t["name"], f"{t['rows']:,}", str(t["version"]))
    console.print(layers)
    rules = Table("model", "rule", "action", "passed", "failed", title="data quality")
    for s in result.stages:
        for r in s.rules:
            rules.add_row(r.model, r.rule, r.action, f"{r.passed:,}", f"[red]{r.failed:,}[/]" if r.failed else "0")
    console.print(rules)
    top = project.query("SELECT machine_id, round(avg(vibration_avg), 2) AS vibration, sum(readings) AS readings "
                        "FROM fact_telemetry_daily GROUP BY 1 ORDER BY 2 DESC LIMIT 3", dialect="duckdb")
    console.print("machines with the highest vibration: " + ", ".join(
        f"#{r['machine_id']} ({r['vibration']})" for r in top.to_pylist()))
    models = Table("model", "machines", "operating h", "failures", "MTBF h", "MTTR h",
                   title="MTBF and MTTR per machine model (report mtbf_mttr_by_model)")
    for r in sorted(project.report("mtbf_mttr_by_model").to_pylist(), key=lambda r: str(r["model"])):
        models.add_row(str(r["model"]), str(r["machines"]), f"{r['operating_hours']:,}", str(r["failures"]),
                       "-" if r["mtbf_hours"] is None else f"{r['mtbf_hours']:,.0f}",
                       "-" if r["mttr_hours"] is None else f"{r['mttr_hours']:.1f}")
    console.print(models)
    if project.config.ml.risk.enabled or project.config.ml.anomalies.enabled:
        _show_ml(project, console=console)
    console.print(f"run {result.run_id} {result.status}; {result.bytes_processed:,} bytes in "
                  f"{time.perf_counter() - started:.1f}s in all")
    p = f"--project {path}"
    console.print("\n[bold]try next[/] (after `source .venv/bin/activate`)", soft_wrap=True)
    for line in (f"lakeforge query {p} \"SELECT * FROM fact_telemetry_hourly LIMIT 5\"",
                 f"lakeforge query {p} \"SELECT * FROM quarantine.silver_telemetry LIMIT 5\"",
                 f"lakeforge report {p}                        # the standard reports; then e.g.",
                 f"lakeforge report {p} fleet_availability",
                 f"lakeforge status {p}",
                 f"lakeforge query {p} \"SELECT * FROM anomalies ORDER BY score DESC LIMIT 5\"",
                 f"lakeforge ml models {p}          # the MLflow registry: champion and challenger",
                 f"lakeforge run {p}          # nothing to do until new files land",
                 f"lakeforge generate {p} --start 2024-02-01 && lakeforge run {p}"):
        console.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)


def _train_and_score(project: Project, *, console: Console, progress: Console) -> None:
    """The first time: train the failure model, make it the champion, score (``ml train``, ``promote``, ``score``)."""
    if project.champion() is None:
        try:
            trained = project.train()
        except LakeforgeError as exc:  # e.g. too few days of data for a time split: the rest of the demo stands
            console.print(f"no failure model trained: {exc.message} ({exc.hint})", highlight=False)
            return
        project.promote()
        f1 = trained["metrics"]["macro_f1"]
        console.print(f"trained {trained['model']} v{trained['version']} (macro F1 {f1:.2f} on "
                      f"{trained['rows_test']:,} holdout machine-hours) and made it the champion")
    project.score(reporter=reporter_for(progress, quiet=False))


def _show_ml(project: Project, *, console: Console) -> None:
    if project.catalog.exists("gold.machine_risk"):
        risk = project.query(
            "SELECT machine_id, arg_max(p_failure_24h, hour) AS p, arg_max(predicted_component, hour) AS component "
            "FROM machine_risk GROUP BY 1 ORDER BY 2 DESC LIMIT 5", dialect="duckdb")
        console.print("machines at risk (failure within 24 h, champion model): " + ", ".join(
            f"#{r['machine_id']} {r['p']:.0%}" + (f" ({r['component']})" if r["component"] != "none" else "")
            for r in risk.to_pylist()))
    if project.catalog.exists("gold.anomalies"):
        found = project.query("SELECT sensor, count(*) AS n FROM anomalies GROUP BY 1 ORDER BY 2 DESC",
                              dialect="duckdb")
        console.print("anomalies (gold.anomalies): " + ", ".join(f"{r['sensor']} {r['n']}" for r in found.to_pylist()))
