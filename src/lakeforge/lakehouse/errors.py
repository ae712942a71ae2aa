"""delta-rs' failures, mapped once where it is called (the catalog, the event log, a backfill's commit).

delta-rs raises an ``OSError`` for what its object store (S3, a local folder) answered, and that is an object
store's error like any other (:mod:`lakeforge.storage.errors` decides transient or not). A ``CommitFailedError``
is a commit that lost a race: another commit took the version first -- under the run lock, the stage's own
earlier try whose reply was lost -- and a retry reads the table again, finds its transaction recorded or commits
on top: transient. Other delta-rs errors (a schema that does not match, a protocol it does not support, an error
of the rows written) are not the store's: they pass unchanged.

A stream of rows written to Delta (``write_deltalake`` of a ``RecordBatchReader``) that fails in its producer
comes out of delta-rs as a ``DeltaError`` whose text quotes the producer's exception: :func:`tracked` keeps that
exception, and :func:`delta_errors` raises it again, with its type, instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from deltalake.exceptions import CommitFailedError, DeltaError

from lakeforge.errors import TransientStorageError
from lakeforge.storage.errors import FOLDER_HINT, storage_error, summary

if TYPE_CHECKING:
    import pyarrow as pa

LOST_RACE_HINT = ("another commit took the table's next version first (under the run lock: this stage's own earlier "
                  "try, whose reply was lost); run again: the table is read anew and nothing is committed twice")


class Tracked:
    """The exception a stream's producer raised, if any (see :func:`tracked`)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None


def tracked(data: pa.Table | pa.RecordBatchReader, tracker: Tracked) -> pa.Table | pa.RecordBatchReader:
    """``data``; a stream is passed through a generator that keeps what its producer raised in ``tracker``."""
    import pyarrow as pa

    if not isinstance(data, pa.RecordBatchReader):
        return data
    reader = data

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except BaseException as exc:
            tracker.error = exc
            raise

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


@contextmanager
def delta_errors(what: str, *, tracker: Tracked | None = None, local: bool = False) -> Iterator[None]:
    """Run a delta-rs call ``what`` (``write silver.x in the lakehouse s3://b/lake``): an ``OSError`` becomes a
    ``StorageError`` (transient or not), a lost commit race a ``TransientStorageError``; a written stream's own
    error is raised again as it was. ``local``: the lakehouse is a local folder (the fix names the folder)."""
    try:
        yield
    except DeltaError as exc:
        if tracker is not None and tracker.error is not None:
            raise tracker.error from tracker.error.__cause__  # (its own cause kept, delta-rs' text left out)
        if isinstance(exc, CommitFailedError):
            raise TransientStorageError(f"cannot {what}: {summary(exc)}", hint=LOST_RACE_HINT) from None
        raise
    except OSError as exc:
        if tracker is not None and tracker.error is not None:
            raise tracker.error from tracker.error.__cause__
        raise storage_error(exc, what=what, hint=FOLDER_HINT if local else None) from None
