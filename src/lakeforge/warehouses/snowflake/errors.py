"""The Snowflake connector's errors, mapped once where the connector is called: transient (Snowflake or the
network failing for now, a session or connection to open again) or permanent (SQL, privileges, credentials).

By type first: the connector raises an HTTP error class of its own for each status (``ServiceUnavailableError``,
``TooManyRequests`` ... transient; ``ForbiddenError``, ``BadRequest`` permanent), and ``OperationalError`` for a
request that failed on the way (transient, but for TLS and certificate revocation failures). Then by ``errno``
(the connector's 25xxxx codes, Snowflake's own error numbers) and ``sqlstate``: a closed connection, an expired
session and class 08 are transient; authentication (39xxxx, 28000) and everything else is permanent.
"""

from __future__ import annotations

import snowflake.connector.errors as sf

TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    sf.ServiceUnavailableError, sf.GatewayTimeoutError, sf.BadGatewayError, sf.InternalServerError,
    sf.RequestTimeoutError, sf.TooManyRequests, sf.OtherHTTPRetryableError, sf.RequestExceedMaxRetryError,
)
PERMANENT_TYPES: tuple[type[BaseException], ...] = (
    sf.ForbiddenError, sf.BadRequest, sf.MethodNotAllowed, sf.RevocationCheckError, sf.NonRetryableTlsError,
    sf.MissingDependencyError, sf.ProgrammingError,
)
TRANSIENT_ERRNOS = frozenset({
    250002,  # ER_CONNECTION_IS_CLOSED
    250003,  # ER_FAILED_TO_REQUEST
    251011,  # ER_CONNECTION_TIMEOUT
    251012,  # ER_RETRYABLE_CODE
    390112,  # the session expired: a new connection logs in again
    390114,  # the authentication token expired: likewise
    603,  # 000603 "SQL execution internal error": Snowflake's, try again
})
AUTHENTICATION = range(390000, 391000)  # Snowflake's login and token errors (wrong password, bad key, locked user)


def transient(exc: BaseException) -> bool:
    """Whether the connector's error ``exc`` may go away when the work is tried again (every retried load opens
    a connection of its own)."""
    if isinstance(exc, PERMANENT_TYPES) and getattr(exc, "errno", None) not in TRANSIENT_ERRNOS:
        return False
    if isinstance(exc, TRANSIENT_TYPES):
        return True
    if not isinstance(exc, sf.Error):
        return isinstance(exc, ConnectionError | TimeoutError)  # (the Parquet file, the PUT's own sockets)
    errno, state = exc.errno or 0, exc.sqlstate or ""
    if errno in TRANSIENT_ERRNOS:
        return True
    if errno in AUTHENTICATION or state == "28000":
        return False
    return isinstance(exc, sf.OperationalError) or state.startswith("08")
