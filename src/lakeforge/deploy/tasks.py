"""Orchestrator ids of lakeforge's tasks: ``ingest:telemetry`` -> ``ingest__telemetry`` (Airflow task ids and
Databricks task keys are the same names)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from lakeforge.errors import ConfigError

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_id(task: str) -> str:
    """``ingest:telemetry`` -> ``ingest__telemetry``, ``silver.telemetry`` -> ``silver__telemetry``."""
    return _UNSAFE.sub("__", task)


def unique_ids(tasks: Iterable[str], *, to_id: Callable[[str], str], what: str, limit: int) -> dict[str, str]:
    """Task -> its id, refusing two tasks with one id, or an id over the orchestrator's length limit."""
    ids: dict[str, str] = {}
    seen: dict[str, str] = {}
    for task in tasks:
        key = to_id(task)
        if key in seen:
            raise ConfigError(f"tasks {seen[key]!r} and {task!r} both become the {what} {key!r}",
                              hint="rename one of the models or sources")
        if len(key) > limit:
            raise ConfigError(f"task {task!r} is longer than the {limit} characters of a {what}",
                              hint="use a shorter model or source name")
        seen[key] = task
        ids[task] = key
    return ids
