"""Ingestion as Structured Streaming: Spark's file source (Auto Loader's ``cloudFiles`` on Databricks) with an
available-now trigger and a checkpoint, feeding lakeforge's exactly-once commit.

Spark lists the source folder and logs each micro-batch's files in its checkpoint
(``<lakehouse>/_lakeforge/checkpoints/<source>/_spark``) before reading them; ``foreachBatch`` then writes
lakeforge's manifest for those files (the same ``batch-N.json`` as on DuckDB) and commits them to bronze with
the transaction ``(lakeforge:ingest:<source>, N)``. A micro-batch that Spark replays after a crash (committed
to Delta, not yet to the checkpoint) finds its files in a manifest and writes nothing: each file once.

The stream reads every file with one schema, planned for the whole backlog; anything it cannot do the same way
as the DuckDB engine (mixed formats in one folder, a file that does not parse) stops it, and the rest of the
backlog goes through the batch path, which triages bad files and lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakeforge.engines.spark.errors import spark_errors
from lakeforge.engines.spark.session import on_databricks
from lakeforge.storage import FileInfo

if TYPE_CHECKING:
    from lakeforge.engines.base import StreamSink
    from lakeforge.engines.spark.engine import SparkEngine
    from lakeforge.results import StageResult

STREAM_FORMATS = {"jsonl": "json", "csv": "csv", "parquet": "parquet"}


def streamable(sink: StreamSink, files: list[FileInfo]) -> str | None:
    """The one format of the backlog when a stream can ingest it like the batch path would, else None."""
    source = sink.source
    formats = {source.format_of(f.path) for f in files}
    if not files or len(formats) != 1 or source.max_bytes_per_batch or source.max_line_bytes:
        return None  # byte-sized batches and long-line triage are the batch path's
    fmt = formats.pop()
    if fmt not in STREAM_FORMATS or any(f.size == 0 or f.path.endswith(".zst") for f in files):
        return None
    return fmt


def stream_ingest(engine: SparkEngine, sink: StreamSink, *, backlog: list[FileInfo], result: StageResult) -> bool:
    """Ingest the backlog with an available-now streaming query; False when the batch path must do it."""
    from lakeforge.engines.spark.engine import _file_key, with_file_columns

    fmt = streamable(sink, backlog)
    if fmt is None or not sink.landing.is_local:
        return False
    source, landing = sink.source, sink.landing
    plan = sink.stream_plan(backlog)
    folder = landing.join(source.folder(sink.name))
    schema = None
    if fmt == "parquet":  # a stream needs its schema up front: Parquet's own, of the backlog
        schema = engine.spark.read.option("mergeSchema", "true").parquet(
            *[landing.join(f.path) for f in backlog]).schema
    stream = _reader(engine, fmt=fmt, source=source, columns=plan.columns, parquet_schema=schema).load(folder)
    known = {_file_key(landing.join(f.path)): f for f in backlog}

    def commit(batch: Any, spark_batch_id: int) -> None:
        found = [known[key] for key in (_file_key(uri) for uri in batch.inputFiles()) if key in known]
        claimed = sink.claim(found) if found else None
        if claimed is None:
            return  # a replay of files already committed (or found by the batch path)
        raw = with_file_columns(batch)
        data = engine.with_metadata(engine._planned(raw, source, plan), files=claimed.files, location=landing,
                                    batch_id=claimed.batch_id, ingested_at=claimed.ingested_at)
        written = sink.append(data, batch_id=claimed.batch_id)
        result.rows_in += written
        result.rows_out += written
        result.rows_read += written
        result.rows_written += written
        result.bytes += sum(f.size for f in claimed.files)
        result.status = "ok"

    query = (stream.writeStream.foreachBatch(commit).trigger(availableNow=True)
             .option("checkpointLocation", sink.stream_checkpoint()).queryName(f"lakeforge_ingest_{sink.name}")
             .start())
    with spark_errors(f"ingesting {sink.name} as a stream"):
        query.awaitTermination()
    return True


def _reader(engine: SparkEngine, *, fmt: str, source: Any, columns: tuple[str, ...], parquet_schema: Any) -> Any:
    from pyspark.sql.types import StringType, StructField, StructType

    if on_databricks():  # Auto Loader: scalable listing (or file notifications), the same options
        reader = (engine.spark.readStream.format("cloudFiles").option("cloudFiles.format", STREAM_FORMATS[fmt])
                  .option("cloudFiles.maxFilesPerTrigger", source.max_files_per_batch)
                  .option("cloudFiles.includeExistingFiles", "true"))
    else:
        reader = (engine.spark.readStream.format(STREAM_FORMATS[fmt])
                  .option("maxFilesPerTrigger", source.max_files_per_batch).option("latestFirst", "false"))
    reader = reader.option("recursiveFileLookup", "true").option("pathGlobFilter", source.pattern)
    reader = reader.option("mode", "FAILFAST")
    if fmt == "jsonl":
        return reader.schema(StructType([StructField(c, StringType()) for c in columns]))
    if fmt == "csv":
        reader = (reader.option("header", str(source.header).lower()).option("sep", source.delimiter)
                  .option("quote", source.quote).option("escape", source.quote))
        names = list(source.columns or columns)
        return reader.schema(StructType([StructField(c, StringType()) for c in names]))
    return reader.schema(parquet_schema)
