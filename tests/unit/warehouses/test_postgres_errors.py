"""psycopg's errors at the PostgreSQL warehouse's boundary: a statement's by its SQLSTATE (psycopg's class for
it), libpq's own by whether the connection broke or the server refused a new one. The messages are libpq's and
the server's, as they come."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import psycopg.errors as pg
import pytest

from lakeforge.config.models import PostgresWarehouseConfig
from lakeforge.errors import TransientWarehouseError
from lakeforge.retry import is_transient
from lakeforge.warehouses.postgres import PostgresWarehouse
from lakeforge.warehouses.postgres.errors import transient

TRANSIENT = [
    pg.AdminShutdown("terminating connection due to administrator command"),  # pg_terminate_backend, fast stop
    pg.CrashShutdown("terminating connection because of crash of another server process"),
    pg.CannotConnectNow("the database system is starting up"),
    pg.SerializationFailure("could not serialize access due to concurrent update"),
    pg.DeadlockDetected("deadlock detected"),
    pg.LockNotAvailable('could not obtain lock on relation "fact_telemetry_hourly"'),
    pg.TooManyConnections("sorry, too many clients already"),
    pg.ConnectionFailure("server conn crashed?"),  # class 08
    pg.IdleSessionTimeout("terminating connection due to idle-session timeout"),
    # libpq, no SQLSTATE: the connection broke under a statement
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly\n\tThis probably "
                             "means the server terminated abnormally\n\tbefore or while processing the request."),
    psycopg.OperationalError("the connection is closed"),
    psycopg.InterfaceError("the connection is lost"),
    pg.ConnectionTimeout("connection timeout expired"),
]
PERMANENT = [
    pg.SyntaxError('syntax error at or near "SELEC"'),
    pg.UndefinedTable('relation "nope" does not exist'),
    pg.InsufficientPrivilege("permission denied for table t"),
    pg.InvalidPassword('password authentication failed for user "lakeforge"'),
    pg.InvalidCatalogName('database "nope" does not exist'),
    pg.UniqueViolation('duplicate key value violates unique constraint "x_pkey"'),
    pg.DiskFull("could not extend file: No space left on device"),
    pg.QueryCanceled("canceling statement due to statement timeout"),  # the same statement, the same timeout
    pg.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
    psycopg.ProgrammingError("the query has 1 placeholder but 0 parameters were passed"),
    ValueError("not psycopg's"),
]


def _id(error: BaseException) -> str:
    return f"{type(error).__name__}:{' '.join(str(error).split())[:40]}"


@pytest.mark.parametrize("error", TRANSIENT, ids=_id)
def test_transient(error: BaseException) -> None:
    assert transient(error)


@pytest.mark.parametrize("error", PERMANENT, ids=_id)
def test_permanent(error: BaseException) -> None:
    assert not transient(error)


@pytest.mark.parametrize(("message", "expected"), [
    ('connection to server at "127.0.0.1", port 5432 failed: Connection refused\n\tIs the server running on that '
     "host and accepting TCP/IP connections?", True),
    ('connection to server at "10.0.0.9", port 5432 failed: timeout expired', True),
    ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  the database system is starting up', True),
    ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  the database system is shutting down', True),
    ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  sorry, too many clients already', True),
    ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "nope" does not exist', False),
    ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  role "ghost" does not exist', False),
    ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "x"',
     False),
    ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  role "nologin" is not permitted to log in',
     False),
    ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  no pg_hba.conf entry for host "10.1.1.1"', False),
])
def test_a_new_connection_is_refused_for_good_only_by_the_server(message: str, expected: bool) -> None:
    """``psycopg.connect`` gives no SQLSTATE: the server's refusal is its FATAL message; no answer at all, or a
    server only busy, passes."""
    assert transient(psycopg.OperationalError(f"connection failed: {message}"), connecting=True) is expected


def test_a_refused_connection_is_a_transient_warehouse_error(tmp_path: Path) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    config = PostgresWarehouseConfig(dsn=f"host=127.0.0.1 port={port} dbname=x user=x sslmode=disable",
                                     connect_timeout=2)
    with pytest.raises(TransientWarehouseError, match=f"cannot connect to PostgreSQL 127.0.0.1:{port}/x as user x: "
                                                      "connection failed") as caught:
        PostgresWarehouse(config, base_dir=tmp_path)
    assert is_transient(caught.value) and caught.value.hint is not None
