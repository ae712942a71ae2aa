"""``lakeforge plan`` (and ``run --dry-run``): what a run would do, and why, without doing it — per source the
files waiting, per selected model its strategy, the reason, what it would recompute and the edits that make it
rebuild, with the changes earlier steps of the same run would make taken into account."""

from __future__ import annotations

from typing import TypedDict

from lakeforge.models import Model
from lakeforge.models.execute import Decision, decide
from lakeforge.workspace import Workspace


class PlannedSource(TypedDict):
    """A source's line of the plan: the files waiting and whether its ingestion would run."""

    name: str
    table: str  # bronze.<name>
    files: int
    bytes: int
    run: bool


class Incremental(TypedDict):
    """How the model can be recomputed incrementally (its SQL's shape), and why."""

    strategy: str
    why: str


class PlannedModel(TypedDict):
    """A model's line of the plan: whether it would run, how, what it would recompute, and why."""

    name: str
    kind: str
    upstream: list[str]
    run: bool
    strategy: str  # "" when it would not run
    reason: str
    recompute: str  # "" when it would not run
    changed: list[str]  # the edits that make it rebuild
    incremental: Incremental | None  # None: a view, or not analyzed


class Plan(TypedDict):
    """``lakeforge plan`` (``run --dry-run``)."""

    sources: list[PlannedSource]
    models: list[PlannedModel]


def plan(workspace: Workspace, *, full_refresh: bool = False, select: list[str] | None = None) -> Plan:
    """The plan of a run of ``select`` (every model by default)."""
    graph = workspace.graph()
    sources: list[PlannedSource] = []
    changing: set[str] = set()
    for name in workspace.config.sources:
        files = workspace.ingestor(name).backlog()
        sources.append({"name": name, "table": f"bronze.{name}", "files": len(files),
                        "bytes": sum(f.size for f in files), "run": bool(files)})
        if files:
            changing.add(f"bronze.{name}")
    models: list[PlannedModel] = []
    rebuilt: set[str] = set()
    chosen = workspace.select(select, graph=graph)
    workspace.check_strategies(chosen)
    for model in chosen:
        decision = decide(model, catalog=workspace.catalog, full_refresh=full_refresh, rebuilt=rebuilt)
        if decision.rebuild:
            rebuilt.add(model.name)
        planned = _planned(model, decision, feeding=[u for u in model.upstream() if u in changing])
        if planned["run"]:
            changing.add(model.name)
        models.append(planned)
    return {"sources": sources, "models": models}


def _planned(model: Model, decision: Decision, *, feeding: list[str]) -> PlannedModel:
    """A model's line of the plan; ``feeding``: its upstream tables that this run changes before it runs (the
    decision, made on the lakehouse as it is, cannot see those)."""
    run, reason, strategy, recompute = decision.run, decision.reason, decision.strategy, decision.recompute
    shape = decision.shape
    if feeding and (not run or reason.startswith("waiting")):
        run, reason = True, f"upstream changes in this run: {', '.join(feeding)}"
        if shape is None and model.config.kind != "view":
            from lakeforge.models.strategy import analyze

            shape = analyze(model)
        strategy, recompute = "full", "the whole table"
        if shape is not None and decision.exists:
            others = [u for u in feeding if u != shape.driver]
            if shape.strategy != "full" and not others:
                strategy, recompute = shape.strategy, shape.recompute()
            else:
                reason += f"; {shape.reason}" if shape.strategy == "full" else (
                    f"; {', '.join(others)} (not the driver) changes: recomputed whole")
    return {"name": model.name, "kind": model.config.kind, "upstream": model.upstream(), "run": run,
            "strategy": strategy if run else "", "reason": reason, "recompute": recompute if run else "",
            "changed": decision.edits,
            "incremental": {"strategy": shape.strategy, "why": shape.reason} if shape is not None else None}
