"""Progress for long work: a live display on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from lakeforge.results import StageResult


class Reporter:
    """Silent base: used when the caller wants JSON on stdout or runs in a notebook."""

    def begin(self, total: int) -> None: ...

    def start(self, name: str) -> None: ...

    def finish(self, stage: StageResult) -> None: ...

    def end(self) -> None: ...

    def step(self, what: str, done: int, total: int) -> None:
        """Progress inside one long step (``what``: e.g. "training: boosting rounds"), ``done`` of ``total``."""

    def retry(self, name: str, attempt: int, error: BaseException, wait: float) -> None:
        """A stage failed with a transient error and is tried again after ``wait`` seconds."""
        print(f"{name}: attempt {attempt} failed ({' '.join(str(error).split())[:200]}); retrying in {wait:.1f}s",
              file=sys.stderr, flush=True)


def _summary(stage: StageResult) -> str:
    if stage.status == "skipped":
        return f"{stage.name}: nothing to do ({stage.detail})"
    parts = [f"{stage.rows_in:,} in", f"{stage.rows_out:,} out"]
    if stage.rows_dropped:
        parts.append(f"{stage.rows_dropped:,} dropped")
    if stage.rows_quarantined:
        parts.append(f"{stage.rows_quarantined:,} quarantined")
    if stage.files_quarantined:  # an empty file stands for no rows: without this the line would not show it
        parts.append(f"{stage.files_quarantined:,} file{'s' if stage.files_quarantined > 1 else ''} quarantined whole")
    return f"{stage.name}: {', '.join(parts)} [{stage.strategy}] in {stage.seconds:.2f}s"


class LogReporter(Reporter):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def finish(self, stage: StageResult) -> None:
        print(f"lakeforge: {_summary(stage)}", file=self.stream, flush=True)

    def step(self, what: str, done: int, total: int) -> None:
        """A line at the start, at each quarter and at the end (a log, not a live display)."""
        quarter = max(1, total // 4)
        if done in (0, total) or done % quarter == 0:
            print(f"lakeforge: {what} {done:,}/{total:,}", file=self.stream, flush=True)


class LiveReporter(Reporter):
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                 console=console, transient=True)
        self.task: int | None = None
        self.steps: dict[str, int] = {}

    def begin(self, total: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("run", total=total)

    def start(self, name: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, description=name)  # type: ignore[arg-type]

    def finish(self, stage: StageResult) -> None:
        self.console.print(f"  [green]✓[/] {_summary(stage)}" if stage.status == "ok" else f"  · {_summary(stage)}")
        if self.task is not None:
            self.progress.advance(self.task)  # type: ignore[arg-type]

    def step(self, what: str, done: int, total: int) -> None:
        if what not in self.steps:
            self.progress.start()
            self.steps[what] = int(self.progress.add_task(what, total=total))
        self.progress.update(self.steps[what], completed=done, total=total)  # type: ignore[arg-type]

    def end(self) -> None:
        self.progress.stop()


def reporter_for(console: Console, *, quiet: bool) -> Reporter:
    if quiet:
        return Reporter()
    return LiveReporter(console) if console.is_terminal else LogReporter()
