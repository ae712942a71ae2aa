"""Continuous mode (``lakeforge run --watch``): poll the landing zone and run when files arrive."""

from __future__ import annotations

import time
from collections.abc import Callable

from lakeforge.errors import LakeforgeError
from lakeforge.results import RunResult

Outcome = RunResult | LakeforgeError


def watch(*, run: Callable[[], RunResult], backlog: Callable[[], dict[str, int]], interval: float = 1.0,
          max_runs: int | None = None, idle_timeout: float | None = None,
          on_run: Callable[[Outcome], None] | None = None) -> int:
    """Run once, then every time ``backlog`` (files waiting per source; polled every ``interval`` seconds) is
    not empty. A failing run is reported (``on_run`` gets the error) and watching goes on. Stops after
    ``max_runs`` runs, after ``idle_timeout`` seconds without new files, or on Ctrl-C. Returns the number of
    runs."""
    runs = 0
    idle_since = time.monotonic()
    first = True
    try:
        while max_runs is None or runs < max_runs:
            if first or backlog():
                first = False
                try:
                    outcome: Outcome = run()
                except LakeforgeError as exc:
                    outcome = exc
                runs += 1
                idle_since = time.monotonic()
                if on_run:
                    on_run(outcome)
                continue
            if idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    return runs
