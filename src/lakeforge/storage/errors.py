"""Object-store failures, mapped once to lakeforge's errors: transient (throttling, 5xx, timeouts, connections
lost or refused) or permanent (access denied, no such bucket, bad credentials, a local file system's refusal,
and whatever is not known to pass).

Where each driver puts the facts: boto's ``ClientError`` carries the S3 error code and HTTP status as fields, its
connection and timeout errors are types of their own. pyarrow's S3 file system (the AWS SDK for C++) and delta-rs
(the ``object_store`` crate) raise a plain ``OSError`` and put them in the text only: ``AWS Error SLOW_DOWN during
PutObject operation`` or ``AWS Error UNKNOWN (HTTP status 429)``; ``Server returned non-2xx status code -> 503
Service Unavailable -> <Code>SlowDown</Code>``, or ``HTTP error`` when no answer came (refused, reset, timed out).
The mapper reads the code and the status where the driver writes them, and decides by them alone. Nothing here
imports a driver: botocore's classes are looked up only when botocore is loaded (else no error can be one).
"""

from __future__ import annotations

import re
import sys
from typing import NamedTuple

from lakeforge.errors import StorageError

# HTTP statuses a retry may get past: request timeout, throttling, the server's own failures
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# S3 error codes (and the AWS SDK's names for them), lower case without underscores: SlowDown == SLOW_DOWN
TRANSIENT_CODES = frozenset({
    "slowdown", "serviceunavailable", "internalerror", "internalfailure", "requesttimeout", "throttling",
    "throttlingexception", "toomanyrequests", "requestlimitexceeded", "bandwidthlimitexceeded", "requestthrottled",
    "operationaborted", "networkconnection",
})
DENIED_CODES = frozenset({
    "accessdenied", "invalidaccesskeyid", "signaturedoesnotmatch", "expiredtoken", "invalidtoken",
    "allaccessdisabled", "accountproblem", "unrecognizedclient", "missingauthenticationtoken", "forbidden",
})
_SDK = re.compile(r"AWS Error (\w+)(?: \(HTTP status (\d{3})\))?")  # pyarrow: the AWS SDK for C++
_CODE = re.compile(r"<Code>(\w+)</Code>")  # object_store quotes the S3 error document
_STATUS = re.compile(r"(?:status code|with status|HTTP status)\W{0,4}(\d{3})\b")
_NO_ANSWER = re.compile(r"\bHTTP error\b")  # object_store: the request got no response (connect, timeout, reset)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

DENIED_HINT = "grant the access (see `lakeforge deploy iam`) or check the credentials in the environment"
TRANSIENT_HINT = ("the object store is throttling, failing (5xx) or not answering in time, even after retries "
                  "(orchestration.retry): run again when it has recovered; the run resumes where it stopped")
SETTINGS_HINT = "check the endpoint, bucket and credentials (storage settings in lakeforge.yml)"
FOLDER_HINT = "check that this user can read and write the lakehouse folder, and that its volume has space"


class Failure(NamedTuple):
    """What a driver says about a failed request: the S3 error code, the HTTP status, and whether no answer came
    at all (a connection refused or reset, a timeout)."""

    code: str | None = None
    status: int | None = None
    no_answer: bool = False

    @property
    def transient(self) -> bool:
        """By the error code when the mapper knows it, else by the HTTP status, else whether no answer came."""
        code = (self.code or "").replace("_", "").lower()
        if code in TRANSIENT_CODES:
            return True
        if code in DENIED_CODES:
            return False
        if self.status is not None:
            return self.status in TRANSIENT_STATUS
        return self.no_answer

    @property
    def denied(self) -> bool:
        """The store refused the credentials or the access (403, AccessDenied, a bad key or token)."""
        return (self.code or "").replace("_", "").lower() in DENIED_CODES or self.status == 403


def failure_in(text: str) -> Failure:
    """The failure as pyarrow's S3 file system or delta-rs (object_store) write it in their message (also where
    another library quotes it: DuckDB reading an Arrow stream of a Delta table)."""
    text = " ".join(_ANSI.sub("", text).split())
    sdk = _SDK.search(text)
    if sdk:
        return Failure(sdk.group(1), int(sdk.group(2)) if sdk.group(2) else None)
    code, status = _CODE.search(text), _STATUS.search(text)
    return Failure(code.group(1) if code else None, int(status.group(1)) if status else None,
                   _NO_ANSWER.search(text) is not None)


def _boto(exc: BaseException) -> Failure | None:
    """A botocore error's failure; None when it is none (botocore not even loaded: then no error can be one)."""
    found = sys.modules.get("botocore.exceptions")
    if found is None:
        return None
    if isinstance(exc, found.ClientError):
        response = exc.response or {}
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return Failure(response.get("Error", {}).get("Code"), int(status) if status else None)
    if isinstance(exc, found.ConnectionError | found.HTTPClientError):  # (its timeouts are among them)
        return Failure(no_answer=True)
    return None


def failure(exc: BaseException) -> Failure:
    """What the driver that raised ``exc`` says about the failed request: botocore's fields, Python's own
    connection and timeout errors, else the message of pyarrow or delta-rs."""
    found = _boto(exc)
    if found is not None:
        return found
    if isinstance(exc, ConnectionError | TimeoutError):
        return Failure(no_answer=True)
    if isinstance(exc, PermissionError):
        return Failure(status=403)
    return failure_in(str(exc))


def transient(exc: BaseException) -> bool:
    """Whether a failed object-store request may succeed if tried again (see :attr:`Failure.transient`)."""
    return failure(exc).transient


def summary(exc: BaseException, *, limit: int = 600) -> str:
    """The driver's message on one line, without terminal colour codes (delta-rs puts some in)."""
    text = " ".join(_ANSI.sub("", str(exc)).replace("↳", " ").split())
    if not text:
        return type(exc).__name__
    return (text[:limit] + " ...") if len(text) > limit else text


def storage_error(exc: BaseException, *, what: str, hint: str | None = None) -> StorageError:
    """The error for a failed object-store (or file-system) call ``what`` (``read s3://b/x.json``): transient or
    not as :func:`failure` says, with the fix that fits (``hint`` for a permanent failure other than a refused
    access)."""
    found = failure(exc)
    if found.transient:
        fix = TRANSIENT_HINT
    elif found.denied:
        fix = DENIED_HINT
    else:
        fix = hint or SETTINGS_HINT
    return StorageError.typed(f"cannot {what}: {summary(exc)}", hint=fix, transient=found.transient)
