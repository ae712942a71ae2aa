"""The runner: ingest every source, run the models in graph order, load the warehouse — each incrementally.

One run at a time per lakehouse (a lock file); every run leaves a record in ``_lakeforge/runs/``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from lakeforge.errors import LakeforgeError
from lakeforge.models.execute import run_model
from lakeforge.ops.progress import Reporter
from lakeforge.ops.results import RunResult, StageResult

if TYPE_CHECKING:
    from lakeforge.models import Model
    from lakeforge.project import Project

RUNS = "_lakeforge/runs"


@contextmanager
def run_lock(project: Project) -> Iterator[None]:
    # beside a local lakehouse; for one on object storage, in the project folder
    base = project.lakehouse.local_path() if project.lakehouse.is_local else project.path / ".lakeforge"
    path = base / "_lakeforge" / "run.lock" if project.lakehouse.is_local else base / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LakeforgeError(f"another lakeforge run holds the lock {path}",
                                 hint="wait for it to finish; runs of one lakehouse are one at a time") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def execute(project: Project, *, full_refresh: bool, reporter: Reporter,
            select: list[str] | None = None, task: str | None = None) -> RunResult:
    """A whole run, or with ``task`` one stage of it (``ingest:<source>``, a model, ``warehouse``): what
    orchestrators (Airflow, Databricks Jobs) call, one task per stage, in the order of :func:`tasks`."""
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6]
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    stages: list[StageResult] = []
    error: LakeforgeError | None = None
    failed: str | None = None
    graph = project.graph()
    models = graph.select(select)
    sources, load = list(project.config.sources), True
    if task is not None:
        sources, models, load = _task_scope(project, graph.ordered(), task)
    keys = {m.name: m.config.unique_key for m in graph.ordered() if m.config.unique_key}
    reporter.begin(len(sources) + len(models) + int(load))
    try:
        with run_lock(project):
            for name in sources:
                reporter.start(f"ingest:{name}")
                failed = f"ingest:{name}"
                stage = project.ingestor(name, engine=project.engine).run()
                stages.append(stage)
                reporter.finish(stage)
            for model in models:
                reporter.start(model.name)
                failed = model.name
                stage = run_model(model, catalog=project.run_catalog, engine=project.engine, run_id=run_id,
                                  full_refresh=full_refresh, upstream_keys=keys)
                stages.append(stage)
                reporter.finish(stage)
            if load:
                reporter.start("warehouse")
                failed = "warehouse"
                stage = project.load_warehouse(run_id=run_id, models=graph.ordered())
                stages.append(stage)
                reporter.finish(stage)
            failed = None
    except LakeforgeError as exc:
        error = exc
    except Exception as exc:  # a bug, not bad input: still recorded as a failed run
        error = LakeforgeError(f"internal error in {failed or 'the run'}: {type(exc).__name__}: {exc}",
                               hint="rerun with --debug for the traceback and report it")
        error.__cause__ = exc
    finally:
        reporter.end()
    if error is not None:
        status = "failed"
    elif any(s.did_work for s in stages):
        status = "succeeded"
    else:
        status = "nothing_to_do"
    result = RunResult(
        run_id=run_id, status=status, started_at=started_at, seconds=time.perf_counter() - started,  # type: ignore[arg-type]
        stages=stages, bytes_processed=sum(s.bytes for s in stages if s.kind == "ingest"),
        error=str(error) if error else None, failed_stage=failed if error else None,
    )
    project.lakehouse.write_json_atomic(f"{RUNS}/{run_id}.json", result.to_dict())
    if error is not None:
        error.run = result  # type: ignore[attr-defined]
        raise error
    return result


WAREHOUSE_TASK = "warehouse"


def tasks(project: Project) -> dict[str, list[str]]:
    """The pipeline as a graph of tasks, in run order: task -> the tasks it waits for. ``ingest:<source>`` per
    source, one per stored model (views are inlined into their readers), and ``warehouse`` after the last models."""
    graph = project.graph()
    stored = [m for m in graph.ordered() if m.config.kind != "view"]
    found: dict[str, list[str]] = {f"ingest:{s}": [] for s in project.config.sources}
    for model in stored:
        deps = []
        for table in model.upstream():
            dep = f"ingest:{table.split('.', 1)[1]}" if table in graph.sources else table
            if dep not in deps:
                deps.append(dep)
        found[model.name] = deps
    read = {d for deps in found.values() for d in deps}
    found[WAREHOUSE_TASK] = [m.name for m in stored if m.name not in read] or list(found)  # after the leaves
    return found


def _task_scope(project: Project, ordered: list[Model], task: str) -> tuple[list[str], list[Model], bool]:
    if task == WAREHOUSE_TASK:
        return [], [], True
    if task.startswith("ingest:") and task[len("ingest:"):] in project.config.sources:
        return [task[len("ingest:"):]], [], False
    chosen = [m for m in ordered if m.name == task and m.config.kind != "view"]
    if not chosen:
        raise LakeforgeError(f"there is no task {task!r} in this project",
                             hint="tasks: " + ", ".join(tasks(project)))
    return [], chosen, False


def last_run(project: Project) -> dict[str, object] | None:
    runs = project.lakehouse.list_files(RUNS, pattern="*.json")
    if not runs:
        return None
    data: dict[str, object] = project.lakehouse.read_json(runs[-1].path)
    return data
