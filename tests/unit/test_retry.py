"""Retries: decided by the error's type alone (a boundary typed it, or Python's own connection errors), never by
its text; and the backoff ``call`` applies."""

from __future__ import annotations

import psycopg
import pytest

from lakeforge.config.operations import RetryConfig
from lakeforge.errors import (
    ConfigError,
    EngineError,
    ExpectationFailed,
    LimitExceeded,
    MissingDependency,
    ModelError,
    StorageError,
    Transient,
    TransientEngineError,
    TransientStorageError,
    TransientWarehouseError,
    WarehouseError,
)
from lakeforge.retry import call, is_transient


class Throttled(Transient, OSError):
    """An error that says it is transient by its type, whatever its message."""


def raised_from(error: BaseException, cause: BaseException) -> BaseException:
    """``error`` as ``raise error from cause`` leaves it."""
    try:
        raise error from cause
    except BaseException as raised:
        return raised


def raised_while_handling(error: BaseException, handled: BaseException) -> BaseException:
    """``error`` raised inside ``except`` for ``handled`` (its context, not its cause)."""
    try:
        try:
            raise handled
        except BaseException:
            raise error  # noqa: B904 (the point: no explicit cause)
    except BaseException as raised:
        return raised


@pytest.mark.parametrize("error", [
    TransientStorageError("cannot read s3://b/x: AWS Error SLOW_DOWN", hint="run again"),
    TransientWarehouseError("loading gold.x failed: terminating connection due to administrator command"),
    TransientEngineError("model silver.x failed: java.net.SocketTimeoutException"),
    ConnectionResetError(104, "Connection reset by peer"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError("no words that say so"),
    Throttled("no words that say so"),
    raised_from(RuntimeError("wrapped by code that did not decide"), Throttled("underneath")),
    raised_from(KeyError("wrapped twice"), raised_from(RuntimeError("wrapped"), ConnectionResetError("reset"))),
], ids=lambda e: f"{type(e).__name__}:{str(e)[:30]}")
def test_transient_by_type(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize("error", [
    StorageError("cannot read s3://b/x: AWS Error ACCESS_DENIED", hint="grant the access"),
    WarehouseError('cannot connect: FATAL:  password authentication failed for user "x"'),
    EngineError("model silver.x failed: Out of Memory Error"),
    ConfigError("lakeforge.yml: warehouse.dsn is missing", hint="add it"),
    ModelError("model gold.x failed: Binder Error: column foo not found (timed out?)", hint="fix the SQL"),
    ExpectationFailed("expectation ts_present failed on 3 rows: connection lost"),
    LimitExceeded("quarantined 12 of 100 rows"),
    MissingDependency("pip install 'lakeforge[postgres]'"),
    # a boundary that typed its error permanent decided, whatever it wraps
    raised_from(WarehouseError("the load failed"), ConnectionResetError("reset")),
    # a transient error that was only being handled is not what failed
    raised_while_handling(ValueError("a bug in the cleanup"), TransientStorageError("503")),
    ValueError("could not convert string to float: 'abc'"),
    KeyError("machine_id"),
], ids=lambda e: f"{type(e).__name__}:{str(e)[:30]}")
def test_permanent_by_type(error: BaseException) -> None:
    assert not is_transient(error)


@pytest.mark.parametrize("error", [
    OSError("Generic S3 error: 503 Service Unavailable"),
    OSError("Object store error: SlowDown: Please reduce your request rate."),
    psycopg.OperationalError("terminating connection due to administrator command"),
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    RuntimeError("Connection reset by peer; temporarily unavailable; timed out"),
], ids=lambda e: f"{type(e).__name__}:{str(e)[:30]}")
def test_an_error_of_a_type_no_boundary_mapped_is_not_retried_whatever_its_text(error: BaseException) -> None:
    """The text of an error is not read: a driver's exception that escaped its boundary unmapped is not retried
    (the boundary is where it must be typed: see the mappers' tests)."""
    assert not is_transient(error)


class Flaky:
    """Fails with ``errors`` in turn, then returns ``done``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_exponential_waits_capped_then_success() -> None:
    waits: list[float] = []
    retried: list[tuple[str, int, str, float]] = []
    work = Flaky(*[ConnectionResetError("reset")] * 4)
    result, attempts = call(work, policy=RetryConfig(attempts=5, backoff_seconds=0.5, backoff_max_seconds=1.5),
                            what="ingest:telemetry", sleep=waits.append,
                            on_retry=lambda what, n, exc, wait: retried.append((what, n, type(exc).__name__, wait)))
    assert (result, attempts, work.calls) == ("done", 5, 5)
    assert waits == [0.5, 1.0, 1.5, 1.5]  # doubling from backoff_seconds, never above backoff_max_seconds
    assert retried == [("ingest:telemetry", n, "ConnectionResetError", w) for n, w in zip(range(1, 5), waits,
                                                                                          strict=True)]


def test_stops_after_attempts_and_reraises_the_last_error() -> None:
    waits: list[float] = []
    errors = [TransientStorageError(f"cannot read s3://b/x: 503 Service Unavailable (try {n})") for n in range(1, 4)]
    work = Flaky(*errors, TransientStorageError("never reached"))
    with pytest.raises(TransientStorageError) as caught:
        call(work, policy=RetryConfig(attempts=3, backoff_seconds=2, backoff_max_seconds=60), what="x",
             sleep=waits.append)
    assert caught.value is errors[-1]
    assert work.calls == 3 and waits == [2.0, 4.0]


@pytest.mark.parametrize("error", [ConfigError("bad"), ModelError("bad SQL"), ExpectationFailed("bad rows"),
                                   WarehouseError("password authentication failed for user \"x\""),
                                   StorageError("cannot read s3://b/x: AccessDenied"), ValueError("a bug"),
                                   OSError("HTTP 503 Service Unavailable: an unmapped type")])
def test_user_errors_bugs_and_unmapped_errors_are_never_retried(error: BaseException) -> None:
    waits: list[float] = []
    work = Flaky(error)
    with pytest.raises(type(error)):
        call(work, policy=RetryConfig(attempts=5, backoff_seconds=1), what="x", sleep=waits.append)
    assert work.calls == 1 and waits == []


def test_one_attempt_means_no_retry() -> None:
    work = Flaky(ConnectionResetError("reset"))
    with pytest.raises(ConnectionResetError):
        call(work, policy=RetryConfig(attempts=1), what="x", sleep=lambda s: pytest.fail("slept"))
    assert work.calls == 1


def test_a_first_success_is_one_attempt() -> None:
    assert call(lambda: 42, policy=RetryConfig(), what="x", sleep=lambda s: pytest.fail("slept")) == (42, 1)
