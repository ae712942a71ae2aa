"""The runner: ingest every source, run the models in graph order, load the warehouse — each incrementally.

One run at a time per lakehouse; every run leaves a record in ``_lakeforge/runs/`` (both the run session's:
:mod:`lakeforge.pipeline.session`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lakeforge.errors import LakeforgeError
from lakeforge.models.execute import run_model
from lakeforge.pipeline import warehouse
from lakeforge.pipeline.hooks import Observer
from lakeforge.pipeline.progress import Reporter
from lakeforge.pipeline.session import RUNS, RunSession, disk_full, no_space_left, run_lock, unwritable
from lakeforge.results import RunDict, RunResult

if TYPE_CHECKING:
    from lakeforge.models import Model
    from lakeforge.workspace import Workspace

__all__ = ["RUNS", "disk_full", "execute", "last_run", "no_space_left", "run_lock", "tasks", "unwritable"]


def execute(workspace: Workspace, *, full_refresh: bool, reporter: Reporter, observers: Sequence[Observer] = (),
            select: list[str] | None = None, task: str | None = None, score_only: bool = False) -> RunResult:
    """A whole run, or with ``task`` one stage of it (``ingest:<source>``, a model, ``ml:<stage>``,
    ``warehouse``): what orchestrators (Airflow, Databricks Jobs) call, one task per stage, in the order of
    :func:`tasks`. ``score_only``: the scoring stages (the champion looked up even when the features did not
    change) and the warehouse load (``lakeforge ml score``). The lock, the records, the retries and the observers
    are the :class:`~lakeforge.pipeline.session.RunSession`'s; ``observers`` watch it (lineage, alerts: the façade
    passes the configured ones)."""
    from lakeforge.ml import scoring  # numpy and the ML modules: imported when a run starts, not with the CLI

    graph = workspace.graph()
    models = workspace.select(select, graph=graph)
    workspace.check_strategies(models)  # a header that demands a wrong strategy fails before anything runs
    workspace.catalog.forget()  # the change feeds a run reads (a Spark catalog reads its own, uncached)
    sources, load = list(workspace.config.sources), True
    scorers = scoring.enabled(workspace) if select is None else []
    if task is not None:
        sources, models, load = _task_scope(workspace, graph.ordered(), task)
        scorers = [task] if task in scoring.enabled(workspace) else []
    elif score_only:
        sources, models = [], []
    keys = {m.name: m.config.unique_key for m in graph.ordered() if m.config.unique_key}
    rebuilt: set[str] = set()  # models edited (or downstream of one) that this run recomputes whole

    reporter.begin(len(sources) + len(models) + len(scorers) + int(load))
    with RunSession(workspace, reporter=reporter, observers=observers) as session:
        run_id = session.run_id
        for name in sources:
            session.stage(f"ingest:{name}", "ingest",
                          lambda name=name: workspace.ingestor(name, engine=workspace.engine).run(  # type: ignore[misc]
                              progress=reporter.step))
        for model in models:
            session.stage(model.name, "model",
                          lambda model=model: run_model(  # type: ignore[misc]
                              model, catalog=workspace.run_catalog, engine=workspace.engine, run_id=run_id,
                              full_refresh=full_refresh, upstream_keys=keys, rebuilt=rebuilt))
        for name in scorers:
            session.stage(name, "ml", lambda name=name: scoring.run_stage(  # type: ignore[misc]
                workspace, name, run_id=run_id, full_refresh=full_refresh, force=score_only))
        if load:
            session.stage("warehouse", "load", lambda: warehouse.load(workspace, run_id=run_id, models=graph.ordered()))
    assert session.result is not None
    return session.result


WAREHOUSE_TASK = "warehouse"


def tasks(workspace: Workspace) -> dict[str, list[str]]:
    """The pipeline as a graph of tasks, in run order: task -> the tasks it waits for. ``ingest:<source>`` per
    source, one per stored model (views are inlined into their readers), and ``warehouse`` after the last models."""
    graph = workspace.graph()
    stored = [m for m in graph.ordered() if m.config.kind != "view"]
    found: dict[str, list[str]] = {f"ingest:{s}": [] for s in workspace.config.sources}
    for model in stored:
        deps = []
        for table in model.upstream():
            dep = f"ingest:{table.split('.', 1)[1]}" if table in graph.sources else table
            if dep not in deps:
                deps.append(dep)
        found[model.name] = deps
    from lakeforge.ml import scoring

    producers = {m.name: m.name for m in stored} | {f"bronze.{s}": f"ingest:{s}" for s in workspace.config.sources}
    for name in scoring.enabled(workspace):
        found[name] = [producers[t] for t in scoring.io(workspace, name)[0] if t in producers]
    read = {d for deps in found.values() for d in deps}
    found[WAREHOUSE_TASK] = [t for t in found if t not in read and not t.startswith("ingest:")] or list(found)
    return found


def _task_scope(workspace: Workspace, ordered: list[Model], task: str) -> tuple[list[str], list[Model], bool]:
    if task == WAREHOUSE_TASK:
        return [], [], True
    if task.startswith("ingest:") and task[len("ingest:"):] in workspace.config.sources:
        return [task[len("ingest:"):]], [], False
    if task.startswith("ml:") and task in tasks(workspace):
        return [], [], False
    chosen = [m for m in ordered if m.name == task and m.config.kind != "view"]
    if not chosen:
        raise LakeforgeError(f"there is no task {task!r} in this project",
                             hint="tasks: " + ", ".join(tasks(workspace)))
    return [], chosen, False


def last_run(workspace: Workspace) -> RunDict | None:
    """The newest run's record (:meth:`RunResult.to_dict`, with what the session added, e.g. ``backfill``)."""
    runs = workspace.lakehouse.list_files(RUNS, pattern="*.json")
    if not runs:
        return None
    data: RunDict = workspace.lakehouse.read_json(runs[-1].path)
    return data
