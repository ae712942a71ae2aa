"""Hand-written PySpark reference for the Spark engine benchmark: landing JSON lines -> a bronze Delta table,
the same work as lakeforge's ingestion stage on ``engine: spark``, with no framework.

The JSON files are read with an explicit schema of text columns (as lakeforge reads them), the hinted columns
are typed with ``try_cast`` and values that do not fit go to ``_rescued_data`` as a JSON object; a hinted
column missing from the files is added as typed NULLs; the five metadata columns come from Spark's hidden
``_metadata`` column; delta-spark writes the table in one commit. The session is lakeforge's own
(:func:`lakeforge.engines.spark.session.spark_session` with the default :class:`SparkEngineConfig`:
``local[*]``, 4 shuffle partitions, Delta's jars from ``.cache/spark-jars``), so the Spark settings are the same.

Usage: python bench/spark_reference.py LANDING_DIR OUT_DIR
Prints ``{"session": s, "work": s, "rows": n}`` as the last line of stderr: the seconds to start the session,
the seconds from the session being up to the commit, and the rows committed.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

from lakeforge.config.models import SparkEngineConfig
from lakeforge.engines.spark.session import spark_session

# the telemetry source's schema_hints in the example project; humidity is not in the clean files
HINTS = {"ts": "TIMESTAMP", "machine_id": "BIGINT", "volt": "DOUBLE", "rotate": "DOUBLE", "pressure": "DOUBLE",
         "vibration": "DOUBLE", "temperature": "DOUBLE", "humidity": "DOUBLE"}
COLUMNS = ("ts", "machine_id", "volt", "rotate", "pressure", "vibration", "temperature")  # as in the files


def main(landing: str, out: str) -> None:
    started = time.perf_counter()
    spark = spark_session(SparkEngineConfig())
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    up = time.perf_counter()
    schema = StructType([StructField(c, StringType()) for c in COLUMNS])
    raw = spark.read.schema(schema).option("mode", "FAILFAST").json(f"{landing}/telemetry/*.jsonl")
    typed = [f"try_cast({c} AS {HINTS[c]}) AS {c}" for c in COLUMNS]
    missing = [f"CAST(NULL AS {t}) AS {c}" for c, t in HINTS.items() if c not in COLUMNS]
    failed = {c: f"({c} IS NOT NULL AND try_cast({c} AS {HINTS[c]}) IS NULL)" for c in COLUMNS}
    entries = ", ".join(f"'{c}', CASE WHEN {f} THEN {c} END" for c, f in failed.items())
    rescued = (f"CASE WHEN {' OR '.join(failed.values())} THEN "
               f"to_json(map_filter(map({entries}), (k, v) -> v IS NOT NULL)) END AS _rescued_data")
    ingested_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    bronze = raw.select(
        *[F.expr(e) for e in (*typed, *missing, rescued)],
        F.concat(F.lit("telemetry/"), F.col("_metadata.file_name")).alias("_source_file"),
        F.col("_metadata.file_size").alias("_file_size"),
        F.col("_metadata.file_modification_time").alias("_file_modification_time"),
        F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
        F.lit(0).cast("bigint").alias("_batch_id"),
    )
    bronze.write.format("delta").mode("overwrite").save(out)
    done = time.perf_counter()

    from deltalake import DeltaTable  # after the clock: the commit's own row count, read by delta-rs

    rows = int(DeltaTable(out).history(limit=1)[0]["operationMetrics"]["numOutputRows"])
    spark.stop()
    print(json.dumps({"session": round(up - started, 3), "work": round(done - up, 3), "rows": rows}),
          file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
