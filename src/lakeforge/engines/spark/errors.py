"""Spark's errors, mapped once where Spark runs the work: a model's pass, a Delta write or merge.

A Spark error comes to Python as a py4j ``Py4JJavaError`` or as PySpark's capture of one (``AnalysisException``,
``UnknownException`` ...), both holding the Java exception; what failed is the chain of its causes, by Java class:
a socket timeout, a refused connection, S3A's throttling and 5xx exceptions, a Delta commit that lost to a
concurrent one are transient. Through Spark Connect the error carries a gRPC status: ``UNAVAILABLE`` and
``DEADLINE_EXCEEDED`` are transient. A ``Py4JNetworkError`` is this process's Spark driver (its JVM) gone: a retry
in the same process would meet it gone again, so it is permanent. Anything else is left to the caller (a model's
analysis error is the model's).

Nothing here imports Spark: the classes are known by name, the Java chain is read through the objects at hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lakeforge.errors import EngineError, LakeforgeError, TransientEngineError

TRANSIENT_JAVA = frozenset({
    "java.net.SocketTimeoutException", "java.net.ConnectException", "java.net.SocketException",
    "java.net.NoRouteToHostException", "org.apache.hadoop.net.ConnectTimeoutException",
    "org.apache.hadoop.fs.s3a.AWSServiceThrottledException", "org.apache.hadoop.fs.s3a.AWSStatus500Exception",
    "org.apache.hadoop.fs.s3a.AWSNoResponseException", "org.apache.hadoop.fs.s3a.AWSApiCallTimeoutException",
    "software.amazon.awssdk.core.exception.ApiCallTimeoutException",
    "software.amazon.awssdk.core.exception.ApiCallAttemptTimeoutException",
})
# Delta's commit conflicts (io.delta.exceptions, and their older org.apache.spark.sql.delta names): a retry reads
# the table again; its transactions say what was committed already
DELTA_CONFLICTS = frozenset({
    "ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException", "ConcurrentWriteException", "MetadataChangedException",
})
TRANSIENT_GRPC = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
TRANSIENT_HINT = ("Spark lost its connection to the object store or to its server, or its commit lost to a concurrent "
                  "one, even after retries (orchestration.retry): run again; the run resumes where it stopped")
GONE_HINT = "the Spark driver (its JVM) stopped under this process; run again (a new process starts a new one)"


def java_classes(exc: BaseException, *, limit: int = 16) -> Iterator[str]:
    """The Java class names of the exception ``exc`` holds and of its causes, outermost first."""
    origin: Any = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    for _ in range(limit):
        if origin is None:
            return
        try:
            yield str(origin.getClass().getName())
            origin = origin.getCause()
        except Exception:  # the JVM cannot answer (py4j): nothing more to read
            return


def transient(exc: BaseException) -> bool:
    """Whether Spark's error ``exc`` may go away when the work is tried again."""
    status = getattr(exc, "getGrpcStatusCode", None)
    if callable(status):  # Spark Connect
        return getattr(status(), "name", None) in TRANSIENT_GRPC
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return any(name in TRANSIENT_JAVA or name.rsplit(".", 1)[-1] in DELTA_CONFLICTS for name in java_classes(exc))


def driver_gone(exc: BaseException) -> bool:
    """Whether ``exc`` is py4j's: the connection to this process's Spark driver is broken."""
    return type(exc).__name__ == "Py4JNetworkError" and type(exc).__module__.startswith("py4j")


def engine_error(exc: BaseException, *, what: str) -> EngineError | None:
    """The error for Spark's ``exc`` while doing ``what`` (``model silver.x``), when the mapper knows it:
    transient, or the driver gone; None for the rest (the caller's to say)."""
    if isinstance(exc, LakeforgeError):
        return None
    if transient(exc):
        return TransientEngineError(f"{what} failed: {_first_line(exc)}", hint=TRANSIENT_HINT)
    if driver_gone(exc):
        return EngineError(f"{what} failed: the Spark driver is gone ({_first_line(exc)})", hint=GONE_HINT)
    return None


@contextmanager
def spark_errors(what: str) -> Iterator[None]:
    """Spark's transient errors (and a driver gone) raised as lakeforge's; the others unchanged."""
    try:
        yield
    except Exception as exc:
        mapped = engine_error(exc, what=what)
        if mapped is None:
            raise
        raise mapped from None


def _first_line(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a Py4JJavaError asks the JVM for its text
        text = type(exc).__name__
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("JVM stacktrace")]
    return " ".join(lines[:2])[:500] if lines else type(exc).__name__
