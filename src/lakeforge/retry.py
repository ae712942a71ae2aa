"""Retries of transient errors, with exponential backoff; never of user errors, nor of errors nobody typed.

Transient: what may succeed if tried again -- object storage answering 5xx or throttling, a connection lost or
refused, a timeout, a lock another process holds. Every stage is idempotent (exactly-once ingestion, model commits
with their upstream versions, the warehouse's ledger), so a retried stage redoes only what had not committed.

Which errors those are is decided by type alone. Each boundary that calls a driver (object storage, the Delta log,
PostgreSQL, Snowflake, DuckDB, Spark) maps the driver's exceptions once, where it calls it, to lakeforge's errors:
the transient ones carry the :class:`~lakeforge.errors.Transient` mixin (``TransientStorageError``,
``TransientWarehouseError``, ``TransientEngineError``). Python's own ``ConnectionError`` and ``TimeoutError`` are
transient too. Everything else fails at once: user errors (bad configuration, SQL, data failing an expectation, a
missing driver, bad credentials) because waiting does not fix them, and an exception of a type no boundary mapped
because nothing says that waiting would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from lakeforge.config.operations import RetryConfig
from lakeforge.errors import LakeforgeError, Transient

T = TypeVar("T")
TRANSIENT_TYPES: tuple[type[BaseException], ...] = (Transient, ConnectionError, TimeoutError)


def chain(exc: BaseException) -> list[BaseException]:
    """The error and what caused it or was being handled when it was raised (at most 8)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` may go away if the same work is tried again, by its type: a :class:`Transient` error (or
    ``ConnectionError``, ``TimeoutError``), or one raised ``from`` such an error by code that did not decide
    itself. A lakeforge error without the mixin is permanent (its boundary decided so); an exception of any other
    type is not retried."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, TRANSIENT_TYPES):
            return True
        if isinstance(current, LakeforgeError):
            return False
        current = current.__cause__  # what it wraps explicitly (``raise ... from``)
    return False


def call(work: Callable[[], T], *, policy: RetryConfig, what: str,
         on_retry: Callable[[str, int, BaseException, float], None] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> tuple[T, int]:
    """``work()``, tried again after transient errors as ``policy`` says. Returns its result and the attempts;
    an error that ends the tries carries their number (:func:`attempts_of`)."""

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            wait = state.next_action.sleep if state.next_action else 0.0
            if exc is not None:
                on_retry(what, state.attempt_number, exc, wait)

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=policy.backoff_seconds, max=policy.backoff_max_seconds),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    attempts = 0

    def counted() -> T:
        nonlocal attempts
        attempts += 1
        return work()

    try:
        result = retrying(counted)
    except BaseException as exc:  # the tries it took travel with the error
        exc.lakeforge_attempts = attempts  # type: ignore[attr-defined]
        raise
    return result, attempts


def attempts_of(exc: BaseException) -> int:
    """How many tries :func:`call` made before giving up with ``exc`` (1 when not known)."""
    return int(getattr(exc, "lakeforge_attempts", 1))
