"""Alert rules (``alerts:`` in lakeforge.yml), evaluated after every run and by ``lakeforge alerts check`` (which
``lakeforge serve`` runs every ``orchestration.alert_check_minutes``).

Each rule yields zero or more firing *conditions*, one per subject (a table, a source, a model's rule, the run),
keyed ``<rule>:<subject>``: one freshness rule fires for each stale table separately. The state of the alerts
(``_lakeforge/alerts/state.json`` in the lakehouse, written atomically) keeps each firing condition with when it
began and when it was last sent, so that:

* a new condition is sent once (``firing``) to the rule's channels (``channels:``, or all of them);
* a condition still firing is not sent again until ``repeat_minutes`` have passed since it was last sent, and then
  once more (``repeat``);
* a condition that stops firing is sent once as ``resolved`` and leaves the state.

A channel that fails (an HTTP error, SMTP down) fails neither the run nor the other channels: the error goes to
stderr and the notification stays pending for that channel, so the next evaluation tries it again.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from lakeforge.config.operations import AlertRule
from lakeforge.ops.channels import Notification, send
from lakeforge.pipeline.hooks import Observer
from lakeforge.pipeline.status import status as status_of
from lakeforge.redaction import redact, redact_data

if TYPE_CHECKING:
    from lakeforge.results import RunResult
    from lakeforge.workspace import Workspace

STATE = "_lakeforge/alerts/state.json"
GB = 1e9


class SentAlert(TypedDict):
    """A notification that was due (``lakeforge alerts check``): ``channels`` it was delivered to, ``failed``
    those that could not be reached (tried again next time)."""

    state: str  # firing | repeat | resolved
    name: str
    subject: str
    severity: str
    message: str
    value: str | float | None  # what was measured (a run's status, minutes, a rate, files ...)
    threshold: float | None
    channels: list[str]
    failed: list[str]


class ActiveAlert(TypedDict):
    """An alert firing now (``lakeforge alerts``), from the state of the last evaluation."""

    name: str
    severity: str
    message: str
    since: str  # ISO 8601
    subject: str
    value: str | float | None
    threshold: float | None
    last_sent: str | None
    pending: list[str]  # channels not reached yet


@dataclass(frozen=True)
class Condition:
    """One firing condition of a rule."""

    rule: AlertRule
    subject: str
    value: Any
    threshold: Any
    message: str

    @property
    def key(self) -> str:
        return f"{self.rule.name}:{self.subject}"


class AlertObserver(Observer):
    """Evaluates the alert rules when a run ends (failed or not)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def run_finished(self, result: RunResult) -> None:
        evaluate(self.workspace, result=result)


# -- the entry points ------------------------------------------------------------------------------
def evaluate(workspace: Workspace, *, result: RunResult | None = None, now: dt.datetime | None = None,
             ) -> list[SentAlert]:
    """Check every rule, notify what is new, due again or resolved, and keep the state. ``result``: the run that
    just ended (else the event log's newest run); ``now``: the time to judge freshness and repeats by.

    Returns the notifications that were due: ``state`` (firing | repeat | resolved), ``name``, ``subject``,
    ``severity``, ``message``, ``value``, ``threshold``, ``channels`` (delivered to) and ``failed`` (channels
    that could not be reached: tried again next time)."""
    config = workspace.config.alerts
    now = _utc(now or dt.datetime.now(dt.UTC))
    facts = _Facts(workspace, result=result, now=now)
    firing: dict[str, Condition] = {}
    unknown: set[str] = set()  # rules that could not be checked: their alerts stay as they are
    for rule in config.rules:
        try:
            for condition in CHECKS[rule.type](rule, facts):
                firing[condition.key] = condition
        except Exception as exc:  # one broken check must not stop the others
            unknown.add(rule.name)
            print(f"warning: alert {rule.name!r} could not be checked: {type(exc).__name__}: {exc}", file=sys.stderr)

    state = _load(workspace)
    active: dict[str, dict[str, Any]] = state["active"]
    resolving: dict[str, dict[str, Any]] = state["resolving"]
    rules = {r.name: r for r in config.rules}
    repeat = dt.timedelta(minutes=config.repeat_minutes)
    sent: list[SentAlert] = []

    def deliver(kind: str, entry: dict[str, Any], targets: list[str]) -> list[str]:
        """Send to ``targets``; returns those that failed."""
        note = Notification(alert=entry["name"], state=kind, severity=entry["severity"], message=entry["message"],
                            project=workspace.config.name, subject=entry["subject"], value=entry.get("value"),
                            threshold=entry.get("threshold"), at=_iso(now))
        done, failed = [], []
        for name in targets:
            channel = config.channels.get(name)
            if channel is None:  # removed from the config since
                continue
            try:
                send(channel, note)
                done.append(name)
            except Exception as exc:
                failed.append(name)
                print(redact(f"warning: alert {entry['name']!r} ({kind}) not delivered to channel {name!r} "
                             f"({channel.type}): {exc}; it is tried again at the next check"), file=sys.stderr)
        sent.append({"state": kind, "name": entry["name"], "subject": entry["subject"],
                     "severity": entry["severity"], "message": entry["message"], "value": entry.get("value"),
                     "threshold": entry.get("threshold"), "channels": done, "failed": failed})
        return failed

    # resolved messages that a channel missed before (dropped when the condition fires again: that is news)
    for key in list(resolving):
        entry = resolving.pop(key)
        if key in firing or entry["name"] not in rules:
            continue
        failed = deliver("resolved", entry, list(entry.get("pending", [])))
        if failed:
            resolving[key] = {**entry, "pending": failed}

    # conditions that cleared: one resolved message to the channels that were told it fired
    for key in list(active):
        entry = active[key]
        owner = rules.get(entry["name"])
        if owner is None:  # the rule left the config: forget its alerts
            del active[key]
            continue
        if key in firing or owner.name in unknown:
            continue
        del active[key]
        if entry.get("last_sent") is None:  # never delivered anywhere: nothing to take back
            continue
        told = [c for c in _routes(owner, config.channels) if c not in entry.get("pending", [])]
        entry = {**entry, "message": _resolved_message(entry, now), "value": None}
        failed = deliver("resolved", entry, told)
        if failed:
            resolving[key] = {**entry, "pending": failed}

    # conditions firing: new, pending for some channel, or due again
    for key, condition in firing.items():
        rule = condition.rule
        routes = _routes(rule, config.channels)
        current = active.get(key)
        measured = {"name": rule.name, "severity": rule.severity, "subject": condition.subject,
                    "message": condition.message, "value": condition.value, "threshold": condition.threshold}
        if current is None:
            entry = {**measured, "since": _iso(now), "last_sent": None, "pending": [], "pending_state": "firing"}
            kind, targets = "firing", routes
        else:
            entry = {**current, **measured}
            pending = [c for c in entry.get("pending", []) if c in routes]
            last = _parse(entry["last_sent"]) if entry.get("last_sent") else None
            if pending:
                kind, targets = entry.get("pending_state", "firing"), pending
            elif last is None or now - last >= repeat:
                kind, targets = ("firing" if last is None else "repeat"), routes
            else:
                active[key] = entry
                continue
        failed = deliver(kind, entry, targets)
        if len(failed) < len(targets) or not targets:
            entry["last_sent"] = _iso(now)
        entry["pending"], entry["pending_state"] = failed, kind
        active[key] = entry

    _save(workspace, state)
    return sent


def status(workspace: Workspace) -> list[ActiveAlert]:
    """The alerts firing now, from the state of the last evaluation: ``name``, ``severity``, ``message``,
    ``since``, and ``subject``, ``value``, ``threshold``, ``last_sent``, ``pending`` (channels not reached)."""
    active = _load(workspace)["active"]
    return [{"name": e["name"], "severity": e["severity"], "message": e["message"], "since": e["since"],
             "subject": e["subject"], "value": e.get("value"), "threshold": e.get("threshold"),
             "last_sent": e.get("last_sent"), "pending": list(e.get("pending", []))}
            for _, e in sorted(active.items(), key=lambda kv: (kv[1]["since"], kv[0]))]


# -- what the rules look at ------------------------------------------------------------------------
class _Facts:
    """What the checks read, each looked up once and only when a rule needs it."""

    def __init__(self, workspace: Workspace, *, result: RunResult | None, now: dt.datetime) -> None:
        self.workspace, self.now = workspace, now
        # a run that never started (the lock was busy) is not the pipeline's state: use the event log
        started = result is not None and (result.stages or result.failed_stage or result.status != "failed")
        self.result = result if started else None
        self._cache: dict[str, Any] = {}

    def _once(self, name: str, compute: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = compute()
        return self._cache[name]

    def status(self) -> dict[str, Any]:
        return dict(self._once("status", lambda: status_of(self.workspace)))

    def last_run(self) -> dict[str, Any] | None:
        """The newest run: ``run_id``, ``status``, ``seconds``, ``cost``, ``cost_per_gb``, ``error``, ``stage``."""
        def compute() -> dict[str, Any] | None:
            if self.result is not None:
                r = self.result
                rate = self.workspace.config.monitoring.cost.rate_per_hour()
                cost = r.seconds / 3600 * rate
                gb = r.bytes_processed / GB
                return {"run_id": r.run_id, "status": r.status, "seconds": r.seconds, "cost": cost,
                        "cost_per_gb": cost / gb if gb else None, "error": r.error, "stage": r.failed_stage}
            from lakeforge.pipeline import events

            rows = events.runs(self.workspace, limit=1)
            if not rows:
                return None
            row = rows[0]
            return {"run_id": row["run_id"], "status": row["status"], "seconds": row["seconds"],
                    "cost": row["cost"], "cost_per_gb": row["cost_per_gb"], "error": row["error"],
                    "stage": row["detail"]}
        found: dict[str, Any] | None = self._once("last_run", compute)
        return found

    def rule_results(self) -> list[tuple[str, str, int, int]]:
        """(model, rule, passed, failed) of the last run that checked expectations."""
        def compute() -> list[tuple[str, str, int, int]]:
            if self.result is not None:
                found = [(r.model, r.rule, r.passed, r.failed) for s in self.result.stages for r in s.rules]
                if found:
                    return found
            from lakeforge.pipeline import events

            rows = events.read(self.workspace, event="expectation").to_pylist()
            if not rows:
                return []
            newest = max(rows, key=lambda r: (r["started_at"] or dt.datetime.min.replace(tzinfo=dt.UTC),
                                              r["run_id"]))["run_id"]
            out = []
            for row in rows:
                if row["run_id"] == newest:
                    model, _, rule = str(row["name"]).rpartition(":")
                    out.append((model, rule, int(row["dq_passed"] or 0), int(row["dq_failed"] or 0)))
            return out
        found: list[tuple[str, str, int, int]] = self._once("rules", compute)
        return found


def _failure(rule: AlertRule, facts: _Facts) -> Iterator[Condition]:
    run = facts.last_run()
    if run is None or run["status"] not in ("failed", "crashed"):
        return
    where = f" in {run['stage']}" if run.get("stage") else ""
    error = (run.get("error") or "no error recorded").strip().splitlines()[0]
    yield Condition(rule, "run", run["status"], None,
                    f"The run {run['run_id']} of {facts.workspace.config.name} {run['status']}{where}: {error}. "
                    f"Run `lakeforge runs` for the error, fix the cause, then `lakeforge run` (it resumes: work "
                    f"that committed is not redone).")


def _freshness(rule: AlertRule, facts: _Facts) -> Iterator[Condition]:
    limit = float(rule.max_age_minutes or 0)
    tables = {t["name"]: t for t in facts.status()["tables"]}
    if rule.table is not None:
        if rule.table not in tables:
            yield Condition(rule, rule.table, None, limit,
                            f"{rule.table} does not exist (freshness limit {_minutes(limit)}). Check the name in "
                            f"the alert, or run `lakeforge run` to create it.")
            return
        wanted = [tables[rule.table]]
    else:  # quarantine tables change only when bad rows arrive: never stale
        wanted = [t for t in tables.values() if t["layer"] != "quarantine"]
    for table in wanted:
        changed = _parse(table["last_modified"])
        age = max((facts.now - changed).total_seconds(), 0.0) / 60
        if age > limit:
            yield Condition(rule, table["name"], round(age, 1), limit,
                            f"{table['name']} has not changed for {_minutes(age)} (last change {table['last_modified']}"
                            f"), over the limit of {_minutes(limit)}. Check that files arrive for its sources "
                            f"(`lakeforge status` shows the backlog) and that runs succeed (`lakeforge runs`).")


def _dq_pass_rate(rule: AlertRule, facts: _Facts) -> Iterator[Condition]:
    limit = float(rule.min_pass_rate if rule.min_pass_rate is not None else 1.0)
    for model, name, passed, failed in facts.rule_results():
        if (rule.model and model != rule.model) or (rule.rule and name != rule.rule) or passed + failed == 0:
            continue
        rate = passed / (passed + failed)
        if rate < limit:
            yield Condition(rule, f"{model}:{name}", round(rate, 4), limit,
                            f"Expectation {name} of {model} passed {rate:.1%} of the rows in the last run "
                            f"({failed:,} of {passed + failed:,} failed), under the minimum of {limit:.1%}. Look at "
                            f"the failing rows (`lakeforge query` on {model}, or its quarantine table) and fix the "
                            f"source data or the rule.")


def _long_run(rule: AlertRule, facts: _Facts) -> Iterator[Condition]:
    run = facts.last_run()
    limit = float(rule.max_seconds or 0)
    if run is None or run.get("seconds") is None or run["seconds"] <= limit:
        return
    yield Condition(rule, "run", round(float(run["seconds"]), 3), limit,
                    f"The run {run['run_id']} took {run['seconds']:.1f} s, over the limit of {limit:g} s. See which "
                    f"stages took the time (`lakeforge runs --json`, or the event log: `lakeforge query \"SELECT "
                    f"name, seconds FROM _lakeforge.event_log WHERE run_id = '{run['run_id']}'\"`); a backlog or "
                    f"a full refresh makes runs longer.")


def _backlog(rule: AlertRule, facts: _Facts) -> Iterator[Condition]:
    limit = int(rule.max_files or 0)
    waiting = {name: int(b["files"]) for name, b in facts.status()["backlog"].items()}
    for source, files in sorted(waiting.items()):
        if rule.source and source != rule.source:
            continue
        if files > limit:
            waiting_files = "1 file waits" if files == 1 else f"{files} files wait"
            yield Condition(rule, source, files, limit,
                            f"{waiting_files} in the landing zone for source {source}, over the limit of {limit}. "
                            f"Run `lakeforge run`, or check that scheduled runs happen and succeed (`lakeforge runs`).")


def _cost(rule: AlertRule, facts: _Facts) -> Iterator[Condition]:
    run = facts.last_run()
    if run is None:
        return
    cost, per_gb = run.get("cost"), run.get("cost_per_gb")
    fix = ("Check what made it expensive (`lakeforge runs`: its seconds and bytes) and the rate in "
           "monitoring.cost.")
    if rule.max_cost is not None and cost is not None and cost > rule.max_cost:
        yield Condition(rule, "cost", round(float(cost), 6), rule.max_cost,
                        f"The run {run['run_id']} cost ${cost:.4g}, over the limit of ${rule.max_cost:.4g}. {fix}")
    if rule.max_cost_per_gb is not None and per_gb is not None and per_gb > rule.max_cost_per_gb:
        yield Condition(rule, "cost_per_gb", round(float(per_gb), 6), rule.max_cost_per_gb,
                        f"The run {run['run_id']} cost ${per_gb:.4g} per GB ingested, over the limit of "
                        f"${rule.max_cost_per_gb:.4g}/GB. {fix}")


CHECKS: dict[str, Callable[[AlertRule, _Facts], Iterator[Condition]]] = {
    "failure": _failure, "freshness": _freshness, "dq_pass_rate": _dq_pass_rate, "long_run": _long_run,
    "backlog": _backlog, "cost": _cost,
}


# -- helpers ------------------------------------------------------------------------------------------
def _routes(rule: AlertRule, channels: dict[str, Any]) -> list[str]:
    return list(rule.channels) if rule.channels is not None else list(channels)


def _resolved_message(entry: dict[str, Any], now: dt.datetime) -> str:
    since = _parse(entry["since"])
    lasted = _minutes(max((now - since).total_seconds(), 0.0) / 60)
    return (f"Resolved: {entry['name']} on {entry['subject']} no longer fires (it fired for {lasted}, since "
            f"{entry['since']}). It was: {entry['message']}")


def _minutes(minutes: float) -> str:
    if minutes >= 120:
        return f"{minutes / 60:.1f} h"
    if minutes >= 1:
        return f"{minutes:.0f} min"
    return f"{minutes * 60:.0f} s"


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _parse(text: str) -> dt.datetime:
    return _utc(dt.datetime.fromisoformat(text))


def _load(workspace: Workspace) -> dict[str, Any]:
    empty: dict[str, Any] = {"active": {}, "resolving": {}}
    if not workspace.lakehouse.exists(STATE):
        return empty
    try:
        data = workspace.lakehouse.read_json(STATE)
    except Exception as exc:  # a damaged file: start over rather than never alert again
        print(f"warning: the alert state {STATE} could not be read ({exc}); starting afresh", file=sys.stderr)
        return empty
    return {"active": dict(data.get("active") or {}), "resolving": dict(data.get("resolving") or {})}


def _save(workspace: Workspace, state: dict[str, Any]) -> None:
    workspace.lakehouse.write_json_atomic(STATE, redact_data({"version": 1, **state}))
