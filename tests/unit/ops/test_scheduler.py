"""The scheduler of ``lakeforge serve`` with a fake clock and a fake run: fires at cron times, coalesces missed
fires into one run, never runs a claimed fire twice (not after a crash either), skips runs the lock refuses,
and evaluates the alert rules every ``alert_check_minutes``."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lakeforge.errors import ConfigError, LakeforgeError, RunLocked
from lakeforge.ops.scheduler import STATE, Schedule, Scheduler, latest_fire, next_fire, schedules_of
from lakeforge.project import Project
from tests.conftest import write_project

UTC = dt.UTC


def at(hour: int, minute: int, second: float = 0) -> dt.datetime:
    return dt.datetime(2025, 3, 10, hour, minute, tzinfo=UTC) + dt.timedelta(seconds=second)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, now: dt.datetime) -> None:
        self.now = now


class Crash(BaseException):
    """The process dying in the middle of a run (not an error the scheduler could catch)."""


class Runs:
    """A fake run function: records each call; ``then`` decides what the call does."""

    def __init__(self, clock: Clock, then: Callable[[Schedule], Any] | None = None) -> None:
        self.clock = clock
        self.calls: list[tuple[str, dt.datetime]] = []
        self.schedules: list[Schedule] = []
        self.then = then

    def __call__(self, schedule: Schedule) -> Any:
        self.calls.append((schedule.name, self.clock()))
        self.schedules.append(schedule)
        if self.then is not None:
            return self.then(schedule)
        return type("Result", (), {"run_id": f"run-{len(self.calls)}", "status": "succeeded"})()


def project_with(tmp_path: Path, *, schedules: dict[str, Any] | None = None, deploy: dict[str, Any] | None = None,
                 alert_minutes: float | None = None, rules: bool = False) -> Project:
    orchestration: dict[str, Any] = {"schedules": schedules or {}}
    if alert_minutes is not None:
        orchestration["alert_check_minutes"] = alert_minutes
    config: dict[str, Any] = {"name": "sched", "orchestration": orchestration}
    if deploy is not None:
        config["deploy"] = deploy
    if rules:
        config["alerts"] = {"rules": [{"name": "stale", "type": "freshness", "max_age_minutes": 60}]}
    return Project(write_project(tmp_path / "proj", config, {}))


def scheduler(project: Project, clock: Clock, runs: Runs, **kw: Any) -> Scheduler:
    return Scheduler(Project(project.path), clock=clock, runner=runs, **kw)  # a new process: a new Project


def test_cron_helpers() -> None:
    assert latest_fire("*/15 * * * *", at(10, 30)) == at(10, 30)  # a fire at exactly now is due
    assert latest_fire("*/15 * * * *", at(10, 29, 59.9)) == at(10, 15)
    assert next_fire("*/15 * * * *", at(10, 30)) == at(10, 45)
    assert latest_fire("0 0 30 2 *", at(10, 0)) is None  # 30 February never comes


def test_schedules_from_config(tmp_path: Path) -> None:
    named = project_with(tmp_path / "a", schedules={"hourly": {"cron": "5 * * * *", "select": ["gold.x"]},
                                                    "nightly": {"cron": "0 2 * * *", "full_refresh": True}})
    assert schedules_of(named) == [Schedule("hourly", "5 * * * *", ["gold.x"], False),
                                   Schedule("nightly", "0 2 * * *", None, True)]
    assert schedules_of(project_with(tmp_path / "b", deploy={"schedule": "0 * * * *"})) == [
        Schedule("default", "0 * * * *")]
    assert schedules_of(project_with(tmp_path / "c", deploy={"schedule": None})) == []
    with pytest.raises(ConfigError, match="not a 5-field cron"):
        schedules_of(project_with(tmp_path / "d", schedules={"bad": {"cron": "every hour"}}))
    with pytest.raises(ConfigError, match="not a 5-field cron"):
        schedules_of(project_with(tmp_path / "e", schedules={"secs": {"cron": "0 * * * * *"}}))


def test_fires_at_cron_times_not_on_first_start(tmp_path: Path) -> None:
    project = project_with(tmp_path, schedules={"q": {"cron": "*/15 * * * *", "select": ["gold.a"],
                                                      "full_refresh": True}})
    clock = Clock(at(10, 7))
    runs = Runs(clock)
    sched = scheduler(project, clock, runs)
    assert [d["action"] for d in sched.tick()] == ["initialized"]  # first start: claims 10:00, runs nothing
    assert runs.calls == []
    for now in (at(10, 8), at(10, 14, 59.999)):
        clock.set(now)
        assert sched.tick() == []
    clock.set(at(10, 15))
    done = sched.tick()
    assert [(d["action"], d["fire"], d["missed"]) for d in done] == [("succeeded", at(10, 15), 0)]
    clock.set(at(10, 15, 40))
    assert sched.tick() == []
    clock.set(at(10, 30, 2))
    assert [d["fire"] for d in sched.tick()] == [at(10, 30)]
    assert runs.calls == [("q", at(10, 15)), ("q", at(10, 30, 2))]
    assert runs.schedules[0] == Schedule("q", "*/15 * * * *", ["gold.a"], True)  # select, full_refresh passed
    saved = project.lakehouse.read_json(STATE)["schedules"]["q"]
    assert saved["last_fire"] == at(10, 30).isoformat() and saved["status"] == "succeeded"
    assert saved["run_id"] == "run-2"
    assert sched.next_wake(at(10, 30, 2)) == at(10, 30, 32)  # never more than 30 s asleep
    assert sched.next_wake(at(10, 44, 50)) == at(10, 45)


def test_missed_fires_coalesce_into_one_run(tmp_path: Path) -> None:
    project = project_with(tmp_path, schedules={"q": {"cron": "*/15 * * * *"}})
    clock = Clock(at(10, 15, 5))
    runs = Runs(clock)
    scheduler(project, clock, runs).tick()  # claims 10:15
    clock.set(at(13, 2))  # the server was down from 10:16 to 13:02
    later = scheduler(project, clock, runs)
    done = later.tick()
    assert [(d["action"], d["fire"], d["missed"]) for d in done] == [("succeeded", at(13, 0), 10)]
    assert len(runs.calls) == 1  # one run, not eleven
    for now in (at(13, 3), at(13, 14)):
        clock.set(now)
        assert later.tick() == []
    clock.set(at(13, 15))
    assert len(later.tick()) == 1 and len(runs.calls) == 2

    # a run that outlasts several fires: those are coalesced too
    def slow(schedule: Schedule) -> Any:
        clock.set(clock.now + dt.timedelta(minutes=50))
        return None

    runs.then = slow
    clock.set(at(13, 30))
    later.tick()  # runs 13:30 .. 14:20
    assert later.tick()[0]["fire"] == at(14, 15)  # one run for 13:45, 14:00 and 14:15
    assert len(runs.calls) == 4


def test_restart_after_crash_mid_run_does_not_rerun_the_fire(tmp_path: Path) -> None:
    project = project_with(tmp_path, schedules={"q": {"cron": "*/15 * * * *"}, "daily": {"cron": "0 3 * * *"}})
    clock = Clock(at(10, 5))
    scheduler(project, clock, Runs(clock)).tick()  # first process: claims 10:00 and 03:00

    def crash(schedule: Schedule) -> Any:
        raise Crash

    clock.set(at(10, 15))
    doomed = Runs(clock, then=crash)
    with pytest.raises(Crash):
        scheduler(project, clock, doomed).tick()  # second process dies in the middle of the 10:15 run
    assert doomed.calls == [("q", at(10, 15))]
    assert project.lakehouse.read_json(STATE)["schedules"]["q"]["status"] == "running"

    runs = Runs(clock)
    for now in (at(10, 15, 1), at(10, 16), at(10, 29)):  # third process, restarted at once, then ticking
        clock.set(now)
        assert scheduler(project, clock, runs).tick() == []
    assert runs.calls == []
    clock.set(at(10, 30))
    restarted = scheduler(project, clock, runs)
    assert [d["fire"] for d in restarted.tick()] == [at(10, 30)]  # the next fire runs normally
    assert runs.calls == [("q", at(10, 30))]

    # the loop of a restarted server says the interrupted run was not finished, and does not run it
    def crash_again(schedule: Schedule) -> Any:
        raise Crash

    clock.set(at(10, 45))
    with pytest.raises(Crash):
        scheduler(project, clock, Runs(clock, then=crash_again)).tick()
    runs = Runs(clock)
    looping = scheduler(project, clock, runs)
    looping.start()
    try:
        deadline = time.monotonic() + 10
        while looping.describe()[0]["status"] != "interrupted" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert looping.describe()[0]["status"] == "interrupted"
        assert looping.describe()[0]["next_fire"] == at(11, 0).isoformat()
    finally:
        assert looping.stop(10)
    assert runs.calls == []


def test_lock_busy_and_failed_runs_are_skipped_not_retried(tmp_path: Path) -> None:
    project = project_with(tmp_path, schedules={"q": {"cron": "*/15 * * * *"}})
    clock = Clock(at(10, 1))
    outcomes = iter([RunLocked("another lakeforge run holds the lock /x/run.lock", hint="wait"),
                     LakeforgeError("model gold.a failed: bad SQL"), None])

    def then(schedule: Schedule) -> Any:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome
        return type("Result", (), {"run_id": "r3", "status": "nothing_to_do"})()

    runs = Runs(clock, then=then)
    sched = scheduler(project, clock, runs)
    sched.tick()
    clock.set(at(10, 15))
    assert [(d["action"], d["error"]) for d in sched.tick()] == [
        ("skipped", "another lakeforge run holds the lock /x/run.lock")]
    for now in (at(10, 15, 1), at(10, 20), at(10, 29, 59)):  # no retry loop
        clock.set(now)
        assert sched.tick() == []
    assert len(runs.calls) == 1
    clock.set(at(10, 30))
    assert sched.tick()[0]["action"] == "failed"
    clock.set(at(10, 31))
    assert sched.tick() == []
    clock.set(at(10, 45))
    assert sched.tick()[0]["action"] == "nothing_to_do"
    assert len(runs.calls) == 3
    assert sched.describe()[0]["status"] == "nothing_to_do" and sched.describe()[0]["run_id"] == "r3"


def test_alert_checks_every_alert_check_minutes(tmp_path: Path) -> None:
    project = project_with(tmp_path, schedules={"q": {"cron": "*/15 * * * *"}}, alert_minutes=5, rules=True)
    clock = Clock(at(10, 0))
    checks: list[dt.datetime] = []

    def evaluate(project: Project) -> list[dict[str, Any]]:
        checks.append(clock())
        return []

    runs = Runs(clock)
    sched = scheduler(project, clock, runs, alerts=evaluate)
    for minute in range(21):  # a tick a minute, 10:00 .. 10:20 (a run at 10:15)
        clock.set(at(10, minute, 1))
        sched.tick()
    assert checks == [at(10, m, 1) for m in (0, 5, 10, 15, 20)]
    assert [when for _, when in runs.calls] == [at(10, 15, 1)]
    assert sched.next_wake(at(10, 21)) == at(10, 21, 30)  # due 10:25:01: the 30 s cap comes first
    assert sched.next_wake(at(10, 24, 50)) == at(10, 25, 1)

    def broken(project: Project) -> list[dict[str, Any]]:
        raise RuntimeError("smtp down")

    sched._alerts = broken  # a failing check is logged; the scheduler goes on
    clock.set(at(10, 30, 2))
    assert len(sched.tick()) == 1

    quiet = project_with(tmp_path / "quiet", schedules={"q": {"cron": "*/15 * * * *"}}, alert_minutes=5)
    checks.clear()
    sched = scheduler(quiet, clock, Runs(clock), alerts=evaluate)
    for minute in range(12):
        clock.set(at(11, minute))
        sched.tick()
    assert checks == []  # no rules, no checks


def test_a_changed_cron_starts_afresh(tmp_path: Path) -> None:
    project = project_with(tmp_path, schedules={"q": {"cron": "*/15 * * * *"}})
    clock = Clock(at(10, 1))
    runs = Runs(clock)
    scheduler(project, clock, runs).tick()
    write_project(project.path, {"name": "sched", "orchestration": {"schedules": {"q": {"cron": "*/10 * * * *"}}}},
                  {})
    clock.set(at(10, 12))
    assert [d["action"] for d in scheduler(project, clock, runs).tick()] == ["initialized"]
    clock.set(at(10, 20))
    assert [d["fire"] for d in scheduler(project, clock, runs).tick()] == [at(10, 20)]
    assert len(runs.calls) == 1


def test_one_scheduler_per_lakehouse(tmp_path: Path) -> None:
    project = project_with(tmp_path, schedules={"q": {"cron": "*/15 * * * *"}})
    clock = Clock(at(10, 1))
    first, second = scheduler(project, clock, Runs(clock)), scheduler(project, clock, Runs(clock))
    first.start()
    try:
        deadline = time.monotonic() + 10
        while first.describe()[0]["status"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
        second.start()
        while second.blocked is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert second.blocked is not None and "another lakeforge serve" in second.blocked
        assert first.blocked is None
    finally:
        assert first.stop(10) and second.stop(10)


def test_a_claim_that_cannot_be_saved_is_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = project_with(tmp_path, schedules={"q": {"cron": "*/15 * * * *"}})
    clock = Clock(at(10, 1))
    runs = Runs(clock)
    sched = scheduler(project, clock, runs)
    sched.tick()
    clock.set(at(10, 15))
    lakehouse = sched.workspace.lakehouse
    real = lakehouse.write_json_atomic

    def down(rel: str, payload: Any) -> None:
        raise OSError("storage unavailable")

    monkeypatch.setattr(lakehouse, "write_json_atomic", down)
    with pytest.raises(OSError):
        sched.tick()
    assert runs.calls == []
    monkeypatch.setattr(lakehouse, "write_json_atomic", real)
    clock.set(at(10, 15, 30))
    assert [d["fire"] for d in sched.tick()] == [at(10, 15)]  # claimed now, and run once
    assert len(runs.calls) == 1
