"""Retries of transient errors, with exponential backoff; never of user errors.

Transient: what may succeed if tried again — object storage answering 5xx or throttling, a connection lost or
refused, a timeout. Every stage is idempotent (exactly-once ingestion, model commits with their upstream
versions, the warehouse's ledger), so a retried stage redoes only what had not committed. User errors (bad
configuration, SQL, data failing an expectation, a missing driver, bad credentials) fail at once: waiting does
not fix them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from lakeforge.config.operations import RetryConfig
from lakeforge.errors import (
    ConfigError,
    ExpectationFailed,
    LimitExceeded,
    MissingDependency,
    ModelError,
    Transient,
)

T = TypeVar("T")
USER_ERRORS = (ConfigError, ModelError, ExpectationFailed, LimitExceeded, MissingDependency)
_TRANSIENT = re.compile(
    r"\b(50[0-4]|429)\b|slow[ _]?down|throttl|too many requests|request ?limit|service[ _]unavailable|"
    # (pyarrow's S3 names the AWS errors SLOW_DOWN, SERVICE_UNAVAILABLE, INTERNAL_FAILURE, NETWORK_CONNECTION)
    r"internal[ _]failure|internal server error|encountered an internal error|network[ _]connection|"
    r"bad gateway|gateway time-?out|timed? ?out|temporar(y|ily)|connection (is )?(lost|closed|reset|refused|"
    r"aborted|timed out)|server closed the connection|terminating connection|could not connect|connection to "
    r"server|broken pipe|network is unreachable|eof detected|the database system is (starting up|shutting down|"
    r"in recovery mode)|consuming input failed|ssl syscall|"
    # a Delta commit that lost to another one: under the run lock, its own earlier try whose reply was lost
    r"concurrent transactions? (added|deleted|updated|removed|failed)|concurrent (append|delete|update)|"
    # DuckDB's one-writer file lock, held by another process (a run, the dashboards' copy, a BI tool) for a while
    r"could not set lock on file|different configuration than existing connections", re.IGNORECASE)
_PERMANENT = re.compile(
    r"authenticat|password|permission denied|access denied|forbidden|\b40[134]\b|does not exist|not found|"
    r"syntax error|invalid", re.IGNORECASE)
_TRANSIENT_TYPES = (ConnectionError, TimeoutError)


def chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) may go away if the same work is tried again."""
    if isinstance(exc, USER_ERRORS):
        return False
    for error in chain(exc):
        if isinstance(error, (Transient, *_TRANSIENT_TYPES)) or type(error).__name__ in ("OperationalError",
                                                                                        "InterfaceError"):
            return not _PERMANENT.search(str(error))
        text = str(error)
        if _TRANSIENT.search(text) and not _PERMANENT.search(text):
            return True
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
