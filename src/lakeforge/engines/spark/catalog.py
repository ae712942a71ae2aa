"""Delta tables written and read by Spark (delta-spark), addressed as ``layer.table`` like :class:`Catalog`.

Table metadata (versions, transactions, history) is still read with delta-rs: no Spark job for a lookup.
A Spark write carries one Delta transaction (``txnAppId``/``txnVersion``); a model that consumed several
upstream tables also records them all in the commit's ``userMetadata``, which :meth:`Catalog.consumed` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pyarrow as pa
import pyarrow.dataset as pads

from lakeforge.engines.spark.errors import spark_errors
from lakeforge.lakehouse.catalog import CHANGE_COLUMNS, DELETE_FLAG, Catalog, user_metadata
from lakeforge.sql import SPARK
from lakeforge.storage import Location

_TXN_CONF = ("spark.databricks.delta.write.txnAppId", "spark.databricks.delta.write.txnVersion")
_USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"


def _arrow(data: Any) -> bool:
    return isinstance(data, pa.Table | pa.RecordBatchReader | pads.Dataset)


def _arrow_table(data: Any) -> pa.Table:
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    return data.to_table() if isinstance(data, pads.Dataset) else data


# Spark's idempotent writes (txnAppId/txnVersion) skip a commit whose one transaction is not newer than the table's:
# right for an ingestion batch (a replayed micro-batch), wrong for a model commit, which records every upstream it
# read and is made whenever lakeforge decides to make it: an edited model rebuilt from the same upstream versions,
# or one whose joined table (not the first upstream) moved on, would be skipped. A model commit (it carries a
# fingerprint) records its transactions in ``userMetadata`` only, which :meth:`Catalog.consumed` reads.


class SparkCatalog(Catalog):
    def __init__(self, location: Location, *, spark: Any) -> None:
        super().__init__(location)
        self.spark = spark
        self._cached: list[Any] = []  # change feeds cached in this run

    def forget(self) -> None:
        super().forget()
        for frame in self._cached:
            frame.unpersist()
        self._cached.clear()

    def _path(self, name: str) -> str:
        return self.uri(name)

    def dataset(self, name: str, *, version: int | None = None) -> Any:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", int(version))
        return reader.load(self._path(name))

    def _feed(self, name: str, *, since: int, until: int) -> Any:
        return (self.spark.read.format("delta").option("readChangeFeed", "true")
                .option("startingVersion", since + 1).option("endingVersion", until).load(self._path(name)))

    def changes(self, name: str, *, since: int, until: int, keys: list[str] | None = None) -> tuple[Any, bool]:
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        if until <= since:
            return self.dataset(name, version=until).limit(0), False
        feed = self._feed(name, since=since, until=until)
        deleted = bool(feed.filter(F.col("_change_type") == "delete").limit(1).count())
        rows = feed.filter(F.col("_change_type").isin("insert", "update_postimage"))
        if keys:
            latest = Window.partitionBy(*[F.col(k) for k in keys]).orderBy(F.col("_commit_version").desc())
            rows = rows.withColumn("__lf_rn", F.row_number().over(latest)).filter("__lf_rn = 1").drop("__lf_rn")
        return rows.drop(*CHANGE_COLUMNS), deleted

    def change_images(self, name: str, *, since: int, until: int) -> tuple[Any, bool]:
        from pyspark.sql import functions as F

        if until <= since:
            return self.dataset(name, version=until).limit(0), False
        feed = self._feed(name, since=since, until=until).cache()  # read twice: the check below, the recompute
        self._cached.append(feed)
        rewritten = bool(feed.filter(F.col("_change_type") != "insert").limit(1).count())
        return feed.drop(*CHANGE_COLUMNS), rewritten

    def write(self, name: str, data: Any, *, mode: Literal["append", "overwrite"],
              transactions: Mapping[str, int] | None = None, metadata: Mapping[str, str] | None = None,
              partition_by: list[str] | None = None, fingerprint: Mapping[str, str] | None = None,
              target_file_size: int | None = None) -> int | None:
        """As the local catalog's; ``target_file_size`` is a hint Spark's writer does not take (its files follow
        the DataFrame's partitions), honoured for Arrow data only."""
        if _arrow(data):  # small, driver-side results (empty progress commits, quarantine, SCD2 history)
            return super().write(name, data, mode=mode, transactions=transactions, metadata=metadata,
                                 partition_by=partition_by, fingerprint=fingerprint,
                                 target_file_size=target_file_size)
        before = self.version(name)
        writer = data.write.format("delta").mode(mode)
        writer = writer.option("mergeSchema", "true") if mode == "append" else writer.option("overwriteSchema",
                                                                                            "true")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if transactions:
            if fingerprint is None:  # an ingestion batch (see above SparkCatalog)
                app, version = next(iter(transactions.items()))
                writer = writer.option("txnAppId", app).option("txnVersion", int(version))
            writer = writer.option("userMetadata", user_metadata(transactions, fingerprint))
        with spark_errors(f"writing {name} with Spark"):
            writer.save(self._path(name))
        if fingerprint is not None and before >= 0 and self.version(name) == before:
            # Delta commits nothing for no rows over a table without files: the progress is still recorded
            self.record(name, transactions=transactions or {}, fingerprint=fingerprint)
            return 0
        return self._rows_written(name, transactions, fingerprint)

    def merge(self, name: str, data: Any, *, keys: list[str], update: bool,
              transactions: Mapping[str, int] | None = None, delete: Any = None,
              fingerprint: Mapping[str, str] | None = None) -> dict[str, Any]:
        if _arrow(data) and (delete is None or _arrow(delete)):
            return super().merge(name, data, keys=keys, update=update, transactions=transactions,
                                 delete=None if delete is None else _arrow_table(delete), fingerprint=fingerprint)
        from delta.tables import DeltaTable
        from pyspark.sql import functions as F

        if _arrow(data):
            data = self.spark.createDataFrame(_arrow_table(data))
        condition = " AND ".join(f"t.{SPARK.ident(k)} <=> s.{SPARK.ident(k)}" for k in keys)
        gone = delete is not None and bool(delete.limit(1).count())
        source = data
        if gone:
            tombstones = delete.select(*[F.col(SPARK.ident(k)).cast(data.schema[k].dataType).alias(k) for k in keys])
            source = (data.withColumn(DELETE_FLAG, F.lit(False))
                      .unionByName(tombstones.withColumn(DELETE_FLAG, F.lit(True)), allowMissingColumns=True))
        merger = DeltaTable.forPath(self.spark, self._path(name)).alias("t").merge(source.alias("s"), condition)
        columns: dict[str, Any] = {SPARK.ident(c): f"s.{SPARK.ident(c)}" for c in data.columns}
        live = f"NOT s.{SPARK.ident(DELETE_FLAG)}"
        if gone:
            merger = merger.whenMatchedDelete(condition=f"s.{SPARK.ident(DELETE_FLAG)}")
            if update:
                merger = merger.whenMatchedUpdate(condition=live, set=columns)
            merger = merger.whenNotMatchedInsert(condition=live, values=columns)
        else:
            if update:
                merger = merger.whenMatchedUpdateAll()
            merger = merger.whenNotMatchedInsertAll()
        conf = self.spark.conf
        try:
            if transactions:
                if fingerprint is None:  # an ingestion batch (see above SparkCatalog)
                    app, version = next(iter(transactions.items()))
                    conf.set(_TXN_CONF[0], app)
                    conf.set(_TXN_CONF[1], str(int(version)))
                conf.set(_USER_METADATA_CONF, user_metadata(transactions, fingerprint) or "")
            with spark_errors(f"merging into {name} with Spark"):
                merger.execute()
        finally:
            for key in (*_TXN_CONF, _USER_METADATA_CONF):
                conf.unset(key)
        metrics = self._last_metrics(name)
        return {"num_target_rows_inserted": int(metrics.get("numTargetRowsInserted", 0)),
                "num_target_rows_updated": int(metrics.get("numTargetRowsUpdated", 0))}

    def _last_metrics(self, name: str) -> dict[str, Any]:
        history = self.table(name).history(limit=1)
        return dict(history[0].get("operationMetrics") or {}) if history else {}

    def _rows_written(self, name: str, transactions: Mapping[str, int] | None,
                      fingerprint: Mapping[str, str] | None = None) -> int | None:
        """Rows of the commit just made (a rerun Delta skipped as already done wrote none)."""
        history = self.table(name).history(limit=1)
        if not history:
            return None
        commit = history[0]
        if transactions and commit.get("userMetadata") != user_metadata(transactions, fingerprint):
            return 0  # Delta skipped the write: this transaction was committed before
        return int((commit.get("operationMetrics") or {}).get("numOutputRows", 0))
