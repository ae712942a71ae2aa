"""The object-store mapper: botocore's errors by their fields and types, pyarrow's and delta-rs' by the code and
status their messages carry (worded as they word them: the texts below are theirs, seen through a fault proxy in
front of moto), Python's own by type. And S3Location, the boundary that calls pyarrow, raises what it decides."""

from __future__ import annotations

import botocore.exceptions as boto
import pytest

from lakeforge.config.models import StorageConfig
from lakeforge.errors import StorageError, TransientStorageError
from lakeforge.retry import is_transient
from lakeforge.storage.errors import failure, storage_error, transient
from lakeforge.storage.s3 import S3Location

_ARROW = "\x1b[31m↳\x1b[0m"  # how delta-rs marks each cause in its message


def client_error(code: str, status: int, operation: str = "PutObject") -> boto.ClientError:
    """A ClientError as botocore raises it for an S3 error document."""
    return boto.ClientError({"Error": {"Code": code, "Message": f"{code} happened"},
                             "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def delta_status(status: str, code: str) -> OSError:
    """delta-rs (object_store) after its own retries, the store answering ``status`` with error ``code``."""
    return OSError(f"Kernel error -> Generic S3 error\n      {_ARROW} Error performing GET http://127.0.0.1:9000/lake/"
                   f"t/_delta_log/_last_checkpoint in 1.7s, after 10 retries, max_retries\n       {_ARROW} 10, "
                   f"retry_timeout\n        {_ARROW} 180s  - Server returned non-2xx status code\n         {_ARROW} "
                   f"{status}\n          {_ARROW} <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}"
                   "</Code><Message>...</Message><RequestId>r</RequestId></Error>\n")


def delta_no_answer(cause: str) -> OSError:
    """delta-rs when the request got no answer at all."""
    return OSError(f"Generic S3 error\n      {_ARROW} Error performing list request\n       {_ARROW} Error performing "
                   f"GET http://127.0.0.1:9000/lake?list-type=2 in 33.4s, after 10 retries, max_retries\n        "
                   f"{_ARROW} 10, retry_timeout\n         {_ARROW} 180s  - HTTP error\n          {_ARROW} error "
                   f"sending request\n           {_ARROW} client error (Connect)\n            {_ARROW} {cause}\n")


def arrow(message: str, key: str = "raw/events/x.jsonl") -> OSError:
    """pyarrow's S3 file system (the AWS SDK for C++)."""
    return OSError(f"When reading key '{key}' in bucket 'landing': {message}")


TRANSIENT = [
    client_error("SlowDown", 503), client_error("InternalError", 500), client_error("ServiceUnavailable", 503),
    client_error("RequestTimeout", 400), client_error("ThrottlingException", 400),
    client_error("TooManyRequests", 429), client_error("SomethingNew", 502),  # an unknown code: the status decides
    boto.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
    boto.ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"),
    boto.ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
    boto.ConnectionClosedError(endpoint_url="http://127.0.0.1:9"),
    arrow("AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate."),
    arrow("AWS Error SERVICE_UNAVAILABLE during HeadObject operation: Service is unable to handle request."),
    arrow("AWS Error INTERNAL_FAILURE during CompleteMultipartUpload operation: We encountered an internal error."),
    arrow("AWS Error UNKNOWN (HTTP status 429) during ListObjectsV2 operation: Too many requests"),
    arrow("AWS Error UNKNOWN (HTTP status 503) during HeadObject operation: No response body."),
    arrow("AWS Error NETWORK_CONNECTION during HeadObject operation: curlCode: 28, Timeout was reached"),
    arrow("AWS Error NETWORK_CONNECTION during HeadObject operation: curlCode: 7, Could not connect to server"),
    delta_status("503 Service Unavailable", "ServiceUnavailable"), delta_status("503 Service Unavailable", "SlowDown"),
    delta_status("500 Internal Server Error", "InternalError"),
    delta_status("429 Too Many Requests", "TooManyRequests"),
    delta_no_answer("operation timed out"), delta_no_answer("tcp connect error: Connection refused (os error 111)"),
    delta_no_answer("deadline has elapsed"),
    ConnectionResetError(104, "Connection reset by peer"), TimeoutError("timed out"),
]
PERMANENT = [
    client_error("AccessDenied", 403), client_error("NoSuchBucket", 404), client_error("InvalidAccessKeyId", 403),
    client_error("SignatureDoesNotMatch", 403), client_error("NoSuchKey", 404),
    boto.NoCredentialsError(),
    arrow("AWS Error ACCESS_DENIED during GetObject operation: Access Denied"),
    arrow("AWS Error NO_SUCH_BUCKET during CreateMultipartUpload operation: The specified bucket does not exist"),
    arrow("AWS Error UNKNOWN (HTTP status 403) during HeadObject operation: No response body."),
    delta_status("404 Not Found", "NoSuchBucket"), delta_status("403 Forbidden", "AccessDenied"),
    OSError("Generic LocalFileSystem error: Unable to copy data to file: No space left on device (os error 28)"),
    FileNotFoundError(2, "Path does not exist 'landing/raw/x.jsonl'"), PermissionError(13, "Permission denied"),
    OSError("something no store ever said"),
]


def _id(error: BaseException) -> str:
    return f"{type(error).__name__}:{' '.join(str(error).split())[-60:]}"


@pytest.mark.parametrize("error", TRANSIENT, ids=_id)
def test_transient(error: BaseException) -> None:
    assert transient(error)
    mapped = storage_error(error, what="read s3://landing/raw/x.jsonl")
    assert type(mapped) is TransientStorageError and is_transient(mapped)
    assert mapped.hint is not None and "run again" in mapped.hint


@pytest.mark.parametrize("error", PERMANENT, ids=_id)
def test_permanent(error: BaseException) -> None:
    assert not transient(error)
    mapped = storage_error(error, what="read s3://landing/raw/x.jsonl", hint="check the folder")
    assert type(mapped) is StorageError and not is_transient(mapped)


@pytest.mark.parametrize("error", [client_error("AccessDenied", 403), boto.NoCredentialsError(),
                                   arrow("AWS Error ACCESS_DENIED during GetObject operation: Access Denied"),
                                   delta_status("403 Forbidden", "AccessDenied"), PermissionError(13, "denied")],
                         ids=_id)
def test_a_refused_access_says_to_grant_it(error: BaseException) -> None:
    mapped = storage_error(error, what="write s3://lake/x")
    if isinstance(error, boto.NoCredentialsError):  # no credentials at all: the settings' fix
        assert mapped.hint is not None and "credentials" in mapped.hint
    else:
        assert mapped.hint is not None and mapped.hint.startswith("grant the access")


def test_the_facts_read_from_each_driver() -> None:
    assert failure(client_error("SlowDown", 503)) == ("SlowDown", 503, False)
    assert failure(arrow("AWS Error UNKNOWN (HTTP status 429) during ListObjectsV2")) == ("UNKNOWN", 429, False)
    assert failure(delta_status("503 Service Unavailable", "SlowDown")) == ("SlowDown", 503, False)
    assert failure(delta_no_answer("operation timed out")) == (None, None, True)


def test_the_message_is_one_line_without_colour_codes() -> None:
    mapped = storage_error(delta_status("503 Service Unavailable", "SlowDown"), what="open silver.x")
    assert mapped.message.startswith("cannot open silver.x: Kernel error -> Generic S3 error Error performing GET")
    assert "\n" not in mapped.message and "\x1b" not in mapped.message and "↳" not in mapped.message
    assert "503 Service Unavailable" in mapped.message


@pytest.mark.parametrize(("error", "kind"), [
    (arrow("AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate."), TransientStorageError),
    (arrow("AWS Error NETWORK_CONNECTION during HeadObject operation: curlCode: 28, Timeout was reached"),
     TransientStorageError),
    (arrow("AWS Error ACCESS_DENIED during GetObject operation: Access Denied"), StorageError),
    (FileNotFoundError(2, "Path does not exist 'landing/raw/events/x.jsonl'"), StorageError),
], ids=_id)
def test_s3_location_raises_what_the_mapper_decides(error: OSError, kind: type[StorageError]) -> None:
    location = S3Location("s3://landing/raw", settings=StorageConfig(region="us-east-1"))

    def fails() -> bytes:
        raise error

    with pytest.raises(StorageError) as caught:
        location._call(fails, what="read s3://landing/raw/events/x.jsonl")
    assert type(caught.value) is kind
    assert caught.value.message.startswith("cannot read s3://landing/raw/events/x.jsonl: ")
