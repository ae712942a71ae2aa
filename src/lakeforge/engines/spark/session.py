"""The Spark session of ``engine: spark``: Delta Lake's jars from the Maven cache of ``make spark-deps``.

Nothing is downloaded here: the jars are fetched once by Maven (``deps/spark/pom.xml``) into
``.cache/spark-jars``; on Databricks the runtime has Delta built in and its session is used as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from lakeforge.config.models import SparkEngineConfig
from lakeforge.errors import MissingDependency

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JARS_ENV = "LAKEFORGE_SPARK_JARS"
JARS_DIR = Path(".cache") / "spark-jars"
# what every lakeforge Spark session needs, on a laptop or on Databricks
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.databricks.delta.properties.defaults.enableChangeDataFeed": "true",
    "spark.databricks.delta.schema.autoMerge.enabled": "true",
}
DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def jars_candidates(jars_dir: str | None, *, base_dir: str | None) -> list[Path]:
    """Where Delta's jars may be: ``jars_dir``, else ``$LAKEFORGE_SPARK_JARS``, else ``.cache/spark-jars`` in
    the project, the working directory or the lakeforge checkout (in that order)."""
    explicit = [Path(p) for p in (jars_dir, os.environ.get(JARS_ENV)) if p]
    if explicit:
        return [p if p.is_absolute() or not base_dir else Path(base_dir) / p for p in explicit]
    roots = [Path(base_dir) if base_dir else None, Path.cwd(), Path(__file__).resolve().parents[4]]
    return [root / JARS_DIR for root in roots if root is not None]


def find_jars_dir(jars_dir: str | None, *, base_dir: str | None) -> Path | None:
    """The first candidate folder that holds ``delta-spark_*.jar``."""
    for folder in jars_candidates(jars_dir, base_dir=base_dir):
        if any(folder.glob("delta-spark_*.jar")):
            return folder.resolve()
    return None


def delta_jars(config: SparkEngineConfig, *, base_dir: str | None) -> list[str]:
    """Delta's jars (see :func:`jars_candidates`); a clear error naming ``make spark-deps`` when none."""
    folder = find_jars_dir(config.jars_dir, base_dir=base_dir)
    if folder is None:
        candidates = jars_candidates(config.jars_dir, base_dir=base_dir)
        raise MissingDependency(
            f"engine: spark needs Delta Lake's jars; none in {', '.join(str(c) for c in candidates)}",
            hint="run `make spark-deps` (Maven fetches them into .cache/spark-jars), or set LAKEFORGE_SPARK_JARS "
                 "or engine.jars_dir to a folder holding delta-spark_*.jar",
        )
    return sorted(str(p) for p in folder.glob("delta-*.jar"))


def spark_session(config: SparkEngineConfig, *, base_dir: str | None = None) -> SparkSession:
    """The process's Spark session (one per JVM, as on Databricks), created on first use."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise MissingDependency("engine: spark needs PySpark and delta-spark",
                                hint="pip install 'lakeforge[spark]', then `make spark-deps`") from None
    if config.master == "databricks-connect":  # a Databricks cluster from a laptop (DATABRICKS_* settings)
        try:
            from databricks.connect import DatabricksSession
        except ImportError:
            raise MissingDependency("master: databricks-connect needs Databricks Connect",
                                    hint="pip install databricks-connect (in place of pyspark), then set "
                                         "DATABRICKS_HOST and a cluster id or serverless") from None
        return _configured(DatabricksSession.builder.getOrCreate(), config)
    if config.master.startswith("sc://"):  # any Spark Connect server with Delta on its class path
        return _configured(SparkSession.builder.remote(config.master).getOrCreate(), config)
    active = SparkSession.getActiveSession()
    if on_databricks() or active is not None:
        return _configured(active or SparkSession.builder.getOrCreate(), config)
    builder = (SparkSession.builder.master(config.master).appName("lakeforge")
               .config("spark.jars", ",".join(delta_jars(config, base_dir=base_dir)))
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", str(config.shuffle_partitions))
               # Delta rebuilds a table's state with 50 tasks by default: on one machine, one per partition
               .config("spark.databricks.delta.snapshotPartitions", str(config.shuffle_partitions))
               .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=ERROR"))
    if config.driver_memory:
        builder = builder.config("spark.driver.memory", config.driver_memory)
    for key, value in {**DELTA_CONF, **SESSION_CONF, **config.conf}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _configured(session: SparkSession, config: SparkEngineConfig) -> SparkSession:
    """A session lakeforge did not start: its settings, set at run time."""
    for key, value in {**SESSION_CONF, **config.conf}.items():
        session.conf.set(key, value)
    return session
