"""psycopg's errors, mapped once where psycopg is called: transient (the connection lost or refused, the server
shutting down or restarting, a serialization failure or deadlock, a lock not available, too many connections) or
permanent (SQL, permissions, bad credentials, a database or role that does not exist, data).

A statement's error carries PostgreSQL's SQLSTATE (``exc.sqlstate``): it decides. An error without one comes from
libpq itself: after connecting, the connection broke (the server closed it, a network cut, a timeout): transient.
While connecting, libpq gives no SQLSTATE either, but the server's refusal comes as its ``FATAL:`` message (no such
database or role, authentication failed, not permitted to log in): permanent, unless the server is only busy or
changing state (too many clients, starting up, shutting down, in recovery); a connection refused or timed out
before any answer is transient.
"""

from __future__ import annotations

import psycopg

TRANSIENT_SQLSTATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
    "53300",  # too_many_connections
    "57P01",  # admin_shutdown: pg_terminate_backend, a fast shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: starting up, shutting down, in recovery
    "57P05",  # idle_session_timeout
})
CONNECTION_CLASS = "08"  # connection_exception, connection_failure, ...
# a server that answered a new connection with FATAL but will take one later
BUSY_SERVER = ("too many clients", "remaining connection slots", "the database system is starting up",
               "the database system is shutting down", "the database system is in recovery mode",
               "the database system is not yet accepting connections",
               "the database system is not accepting connections")


def transient(exc: BaseException, *, connecting: bool = False) -> bool:
    """Whether psycopg's error ``exc`` may go away when the work is tried again (on a new connection, as every
    retried load opens its own). ``connecting``: raised by ``psycopg.connect``."""
    if not isinstance(exc, psycopg.Error):
        return isinstance(exc, ConnectionError | TimeoutError)
    state = exc.sqlstate
    if state is not None:
        return state in TRANSIENT_SQLSTATES or state.startswith(CONNECTION_CLASS)
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    if not connecting:
        return True  # libpq: the connection broke under the statement
    text = str(exc)
    return "FATAL:" not in text or any(busy in text for busy in BUSY_SERVER)
