"""The Snowflake connector's errors at the warehouse's boundary, built as the connector raises them: by class
(its HTTP errors, ``OperationalError`` for a request that failed on the way), then ``errno`` and ``sqlstate``."""

from __future__ import annotations

import pytest
import snowflake.connector.errors as sf

from lakeforge.warehouses.snowflake.errors import transient

TRANSIENT = [
    sf.ServiceUnavailableError(), sf.GatewayTimeoutError(), sf.BadGatewayError(), sf.InternalServerError(),
    sf.RequestTimeoutError(), sf.TooManyRequests(), sf.OtherHTTPRetryableError(code=520),
    sf.OperationalError(msg="Failed to execute request: HTTPSConnectionPool(host='x.snowflakecomputing.com', "
                            "port=443): Read timed out.", errno=250003),
    sf.OperationalError(msg="Could not connect to Snowflake backend after 2 attempt(s).Aborting", errno=251011),
    sf.DatabaseError(msg="Connection is closed", errno=250002, sqlstate="08003"),
    sf.ProgrammingError(msg="Authentication token has expired.  The user must authenticate again.", errno=390114,
                        sqlstate="08001"),
    sf.DatabaseError(msg="000603 (XX000): SQL execution internal error: Processing aborted due to error 300010.",
                     errno=603, sqlstate="XX000"),
    ConnectionResetError(104, "Connection reset by peer"),  # the PUT's own socket
]
PERMANENT = [
    sf.DatabaseError(msg="Failed to connect to DB: x.snowflakecomputing.com:443. Incorrect username or password was "
                         "specified.", errno=390100, sqlstate="08001"),
    sf.DatabaseError(msg="Failed to connect to DB: JWT token is invalid.", errno=390144, sqlstate="28000"),
    sf.ForbiddenError(msg="Failed to connect to DB. Verify the account name is correct", errno=250001,
                      sqlstate="08001"),
    sf.ProgrammingError(msg="SQL compilation error: Object 'GOLD.NOPE' does not exist or not authorized.",
                        errno=2003, sqlstate="42S02"),
    sf.ProgrammingError(msg="SQL compilation error: syntax error line 1 at position 0 unexpected 'SELEC'.",
                        errno=1003, sqlstate="42000"),
    sf.ProgrammingError(msg="Insufficient privileges to operate on schema 'GOLD'", errno=3001, sqlstate="42501"),
    sf.DataError(msg="Numeric value 'abc' is not recognized", errno=100038, sqlstate="22018"),
    sf.RevocationCheckError(msg="The certificate is revoked", errno=254001),
    sf.BadRequest(), sf.NotSupportedError(msg="not in Arrow"),
    OSError(28, "No space left on device"),  # the batch's Parquet file
]


def _id(error: BaseException) -> str:
    return f"{type(error).__name__}:{getattr(error, 'errno', '')}"


@pytest.mark.parametrize("error", TRANSIENT, ids=_id)
def test_transient(error: BaseException) -> None:
    assert transient(error)


@pytest.mark.parametrize("error", PERMANENT, ids=_id)
def test_permanent(error: BaseException) -> None:
    assert not transient(error)
