"""The runner: ingest every source, run the models in graph order, load the warehouse — each incrementally.

One run at a time per lakehouse (a lock file); every run leaves a record in ``_lakeforge/runs/``.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from lakeforge.errors import LakeforgeError, RunLocked, StorageError
from lakeforge.models.execute import run_model
from lakeforge.ops import events, retry
from lakeforge.ops.hooks import Observers
from lakeforge.ops.progress import Reporter
from lakeforge.ops.results import RunResult, StageResult
from lakeforge.redaction import redact_data

if TYPE_CHECKING:
    from lakeforge.models import Model
    from lakeforge.project import Project

RUNS = "_lakeforge/runs"


@contextmanager
def run_lock(project: Project) -> Iterator[None]:
    """One run at a time per lakehouse: an exclusive ``flock`` on the ``_lakeforge`` folder of a local lakehouse
    (for one on object storage, the project's ``.lakeforge`` folder). A folder, not a file: deleting
    ``run.lock`` during a run once let a second run start beside it (the second locked a new file); the folder
    holds the lakehouse's state and is not replaced. After locking, the folder the path names must still be the
    one locked. ``run.lock`` in it is locked too, as older versions of lakeforge lock only that."""
    base = project.lakehouse.local_path() if project.lakehouse.is_local else project.path / ".lakeforge"
    folder = base / "_lakeforge" if project.lakehouse.is_local else base
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


def execute(project: Project, *, full_refresh: bool, reporter: Reporter,
            select: list[str] | None = None, task: str | None = None, score_only: bool = False) -> RunResult:
    """A whole run, or with ``task`` one stage of it (``ingest:<source>``, a model, ``ml:<stage>``,
    ``warehouse``): what orchestrators (Airflow, Databricks Jobs) call, one task per stage, in the order of
    :func:`tasks`. ``score_only``: the scoring stages (the champion looked up even when the features did not
    change) and the warehouse load (``lakeforge ml score``)."""
    from lakeforge.ml import scoring

    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6]
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    stages: list[StageResult] = []
    error: LakeforgeError | None = None
    failed: str | None = None
    graph = project.graph()
    models = project.select(select, graph=graph)
    project.check_strategies(models)  # a header that demands a wrong strategy fails before anything runs
    project.catalog.forget()  # the change feeds a run reads (a Spark catalog reads its own, uncached)
    sources, load = list(project.config.sources), True
    scorers = scoring.enabled(project) if select is None else []
    if task is not None:
        sources, models, load = _task_scope(project, graph.ordered(), task)
        scorers = [task] if task in scoring.enabled(project) else []
    elif score_only:
        sources, models = [], []
    keys = {m.name: m.config.unique_key for m in graph.ordered() if m.config.unique_key}
    policy = project.config.orchestration.retry
    observers = Observers(project.observers())
    crashed: list[str] = []
    attempts: dict[str, int] = {}
    rebuilt: set[str] = set()  # models edited (or downstream of one) that this run recomputes whole

    def stage(name: str, kind: str, work: Callable[[], StageResult]) -> None:
        nonlocal failed
        reporter.start(name)
        observers.stage_started(name, kind)
        failed = name
        try:
            done, tries = retry.call(work, policy=policy, what=name, on_retry=reporter.retry)
        except BaseException as exc:
            attempts[name] = retry.attempts_of(exc)
            observers.stage_failed(name, kind, exc)
            raise
        done.attempts = tries
        stages.append(done)
        reporter.finish(done)
        observers.stage_finished(done)

    def result_of(error: LakeforgeError | None) -> RunResult:
        if error is not None:
            status = "failed"
        elif any(s.did_work for s in stages):
            status = "succeeded"
        else:
            status = "nothing_to_do"
        return RunResult(
            run_id=run_id, status=status, started_at=started_at, seconds=time.perf_counter() - started,  # type: ignore[arg-type]
            stages=stages, bytes_processed=sum(s.bytes for s in stages if s.kind == "ingest"),
            error=str(error) if error else None, failed_stage=failed if error else None,
            failed_attempts=attempts.get(failed or "") if error else None, crashed_runs=crashed,
        )

    reporter.begin(len(sources) + len(models) + len(scorers) + int(load))
    try:
        with run_lock(project):
            crashed.extend(events.log_crashed(project))  # runs that died: logged, their work resumed below
            events.mark_started(project, run_id, started_at)
            before = events.versions(project)
            observers.run_started(run_id)
            try:
                for name in sources:
                    stage(f"ingest:{name}", "ingest",
                          lambda name=name: project.ingestor(name, engine=project.engine).run())  # type: ignore[misc]
                for model in models:
                    stage(model.name, "model",
                          lambda model=model: run_model(  # type: ignore[misc]
                              model, catalog=project.run_catalog, engine=project.engine, run_id=run_id,
                              full_refresh=full_refresh, upstream_keys=keys, rebuilt=rebuilt))
                for name in scorers:
                    stage(name, "ml", lambda name=name: scoring.run_stage(  # type: ignore[misc]
                        project, name, run_id=run_id, full_refresh=full_refresh, force=score_only))
                if load:
                    stage("warehouse", "load", lambda: project.load_warehouse(run_id=run_id, models=graph.ordered()))
                failed = None
            except LakeforgeError as exc:
                error = disk_full(project, failed, exc) if no_space_left(exc) else exc
            except Exception as exc:  # a bug, not bad input: still recorded as a failed run
                if no_space_left(exc):
                    error = disk_full(project, failed, exc)
                elif retry.is_transient(exc):  # not a bug: the store, network or warehouse stayed down
                    error = LakeforgeError(
                        f"{failed or 'the run'} failed after {attempts.get(failed or '', 1)} attempts: "
                        f"{type(exc).__name__}: {_one_line(exc)}",
                        hint="the object store, network or warehouse kept failing (5xx, throttling, timeouts, lost "
                             "connections) through every retry (orchestration.retry): run again once it has "
                             "recovered; the run resumes where this one stopped")
                else:
                    error = LakeforgeError(f"internal error in {failed or 'the run'}: {type(exc).__name__}: {exc}",
                                           hint="rerun with --debug for the traceback and report it")
                error.__cause__ = exc
            finally:
                reporter.end()
            result = result_of(error)
            _finish(project, result, before=before)  # in the lock: the next run must not take our marker for a crash
    except RunLocked as exc:  # the lock was busy: no run happened
        error = exc
        result = result_of(error)
        project.lakehouse.write_json_atomic(f"{RUNS}/{run_id}.json", redact_data(result.to_dict()))
    except OSError as exc:  # the run's own records (marker, run record) could not be written
        if not no_space_left(exc):
            raise
        error = disk_full(project, failed if error is not None else None, exc)
        error.__cause__ = exc
        result = result_of(error)
    observers.run_finished(result)
    if error is not None:
        error.run = result  # type: ignore[attr-defined]
        raise error
    return result


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


def disk_full(project: Project, stage: str | None, exc: BaseException) -> LakeforgeError:
    """The error a person acts on when a volume is full: what was being written, where, and what to do."""
    if stage is None:
        what = f"the run's records under {project.lakehouse.join('_lakeforge')}"
    elif stage == "warehouse":
        what = "the warehouse"
    elif stage.startswith("ingest:"):
        source = stage.removeprefix("ingest:")
        what = f"bronze.{source} (or its quarantine, manifests) in the lakehouse {project.lakehouse.uri}"
    else:
        what = f"{stage} in the lakehouse {project.lakehouse.uri}"
    detail = _one_line(exc, 300)
    return LakeforgeError(
        f"no space left on device: {stage or 'the run'} could not write {what} ({detail})",
        hint="free space on that volume (or grow it), then run `lakeforge run` again: it resumes where this run "
             "stopped, committed batches and models are kept and nothing is counted twice; `lakeforge vacuum` "
             "lists data files that old table versions no longer need")


def _finish(project: Project, result: RunResult, *, before: dict[str, int]) -> None:
    """The run's record (JSON) and its rows in the event log; a failure to log is said, not raised. When the run
    failed already, a record that cannot be written (the store still down, the disk full) is said too, so that
    the run's own error is the one reported; its marker stays and the next run logs it as crashed."""
    try:
        project.lakehouse.write_json_atomic(f"{RUNS}/{result.run_id}.json", redact_data(result.to_dict()))
    except Exception as exc:
        if result.error is None:
            raise
        print(f"warning: the record of the failed run {result.run_id} could not be written "
              f"({_one_line(exc, 300)}); the next run logs it as crashed", file=sys.stderr)
        return
    try:
        retry.call(lambda: events.record(project, result, before=before), policy=project.config.orchestration.retry,
                   what="event log")
    except Exception as exc:
        print(f"warning: the run {result.run_id} could not be written to the event log: {exc}", file=sys.stderr)


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
    from lakeforge.ml import scoring

    producers = {m.name: m.name for m in stored} | {f"bronze.{s}": f"ingest:{s}" for s in project.config.sources}
    for name in scoring.enabled(project):
        found[name] = [producers[t] for t in scoring.io(project, name)[0] if t in producers]
    read = {d for deps in found.values() for d in deps}
    found[WAREHOUSE_TASK] = [t for t in found if t not in read and not t.startswith("ingest:")] or list(found)
    return found


def _task_scope(project: Project, ordered: list[Model], task: str) -> tuple[list[str], list[Model], bool]:
    if task == WAREHOUSE_TASK:
        return [], [], True
    if task.startswith("ingest:") and task[len("ingest:"):] in project.config.sources:
        return [task[len("ingest:"):]], [], False
    if task.startswith("ml:") and task in tasks(project):
        return [], [], False
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
