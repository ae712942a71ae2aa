"""The cron schedules of ``lakeforge serve``: at most one run per fire, across restarts and crashes.

The schedules are ``orchestration.schedules`` (name -> cron, select, full_refresh); without any, a set
``deploy.schedule`` is the one schedule ``default``. Cron expressions have 5 fields, in UTC.

State lives in the lakehouse, ``_lakeforge/scheduler/state.json`` (written atomically): per schedule, the last
fire it *claimed*. Each :meth:`Scheduler.tick`:

* a schedule's due fire is its latest cron time ``<= now``, when that is after the claimed one. Fires missed
  while the server was down (or while a long run went on) are coalesced into that one run, never a burst;
* the fire is claimed (state written) *before* its run starts: a crash, kill or restart during the run never
  runs that fire again. The next fire runs as usual, and runs are incremental: it resumes whatever the
  interrupted run left undone (the runner logs the interrupted one as ``crashed``);
* first start (no state for a schedule, or its cron changed): the latest past fire is claimed without running;
  the first run is the next fire (``lakeforge run`` runs now);
* a run refused by the run lock (another run is going on) or failing is logged and not retried: the next fire
  is the next try;
* between runs, every ``orchestration.alert_check_minutes``, the alert rules are evaluated (when there are any).

Only one ``lakeforge serve`` per lakehouse runs the schedules (a lock file, beside the run lock): a second one
serves ``/metrics`` and ``/health`` and takes over the schedules when the first stops.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lakeforge.errors import ConfigError, LakeforgeError, MissingDependency, RunLocked
from lakeforge.workspace import Workspace

if TYPE_CHECKING:
    from lakeforge.ops.alerts import SentAlert

log = logging.getLogger("lakeforge.scheduler")

STATE = "_lakeforge/scheduler/state.json"
MAX_WAIT = 30.0  # seconds between wake-ups at most
MISSED_COUNT_LIMIT = 1000  # missed fires counted for the log, at most


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    select: list[str] | None = None
    full_refresh: bool = False


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:
        raise MissingDependency("lakeforge serve's schedules need croniter",
                                hint="pip install 'lakeforge[serve]'") from None
    return croniter


def schedules_of(workspace: Workspace) -> list[Schedule]:
    """The project's schedules: ``orchestration.schedules``, else ``deploy.schedule`` as ``default``."""
    found = [Schedule(name, s.cron, list(s.select) if s.select else None, s.full_refresh)
             for name, s in workspace.config.orchestration.schedules.items()]
    if not found and workspace.config.deploy.schedule:
        found = [Schedule("default", workspace.config.deploy.schedule)]
    croniter = _croniter()
    for schedule in found:
        if len(schedule.cron.split()) != 5 or not croniter.is_valid(schedule.cron):
            raise ConfigError(f"schedule {schedule.name!r}: {schedule.cron!r} is not a 5-field cron expression",
                              hint="minute hour day-of-month month day-of-week, in UTC, e.g. '*/15 * * * *'")
    return found


def latest_fire(cron: str, now: dt.datetime) -> dt.datetime | None:
    """The latest time ``<= now`` the cron expression fires at (None: it never fires)."""
    base = now.astimezone(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)  # get_prev is strict
    try:
        fire: dt.datetime = _croniter()(cron, base).get_prev(dt.datetime)
    except Exception:  # CroniterBadDateError: a date that never comes (30 Feb)
        return None
    return fire


def next_fire(cron: str, now: dt.datetime) -> dt.datetime | None:
    """The first time ``> now`` the cron expression fires at (None: never)."""
    try:
        fire: dt.datetime = _croniter()(cron, now.astimezone(dt.UTC)).get_next(dt.datetime)
    except Exception:
        return None
    return fire


def missed_between(cron: str, after: dt.datetime, before: dt.datetime) -> int:
    """Fires strictly between two times (counted up to a limit: only for the log)."""
    it = _croniter()(cron, after)
    count = 0
    while count < MISSED_COUNT_LIMIT and it.get_next(dt.datetime) < before:
        count += 1
    return count


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def _parse(value: object) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _no_alerts(workspace: Workspace, **_: Any) -> list[SentAlert]:
    return []


class Scheduler:
    """Runs the project's schedules; ``clock`` (aware UTC datetimes), ``runner`` (one run of a schedule,
    returning a ``RunResult`` or raising ``LakeforgeError``) and ``alerts`` (``evaluate(workspace)``) are
    injectable for tests."""

    def __init__(self, workspace: Workspace, *, clock: Callable[[], dt.datetime] = _now,
                 runner: Callable[[Schedule], Any] | None = None,
                 alerts: Callable[[Workspace], Any] | None = None) -> None:
        self.workspace = workspace
        self.clock = clock
        self.schedules = schedules_of(workspace)
        self._runner = runner or self._run
        self._alerts = alerts
        self.alert_every = dt.timedelta(minutes=workspace.config.orchestration.alert_check_minutes)
        self.last_alert_check: dt.datetime | None = None
        self.running: str | None = None  # the schedule whose run is going on
        self.blocked: str | None = None  # why this process does not run the schedules
        self._mutex = threading.Lock()
        self._state: dict[str, dict[str, Any]] = self._load()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock_file: IO[str] | None = None

    # -- state ------------------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Any]]:
        """The claimed fires; unreadable state counts as none (the safe side: a fire skipped, never run twice)."""
        lakehouse = self.workspace.lakehouse
        try:
            if not lakehouse.exists(STATE):
                return {}
            data = lakehouse.read_json(STATE)
            return {str(k): dict(v) for k, v in dict(data.get("schedules", {})).items()}
        except Exception as exc:
            log.warning("scheduler state %s unreadable (%s): starting afresh, no past fire is run", STATE, exc)
            return {}

    def _save(self) -> None:
        with self._mutex:
            payload = {"version": 1, "schedules": {k: dict(v) for k, v in self._state.items()}}
        self.workspace.lakehouse.write_json_atomic(STATE, payload)

    def _update(self, name: str, **fields: Any) -> None:
        with self._mutex:
            self._state.setdefault(name, {}).update(fields)

    def state(self) -> dict[str, dict[str, Any]]:
        with self._mutex:
            return {k: dict(v) for k, v in self._state.items()}

    # -- one step ---------------------------------------------------------------------------------
    def tick(self, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Run what is due at ``now`` (one run per schedule at most), then the alert check if it is time.
        Returns what happened, one item per schedule that had a fire to handle."""
        now = (now or self.clock()).astimezone(dt.UTC)
        done = [item for schedule in self.schedules if (item := self._handle(schedule, now)) is not None]
        self._check_alerts(now)
        return done

    def _handle(self, schedule: Schedule, now: dt.datetime) -> dict[str, Any] | None:
        fire = latest_fire(schedule.cron, now)
        if fire is None:
            return None
        entry = self.state().get(schedule.name)
        claimed = _parse(entry.get("last_fire")) if entry else None
        if entry is None or claimed is None or entry.get("cron") != schedule.cron:
            # first start (or a new cron): claim the latest past fire, run from the next one
            self._update(schedule.name, cron=schedule.cron, last_fire=_iso(fire), claimed_at=_iso(now),
                         status="initialized", run_id=None, ended_at=None, error=None, missed=0)
            self._save()
            log.info("schedule %s (%s): first start, next run at %s", schedule.name, schedule.cron,
                     _iso(next_fire(schedule.cron, now)))
            return {"schedule": schedule.name, "fire": fire, "action": "initialized", "missed": 0}
        if fire <= claimed:
            return None
        missed = missed_between(schedule.cron, claimed, fire)
        # the claim is durable before the run starts: whatever happens to this process, no second run of it
        self._update(schedule.name, last_fire=_iso(fire), claimed_at=_iso(now), status="running", run_id=None,
                     ended_at=None, error=None, missed=missed)
        try:
            self._save()
        except BaseException:  # not claimed, so not run: the next wake-up tries again
            with self._mutex:
                self._state[schedule.name] = entry
            raise
        if missed:
            log.info("schedule %s: %s%s missed fire(s) before %s coalesced into this run", schedule.name, missed,
                     "+" if missed >= MISSED_COUNT_LIMIT else "", _iso(fire))
        log.info("schedule %s: run for the fire at %s", schedule.name, _iso(fire))
        action, run_id, error = self._execute(schedule)
        self._update(schedule.name, status=action, run_id=run_id, ended_at=_iso(self.clock()), error=error)
        try:
            self._save()
        except Exception as exc:  # the claim is already saved: only the outcome is lost
            log.warning("schedule %s: the run's outcome could not be saved: %s", schedule.name, exc)
        return {"schedule": schedule.name, "fire": fire, "action": action, "missed": missed, "run_id": run_id,
                "error": error}

    def _execute(self, schedule: Schedule) -> tuple[str, str | None, str | None]:
        """One run: (outcome, run id, error). Never raises: the loop goes on whatever happens."""
        self.running = schedule.name
        try:
            result = self._runner(schedule)
        except LakeforgeError as exc:
            run = getattr(exc, "run", None)
            run_id = getattr(run, "run_id", None)
            if isinstance(exc, RunLocked):
                log.warning("schedule %s: skipped, another run is going on (%s); next try at the next fire",
                            schedule.name, exc.message)
                return "skipped", run_id, exc.message
            log.error("schedule %s: run %s failed: %s", schedule.name, run_id, exc.message)
            return "failed", run_id, exc.message
        except Exception as exc:
            log.exception("schedule %s: the run raised", schedule.name)
            return "failed", None, f"{type(exc).__name__}: {exc}"
        finally:
            self.running = None
        status = str(getattr(result, "status", "succeeded"))
        run_id = getattr(result, "run_id", None)
        log.info("schedule %s: run %s %s", schedule.name, run_id, status)
        return status, run_id, None

    def _run(self, schedule: Schedule) -> Any:
        """A run in a workspace of its own (its engine is closed after the run; the web thread never shares it),
        watched by the configured observers, as ``lakeforge run`` is."""
        from lakeforge.ops.observers import configured
        from lakeforge.pipeline.progress import Reporter
        from lakeforge.pipeline.runner import execute

        with Workspace(self.workspace.path, engine=self.workspace.config.engine.type) as workspace:
            return execute(workspace, observers=configured(workspace), select=schedule.select,
                           full_refresh=schedule.full_refresh, reporter=Reporter())

    def _check_alerts(self, now: dt.datetime) -> None:
        if not self.workspace.config.alerts.rules:
            return
        if self.last_alert_check is not None and now - self.last_alert_check < self.alert_every:
            return
        evaluate = self._alerts
        if evaluate is None:
            try:
                from lakeforge.ops.alerts import evaluate as found
            except ImportError as exc:
                log.warning("alert checks disabled: %s", exc)
                found = _no_alerts
            evaluate = self._alerts = found
        try:
            sent = evaluate(self.workspace)
        except Exception as exc:
            log.warning("alert check failed: %s", exc)
            sent = []
        finally:
            self.last_alert_check = now  # done (the next one is due alert_check_minutes after it was due)
        if sent:
            log.info("alert check: %d notification(s)", len(sent))

    # -- the loop ---------------------------------------------------------------------------------
    def next_wake(self, now: dt.datetime) -> dt.datetime:
        """When something is next due: a fire, the alert check; at most ``MAX_WAIT`` away."""
        times = [t for s in self.schedules if (t := next_fire(s.cron, now)) is not None]
        if self.workspace.config.alerts.rules:
            times.append(self.last_alert_check + self.alert_every if self.last_alert_check else now)
        latest = now + dt.timedelta(seconds=MAX_WAIT)
        return min([latest, *times])

    def run_forever(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set, sleeping until the next due time (30 s at most)."""
        try:
            while not stop.is_set():
                if not self._hold_lock():
                    stop.wait(MAX_WAIT)
                    continue
                try:
                    self.tick()
                except Exception:  # a storage hiccup: logged, and the next wake-up tries again
                    log.exception("scheduler tick failed")
                now = self.clock()
                wait = (self.next_wake(now) - now).total_seconds()
                stop.wait(min(max(wait + 0.05, 0.05), MAX_WAIT))
        finally:
            self._release_lock()

    def start(self) -> None:
        """``run_forever`` in a background thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, args=(self._stop,), name="lakeforge-scheduler",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the loop to stop and wait (up to ``timeout``) for a run in progress; True if it stopped."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- one scheduler per lakehouse --------------------------------------------------------------
    def _lock_path(self) -> Path:
        lakehouse = self.workspace.lakehouse
        if lakehouse.is_local:
            return lakehouse.local_path() / "_lakeforge" / "scheduler.lock"
        return self.workspace.path / ".lakeforge" / "scheduler.lock"

    def _hold_lock(self) -> bool:
        if self._lock_file is not None:
            return True
        path = self._lock_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "w")  # noqa: SIM115 - held for the life of the loop
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            if self.blocked is None:
                log.warning("another lakeforge serve runs this lakehouse's schedules (%s): waiting to take over", path)
            self.blocked = f"another lakeforge serve runs the schedules (lock {path})"
            return False
        self._lock_file, self.blocked = handle, None
        self._state = self._load()  # what the previous holder claimed
        for name, entry in self._state.items():
            if entry.get("status") == "running":  # that process stopped during the run: not run again
                log.warning("schedule %s: the run for the fire at %s did not finish (the server stopped); not run "
                            "again, the next fire resumes its work", name, entry.get("last_fire"))
                entry["status"] = "interrupted"
        return True

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # -- what /health shows -----------------------------------------------------------------------
    def describe(self, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        now = now or self.clock()
        state = self.state()
        found = []
        for schedule in self.schedules:
            entry = state.get(schedule.name, {})
            found.append({"name": schedule.name, "cron": schedule.cron, "select": schedule.select,
                          "full_refresh": schedule.full_refresh, "last_fire": entry.get("last_fire"),
                          "next_fire": _iso(next_fire(schedule.cron, now)), "status": entry.get("status"),
                          "run_id": entry.get("run_id"), "ended_at": entry.get("ended_at"),
                          "error": entry.get("error"), "running": self.running == schedule.name})
        return found
