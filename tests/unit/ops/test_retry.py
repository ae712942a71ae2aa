"""Retries: which errors are transient (real exception types and messages), and the backoff ``call`` applies."""

from __future__ import annotations

import psycopg
import pytest

from lakeforge.config.operations import RetryConfig
from lakeforge.errors import ConfigError, ExpectationFailed, LakeforgeError, ModelError, Transient, WarehouseError
from lakeforge.ops.retry import call, is_transient


def warehouse_error_from(cause: BaseException) -> WarehouseError:
    """A WarehouseError raised ``from None`` inside ``except``, the way the warehouses wrap driver errors: the
    driver's error is no longer the cause, only the context."""
    try:
        try:
            raise cause
        except psycopg.OperationalError as exc:
            raise WarehouseError(f"loading gold.fact_telemetry_hourly (version 3) into PostgreSQL 127.0.0.1:5432 "
                                 f"failed: {str(exc).splitlines()[0]}",
                                 hint="rerun `lakeforge run`: the load resumes from the ledger") from None
    except WarehouseError as wrapped:
        return wrapped
    raise AssertionError("unreachable")


@pytest.mark.parametrize("error", [
    OSError("Generic S3 error: 503 Service Unavailable"),
    OSError("Object store error: SlowDown: Please reduce your request rate."),
    OSError("HTTP 429 Too Many Requests"),
    ConnectionResetError(104, "Connection reset by peer"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError("timed out"),
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly\n\tThis probably "
                             "means the server terminated abnormally"),
    psycopg.OperationalError("terminating connection due to administrator command"),
    psycopg.InterfaceError("the connection is lost"),
    warehouse_error_from(psycopg.OperationalError("server closed the connection unexpectedly")),
    LakeforgeError("the lakehouse could not be read: connection reset"),
    WarehouseError('cannot open the warehouse /p/warehouse.duckdb: IO Error: Could not set lock on file '
                   '"/p/warehouse.duckdb": Conflicting lock is held in /usr/bin/python3.11 (PID 4242)',
                   hint="another lakeforge process may be writing it, or a BI tool or another program has it open"),
], ids=lambda e: f"{type(e).__name__}:{str(e)[:30]}")
def test_transient(error: BaseException) -> None:
    assert is_transient(error)


class Throttled(Transient, OSError):
    """An error that says it is transient by its type, whatever its message."""


@pytest.mark.parametrize("error", [
    ConfigError("lakeforge.yml: warehouse.dsn is missing", hint="add it"),
    ModelError("model gold.x failed: Binder Error: column foo not found (timed out?)", hint="fix the SQL"),
    ExpectationFailed("expectation ts_present failed on 3 rows: connection lost"),
    psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "lakeforge"'),
    warehouse_error_from(psycopg.OperationalError('FATAL:  password authentication failed for user "x"')),
    psycopg.OperationalError('FATAL:  database "nope" does not exist'),
    OSError("Generic S3 error: 403 Forbidden"),
    ValueError("could not convert string to float: 'abc'"),
    KeyError("machine_id"),
], ids=lambda e: f"{type(e).__name__}:{str(e)[:30]}")
def test_not_transient(error: BaseException) -> None:
    assert not is_transient(error)


def test_transient_by_type() -> None:
    assert is_transient(Throttled("no words that say so"))
    chained = RuntimeError("wrapped")
    chained.__cause__ = Throttled("underneath")
    assert is_transient(chained)


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
    errors = [OSError(f"503 Service Unavailable (try {n})") for n in range(1, 4)]
    work = Flaky(*errors, OSError("never reached"))
    with pytest.raises(OSError) as caught:
        call(work, policy=RetryConfig(attempts=3, backoff_seconds=2, backoff_max_seconds=60), what="x",
             sleep=waits.append)
    assert caught.value is errors[-1]
    assert work.calls == 3 and waits == [2.0, 4.0]


@pytest.mark.parametrize("error", [ConfigError("bad"), ModelError("bad SQL"), ExpectationFailed("bad rows"),
                                   ValueError("a bug"),
                                   psycopg.OperationalError("password authentication failed for user \"x\"")])
def test_user_errors_and_bugs_are_never_retried(error: BaseException) -> None:
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
