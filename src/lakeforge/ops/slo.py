"""``lakeforge report slo``: the service-level objectives of ``monitoring.slo``, measured from the event log.

Over the window (``window_days``, ending now):

- ``success_rate``: runs that succeeded or had nothing to do, over all runs (failed and crashed runs fail).
- ``freshness``: per lakehouse table, the 95th percentile of its freshness (minutes since it last changed) as
  observed at the end of each run; each table against the target, the worst one is the value. Quarantine
  tables are left out: they change only when bad rows arrive, so their age is good news, not staleness.
- ``dq_accuracy``: rows passing the expectations over rows checked (passed + failed), over every rule.
- ``recovery``: mean time to recovery. A failure episode begins with a failed (or crashed) run and ends with
  the end of the next good run; an episode still open is counted up to now (and said to be open).
- ``cost_per_gb``: the runs' estimated cost over the GB they ingested.

An objective with nothing to measure (no run, no expectation, no failure, nothing ingested) has ``value`` and
``met`` None: it is reported as not measurable and does not count. The report is met when every measurable
objective is; with no run at all in the window nothing is measurable and the report is not met (a pipeline that
did not run shows no objective kept).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakeforge.errors import ConfigError
from lakeforge.pipeline import events

if TYPE_CHECKING:
    from rich.console import Console

    from lakeforge.workspace import Workspace

GOOD = ("succeeded", "nothing_to_do")
BAD = ("failed", "crashed")
PERCENTILE = 95
OBJECTIVES = {  # name -> (label, unit, higher is better)
    "success_rate": ("pipeline success rate", "ratio", True),
    "freshness": ("p95 freshness (worst table)", "minutes", False),
    "dq_accuracy": ("data quality accuracy", "ratio", True),
    "recovery": ("mean time to recovery", "minutes", False),
    "cost_per_gb": ("cost per GB ingested", "USD/GB", False),
}



class TableFreshness(TypedDict):
    table: str
    p95_minutes: float
    observations: int
    met: bool


class Episode(TypedDict):
    """A failure episode: from the start of its first bad run to the end of the next good run (None: open)."""

    failed_at: str
    recovered_at: str | None
    failed_runs: int
    minutes: float
    open: bool


class Objective(TypedDict):
    """One objective against its target; ``value`` and ``met`` None: nothing to measure."""

    label: str
    value: float | None
    target: float
    unit: str
    met: bool | None
    detail: str
    tables: NotRequired[list[TableFreshness]]  # freshness: per table, worst first
    episodes: NotRequired[list[Episode]]  # recovery


# ``lakeforge report slo`` (``from`` is a keyword: the functional form)
SloReport = TypedDict("SloReport", {
    "project": str, "window_days": float, "from": str, "to": str, "runs": int, "runs_by_status": dict[str, int],
    "objectives": dict[str, Objective], "met": bool})  # objectives: by the names of OBJECTIVES


def p95(values: list[float]) -> float:
    """The 95th percentile, interpolating linearly between the closest ranks (numpy's default method)."""
    return float(np.percentile(np.asarray(values, dtype=float), PERCENTILE))


def compute(workspace: Workspace, *, window_days: float | None = None,
            now: dt.datetime | None = None) -> SloReport:
    """The objectives over the window ending ``now`` (default: the current time), each against its target."""
    targets = workspace.config.monitoring.slo
    days = targets.window_days if window_days is None else window_days
    if days <= 0:
        raise ConfigError(f"the SLO window must be longer than 0 days, not {days}", hint="e.g. --window-days 7")
    end = now or dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(days=days)
    log = events.read(workspace)
    runs = _rows(log, "run", start, end, ("run_id", "status", "started_at", "ended_at", "cost", "bytes_in"))
    for run in runs:
        run["started_at"] = run["started_at"] or run["ended_at"]  # a crashed run's marker may have lost it
        run["ended_at"] = run["ended_at"] or run["started_at"]
    runs.sort(key=lambda r: (r["started_at"], r["ended_at"]))
    tables = _rows(log, "table", start, end, ("name", "kind", "freshness_seconds"), at="ended_at")
    checks = _rows(log, "expectation", start, end, ("name", "dq_passed", "dq_failed"))

    objectives: dict[str, Objective] = {
        "success_rate": _success(runs, targets.success_rate),
        "freshness": _freshness(tables, targets.freshness_minutes),
        "dq_accuracy": _accuracy(checks, targets.dq_accuracy),
        "recovery": _recovery(runs, targets.recovery_minutes, end),
        "cost_per_gb": _cost(runs, targets.cost_per_gb),
    }
    measured = [o["met"] for o in objectives.values() if o["met"] is not None]
    statuses: dict[str, int] = defaultdict(int)
    for run in runs:
        statuses[str(run["status"])] += 1
    return {"project": workspace.config.name, "window_days": days, "from": start.isoformat(),
            "to": end.isoformat(), "runs": len(runs), "runs_by_status": dict(statuses),
            "objectives": objectives, "met": bool(measured) and all(measured)}


def _rows(log: pa.Table, event: str, start: dt.datetime, end: dt.datetime, columns: tuple[str, ...], *,
          at: str = "started_at") -> list[dict[str, Any]]:
    """Rows of one kind of event whose time (``at``; else the other end) falls in the window."""
    data = log.filter(pc.equal(log["event"], event))
    when = pc.coalesce(data[at], data["ended_at" if at == "started_at" else "started_at"])
    inside = pc.and_(pc.greater_equal(when, pa.scalar(start, events.TS)),
                     pc.less_equal(when, pa.scalar(end, events.TS)))
    rows: list[dict[str, Any]] = data.filter(inside).select(list(dict.fromkeys((*columns, "started_at",
                                                                                   "ended_at")))).to_pylist()
    return rows


def _objective(name: str, value: float | None, target: float, detail: str, *,
               tables: list[TableFreshness] | None = None, episodes: list[Episode] | None = None) -> Objective:
    higher = OBJECTIVES[name][2]
    met = None if value is None else (value >= target if higher else value <= target)
    objective: Objective = {"label": OBJECTIVES[name][0], "value": value, "target": target,
                            "unit": OBJECTIVES[name][1], "met": met, "detail": detail}
    if tables is not None:
        objective["tables"] = tables
    if episodes is not None:
        objective["episodes"] = episodes
    return objective


def _success(runs: list[dict[str, Any]], target: float) -> Objective:
    if not runs:
        return _objective("success_rate", None, target, "not measurable: no run in the window")
    good = sum(r["status"] in GOOD for r in runs)
    bad = [r["status"] for r in runs if r["status"] not in GOOD]
    failed, crashed = bad.count("failed"), bad.count("crashed")
    return _objective("success_rate", good / len(runs), target,
                      f"{good} of {len(runs)} runs good ({failed} failed, {crashed} crashed)")


def _freshness(rows: list[dict[str, Any]], target: float) -> Objective:
    seen: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["freshness_seconds"] is not None and row["kind"] != "quarantine":
            seen[row["name"]].append(row["freshness_seconds"] / 60)
    if not seen:
        return _objective("freshness", None, target, "not measurable: no table observed in the window")
    worst_first = sorted(((p95(values), name, len(values)) for name, values in seen.items()),
                         key=lambda t: (-t[0], t[1]))
    tables: list[TableFreshness] = [{"table": name, "p95_minutes": value, "observations": n, "met": value <= target}
                                    for value, name, n in worst_first]
    worst = tables[0]
    late = [t["table"] for t in tables if not t["met"]]
    detail = (f"worst: {worst['table']}; " + (f"{len(late)} of {len(tables)} tables over the target"
                                               if late else f"all {len(tables)} tables within the target"))
    return _objective("freshness", worst_first[0][0], target, detail, tables=tables)


def _accuracy(rows: list[dict[str, Any]], target: float) -> Objective:
    passed = sum(r["dq_passed"] or 0 for r in rows)
    failed = sum(r["dq_failed"] or 0 for r in rows)
    if passed + failed == 0:
        return _objective("dq_accuracy", None, target, "not measurable: no rows checked by expectations")
    rules = len({r["name"] for r in rows})
    return _objective("dq_accuracy", passed / (passed + failed), target,
                      f"{passed:,} of {passed + failed:,} row checks passed ({rules} rules)")


def _recovery(runs: list[dict[str, Any]], target: float, now: dt.datetime) -> Objective:
    """Failure episodes, in run order: from the start of the first bad run to the end of the next good one."""
    episodes: list[Episode] = []
    began: dict[str, Any] | None = None
    bad = 0
    for run in runs:
        if run["status"] in GOOD:
            if began is not None:
                episodes.append({"failed_at": began["started_at"].isoformat(),
                                 "recovered_at": run["ended_at"].isoformat(), "failed_runs": bad,
                                 "minutes": (run["ended_at"] - began["started_at"]).total_seconds() / 60,
                                 "open": False})
                began, bad = None, 0
        else:
            began = began or run
            bad += 1
    if began is not None:
        episodes.append({"failed_at": began["started_at"].isoformat(), "recovered_at": None, "failed_runs": bad,
                         "minutes": (now - began["started_at"]).total_seconds() / 60, "open": True})
    if not episodes:
        return _objective("recovery", None, target, "not measurable: no failure in the window",
                          episodes=episodes)
    mean = sum(e["minutes"] for e in episodes) / len(episodes)
    still = sum(e["open"] for e in episodes)
    detail = f"{len(episodes)} failure episode(s)" + (f", {still} still open (counted up to now)" if still else "")
    return _objective("recovery", mean, target, detail, episodes=episodes)


def _cost(runs: list[dict[str, Any]], target: float) -> Objective:
    cost = sum(r["cost"] or 0.0 for r in runs)
    gb = sum(r["bytes_in"] or 0 for r in runs) / events.GB
    if gb <= 0:
        return _objective("cost_per_gb", None, target, "not measurable: nothing ingested in the window")
    return _objective("cost_per_gb", cost / gb, target, f"USD {cost:.4f} for {gb:.3f} GB ingested")


def _show(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value:.2%}"
    if unit == "USD/GB":
        return f"{value:.4f} USD/GB"
    return f"{value:,.1f} min"


def render(slo: SloReport, console: Console) -> None:
    """The objectives as a table (and the tables that miss the freshness target)."""
    from rich.table import Table

    table = Table(title=f"SLO of {slo.get('project', 'the project')}: last {slo['window_days']:g} days "
                        f"({slo['runs']} runs)", title_justify="left")
    for column in ("objective", "value", "target", "met", "detail"):
        table.add_column(column, justify="right" if column in ("value", "target") else "left")
    for objective in slo["objectives"].values():
        met = objective["met"]
        mark = "[dim]not measurable[/]" if met is None else "[green]yes[/]" if met else "[red]no[/]"
        comparison = "≥ " if objective["unit"] == "ratio" else "≤ "
        table.add_row(objective["label"], _show(objective["value"], objective["unit"]),
                      comparison + _show(objective["target"], objective["unit"]), mark, objective["detail"])
    console.print(table)
    late = [t for t in slo["objectives"]["freshness"].get("tables", []) if not t["met"]]
    for item in late:
        console.print(f"  [red]{item['table']}[/]: p95 freshness {item['p95_minutes']:,.1f} min "
                      f"({item['observations']} observations)")
    if slo["met"]:
        console.print("[green]every measurable objective is met[/]")
    elif not any(o["met"] is not None for o in slo["objectives"].values()):
        console.print("[red]nothing to measure: no run in the window[/]")
    else:
        missed = [o["label"] for o in slo["objectives"].values() if o["met"] is False]
        console.print(f"[red]missed: {', '.join(missed)}[/]")
