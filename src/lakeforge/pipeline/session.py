"""The run session: what every path that changes the lakehouse shares (``run``, ``run --task``, ``ml score``,
``backfill``).

A session takes the run lock, logs the runs that died (their markers), marks itself started, runs its stages under
the retry policy (with the reporter and the observers: lineage, alerts), turns what went wrong into the error a
person acts on (a full disk, a store that stayed down, a bug), writes the run's record and its event-log rows, and
tells the observers the result. The callers decide only which stages to run::

    with RunSession(workspace, reporter=reporter) as session:
        session.stage("ingest:telemetry", "ingest", work)
    result = session.result   # raised as the error's ``run`` when the session failed
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from lakeforge import retry
from lakeforge.errors import LakeforgeError, RunLocked, StorageError
from lakeforge.pipeline import events
from lakeforge.pipeline.hooks import Observer, Observers
from lakeforge.pipeline.progress import Reporter
from lakeforge.redaction import redact_data
from lakeforge.results import RunResult, StageResult

if TYPE_CHECKING:
    from lakeforge.workspace import Workspace

RUNS = "_lakeforge/runs"
T = TypeVar("T")


@contextmanager
def run_lock(workspace: Workspace) -> Iterator[None]:
    """One run at a time per lakehouse: an exclusive ``flock`` on the ``_lakeforge`` folder of a local lakehouse
    (for one on object storage, the project's ``.lakeforge`` folder). A folder, not a file: deleting
    ``run.lock`` during a run once let a second run start beside it (the second locked a new file); the folder
    holds the lakehouse's state and is not replaced. After locking, the folder the path names must still be the
    one locked. ``run.lock`` in it is locked too, as older versions of lakeforge lock only that."""
    base = workspace.lakehouse.local_path() if workspace.lakehouse.is_local else workspace.path / ".lakeforge"
    folder = base / "_lakeforge" if workspace.lakehouse.is_local else base
    try:
        folder.mkdir(parents=True, exist_ok=True)
        held = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise unwritable(folder, exc) from None
    try:
        _lock(held, folder)
        mine, named = os.fstat(held), os.stat(folder)
        if (mine.st_dev, mine.st_ino) != (named.st_dev, named.st_ino):
            raise RunLocked(f"the folder {folder} was replaced while this run locked it",
                            hint="run again; do not move or delete the lakehouse's _lakeforge folder")
        try:
            fh = open(folder / "run.lock", "w")  # noqa: SIM115 (closed below; the error is this function's)
        except OSError as exc:
            raise unwritable(folder, exc) from None
        with fh:
            _lock(fh.fileno(), folder)
            yield
    finally:
        os.close(held)  # (closing releases the locks)


def unwritable(folder: Path, exc: OSError) -> StorageError:
    """The error for a lakehouse a run cannot write (read-only file system, permissions, a full disk)."""
    return StorageError(f"cannot write the lakehouse at {folder}: {exc.strerror or exc}",
                        hint="a run writes the lakehouse: run as a user who can write it, or point `lakehouse:` in "
                             "lakeforge.yml at a writable folder (status, query, runs and report only read it)")


def _lock(fd: int, folder: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunLocked(f"another lakeforge run holds the lock on {folder}",
                        hint="wait for it to finish; runs of one lakehouse are one at a time") from None


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6]


class RunSession:
    """One run of the lakehouse, from the lock to the record (see the module's docstring). ``label`` names the
    work in messages (``the run``, ``the backfill of ...``); ``detail`` goes to the event log's run row;
    ``extra`` is added to the run record (a backfill's range); ``observers`` are told each stage and the result."""

    def __init__(self, workspace: Workspace, *, reporter: Reporter | None = None, label: str = "the run",
                 detail: str | None = None, extra: dict[str, Any] | None = None,
                 observers: Sequence[Observer] = ()) -> None:
        self.workspace = workspace
        self.reporter = reporter or Reporter()
        self.label, self.detail, self.extra = label, detail, extra or {}
        self.run_id = new_run_id()
        self.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.stages: list[StageResult] = []
        self.crashed: list[str] = []
        self.attempts: dict[str, int] = {}
        self.failed: str | None = None
        self.error: LakeforgeError | None = None
        self.result: RunResult | None = None
        self._started = time.perf_counter()
        self._observers = Observers(list(observers))
        self._policy = workspace.config.orchestration.retry
        self._before: dict[str, int] = {}
        self._lock: Any = None

    # -- the session's life ------------------------------------------------------------------------------------
    def __enter__(self) -> RunSession:
        self._lock = run_lock(self.workspace)
        try:
            self._lock.__enter__()
        except RunLocked as exc:  # the lock was busy: no run happened, but its record says it was refused
            self.error = exc
            self.result = self._result()
            self.workspace.lakehouse.write_json_atomic(f"{RUNS}/{self.run_id}.json", redact_data(self._record()))
            self._close()
        except OSError as exc:
            self._fail_on_records(exc)
        try:
            self.crashed.extend(events.log_crashed(self.workspace))  # runs that died: their work is resumed
            events.mark_started(self.workspace, self.run_id, self.started_at)
            self._before = events.versions(self.workspace)
        except BaseException as exc:
            self._lock.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, OSError):
                self._fail_on_records(exc)
            raise
        self._observers.run_started(self.run_id)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.reporter.end()
        if exc is not None and not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: the marker stays
            self._lock.__exit__(kind, exc, tb)
            return
        if exc is not None:
            self.error = self._explain(exc)
        self.result = self._result()
        try:
            try:
                self._finish()  # in the lock: the next run must not take our marker for a crash
            finally:
                self._lock.__exit__(None, None, None)
        except OSError as finish_error:
            self._fail_on_records(finish_error)
        self._close()  # (raises the session's error)

    def stage(self, name: str, kind: str, work: Callable[[], T],
              stage_of: Callable[[T], StageResult] | None = None) -> T:
        """Run one stage under the retry policy; ``stage_of`` finds the :class:`StageResult` in what ``work``
        returns (default: it is one)."""
        self.reporter.start(name)
        self._observers.stage_started(name, kind)
        self.failed = name
        try:
            done, tries = retry.call(work, policy=self._policy, what=name, on_retry=self.reporter.retry)
        except BaseException as exc:
            self.attempts[name] = retry.attempts_of(exc)
            self._observers.stage_failed(name, kind, exc)
            raise
        self.attempts[name] = tries
        found = stage_of(done) if stage_of is not None else done
        assert isinstance(found, StageResult)
        found.attempts = tries
        self.stages.append(found)
        self.reporter.finish(found)
        self._observers.stage_finished(found)
        self.failed = None
        return done

    # -- what went wrong, said once ------------------------------------------------------------------------------
    def _explain(self, exc: Exception) -> LakeforgeError:
        if no_space_left(exc):
            error = disk_full(self.workspace, self.failed, exc)
        elif isinstance(exc, LakeforgeError):
            return exc
        elif retry.is_transient(exc):  # not a bug: the store, network or warehouse stayed down
            error = LakeforgeError(
                f"{self.failed or self.label} failed after {self.attempts.get(self.failed or '', 1)} attempts: "
                f"{type(exc).__name__}: {_one_line(exc)}",
                hint="the object store, network or warehouse kept failing (5xx, throttling, timeouts, lost "
                     "connections) through every retry (orchestration.retry): run again once it has "
                     "recovered; the run resumes where this one stopped")
        else:  # a bug, not bad input: still recorded as a failed run
            error = LakeforgeError(f"internal error in {self.failed or self.label}: {type(exc).__name__}: {exc}",
                                   hint="rerun with --debug for the traceback and report it")
        error.__cause__ = exc
        return error

    def _fail_on_records(self, exc: OSError) -> None:
        """The session's own records (marker, run record) could not be written: a full disk is said as such."""
        if not no_space_left(exc):
            raise exc
        error = disk_full(self.workspace, self.failed if self.error is not None else None, exc)
        error.__cause__ = exc
        self.error = error
        self.result = self._result()
        self._close()

    def _close(self) -> None:
        """Tell the observers; raise the session's error, carrying its result."""
        assert self.result is not None
        self._observers.run_finished(self.result)
        if self.error is not None:
            self.error.run = self.result  # type: ignore[attr-defined]
            raise self.error

    # -- the result and its record ------------------------------------------------------------------------------
    def _result(self) -> RunResult:
        if self.error is not None:
            status = "failed"
        elif any(s.did_work for s in self.stages):
            status = "succeeded"
        else:
            status = "nothing_to_do"
        failed = self.failed if self.error is not None else None
        return RunResult(
            run_id=self.run_id, status=status, started_at=self.started_at,  # type: ignore[arg-type]
            seconds=time.perf_counter() - self._started, stages=self.stages,
            bytes_processed=sum(s.bytes for s in self.stages if s.kind == "ingest"),
            error=str(self.error) if self.error else None, failed_stage=failed,
            failed_attempts=self.attempts.get(failed or "") if self.error else None, crashed_runs=self.crashed)

    def _record(self) -> dict[str, Any]:
        assert self.result is not None
        return {**self.result.to_dict(), **self.extra}

    def _finish(self) -> None:
        """The record (JSON) and the event-log rows; a failure to log is said, not raised. When the run failed
        already, a record that cannot be written (the store still down, the disk full) is said too, so that the
        run's own error is the one reported; its marker stays and the next run logs it as crashed."""
        result = self.result
        assert result is not None
        try:
            self.workspace.lakehouse.write_json_atomic(f"{RUNS}/{result.run_id}.json", redact_data(self._record()))
        except Exception as exc:
            if result.error is None:
                raise
            print(f"warning: the record of the failed run {result.run_id} could not be written "
                  f"({_one_line(exc, 300)}); the next run logs it as crashed", file=sys.stderr)
            return
        try:
            retry.call(lambda: events.record(self.workspace, result, before=self._before, detail=self.detail),
                       policy=self._policy, what="event log")
        except Exception as exc:
            print(f"warning: the run {result.run_id} could not be written to the event log: {exc}",
                  file=sys.stderr)


def _one_line(exc: BaseException, limit: int = 400) -> str:
    """An error's text on one line, without terminal colour codes (delta-rs puts some in its messages)."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())[:limit]


def no_space_left(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a full disk: ENOSPC from Python, or as delta-rs and DuckDB word it."""
    for error in retry.chain(exc):  # the error and its causes
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if "no space left on device" in str(error).lower() or "(os error 28)" in str(error):
            return True
    return False


def disk_full(workspace: Workspace, stage: str | None, exc: BaseException) -> LakeforgeError:
    """The error a person acts on when a volume is full: what was being written, where, and what to do."""
    if stage is None:
        what = f"the run's records under {workspace.lakehouse.join('_lakeforge')}"
    elif stage == "warehouse":
        what = "the warehouse"
    elif stage.startswith("ingest:"):
        source = stage.removeprefix("ingest:")
        what = f"bronze.{source} (or its quarantine, manifests) in the lakehouse {workspace.lakehouse.uri}"
    else:
        what = f"{stage} in the lakehouse {workspace.lakehouse.uri}"
    detail = _one_line(exc, 300)
    return LakeforgeError(
        f"no space left on device: {stage or 'the run'} could not write {what} ({detail})",
        hint="free space on that volume (or grow it), then run `lakeforge run` again: it resumes where this run "
             "stopped, committed batches and models are kept and nothing is counted twice; `lakeforge vacuum` "
             "lists data files that old table versions no longer need")
