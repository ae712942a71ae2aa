"""``engine: spark``: Apache Spark with Delta Lake (local[*] here, a Databricks cluster in production)."""

from lakeforge.engines.spark.engine import SparkEngine

__all__ = ["SparkEngine"]
