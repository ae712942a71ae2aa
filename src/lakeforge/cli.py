"""The ``lakeforge`` command: each command a few lines calling ``Project``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lakeforge.errors import LakeforgeError
from lakeforge.ops.progress import reporter_for

if TYPE_CHECKING:
    from lakeforge.project import Project

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="lakeforge: equipment telemetry from a landing zone to Delta Lake and a warehouse.")
out = Console()
err = Console(stderr=True)
STATE: dict[str, Any] = {"debug": False}

ProjectOpt = Annotated[Path, typer.Option("--project", "-p", help="project folder")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]


@app.callback()
def main_options(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False) -> None:
    STATE["debug"] = debug


def _project(path: Path, *, engine: str | None = None) -> Project:
    """The project at ``path``. Imported here, not at the top: what it imports (DuckDB, Delta, Arrow, sqlglot ...)
    is for the commands that open a project, not for ``--help`` or a mistyped option."""
    from lakeforge.project import Project

    _freeze_imports()  # what that import made too
    return Project(path, engine=engine)


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")


@app.command()
def init(path: Annotated[Path, typer.Argument(help="folder for the new project")],
         name: Annotated[str | None, typer.Option(help="the project's name (default: from the folder's name)")] = None,
         force: Annotated[bool, typer.Option(help="overwrite an existing project's example files")] = False) -> None:
    """Scaffold the equipment-telemetry example project."""
    from lakeforge.project import Project

    project = Project.init(path, force=force, name=name or Project.name_for(path))
    out.print(f"created project [bold]{project.config.name}[/] in {project.path}")


@app.command()
def generate(project: ProjectOpt = Path("."),
             machines: Annotated[int, typer.Option(min=1)] = 50,
             days: Annotated[int, typer.Option(min=1)] = 7,
             seed: int = 42,
             format: Annotated[str, typer.Option("--format", help="jsonl, csv or parquet")] = "jsonl",
             files: Annotated[int, typer.Option(min=1)] = 8,
             start: Annotated[str, typer.Option(help="first day, YYYY-MM-DD")] = "2024-01-01",
             as_json: JsonOpt = False) -> None:
    """Write realistic synthetic telemetry into the project's landing zone."""
    if format not in ("jsonl", "csv", "parquet"):
        raise LakeforgeError(f"--format {format!r} is not supported", hint="use jsonl, csv or parquet")
    result = _project(project).generate(machines=machines, days=days, seed=seed, fmt=format, files=files,
                                       start=start)
    if as_json:
        _emit(result)
    else:
        out.print(f"wrote {result['rows']:,} rows in {result['files']} files to {result['path']}")


@app.command()
def run(project: ProjectOpt = Path("."),
        full_refresh: Annotated[bool, typer.Option("--full-refresh", help="recompute every model")] = False,
        select: Annotated[list[str] | None,
                          typer.Option("--select", "-s", help="models: name, name+, +name, gold.*")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would run, and why; change nothing")] = False,
        engine: Annotated[str | None, typer.Option("--engine", help="duckdb or spark (overrides lakeforge.yml)")
                          ] = None,
        task: Annotated[str | None, typer.Option("--task", help="one stage only: ingest:<source>, a model, "
                                                 "warehouse (what orchestrators call)")] = None,
        watch: Annotated[bool, typer.Option("--watch", help="keep running as files arrive (Ctrl-C stops)")] = False,
        interval: Annotated[float, typer.Option(help="--watch: seconds between looks at the landing zone")] = 1.0,
        as_json: JsonOpt = False) -> None:
    """Run every stage incrementally: ingest, silver and gold models, warehouse load."""
    if dry_run:
        plan(project=project, select=select, full_refresh=full_refresh, as_json=as_json)
        return
    if watch:
        _watch(project, interval=interval, as_json=as_json)
        return
    with _project(project, engine=engine) as proj:
        try:
            result = proj.run(full_refresh=full_refresh, select=select, task=task,
                              reporter=reporter_for(err, quiet=as_json))
        except LakeforgeError as exc:
            if as_json and getattr(exc, "run", None) is not None:
                _emit(exc.run.to_dict())  # type: ignore[attr-defined]
            raise
    if as_json:
        _emit(result.to_dict())
    elif result.status == "nothing_to_do":
        out.print("nothing to do: no new files and every table is up to date")
    else:
        out.print(f"run {result.run_id} {result.status} in {result.seconds:.2f}s")


def _watch(project: Path, *, interval: float, as_json: bool) -> None:
    def report(outcome: object) -> None:
        if isinstance(outcome, LakeforgeError):
            run_ = getattr(outcome, "run", None)
            if as_json and run_ is not None:
                _emit(run_.to_dict())
            err.print(f"[red]error: {outcome.message}[/]", highlight=False, soft_wrap=True)
        elif as_json:
            _emit(outcome.to_dict())  # type: ignore[attr-defined]
        else:
            out.print(f"run {outcome.run_id} {outcome.status} in {outcome.seconds:.2f}s")  # type: ignore[attr-defined]

    if not as_json:
        err.print(f"watching the landing zone every {interval}s; Ctrl-C stops")
    with _project(project) as proj:
        proj.watch(interval=interval, reporter=reporter_for(err, quiet=as_json), on_run=report)


@app.command()
def plan(project: ProjectOpt = Path("."),
         select: Annotated[list[str] | None, typer.Option("--select", "-s", help="models to plan")] = None,
         full_refresh: Annotated[bool, typer.Option("--full-refresh")] = False,
         as_json: JsonOpt = False) -> None:
    """The model graph and what a run would do, and why, without running anything."""
    data = _project(project).plan(select=select, full_refresh=full_refresh)
    if as_json:
        _emit(data)
        return
    table = Table("step", "would", "recomputes", "why")
    for s in data["sources"]:
        table.add_row(f"ingest {s['name']}", "run" if s["run"] else "skip", "new files" if s["run"] else "",
                      f"{s['files']} new files ({s['bytes']:,} bytes)" if s["run"] else "no new files")
    for m in data["models"]:
        why = m["reason"]
        if m["incremental"] and m["run"] and m["strategy"] == "full" and m["incremental"]["strategy"] != "full":
            why += f" (incrementally: {m['incremental']['strategy']})"
        table.add_row(escape(f"{m['name']} ({m['kind']})"), f"run ({m['strategy']})" if m["run"] else "skip",
                      escape(m["recompute"]), escape(why))
    out.print(table)


@app.command()
def profile(table: Annotated[str, typer.Argument(help="e.g. silver.telemetry")],
            project: ProjectOpt = Path("."),
            version: Annotated[int | None, typer.Option(help="a Delta version (default: the latest)")] = None,
            as_json: JsonOpt = False) -> None:
    """Column profile of a lakehouse table: null rate, distinct, min, max, quantiles, histogram."""
    with _project(project) as proj:
        data = proj.profile(table, version=version)
    if as_json:
        _emit(data)
        return
    out.print(f"{data['table']} v{data['version']}: {data['rows']:,} rows")
    grid = Table("column", "type", "nulls", "distinct", "min", "max", "p50")
    for c in data["columns"]:
        grid.add_row(c["name"], c["type"], f"{c['null_rate']:.1%}", f"{c['distinct']:,}", str(c["min"]),
                     str(c["max"]), str(c.get("quantiles", {}).get("p50", "")))
    out.print(grid)


@app.command()
def optimize(tables: Annotated[list[str] | None, typer.Argument(help="tables (default: all)")] = None,
             project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Compact small files of lakehouse tables; Z-order models that declare cluster_by."""
    done = _project(project).optimize(tables)
    if as_json:
        _emit(done)
        return
    for d in done:
        out.print(f"{d['table']}: {d['files_removed']} files compacted into {d['files_added']}"
                  + (f", Z-ordered by {', '.join(d['zorder'])}" if d["zorder"] else ""))


@app.command()
def vacuum(tables: Annotated[list[str] | None, typer.Argument(help="tables (default: all)")] = None,
           project: ProjectOpt = Path("."),
           retention_hours: Annotated[int, typer.Option(help="keep files newer versions need")] = 168,
           apply: Annotated[bool, typer.Option("--apply", help="delete (default: only list)")] = False,
           as_json: JsonOpt = False) -> None:
    """Remove files no version within the retention needs. A dry run unless --apply."""
    done = _project(project).vacuum(tables, retention_hours=retention_hours, apply=apply)
    if as_json:
        _emit(done)
        return
    for d in done:
        verb = "deleted" if d["deleted"] else "would delete"
        out.print(f"{d['table']}: {verb} {len(d['files'])} files")
    if not apply:
        out.print("dry run: pass --apply to delete")


@app.command()
def status(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Tables with rows, versions and freshness; quarantine; backlog; the last run."""
    data = _project(project).status()
    if as_json:
        _emit(data)
        return
    table = Table("table", "rows", "version", "last modified", "freshness (s)")
    for t in data["tables"]:
        table.add_row(t["name"], f"{t['rows']:,}", str(t["version"]), t["last_modified"], str(t["freshness_seconds"]))
    out.print(table)
    out.print(f"quarantine rows: {data['quarantine_rows']:,}")
    for name, backlog in data["backlog"].items():
        out.print(f"backlog {name}: {backlog['files']} files, {backlog['bytes']:,} bytes")
        if backlog.get("changed_after_ingest"):
            out.print(f"[yellow]changed after ingest {name}: {backlog['changed_after_ingest']} files[/yellow] (their "
                      "new content is not ingested; `lakeforge runs` and the event log name them)")
    last = data["last_run"]
    if last:
        out.print(f"last run: {last['run_id']} {last['status']} ({last['seconds']}s)")


@app.command()
def runs(project: ProjectOpt = Path("."), as_json: JsonOpt = False,
         limit: Annotated[int, typer.Option(help="how many runs, newest first")] = 20) -> None:
    """Run history from the event log: status, time, rows, bytes, cost, errors (crashed runs included)."""
    with _project(project) as proj:
        history = proj.runs(limit=limit)
    if as_json:
        _emit(history)
        return
    table = Table("run", "status", "started", "seconds", "rows in", "MB in", "cost $", "error")
    for r in history:
        status = r["status"] if r["status"] in ("succeeded", "nothing_to_do") else f"[red]{r['status']}[/red]"
        table.add_row(r["run_id"], status, str(r["started_at"] or ""), f"{r['seconds'] or 0:.1f}",
                      f"{r['rows_in'] or 0:,}", f"{(r['bytes_in'] or 0) / 1e6:,.1f}", f"{r['cost'] or 0:.4f}",
                      (r["error"] or "").split("\n")[0][:80])
    out.print(table)


@app.command()
def query(sql: Annotated[str, typer.Argument(help="read-only SQL")],
          project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Query the warehouse (and lakehouse tables as bronze.x, silver.x, gold.x), read-only."""
    _print_rows(_project(project).query(sql), as_json=as_json)


def _print_rows(result: Any, *, as_json: bool) -> None:
    """An Arrow table as JSON (``columns``, ``rows``) or as a table on the terminal."""
    rows = [list(r.values()) for r in result.to_pylist()]
    if as_json:
        _emit({"columns": result.column_names, "rows": rows})
        return
    table = Table(*result.column_names)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    out.print(table)


@app.command()
def serve(project: ProjectOpt = Path("."),
          host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port of the dashboards, /metrics and /health")] = 8642,
          scheduler: Annotated[bool, typer.Option(help="run the cron schedules (and alert checks)")] = True) -> None:
    """Serve the dashboards and SQL explorer, /metrics (Prometheus) and /health, and run the project's schedules
    until stopped. Prints the URL to open, with the access token (LAKEFORGE_TOKEN, else a random one)."""
    from lakeforge.ops.serve import serve as run_server

    run_server(_project(project), host=host, port=port, scheduler=scheduler)


@app.command()
def backfill(project: ProjectOpt = Path("."),
             start: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD")] = "",
             end: Annotated[str, typer.Option("--to", help="last day, YYYY-MM-DD (included)")] = "",
             select: Annotated[list[str] | None, typer.Option("--select", "-s", help="models (default: all)")] = None,
             as_json: JsonOpt = False) -> None:
    """Recompute the selected models' rows of a date range from their upstream, idempotently, then load."""
    with _project(project) as proj:
        result = proj.backfill(start=start, end=end, select=select)
    if as_json:
        _emit(result)
        return
    for item in result["models"]:
        out.print(f"{item['model']}: {item['rows_deleted']:,} rows replaced by {item['rows_written']:,} "
                  f"({item['column']} in {result['from']} .. {result['to']})")


alerts_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                         help="Alert rules: what fires now, and checks between runs.")
app.add_typer(alerts_app, name="alerts")


@alerts_app.callback()
def alerts_status(ctx: typer.Context, project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """The alerts firing now (with when they began and were last sent)."""
    if ctx.invoked_subcommand is not None:
        return
    from lakeforge.ops.alerts import status as alert_status

    with _project(project) as proj:
        active = alert_status(proj)
    if as_json:
        _emit(active)
        return
    for item in active:
        out.print(f"[red]{item['name']}[/red] ({item['severity']}): {item['message']} — since {item['since']}")
    if not active:
        out.print("no alert is firing")


@alerts_app.command("check")
def alerts_check(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Evaluate every rule now and notify (what `lakeforge serve` does every few minutes)."""
    from lakeforge.ops.alerts import evaluate

    with _project(project) as proj:
        sent = evaluate(proj)
    if as_json:
        _emit(sent)
        return
    for item in sent:
        out.print(f"{item['state']}: {item['name']}: {item['message']}", soft_wrap=True)


ml_app = typer.Typer(no_args_is_help=True, help="Machine learning: anomaly detection and predictive maintenance.")
app.add_typer(ml_app, name="ml")


@ml_app.command("evaluate")
def ml_evaluate(dataset: Annotated[str, typer.Option(help="cmapss | nab")],
                data_dir: Annotated[Path, typer.Option(help="the dataset's folder (its published layout)")],
                subset: Annotated[str, typer.Option(help="cmapss: FD001 .. FD004")] = "FD001",
                seed: Annotated[int, typer.Option(help="random seed")] = 42,
                as_json: JsonOpt = False) -> None:
    """Evaluate on a public benchmark: C-MAPSS remaining useful life (RMSE, PHM08 score) or NAB (score per
    stream, standard profile)."""
    if dataset == "cmapss":
        from lakeforge.ml.cmapss import evaluate as evaluate_cmapss

        result: dict[str, Any] = evaluate_cmapss(data_dir, subset=subset, seed=seed)
    elif dataset == "nab":
        from lakeforge.ml.nab import evaluate as evaluate_nab

        result = evaluate_nab(data_dir)
    else:
        raise LakeforgeError(f"unknown dataset {dataset!r}", hint="use --dataset cmapss or --dataset nab")
    if as_json:
        _emit(result)
        return
    for key, value in result.items():
        out.print(f"{key}: {value}")


TrackingOpt = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else <project>/mlflow/mlflow.db)")]


@ml_app.command("train")
def ml_train(project: ProjectOpt = Path("."), seed: Annotated[int, typer.Option(help="random seed")] = 42,
             num_boost_round: Annotated[int | None, typer.Option(min=1, help="boosting rounds (default 300)")] = None,
             tracking_uri: TrackingOpt = None, as_json: JsonOpt = False) -> None:
    """Train the failure-within-24 h model on gold.machine_features, log it to MLflow, register it (challenger)."""
    from lakeforge.ml.registry import train

    with _project(project) as proj:
        result = train(proj, seed=seed, tracking_uri=tracking_uri,
                       **({} if num_boost_round is None else {"num_boost_round": num_boost_round}))
    if as_json:
        _emit(result)
        return
    m = result["metrics"]
    out.print(f"{result['model']} version {result['version']} is the {result['alias']}: macro F1 "
              f"{m['macro_f1']:.3f}, AUC-PR (any failure) {m.get('auc_pr_any_failure', float('nan')):.3f} on "
              f"{result['rows_test']:,} holdout rows (run {result['run_id']})", soft_wrap=True)


@ml_app.command("promote")
def ml_promote(project: ProjectOpt = Path("."), tracking_uri: TrackingOpt = None, as_json: JsonOpt = False) -> None:
    """Make the challenger the champion if it beats the champion's macro F1 on the current holdout."""
    from lakeforge.ml.registry import promote

    with _project(project) as proj:
        result = promote(proj, tracking_uri=tracking_uri)
    if as_json:
        _emit(result)
        return
    verdict = "promoted" if result["promoted"] else "not promoted"
    out.print(f"{result['model']} version {result['challenger']} {verdict}: {result['reason']}; "
              f"champion: version {result['champion']}", soft_wrap=True)


@ml_app.command("score")
def ml_score(project: ProjectOpt = Path("."),
             full_refresh: Annotated[bool, typer.Option("--full-refresh", help="rescore everything")] = False,
             as_json: JsonOpt = False) -> None:
    """Score now (as every run does): gold.anomalies and gold.machine_risk with the champion, then the warehouse."""
    with _project(project) as proj:
        result = proj.score(full_refresh=full_refresh, reporter=reporter_for(err, quiet=as_json))
    if as_json:
        _emit(result.to_dict())
        return
    for s in result.stages:
        out.print(f"{s.name}: {s.status}: {s.detail}", soft_wrap=True, highlight=False, markup=False)


@ml_app.command("models")
def ml_models(project: ProjectOpt = Path("."), tracking_uri: TrackingOpt = None, as_json: JsonOpt = False) -> None:
    """The registered versions of the project's model, with aliases and holdout metrics."""
    from lakeforge.ml.registry import models

    with _project(project) as proj:
        versions = models(proj, tracking_uri=tracking_uri)
    if as_json:
        _emit(versions)
        return
    table = Table("version", "aliases", "macro F1", "AUC-PR", "seed", "run")
    for v in versions:
        m = v["metrics"]
        table.add_row(v["version"], ", ".join(v["aliases"]), f"{m.get('macro_f1', float('nan')):.3f}",
                      f"{m.get('auc_pr_any_failure', float('nan')):.3f}", str(v["seed"]), str(v["run_id"]))
    out.print(table if versions else "no model is registered yet: `lakeforge ml train`")


@app.command()
def report(name: Annotated[str | None, typer.Argument(help="the report; without it, list the reports")] = None,
           project: ProjectOpt = Path("."), as_json: JsonOpt = False,
           window_days: Annotated[float | None, typer.Option(help="slo: the window (default: "
                                                               "monitoring.slo.window_days)")] = None) -> None:
    """Show a report's rows from the warehouse, or list the project's reports; `slo`: the service-level
    objectives (success rate, p95 freshness, DQ accuracy, recovery time, cost per GB) against their targets."""
    if name == "slo":
        from lakeforge.ops.slo import compute, render

        with _project(project) as proj:
            slo = compute(proj, window_days=window_days)
        if as_json:
            _emit(slo)
        else:
            render(slo, out)
        if not slo["met"]:
            raise typer.Exit(1)
        return
    with _project(project) as proj:
        if name is None:
            listing = [{"name": r.name, "materialize": r.materialize, "description": r.description}
                       for r in proj.reports()]
            if as_json:
                _emit(listing)
            for item in listing if not as_json else []:
                out.print(f"{item['name']}: {' '.join(str(item['description'] or '').split())}")
            return
        result = proj.report(name)
    _print_rows(result, as_json=as_json)


deploy = typer.Typer(no_args_is_help=True, help="Write what deploying the project needs.")
app.add_typer(deploy, name="deploy")
warehouse_app = typer.Typer(no_args_is_help=True, help="The warehouse that gold is loaded into.")
app.add_typer(warehouse_app, name="warehouse")


@warehouse_app.command("verify")
def warehouse_verify(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Compare every loaded warehouse table with gold: rows, and per partition rows and a checksum (exit 1 when
    they differ)."""
    with _project(project) as proj:
        checks = proj.verify_warehouse()
    if as_json:
        _emit(checks)
    for check in checks if not as_json else []:
        if check["ok"]:
            out.print(f"{check['table']}: ok ({check['gold_rows']:,} rows, {check['partitions']} partitions)")
        else:
            where = ", ".join(f"{d['partition']} (gold {d['gold_rows']:,}, warehouse {d['warehouse_rows']:,})"
                              for d in check["differing"])
            if not where and check["gold_rows"] != check["warehouse_rows"]:
                where = "row counts"
            why = [f"in {where}"] if where else []
            if check["stale_source"]:
                why.append("loaded from another Delta table (the lakehouse was created again since): "
                           "`lakeforge run` reloads it in full")
            out.print(f"[red]{check['table']}: differs[/red] {'; '.join(why)}")
    if any(not c["ok"] for c in checks):
        raise typer.Exit(1)


@deploy.command("iam")
def deploy_iam(project: ProjectOpt = Path("."),
               output: Annotated[Path | None, typer.Option("--output", "-o", help="write it to this file")] = None,
               ) -> None:
    """The least-privilege AWS IAM policy for the project's buckets and prefixes."""
    from lakeforge.deploy import write_policy

    policy = _project(project).iam_policy()
    if output is None:
        _emit(policy)
    else:
        write_policy(policy, output)
        out.print(f"wrote the IAM policy to {output}")


@deploy.command("airflow")
def deploy_airflow(project: ProjectOpt = Path("."),
                   output: Annotated[Path | None, typer.Option(
                       "--out", "-o", help="folder (or .py file) for the DAG; default: <project>/deploy/airflow/")
                   ] = None,
                   lakeforge_bin: Annotated[str | None, typer.Option(
                       "--lakeforge-bin", help="the lakeforge command on the Airflow workers "
                       "(default: deploy.airflow.lakeforge_bin)")] = None,
                   ) -> None:
    """An Airflow 3 DAG file: one task per stage (`lakeforge run --task`), scheduled and retried as `deploy:` says."""
    from lakeforge.deploy.airflow import dag_id, write_dag

    proj = _project(project)
    path = write_dag(proj, out=output or proj.path / "deploy" / "airflow", lakeforge_bin=lakeforge_bin)
    out.print(f"wrote the Airflow DAG {dag_id(proj)} ({len(proj.tasks())} tasks) to {path}", soft_wrap=True)


@deploy.command("databricks")
def deploy_databricks(project: ProjectOpt = Path("."),
                      output: Annotated[Path | None, typer.Option(
                          "--out", "-o", help="folder to write; default: <project>/deploy/databricks/ (--as pipeline: "
                          "deploy/databricks-pipeline/, or deploy/spark-pipeline/ for --target spark)")] = None,
                      kind: Annotated[str, typer.Option(
                          "--as", help="job: an Asset Bundle whose job runs lakeforge, one task per stage; pipeline: "
                          "the project as a Spark Declarative Pipeline")] = "job",
                      target: Annotated[str, typer.Option(
                          "--target", help="--as pipeline: databricks (an Asset Bundle), or spark (what open-source "
                          "Spark's spark-pipelines runs locally)")] = "databricks",
                      as_json: JsonOpt = False) -> None:
    """A Databricks Asset Bundle (a job, or a declarative pipeline), or a pipeline open-source Spark runs."""
    from lakeforge.deploy.databricks import write_job_bundle
    from lakeforge.deploy.pipeline import TARGETS, default_out, write_pipeline
    from lakeforge.errors import ConfigError

    if kind not in ("job", "pipeline") or target not in TARGETS:
        raise ConfigError(f"--as {kind} --target {target} is not a known combination",
                          hint="use --as job, --as pipeline, or --as pipeline --target spark")
    proj = _project(project)
    if kind == "job":
        if target != "databricks":
            raise ConfigError("--target is for --as pipeline", hint="a job bundle always targets Databricks")
        written = write_job_bundle(proj, output or proj.path / "deploy" / "databricks")
    else:
        written = write_pipeline(proj, output or default_out(proj, target=target), target=target)
    if as_json:
        _emit({"out": str(written.out), "files": [str(f) for f in written.files], "notes": written.notes})
    else:
        out.print(f"wrote {len(written.files)} files to {written.out}", soft_wrap=True)
    for note in written.notes:
        err.print(f"note: {note}", highlight=False, soft_wrap=True)


@app.command("import-gx")
def import_gx(suite: Annotated[Path, typer.Argument(help="a GX expectation suite (.json)")],
              project: ProjectOpt = Path("."),
              model: Annotated[str | None, typer.Option("--model", "-m",
                                                        help="append the rules to this model's header")] = None,
              action: Annotated[str, typer.Option(help="action of every rule: warn, drop, quarantine, fail")] = "warn",
              as_json: JsonOpt = False) -> None:
    """Import a Great Expectations suite as rules: print the header lines, or append them to --model."""
    from lakeforge.errors import ConfigError
    from lakeforge.quality.gx import import_suite, merge_into_header

    proj = _project(project)
    target = None
    if model is not None:
        target = next((m for m in proj.models() if m.name == model), None)
        if target is None:
            raise ConfigError(f"no model {model}", hint="name a model as layer.table, e.g. silver.telemetry")
    existing = [e.name for e in target.config.expectations] if target else []
    try:
        result = import_suite(suite, action=action, dialect=proj.config.dialect, existing=existing)
        if target is not None:
            target.path.write_text(merge_into_header(target.path.read_text(encoding="utf-8"), result),
                                   encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot import {suite}: {exc}",
                          hint="pass a suite's JSON (GX: suite.to_json_dict()); see docs/data-quality.md") from None
    if as_json:
        _emit(result.to_dict())
    elif target is None:
        sys.stdout.write(result.header())
    else:
        out.print(f"{target.path}: {len(result.expectations)} rules added")
    for item in result.unsupported:
        err.print(f"not imported: #{item['index']} {item['type']}: {item['reason']}", highlight=False, soft_wrap=True)
    for note in result.notes:
        err.print(f"note: {note}", highlight=False, soft_wrap=True)


@app.command()
def demo(path: Annotated[Path, typer.Argument(help="project folder")] = Path("lakeforge-demo"),
         machines: Annotated[int, typer.Option(min=1)] = 50,
         days: Annotated[int, typer.Option(min=1)] = 14) -> None:
    """Create the example project (if needed), generate data, run it, and show what happened."""
    from lakeforge.demo import run_demo

    run_demo(path, machines=machines, days=days, console=out, progress=err)


def main() -> None:
    """The ``lakeforge`` command (the console script; ``python -m lakeforge.cli``)."""
    from lakeforge.redaction import RedactingStream

    # everything the process prints (the consoles, --json, warnings, logs) goes through the redaction of secrets
    sys.stdout = RedactingStream(sys.stdout)
    sys.stderr = RedactingStream(sys.stderr)
    _freeze_imports()
    try:
        app()
    except LakeforgeError as exc:
        if STATE["debug"]:
            if exc.__cause__ is not None:
                raise exc.__cause__ from None
            raise
        _fail(exc.message, exc.hint)
    except KeyboardInterrupt:
        _fail("interrupted", "a run stopped part way is resumed by the next `lakeforge run`", status=130)
    except Exception as exc:  # not one of ours: one line, and how to see and report the rest
        if STATE["debug"]:
            raise
        _fail(*_unexpected(exc))


def _fail(message: str, hint: str | None, *, status: int = 1) -> None:
    err.print(f"[red]error: {escape(message)}[/]", highlight=False, soft_wrap=True)
    if hint:  # plain text: a hint like pip install 'lakeforge[serve]' is not markup
        err.print(f"fix: {hint}", highlight=False, soft_wrap=True, markup=False)
    sys.exit(status)


def _unexpected(exc: Exception) -> tuple[str, str]:
    """One line for an error lakeforge did not expect, and the fix: a file the system refused, or a bug to report."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return (f"{exc.strerror}{where}", "check that the path exists and this user may read and write it; "
                "`lakeforge --debug ...` shows where it happened")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (f"unexpected {type(exc).__name__}: {lines[0] if lines else 'no message'}",
            "this is a bug in lakeforge: run the command again with --debug and report what it prints "
            "(the traceback), with the command and `pip show lakeforge`")


def _freeze_imports() -> None:
    """Move what the imports made (the command line's at start, a project's modules when a command opens one: up to
    100,000 objects of Arrow, NumPy, pydantic, rich ..., alive as long as the process) out of the garbage
    collector's reach. Otherwise every full collection during the
    command, and those Python runs while it shuts down, traverse them all again: 0.1-0.2 s of a `lakeforge run`
    process, measured. Objects made later are collected as before. Not once DuckDB is loaded (the commands load it
    when they need it): its extension reports, at exit, objects of its own that a frozen cycle keeps alive."""
    import gc

    if "duckdb" not in sys.modules:
        gc.freeze()


if __name__ == "__main__":
    main()
