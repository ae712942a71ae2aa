"""delta-rs at the catalog's boundary: its object-store errors and lost commit races typed, the rest unchanged,
and a written stream's own error raised with its own type rather than as delta-rs' text of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake.exceptions import CommitFailedError, DeltaError, SchemaMismatchError

from lakeforge.errors import ModelError, StorageError, TransientStorageError
from lakeforge.lakehouse.catalog import Catalog
from lakeforge.lakehouse.errors import delta_errors
from lakeforge.retry import is_transient
from lakeforge.storage.local import LocalLocation

SLOW_DOWN = ("Kernel error -> Generic S3 error Error performing GET http://127.0.0.1:9000/lake/t/_delta_log/"
             "_last_checkpoint in 1.7s, after 10 retries, max_retries 10, retry_timeout 180s - Server returned "
             "non-2xx status code 503 Service Unavailable <Error><Code>SlowDown</Code></Error>")
NO_BUCKET = ("Kernel error -> Generic S3 error Error performing list request Error performing GET "
             "http://127.0.0.1:9000/nobucket?list-type=2 in 4ms - Server returned non-2xx status code 404 Not Found "
             "<Error><Code>NoSuchBucket</Code></Error>")
SCHEMA = pa.schema([("id", pa.int64())])


@pytest.mark.parametrize(("raised", "kind"), [
    (OSError(SLOW_DOWN), TransientStorageError),
    (CommitFailedError("Transaction failed: version already exists"), TransientStorageError),
    (CommitFailedError("Commit failed: a concurrent transaction deleted data this operation read"),
     TransientStorageError),
    (OSError(NO_BUCKET), StorageError),
    (OSError("Generic LocalFileSystem error: Unable to open file: Permission denied (os error 13)"), StorageError),
])
def test_delta_rs_errors_are_typed(raised: BaseException, kind: type[StorageError]) -> None:
    with pytest.raises(StorageError) as caught, delta_errors("write silver.x in the lakehouse s3://lake"):
        raise raised
    assert type(caught.value) is kind
    assert is_transient(caught.value) == (kind is TransientStorageError)
    assert caught.value.message.startswith("cannot write silver.x in the lakehouse s3://lake: ")


@pytest.mark.parametrize("raised", [SchemaMismatchError("Cannot cast schema, number of fields does not match"),
                                    DeltaError("Generic DeltaTable error: Arrow error: C Data interface error"),
                                    ValueError("not delta-rs' at all")])
def test_other_errors_pass_unchanged(raised: BaseException) -> None:
    with pytest.raises(type(raised)) as caught, delta_errors("write silver.x"):
        raise raised
    assert caught.value is raised


def failing_stream(error: BaseException) -> pa.RecordBatchReader:
    def batches() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch([pa.array([1, 2], pa.int64())], schema=SCHEMA)
        raise error

    return pa.RecordBatchReader.from_batches(SCHEMA, batches())


@pytest.mark.parametrize("error", [
    TransientStorageError("cannot read the input of model silver.x: 503 Service Unavailable", hint="run again"),
    ModelError("model silver.x failed: Conversion Error", hint="fix the model's SQL"),
    ConnectionResetError(104, "Connection reset by peer"),
])
def test_a_written_stream_fails_with_its_own_error(tmp_path: Path, error: BaseException) -> None:
    """delta-rs turns the producer's exception into a DeltaError quoting it; the catalog raises the producer's own
    exception again, so its type (transient or not) still decides."""
    catalog = Catalog(LocalLocation(tmp_path))
    with pytest.raises(type(error)) as caught:
        catalog.write("silver.x", failing_stream(error), mode="append")
    assert caught.value is error
    assert not catalog.exists("silver.x")  # nothing was committed


def test_a_lost_file_of_a_local_table_is_a_permanent_storage_error(tmp_path: Path) -> None:
    catalog = Catalog(LocalLocation(tmp_path))
    catalog.write("silver.x", pa.table({"id": [1, 2, 3]}), mode="append")
    for data in (tmp_path / "silver" / "x").glob("*.parquet"):
        data.unlink()
    with pytest.raises(StorageError) as caught:
        catalog.dataset("silver.x").to_table()
    assert type(caught.value) is StorageError and not is_transient(caught.value)
    assert caught.value.message.startswith(f"cannot read file://{tmp_path}/silver/x")
    assert caught.value.hint is not None and "lakehouse folder" in caught.value.hint
