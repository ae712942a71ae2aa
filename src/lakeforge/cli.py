"""The ``lakeforge`` command: each command a few lines calling ``Project``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lakeforge import console
from lakeforge.console import emit as _emit
from lakeforge.console import err, out
from lakeforge.errors import LakeforgeError
from lakeforge.pipeline.progress import reporter_for

if TYPE_CHECKING:
    from lakeforge.project import Project
    from lakeforge.results import RunResult

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="lakeforge: equipment telemetry from a landing zone to Delta Lake and a warehouse.")
STATE: dict[str, Any] = {"debug": False}

# exit codes (docs/cli.md): 0 ok; 1 an error (a failed run, a bad input: `error:` and `fix:` lines); 2 a usage
# error (click's: an unknown option, a missing argument); 3 the command worked and found something wrong (an alert
# firing, a check failing: warehouse verify, report slo); 130 interrupted (Ctrl-C)
EXIT_FOUND = 3

ProjectOpt = Annotated[Path, typer.Option("--project", "-p", help="project folder")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]
# one name per concept: --out for where a command writes; --output is kept, hidden, for scripts that used it
OutputAlias = Annotated[Path | None, typer.Option("--output", hidden=True)]


def _version(value: bool) -> None:
    if value:
        from lakeforge import __version__

        out.print(f"lakeforge {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
                 version: Annotated[bool, typer.Option("--version", help="print the version and exit",
                                                       callback=_version, is_eager=True)] = False) -> None:
    STATE["debug"] = debug


def _flags_without_a_type() -> None:
    """Typer 0.29 shows each option's type in --help, a flag's as ``<bool>`` although it takes no value: a flag
    shows none (what click and argparse print)."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_a_type()


def _project(path: Path, *, engine: str | None = None) -> Project:
    """The project at ``path``. Imported here, not at the top: what it imports (DuckDB, Delta, Arrow, sqlglot ...)
    is for the commands that open a project, not for ``--help`` or a mistyped option."""
    from lakeforge.project import Project

    _freeze_imports()  # what that import made too
    return Project(path, engine=engine)


@app.command()
def init(path: Annotated[Path, typer.Argument(help="folder for the new project")],
         name: Annotated[str | None, typer.Option(help="the project's name (default: from the folder's name)")] = None,
         force: Annotated[bool, typer.Option(help="overwrite an existing project's example files")] = False,
         origin: Annotated[str | None, typer.Option(
             "--from", help="a folder or s3:// prefix of sample files: profile them and write sources and silver "
             "models for them instead of the example")] = None,
         as_json: JsonOpt = False) -> None:
    """Scaffold the equipment-telemetry example project, or (--from) a project for your own files."""
    from lakeforge.project import Project

    if origin is not None:
        if force:
            raise typer.BadParameter("--force cannot go with --from: init --from never overwrites a project")
        scaffold = Project.init_from(path, origin=origin, name=name)
        console.show(scaffold.to_dict(), as_json=as_json, text=console.scaffolded)
        return
    project = Project.init(path, force=force, name=name or Project.name_for(path))
    out.print(f"created project [bold]{project.config.name}[/] in {project.path}")


@app.command()
def equipment(project: ProjectOpt = Path("."),
              check: Annotated[bool, typer.Option("--check", help="write nothing; exit 3 when a generated file "
                                                  "differs from what the mapping gives")] = False,
              as_json: JsonOpt = False) -> None:
    """Write the standard gold models and reports from lakeforge.yml's equipment: mapping (files whose first line
    marks them as generated; a file without it is yours and is kept)."""
    fates = _project(project).equipment(check=check)
    console.show(fates, as_json=as_json, text=console.equipment_files)
    if check and any(f in ("stale", "missing") for f in fates.values()):
        raise typer.Exit(3)


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
    console.show(result, as_json=as_json, text=console.generated)


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
    else:
        console.run_line(result)


def _watch(project: Path, *, interval: float, as_json: bool) -> None:
    def report(outcome: RunResult | LakeforgeError) -> None:
        if isinstance(outcome, LakeforgeError):
            run_ = getattr(outcome, "run", None)
            if as_json and run_ is not None:
                _emit(run_.to_dict())
            err.print(f"[red]error: {outcome.message}[/]", highlight=False, soft_wrap=True)
        elif as_json:
            _emit(outcome.to_dict())
        else:
            console.run_line(outcome)

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
    console.show(data, as_json=as_json, text=console.plan)


@app.command()
def profile(table: Annotated[str, typer.Argument(help="e.g. silver.telemetry")],
            project: ProjectOpt = Path("."),
            version: Annotated[int | None, typer.Option(help="a Delta version (default: the latest)")] = None,
            as_json: JsonOpt = False) -> None:
    """Column profile of a lakehouse table: null rate, distinct, min, max, quantiles, histogram."""
    with _project(project) as proj:
        data = proj.profile(table, version=version)
    console.show(data, as_json=as_json, text=console.profile)


@app.command()
def optimize(tables: Annotated[list[str] | None, typer.Argument(help="tables (default: all)")] = None,
             project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Compact small files of lakehouse tables; Z-order models that declare cluster_by."""
    done = _project(project).optimize(tables)
    console.show(done, as_json=as_json, text=console.optimized)


@app.command()
def vacuum(tables: Annotated[list[str] | None, typer.Argument(help="tables (default: all)")] = None,
           project: ProjectOpt = Path("."),
           retention_hours: Annotated[int, typer.Option(help="keep files newer versions need")] = 168,
           apply: Annotated[bool, typer.Option("--apply", help="delete (default: only list)")] = False,
           as_json: JsonOpt = False) -> None:
    """Remove files no version within the retention needs. A dry run unless --apply."""
    done = _project(project).vacuum(tables, retention_hours=retention_hours, apply=apply)
    console.show(done, as_json=as_json, text=lambda d: console.vacuumed(d, applied=apply))


@app.command()
def status(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Tables with rows, versions and freshness; quarantine; backlog; the last run."""
    data = _project(project).status()
    console.show(data, as_json=as_json, text=console.status)


@app.command()
def runs(project: ProjectOpt = Path("."), as_json: JsonOpt = False,
         limit: Annotated[int, typer.Option(help="how many runs, newest first")] = 20) -> None:
    """Run history from the event log: status, time, rows, bytes, cost, errors (crashed runs included)."""
    with _project(project) as proj:
        history = proj.runs(limit=limit)
    console.show(history, as_json=as_json, text=console.runs)


@app.command()
def query(sql: Annotated[str, typer.Argument(help="read-only SQL")],
          project: ProjectOpt = Path("."),
          dialect: Annotated[str | None, typer.Option(help="the SQL's dialect (default: the project's, as in its "
                                                      "models; duckdb: passed through)")] = None,
          as_json: JsonOpt = False) -> None:
    """Query the warehouse (and lakehouse tables as bronze.x, silver.x, gold.x), read-only."""
    console.rows(_project(project).query(sql, dialect=dialect), as_json=as_json)


@app.command()
def serve(project: ProjectOpt = Path("."),
          host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port of the dashboards, /metrics and /health")] = 8642,
          scheduler: Annotated[bool, typer.Option(help="run the cron schedules (and alert checks)")] = True) -> None:
    """Serve the dashboards and SQL explorer, /metrics (Prometheus) and /health, and run the project's schedules
    until stopped. Prints the URL to open, with the access token (LAKEFORGE_TOKEN, else a random one)."""
    _project(project).serve(host=host, port=port, scheduler=scheduler)


@app.command()
def backfill(project: ProjectOpt = Path("."),
             start: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD")] = "",
             end: Annotated[str, typer.Option("--to", help="last day, YYYY-MM-DD (included)")] = "",
             select: Annotated[list[str] | None, typer.Option("--select", "-s", help="models (default: all)")] = None,
             as_json: JsonOpt = False) -> None:
    """Recompute the selected models' rows of a date range from their upstream, idempotently, then load."""
    with _project(project) as proj:
        result = proj.backfill(start=start, end=end, select=select)
    console.show(result, as_json=as_json, text=console.backfilled)


alerts_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                         help="Alert rules: what fires now, and checks between runs.")
app.add_typer(alerts_app, name="alerts")


@alerts_app.callback()
def alerts_status(ctx: typer.Context, project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """The alerts firing now (with when they began and were last sent)."""
    if ctx.invoked_subcommand is not None:
        return
    with _project(project) as proj:
        active = proj.alerts()
    console.show(active, as_json=as_json, text=console.alerts_firing)
    if active:
        raise typer.Exit(EXIT_FOUND)


@alerts_app.command("check")
def alerts_check(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Evaluate every rule now and notify (what `lakeforge serve` does every few minutes); exit 3 while one fires."""
    with _project(project) as proj:
        sent = proj.check_alerts()
        firing = proj.alerts()
    console.show(sent, as_json=as_json, text=console.alerts_sent)
    if firing:
        raise typer.Exit(EXIT_FOUND)


ml_app = typer.Typer(no_args_is_help=True, help="Machine learning: anomaly detection and predictive maintenance.")
app.add_typer(ml_app, name="ml")


@ml_app.command("evaluate")
def ml_evaluate(dataset: Annotated[str, typer.Option(help="cmapss | nab")],
                data_dir: Annotated[Path, typer.Option(help="the dataset's folder (its published layout)")],
                subset: Annotated[str, typer.Option(help="cmapss: FD001 .. FD004")] = "FD001",
                seed: Annotated[int, typer.Option(help="random seed")] = 42,
                streams: Annotated[str | None, typer.Option(help="nab: globs of the streams to score, comma-separated, "
                                                            "e.g. 'realKnownCause/*' (default: all)")] = None,
                folds: Annotated[int, typer.Option(min=0, help="cmapss: also cross-validate by engine on the "
                                                   "training set with this many folds (0: no)")] = 0,
                as_json: JsonOpt = False) -> None:
    """Evaluate on a public benchmark: C-MAPSS remaining useful life (RMSE, PHM08 score) or a NAB corpus (the
    corpus, each category and each stream, for every profile)."""
    from lakeforge.project import Project

    result = Project.evaluate(dataset, data_dir=data_dir, subset=subset, seed=seed, streams=streams, folds=folds)
    console.show(result, as_json=as_json, text=console.nab_evaluated if dataset == "nab" else console.pairs)


TrackingOpt = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else <project>/mlflow/mlflow.db)")]


@ml_app.command("train")
def ml_train(project: ProjectOpt = Path("."), seed: Annotated[int, typer.Option(help="random seed")] = 42,
             num_boost_round: Annotated[int | None, typer.Option(min=1, help="boosting rounds (default 300)")] = None,
             tracking_uri: TrackingOpt = None, as_json: JsonOpt = False) -> None:
    """Train the failure model (ml.failure: gold.machine_features by default), log it to MLflow, register it
    (challenger); its steps and boosting rounds show as it goes."""
    with _project(project) as proj:
        result = proj.train(seed=seed, num_boost_round=num_boost_round, tracking_uri=tracking_uri,
                            reporter=reporter_for(err, quiet=as_json))
    console.show(result, as_json=as_json, text=console.trained)


@ml_app.command("promote")
def ml_promote(project: ProjectOpt = Path("."), tracking_uri: TrackingOpt = None, as_json: JsonOpt = False) -> None:
    """Make the challenger the champion if it beats the champion's macro F1 on the current holdout."""
    with _project(project) as proj:
        result = proj.promote(tracking_uri=tracking_uri)
    console.show(result, as_json=as_json, text=console.promoted)


@ml_app.command("score")
def ml_score(project: ProjectOpt = Path("."),
             full_refresh: Annotated[bool, typer.Option("--full-refresh", help="rescore everything")] = False,
             as_json: JsonOpt = False) -> None:
    """Score now (as every run does): gold.anomalies and gold.machine_risk with the champion, then the warehouse."""
    with _project(project) as proj:
        result = proj.score(full_refresh=full_refresh, reporter=reporter_for(err, quiet=as_json))
    if as_json:
        _emit(result.to_dict())
    else:
        console.scored(result)


@ml_app.command("models")
def ml_models(project: ProjectOpt = Path("."), tracking_uri: TrackingOpt = None, as_json: JsonOpt = False) -> None:
    """The registered versions of the project's model, with aliases and holdout metrics."""
    with _project(project) as proj:
        versions = proj.registered_models(tracking_uri=tracking_uri)
    console.show(versions, as_json=as_json, text=console.registered)


@app.command()
def report(name: Annotated[str | None, typer.Argument(help="the report; without it, list the reports")] = None,
           project: ProjectOpt = Path("."), as_json: JsonOpt = False,
           window_days: Annotated[float | None, typer.Option(help="slo: the window (default: "
                                                               "monitoring.slo.window_days)")] = None) -> None:
    """Show a report's rows from the warehouse, or list the project's reports; `slo`: the service-level
    objectives (success rate, p95 freshness, DQ accuracy, recovery time, cost per GB) against their targets."""
    if name == "slo":
        with _project(project) as proj:
            slo = proj.slo(window_days=window_days)
        console.show(slo, as_json=as_json, text=console.slo)
        if not slo["met"]:
            raise typer.Exit(EXIT_FOUND)
        return
    with _project(project) as proj:
        if name is None:
            listing: list[console.ReportEntry] = [
                {"name": r.name, "materialize": r.materialize, "description": r.description} for r in proj.reports()]
            console.show(listing, as_json=as_json, text=console.reports)
            return
        result = proj.report(name)
    console.rows(result, as_json=as_json)


deploy = typer.Typer(no_args_is_help=True, help="Write what deploying the project needs.")
app.add_typer(deploy, name="deploy")
warehouse_app = typer.Typer(no_args_is_help=True, help="The warehouse that gold is loaded into.")
app.add_typer(warehouse_app, name="warehouse")


@warehouse_app.command("verify")
def warehouse_verify(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Compare every loaded warehouse table with gold: rows, and per partition rows and a checksum (exit 3 when
    they differ)."""
    with _project(project) as proj:
        checks = proj.verify_warehouse()
    console.show(checks, as_json=as_json, text=console.verified)
    if any(not c["ok"] for c in checks):
        raise typer.Exit(EXIT_FOUND)


@deploy.command("iam")
def deploy_iam(project: ProjectOpt = Path("."),
               output: Annotated[Path | None, typer.Option("--out", "-o", help="write it to this file")] = None,
               output_alias: OutputAlias = None) -> None:
    """The least-privilege AWS IAM policy for the project's buckets and prefixes."""
    output = output or output_alias
    proj = _project(project)
    if output is None:
        _emit(proj.iam_policy())
    else:
        proj.write_iam_policy(output)
        out.print(f"wrote the IAM policy to {output}")


@deploy.command("airflow")
def deploy_airflow(project: ProjectOpt = Path("."),
                   output: Annotated[Path | None, typer.Option(
                       "--out", "-o", help="folder (or .py file) for the DAG; default: <project>/deploy/airflow/")
                   ] = None,
                   lakeforge_bin: Annotated[str | None, typer.Option(
                       "--lakeforge-bin", help="the lakeforge command on the Airflow workers "
                       "(default: deploy.airflow.lakeforge_bin)")] = None,
                   output_alias: OutputAlias = None) -> None:
    """An Airflow 3 DAG file: one task per stage (`lakeforge run --task`), scheduled and retried as `deploy:` says."""
    proj = _project(project)
    dag, path = proj.deploy_airflow(out=output or output_alias, lakeforge_bin=lakeforge_bin)
    out.print(f"wrote the Airflow DAG {dag} ({len(proj.tasks())} tasks) to {path}", soft_wrap=True)


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
                      output_alias: OutputAlias = None, as_json: JsonOpt = False) -> None:
    """A Databricks Asset Bundle (a job, or a declarative pipeline), or a pipeline open-source Spark runs."""
    written = _project(project).deploy_databricks(out=output or output_alias, kind=kind, target=target)
    console.deployed(written, as_json=as_json)


@app.command("import-gx")
def import_gx(suite: Annotated[Path, typer.Argument(help="a GX expectation suite (.json)")],
              project: ProjectOpt = Path("."),
              model: Annotated[str | None, typer.Option("--model", "-m",
                                                        help="append the rules to this model's header")] = None,
              action: Annotated[str, typer.Option(help="action of every rule: warn, drop, quarantine, fail")] = "warn",
              as_json: JsonOpt = False) -> None:
    """Import a Great Expectations suite as rules: print the header lines, or append them to --model."""
    result, written = _project(project).import_gx(suite, model=model, action=action)
    console.gx_imported(result, written=written, as_json=as_json)


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


_fail = console.fail
_unexpected = console.unexpected


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
