"""The typed/rescue projection (lakeforge.engines.projection) rendered for Spark computes, on Spark, what its
DuckDB rendering computes, on the same generated rows (hypothesis, derandomized); the cases, the DuckDB runner and
the reference are tests/unit/engines/test_projection.py's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from tests.unit.engines.test_projection import PLAIN_NAME, Case, built, cases, outcome, run_duckdb
from tests.unit.engines.test_projection import con as con  # the unit tests' DuckDB fixture


# -- DuckDB against Spark, on the same rows ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spark() -> Any:
    from lakeforge.config.models import SparkEngineConfig
    from lakeforge.engines.spark.session import find_jars_dir, spark_session
    from tests.conftest import REPO

    if find_jars_dir(None, base_dir=str(REPO)) is None:
        pytest.fail("Delta's jars are missing: run `make spark-deps`", pytrace=False)
    return spark_session(SparkEngineConfig(master="local[1]", shuffle_partitions=1), base_dir=str(REPO))


def spark_runner(spark: Any) -> Callable[[Case], pa.Table]:
    from pyspark.sql.types import StringType, StructField, StructType

    def run(case: Case) -> pa.Table:
        schema = StructType([StructField(c, StringType()) for c in case.columns])
        frame = spark.createDataFrame([tuple(r[c] for c in case.columns) for r in case.rows], schema)
        return frame.selectExpr(*built(case).sql(dialect="spark", with_rescued=True)).toArrow()

    return run


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.timeout(180)
def test_spark_computes_what_duckdb_computes(con: duckdb.DuckDBPyConnection, spark: Any) -> None:
    run = spark_runner(spark)
    checked = []

    @settings(derandomize=True, database=None, deadline=None, max_examples=10,
              suppress_health_check=[HealthCheck.too_slow])
    @given(cases(name=PLAIN_NAME, max_rows=6))
    def same(case: Case) -> None:
        ours, theirs = outcome(run_duckdb(con, case)), outcome(run(case))
        assert theirs == ours == (case.expected, case.rescued)
        checked.append(case)

    same()
    assert checked
