"""DuckDB's errors at its boundaries: the warehouse file locked by another process (or by this one, opened with
another configuration) is transient, a file that is no DuckDB database permanent; a model whose lakehouse input
fails to stream is the storage's error (transient or not), its SQL the model's, running out of memory the
engine's (permanent)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from lakeforge.config.models import DuckDBEngineConfig, DuckDBWarehouseConfig
from lakeforge.engines.duckdb import DuckDBEngine
from lakeforge.engines.duckdb.errors import locked, stream_failure, transient
from lakeforge.errors import (
    EngineError,
    ModelError,
    StorageError,
    TransientStorageError,
    TransientWarehouseError,
    WarehouseError,
)
from lakeforge.retry import is_transient
from lakeforge.warehouses.duckdb import DuckDBWarehouse

SCHEMA = pa.schema([("id", pa.int64())])
SLOW_DOWN = ("Generic S3 error Error performing GET http://127.0.0.1:9000/lake/silver/x/part-0.parquet in 0.1s, "
             "after 10 retries - Server returned non-2xx status code 503 Service Unavailable "
             "<Error><Code>SlowDown</Code></Error>")
NO_BUCKET = ("Generic S3 error Error performing GET http://127.0.0.1:9000/nobucket/x/part-0.parquet in 4ms - "
             "Server returned non-2xx status code 404 Not Found <Error><Code>NoSuchBucket</Code></Error>")


def stream(error: BaseException | None = None, rows: int = 3) -> pa.RecordBatchReader:
    """A lakehouse table as DuckDB gets it: an Arrow stream, failing after its first batch with ``error``."""
    def batches() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch([pa.array(range(rows), pa.int64())], schema=SCHEMA)
        if error is not None:
            raise error

    return pa.RecordBatchReader.from_batches(SCHEMA, batches())


def duckdb_error(sql: str, **streams: pa.RecordBatchReader) -> duckdb.Error:
    con = duckdb.connect()
    for name, data in streams.items():
        con.register(name, data)
    try:
        con.sql(sql).fetchall()
    except duckdb.Error as exc:
        return exc
    finally:
        con.close()
    raise AssertionError(f"{sql} did not fail")


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """A DuckDB file another process holds open (read-write: its lock)."""
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(60)", str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        yield path
    finally:
        holder.kill()
        holder.wait()


def test_a_file_locked_by_another_process_is_transient(held: Path) -> None:
    with pytest.raises(duckdb.IOException) as caught:
        duckdb.connect(str(held))
    assert locked(caught.value) and transient(caught.value)
    with pytest.raises(TransientWarehouseError, match=f"cannot open the warehouse {held}: IO Error: Could not set "
                                                      "lock on file") as mapped:
        DuckDBWarehouse(DuckDBWarehouseConfig(path=str(held)), base_dir=held.parent)
    assert is_transient(mapped.value) and "retry when it is done" in str(mapped.value.hint)


def test_a_file_open_here_with_another_configuration_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    writer = duckdb.connect(str(path))
    try:
        with pytest.raises(TransientWarehouseError, match="different configuration"):
            DuckDBWarehouse(DuckDBWarehouseConfig(path=str(path)), base_dir=tmp_path, read_only=True)
    finally:
        writer.close()


def test_a_file_that_is_no_duckdb_database_is_permanent(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    path.write_text("not a database " * 100)
    with pytest.raises(WarehouseError) as caught:
        DuckDBWarehouse(DuckDBWarehouseConfig(path=str(path)), base_dir=tmp_path)
    assert type(caught.value) is WarehouseError and not is_transient(caught.value)
    assert "not a valid DuckDB database file" in caught.value.message


@pytest.mark.parametrize(("error", "expected"), [
    (OSError(SLOW_DOWN), True),
    (ConnectionResetError(104, "Connection reset by peer"), False),  # no store's answer in the text: not known
    (OSError(NO_BUCKET), False),
])
def test_a_failed_stream_is_decided_by_what_the_store_said(error: BaseException, expected: bool) -> None:
    exc = duckdb_error("SELECT sum(id) FROM t", t=stream(error))
    assert stream_failure(exc) is not None
    assert transient(exc) is expected


def test_sql_errors_are_no_stream_failures() -> None:
    exc = duckdb_error("SELECT no_such_column FROM t", t=stream())
    assert stream_failure(exc) is None and not transient(exc)


def run_model(engine: DuckDBEngine, sql: str, data: pa.RecordBatchReader, *, unique_key: list[str]) -> None:
    engine.run_model(sql, model="silver.t", relations={"bronze.t": data}, expectations=[], unique_key=unique_key,
                     order_by=[], keep="last")


@pytest.mark.parametrize("unique_key", [["id"], []], ids=["staged", "streamed"])
def test_a_model_whose_input_fails_to_stream_raises_the_storage_error(unique_key: list[str]) -> None:
    engine = DuckDBEngine(DuckDBEngineConfig())
    try:
        with pytest.raises(TransientStorageError, match=r"cannot read the input of model silver\.t"):
            if unique_key:
                run_model(engine, "SELECT id FROM bronze.t", stream(OSError(SLOW_DOWN)), unique_key=unique_key)
            else:  # streamed: the rows are read as the writer takes them
                output = engine.run_model("SELECT id FROM bronze.t", model="silver.t",
                                          relations={"bronze.t": stream(OSError(SLOW_DOWN))}, expectations=[],
                                          unique_key=[], order_by=[], keep="last")
                output.kept().read_all()
        with pytest.raises(StorageError) as caught:
            run_model(engine, "SELECT id FROM bronze.t", stream(OSError(NO_BUCKET)), unique_key=["id"])
        assert type(caught.value) is StorageError
    finally:
        engine.close()


def test_a_model_error_is_the_models_and_out_of_memory_the_engines() -> None:
    engine = DuckDBEngine(DuckDBEngineConfig(memory_limit="10MB", threads=1, stage="memory"))
    try:
        with pytest.raises(ModelError, match="no_such_column"):
            run_model(engine, "SELECT no_such_column FROM bronze.t", stream(), unique_key=["id"])
        with pytest.raises(EngineError, match="Out of Memory") as caught:
            run_model(engine, "SELECT 1 AS id, string_agg(repeat('x', 100000), '') AS s FROM range(2000)", stream(),
                      unique_key=["id"])
        assert not is_transient(caught.value)
    finally:
        engine.close()
