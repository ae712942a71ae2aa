"""What watches a run: observers called by the runner at each stage and at the end (lineage, alerts).

An observer never fails a run: an exception in one is reported on stderr and the run goes on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lakeforge.results import RunResult, StageResult


class Observer:
    """No-op base: override what you need."""

    def run_started(self, run_id: str) -> None: ...

    def stage_started(self, name: str, kind: str) -> None: ...

    def stage_finished(self, stage: StageResult) -> None: ...

    def stage_failed(self, name: str, kind: str, error: BaseException) -> None: ...

    def run_finished(self, result: RunResult) -> None: ...


class Observers:
    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = list(observers)

    def __getattr__(self, method: str) -> Callable[..., None]:
        def call(*args: object) -> None:
            for observer in self.observers:
                try:
                    getattr(observer, method)(*args)
                except Exception as exc:  # observing must not break the pipeline
                    print(f"warning: {type(observer).__name__}.{method} failed: {exc}", file=sys.stderr)
        return call
