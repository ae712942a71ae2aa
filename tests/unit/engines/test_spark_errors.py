"""Spark's errors at the engine's boundary, without a JVM: py4j's ``Py4JJavaError`` around a stand-in for the Java
exception (its class name and cause, all the mapper reads), Spark Connect's error with its gRPC status, py4j's
broken gateway."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from py4j.protocol import Py4JJavaError, Py4JNetworkError
from pyspark.errors.exceptions.connect import AnalysisException, SparkConnectGrpcException

from lakeforge.engines.spark.errors import engine_error, java_classes, spark_errors, transient
from lakeforge.errors import EngineError, TransientEngineError
from lakeforge.retry import is_transient


class Gateway:
    """py4j's client to the JVM, answering the one command a Py4JJavaError sends (its text) as the JVM would."""

    def __init__(self, text: str) -> None:
        self.text = text

    def send_command(self, command: str) -> str:
        return "ys" + self.text  # (py4j's protocol: y success, s a string)


class JavaThrowable:
    """What py4j hands over for a Java exception, as far as the mapper asks: ``getClass().getName()``,
    ``getCause()`` (and what a Py4JJavaError needs: its id, the gateway for its text)."""

    def __init__(self, name: str, cause: JavaThrowable | None = None) -> None:
        self.name, self.cause = name, cause
        self._target_id = "o42"
        self._gateway_client = Gateway(f"{name}: it failed")

    def getClass(self) -> Any:  # (Java's names)
        return self

    def getName(self) -> str:
        return self.name

    def getCause(self) -> JavaThrowable | None:
        return self.cause


def java_error(*names: str) -> Py4JJavaError:
    """A Py4JJavaError whose Java exception is ``names[0]``, caused by ``names[1]``, ..."""
    cause: JavaThrowable | None = None
    for name in reversed(names):
        cause = JavaThrowable(name, cause)
    return Py4JJavaError("An error occurred while calling o123.save.\n", cause)


JOB_ABORTED = "org.apache.spark.SparkException"
TRANSIENT = [
    java_error(JOB_ABORTED, "org.apache.hadoop.fs.s3a.AWSServiceThrottledException",
               "software.amazon.awssdk.services.s3.model.S3Exception"),
    java_error(JOB_ABORTED, "org.apache.hadoop.fs.s3a.AWSStatus500Exception"),
    java_error(JOB_ABORTED, "java.io.IOException", "java.net.SocketTimeoutException"),
    java_error("java.net.ConnectException"),
    java_error("io.delta.exceptions.ConcurrentAppendException"),
    java_error("org.apache.spark.sql.delta.ConcurrentTransactionException"),
    SparkConnectGrpcException(message="failed to connect to all addresses",
                              grpc_status_code=grpc.StatusCode.UNAVAILABLE),
    SparkConnectGrpcException(message="Deadline Exceeded", grpc_status_code=grpc.StatusCode.DEADLINE_EXCEEDED),
]
PERMANENT = [
    java_error("org.apache.spark.sql.AnalysisException"),
    java_error(JOB_ABORTED, "org.apache.spark.SparkArithmeticException"),
    java_error(JOB_ABORTED, "java.nio.file.AccessDeniedException"),
    java_error("io.delta.exceptions.ProtocolChangedException"),
    AnalysisException(message="[UNRESOLVED_COLUMN] no_such_column", grpc_status_code=grpc.StatusCode.INTERNAL),
    SparkConnectGrpcException(message="permission denied", grpc_status_code=grpc.StatusCode.PERMISSION_DENIED),
    Py4JNetworkError("Answer from Java side is empty"),
]


def _id(error: BaseException) -> str:
    return f"{type(error).__name__}:{'>'.join(n.rsplit('.', 1)[-1] for n in java_classes(error))}"


@pytest.mark.parametrize("error", TRANSIENT, ids=_id)
def test_transient(error: BaseException) -> None:
    assert transient(error)
    mapped = engine_error(error, what="model silver.x")
    assert type(mapped) is TransientEngineError and is_transient(mapped)
    assert mapped.message.startswith("model silver.x failed: ")


@pytest.mark.parametrize("error", PERMANENT, ids=_id)
def test_permanent(error: BaseException) -> None:
    assert not transient(error)
    mapped = engine_error(error, what="model silver.x")
    assert mapped is None or not is_transient(mapped)


def test_the_java_chain_is_read_outermost_first() -> None:
    error = java_error(JOB_ABORTED, "java.io.IOException", "java.net.SocketTimeoutException")
    assert list(java_classes(error)) == [JOB_ABORTED, "java.io.IOException", "java.net.SocketTimeoutException"]


def test_a_gone_driver_is_a_permanent_engine_error() -> None:
    mapped = engine_error(Py4JNetworkError("Answer from Java side is empty"), what="model silver.x")
    assert type(mapped) is EngineError
    assert "driver is gone" in mapped.message and mapped.hint is not None and "run again" in mapped.hint


def test_spark_errors_maps_what_it_knows_and_passes_the_rest() -> None:
    with pytest.raises(TransientEngineError, match=r"writing silver\.x with Spark failed"), \
            spark_errors("writing silver.x with Spark"):
        raise java_error(JOB_ABORTED, "org.apache.hadoop.fs.s3a.AWSServiceThrottledException")
    analysis = java_error("org.apache.spark.sql.AnalysisException")
    with pytest.raises(Py4JJavaError) as caught, spark_errors("writing silver.x with Spark"):
        raise analysis
    assert caught.value is analysis
