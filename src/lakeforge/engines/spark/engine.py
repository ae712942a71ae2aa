"""The Spark engine: the same models and rules as DuckDB, run by Spark SQL; Delta written by delta-spark.

Model SQL reaches Spark transpiled by sqlglot; lakehouse tables are bound as temporary views at the exact
versions the run consumes. Landing files are read by Spark's own file readers (FAILFAST: a file that cannot
be parsed fails the read, and ingestion triages it exactly as on DuckDB). Small driver-side work (schema
sniffing, SCD2 history) is done by the embedded engine beside it, so both engines infer the same schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.dataset as pads
import sqlglot
from sqlglot import exp

from lakeforge.config.models import DuckDBEngineConfig, SourceConfig, SparkEngineConfig
from lakeforge.engines.base import EngineCapabilities, ModelOutput, ReadPlan, Relation
from lakeforge.engines.duckdb import DuckDBEngine
from lakeforge.engines.projection import projection, raw_type
from lakeforge.engines.rules import rule_outcome, rule_plan
from lakeforge.engines.spark.catalog import SparkCatalog
from lakeforge.engines.spark.errors import engine_error
from lakeforge.engines.spark.session import spark_session
from lakeforge.errors import ModelError
from lakeforge.lakehouse.catalog import LAYERS
from lakeforge.quality import Expectation
from lakeforge.sql import SPARK
from lakeforge.storage import FileInfo, Location

if TYPE_CHECKING:
    from lakeforge.engines.base import StreamSink
    from lakeforge.results import StageResult

CAPABILITIES = EngineCapabilities(
    name="spark", formats=("jsonl", "csv", "parquet"), arrow_native=False, distributed=True, dialect="spark"
)
# Spark errors that mean "this input cannot be parsed" (the file is triaged); anything else raises
_BAD_INPUT_MARKERS = ("MALFORMED_RECORD", "Malformed records", "FAILFAST", "CANNOT_READ_FILE",
                      "FAILED_READ_FILE", "CANNOT_PARSE_JSON", "Malformed CSV", "EOFException", "Not in GZIP format")


def _first_line(message: str) -> str:
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip() and not ln.startswith("JVM stacktrace")]
    return " ".join(lines[:2])[:500] if lines else message


class SparkEngine:
    capabilities = CAPABILITIES

    def __init__(self, config: SparkEngineConfig, *, base_dir: str | None = None) -> None:
        self.config = config
        self.spark = spark_session(config, base_dir=base_dir)
        self._local: DuckDBEngine | None = None
        self._staged: list[Any] = []
        self._views: set[str] = set()

    @property
    def local(self) -> DuckDBEngine:
        if self._local is None:
            # Its DuckDB opens through lakeforge.duckdb_connect like every other: one thread and DuckDB's memory
            # limit, for what it does (infer the schema of a sample of files, build an empty typed schema).
            self._local = DuckDBEngine(DuckDBEngineConfig(threads=1))
        return self._local

    def catalog(self, location: Location) -> SparkCatalog:
        return SparkCatalog(location, spark=self.spark)

    def close(self) -> None:
        self._release_stage()
        for view in self._views:
            self.spark.catalog.dropTempView(view)
        self._views.clear()
        if self._local is not None:
            self._local.close()
            self._local = None

    # -- relations ----------------------------------------------------------------------------------
    def _df(self, relation: Relation) -> Any:
        if isinstance(relation, pads.Dataset):
            relation = relation.to_table()
        if isinstance(relation, pa.RecordBatchReader):
            relation = relation.read_all()
        if isinstance(relation, pa.Table):
            return self.spark.createDataFrame(relation)
        return relation

    def rows(self, relation: Relation) -> int:
        if isinstance(relation, pa.Table):
            return relation.num_rows
        if isinstance(relation, pads.Dataset):
            return int(relation.count_rows())
        return int(relation.count())

    def materialize(self, relation: Relation) -> Relation:
        return relation  # a DataFrame can be read again (the stage it comes from is persisted)

    def to_arrow(self, relation: Relation) -> pa.Table:
        if isinstance(relation, pa.Table):
            return relation
        table = relation.toArrow()
        fields = [f.with_type(pa.timestamp("us", "UTC")) if pa.types.is_timestamp(f.type) and f.type.tz else f
                  for f in table.schema]
        return table.cast(pa.schema(fields))

    def register(self, alias: str, relation: Relation) -> None:
        self._df(relation).createOrReplaceTempView(alias)
        self._views.add(alias)

    def bind(self, relations: Mapping[str, Relation]) -> None:
        for name, relation in relations.items():
            self.register(_view_name(name), relation)

    def query(self, sql: str, *, relations: Mapping[str, Relation]) -> Any:
        self.bind(relations)
        return self.spark.sql(_bound(sql))

    def query_arrow(self, sql: str, *, relations: Mapping[str, Relation]) -> pa.Table:
        return self.to_arrow(self.query(sql, relations=relations))

    # -- ingestion ----------------------------------------------------------------------------------
    def describe_files(self, files: list[FileInfo], *, location: Location, source: SourceConfig) -> dict[str, str]:
        return self.local.describe_files(files, location=location, source=source)  # the same inference

    def typed_schema(self, types: Mapping[str, str]) -> pa.Schema:
        return self.local.typed_schema(types)

    @staticmethod
    def is_bad_input(exc: BaseException) -> bool:
        """Spark could not parse a file, or the embedded engine (sniffing a schema beside it) could not."""
        text = str(exc)
        return any(marker in text for marker in _BAD_INPUT_MARKERS) or DuckDBEngine.is_bad_input(exc)

    def _raw(self, fmt: str, files: list[FileInfo], *, location: Location, source: SourceConfig,
             columns: tuple[str, ...]) -> Any:
        """The files as Spark reads them: text columns (JSON, CSV) or Parquet's own types, plus the file path."""
        from pyspark.sql.types import StringType, StructField, StructType

        paths = [location.join(f.path) for f in files]
        reader = self.spark.read.option("mode", "FAILFAST")
        if fmt == "jsonl":
            names = columns or tuple(self.local.describe_files(files, location=location, source=source))
            schema = StructType([StructField(n, StringType()) for n in names])
            df = reader.schema(schema).option("multiLine", "false").json(paths)
        elif fmt == "csv":
            df = (reader.option("header", str(source.header).lower()).option("sep", source.delimiter)
                  .option("quote", source.quote).option("escape", source.quote).option("inferSchema", "false")
                  .csv(paths))
            if source.columns:
                df = df.toDF(*source.columns)
        else:
            df = reader.option("mergeSchema", "true").parquet(*paths)
        return with_file_columns(df)

    def scan_files(self, files: list[FileInfo], *, location: Location, source: SourceConfig, plan: ReadPlan,
                   batch_id: int, ingested_at: dt.datetime) -> Any:
        """One format's files as a DataFrame with the ingestion metadata columns (as DuckDB's scan)."""
        fmt = source.format_of(files[0].path)
        assert fmt is not None and all(source.format_of(f.path) == fmt for f in files)
        raw = self._raw(fmt, files, location=location, source=source, columns=plan.columns)
        return self.with_metadata(self._planned(raw, source, plan), files=files, location=location,
                                  batch_id=batch_id, ingested_at=ingested_at)

    def with_metadata(self, planned: Any, *, files: list[FileInfo], location: Location, batch_id: int,
                      ingested_at: dt.datetime) -> Any:
        """Planned rows (with Spark's ``__lf_path``) plus the five ingestion metadata columns."""
        from pyspark.sql import functions as F

        # Spark names a file by its URI (``file:/abs/path``, URL-encoded): the same string is made here, once per
        # file, so rows meet their file in one broadcast join of plain strings. A file whose URI Spark spells
        # otherwise still finds its path through the decoded URI (slower, never lost).
        names = self.spark.createDataFrame([(_spark_uri(location.join(f.path)), f.path) for f in files],
                                           "__lf_path string, __lf_rel string")
        decoded = ("concat('/', ltrim('/', regexp_replace(url_decode(replace(__lf_path, '+', '%2B')), "
                   "'^file:', '')))")
        prefix = _file_key(location.join(""))
        fallback = f"substring({decoded}, {len(prefix.rstrip('/')) + 2})"
        joined = planned.join(F.broadcast(names), "__lf_path", "left")
        data = [c for c in planned.columns if not c.startswith("__lf_")]
        return joined.select(
            *[F.col(SPARK.ident(c)) for c in data],
            F.coalesce(F.col("__lf_rel"), F.expr(fallback)).alias("_source_file"),
            F.col("__lf_size").alias("_file_size"),
            F.col("__lf_mtime").cast("timestamp").alias("_file_modification_time"),
            F.lit(ingested_at.astimezone(dt.UTC).replace(tzinfo=None)).cast("timestamp").alias("_ingested_at"),
            F.lit(int(batch_id)).cast("bigint").alias("_batch_id"),
        )

    def _planned(self, raw: Any, source: SourceConfig, plan: ReadPlan) -> Any:
        """Typed columns (always present); values that do not fit, and rescued columns, go to ``_rescued_data``;
        ignored columns are left out: the projection the DuckDB engine runs (:mod:`lakeforge.engines.projection`),
        written in Spark SQL."""
        types = dict(raw.dtypes)
        present = {c: raw_type(types[c], dialect="spark") for c in raw.columns if not c.startswith("__lf_")}
        select = projection(present, plan, timestamp_format=source.timestamp_format).sql(dialect="spark")
        return raw.selectExpr(*select, *FILE_COLUMNS)

    def check_files(self, files: list[FileInfo], *, location: Location, source: SourceConfig,
                    plan: ReadPlan) -> dict[str, str]:
        bad: dict[str, str] = {}
        for info in files:
            fmt = source.format_of(info.path)
            assert fmt is not None
            try:
                self._planned(self._raw(fmt, [info], location=location, source=source, columns=plan.columns),
                              source, plan).count()
            except Exception as exc:
                if not self.is_bad_input(exc):
                    raise
                bad[info.path] = _first_line(str(exc))
        return bad

    def stream_ingest(self, sink: StreamSink, *, backlog: list[FileInfo], result: StageResult) -> bool:
        """The backlog as Structured Streaming (available-now, checkpointed); False: use the batch path."""
        if self.config.ingest != "stream":
            return False
        from lakeforge.engines.spark.stream import stream_ingest

        return stream_ingest(self, sink, backlog=backlog, result=result)

    # -- models -------------------------------------------------------------------------------------
    def run_model(self, sql: str, *, model: str, relations: Mapping[str, Relation],
                  expectations: list[tuple[Expectation, str]], unique_key: list[str], order_by: list[str],
                  keep: Literal["first", "last"]) -> ModelOutput:
        """As on DuckDB: one pass with a bit per failed rule and the dedup rank, persisted once, counted once;
        kept and quarantined rows are DataFrames over that stage."""
        from pyspark import StorageLevel

        self._release_stage()
        if len(expectations) > 62:
            raise ModelError(f"model {model} has {len(expectations)} expectations; at most 62 are supported",
                             hint="split the checks across models")
        self.bind(relations)
        bound = [(e, _bound(pred)) for e, pred in expectations]
        plan = rule_plan(bound, unique_key=unique_key, order_by=order_by, keep=keep, ident=SPARK.ident,
                         tiebreak=self._orderable(_bound(sql)) if unique_key else None)
        inner = f"SELECT *, CAST({plan.mask} AS BIGINT) AS __lf_mask FROM ({_bound(sql)}) AS __lf_model"
        try:
            stage = self.spark.sql(f"SELECT {', '.join(plan.outer)} FROM ({inner}) AS q")
            # deserialized: a spilled block read back is not one heap buffer (MEMORY_AND_DISK is serialized in
            # PySpark, and 2.5M rows in a block did not fit a 1 GB driver)
            stage = stage.persist(StorageLevel.MEMORY_AND_DISK_DESER)
            self._staged.append(stage)
            stage.createOrReplaceTempView("__lf_stage")
            self._views.add("__lf_stage")
            row = plan.tally([(r[0], r[1], r[2]) for r in self.spark.sql(plan.count_sql("__lf_stage")).collect()])
        except Exception as exc:
            mapped = engine_error(exc, what=f"model {model}")  # transient, or the driver gone
            if mapped is not None:
                raise mapped from None
            if type(exc).__module__.startswith("pyspark"):
                raise ModelError(f"model {model} failed: {_first_line(str(exc))}",
                                 hint="fix the model's SQL") from None
            raise
        rows_in, results, dropped_by, (n_quarantined, n_dropped, n_dup) = rule_outcome(model, plan, row)
        data = [SPARK.ident(c) for c in stage.columns if not c.startswith("__lf_")]
        kept = stage.filter(plan.kept).selectExpr(*data)
        quarantined = stage.filter(plan.quarantine).selectExpr(
            *data, f"filter(array({plan.failed_names or 'CAST(NULL AS STRING)'}), x -> x IS NOT NULL) AS _failed_rules")
        return ModelOutput(
            schema=_arrow_schema(kept.schema),
            rows_in=rows_in,
            rows_kept=rows_in - n_quarantined - n_dropped - n_dup,
            rows_quarantined=n_quarantined,
            rows_dropped=n_dropped + n_dup,
            rules=results,
            dropped_by=dropped_by,
            kept=lambda: kept,
            quarantined=lambda: quarantined,
            release=self._release_stage,
        )

    def _orderable(self, sql: str) -> list[str]:
        """The model's columns that Spark can sort by (maps cannot be), without running it."""
        from pyspark.sql.types import MapType

        try:
            schema = self.spark.sql(sql).schema
        except Exception:  # a model that does not analyse fails in the pass itself, with its own error
            return []
        return [f.name for f in schema.fields if not isinstance(f.dataType, MapType)]

    def _release_stage(self) -> None:
        for stage in self._staged:
            stage.unpersist()
        self._staged.clear()


def _arrow_schema(schema: Any) -> pa.Schema:
    """A DataFrame's schema as Arrow, as the Delta table will hold it (timestamps in UTC, microseconds)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema, timezone="UTC")


FILE_COLUMNS = ("__lf_path", "__lf_size", "__lf_mtime")


def with_file_columns(df: Any) -> Any:
    """Spark's own file metadata of each row: URI, size, modification time (carried to the metadata columns)."""
    return (df.withColumn("__lf_path", df["_metadata.file_path"]).withColumn("__lf_size", df["_metadata.file_size"])
            .withColumn("__lf_mtime", df["_metadata.file_modification_time"]))


def _spark_uri(path: str) -> str:
    """A local file's URI as Spark (Hadoop's ``Path.toUri``) writes it: ``file:`` and the percent-encoded path."""
    from urllib.parse import quote

    return "file:" + quote(path, safe="/!$&'()*+,;=:@-._~")


def _view_name(table: str) -> str:
    layer, _, name = table.partition(".")
    return f"__lf_{layer}_{name}"


def _bound(sql: str) -> str:
    """``bronze.telemetry`` -> the temporary view bound for it (Spark has no such databases)."""
    tree = sqlglot.parse_one(sql, read="spark")

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and node.db in LAYERS and not node.catalog:
            return exp.Table(this=exp.to_identifier(_view_name(f"{node.db}.{node.name}")), alias=node.args.get("alias"))
        return node

    return tree.transform(swap).sql(dialect="spark")


def _file_key(uri: str) -> str:
    """A file's URI as Spark reports it or as lakeforge joins it, reduced to one comparable form."""
    from urllib.parse import unquote

    text = unquote(uri)
    for prefix in ("file://", "file:"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    return "/" + text.lstrip("/")
