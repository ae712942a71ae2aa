"""One pipeline definition, two engines: DuckDB and Spark produce the same bronze, silver and gold (same rows,
same schema), and each engine carries on incrementally from tables the other wrote."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import lakeforge.ingest.loader
from lakeforge.project import Project
from tests.conftest import landing_lines, write_project
from tests.integration.test_azure_pdm import AZURE
from tests.integration.test_azure_pdm import CONFIG as AZURE_CONFIG
from tests.integration.test_azure_pdm import MODELS as AZURE_MODELS

pytestmark = [pytest.mark.spark, pytest.mark.slow]
# columns that say when or in which run a row was written, not what it holds
RUN_COLUMNS = {"_run_id", "_quarantined_at", "run_id", "scored_at"}  # scoring stages: their run, their time
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both engines stamp the same ingestion time, so SCD2 validity (from _ingested_at) compares too."""
    monkeypatch.setattr(lakeforge.ingest.loader, "now", lambda: NOW)


def _value(value: Any) -> Any:
    if isinstance(value, float):  # compared with a tolerance: sums in another order differ in the last bits
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return tuple(_value(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _value(v)) for k, v in value.items()))
    return value


def snapshot(project: Project) -> dict[str, tuple[list[tuple[str, str]], list[tuple[Any, ...]]]]:
    """Every lakehouse table: its schema (as delta-rs reads it) and its rows, sorted, run columns left out."""
    found = {}
    for name in sorted(project.catalog.names()):
        table = project.catalog.table(name).to_pyarrow_table()
        keep = [c for c in table.column_names if c not in RUN_COLUMNS]
        schema = [(f.name, str(_plain(f.type))) for f in table.schema if f.name in keep]
        rows = sorted((tuple(_value(r[c]) for c in keep) for r in table.select(keep).to_pylist()),
                      key=lambda row: tuple((v is None, f"{v:.9g}" if isinstance(v, float) else str(v)) for v in row))
        found[name] = (schema, rows)
    return found


def _plain(type_: pa.DataType) -> pa.DataType:
    return {pa.string_view(): pa.string(), pa.large_string(): pa.string()}.get(type_, type_)


def assert_same(left: Project, right: Project) -> None:
    a, b = snapshot(left), snapshot(right)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name][0] == b[name][0], f"{name}: schemas differ"
        assert len(a[name][1]) == len(b[name][1]), f"{name}: {len(a[name][1])} rows vs {len(b[name][1])}"
        differing = [(x, y) for x, y in zip(a[name][1], b[name][1], strict=True) if not _same(x, y)]
        assert not differing, f"{name}: rows differ, e.g. {differing[0]}"


def _same(x: Any, y: Any) -> bool:
    """Equal, floats within a relative 1e-9: engines sum in different orders (a standard deviation of close
    values keeps fewer exact digits than its inputs)."""
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(x, tuple) and isinstance(y, tuple):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
    return bool(x == y)


def _copy_landing(src: Project, dst: Project) -> None:
    shutil.copytree(src.landing.local_path(), dst.landing.local_path(), dirs_exist_ok=True)  # keeps mtimes


def _example(root: Path, name: str) -> Project:
    return Project.init(root / name)


def test_example_project_identical_on_both_engines(tmp_path: Path) -> None:
    """Batch 1 on DuckDB and on Spark: identical lakehouses. Batch 2 continues each lakehouse on the *other*
    engine (Spark reads what DuckDB wrote and the reverse): still identical to DuckDB-only."""
    duck, spark, mixed = (_example(tmp_path, n) for n in ("duck", "spark", "mixed"))
    duck.generate(machines=6, days=2, seed=11, files=3)
    for other in (spark, mixed):
        _copy_landing(duck, other)

    first = {"duck": duck.run(), "mixed": mixed.run()}
    with Project(spark.path, engine="spark") as on_spark:
        first["spark"] = on_spark.run()
    assert {k: r.status for k, r in first.items()} == dict.fromkeys(first, "succeeded")
    for a, b in zip(first["duck"].stages, first["spark"].stages, strict=True):  # the same counts, stage by stage
        assert (a.name, a.rows_in, a.rows_out, a.rows_quarantined, a.rows_dropped) == \
               (b.name, b.rows_in, b.rows_out, b.rows_quarantined, b.rows_dropped)
    assert first["spark"].stages[0].rows_in > 0
    assert_same(duck, spark)

    duck.generate(machines=6, days=1, seed=12, files=2, start="2024-01-03")  # a second delivery
    for other in (spark, mixed):
        _copy_landing(duck, other)
    duck.run()
    spark.run()  # DuckDB carries on from Spark's tables
    with Project(mixed.path, engine="spark") as on_spark:  # Spark carries on from DuckDB's tables
        second = on_spark.run()
    assert {s.strategy for s in second.stages if s.name == "silver.telemetry"} == {"merge"}
    assert_same(duck, spark)
    assert_same(duck, mixed)
    for project in (duck, spark, mixed):
        assert project.run().status == "nothing_to_do"
        project.close()


def test_azure_sample_identical_on_both_engines(tmp_path: Path) -> None:
    duck = Project(write_project(tmp_path / "duck", AZURE_CONFIG, AZURE_MODELS))
    spark = Project(write_project(tmp_path / "spark", AZURE_CONFIG, AZURE_MODELS), engine="spark")
    assert duck.run().status == "succeeded"
    assert spark.run().status == "succeeded"
    assert_same(duck, spark)
    assert spark.catalog.dataset("bronze.telemetry").count_rows() == 43_200
    # the other engine reads each one's tables: DuckDB (delta-rs) the Spark-written gold, Spark DuckDB's
    got = duck.query("SELECT count(*) AS n, sum(readings) AS r FROM telemetry_daily").to_pylist()[0]
    spark_reads = spark.engine.catalog(duck.lakehouse).dataset("gold.telemetry_daily")
    assert spark_reads.count() == got["n"] and spark_reads.groupBy().sum("readings").first()[0] == got["r"]
    for project in (duck, spark):
        project.close()


def test_azure_available() -> None:
    assert AZURE.is_dir(), f"the shared datasets are not at {AZURE}"


def test_spark_stream_replay_after_a_crash_ingests_each_file_once(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The worst moment for a stream: bronze committed, Spark's checkpoint not yet. The rerun replays the
    micro-batch (its files are in Spark's offset log), finds them in lakeforge's manifest and writes nothing."""
    from lakeforge.engines.spark.catalog import SparkCatalog

    Project.init(tmp_path / "p").generate(machines=3, days=1, seed=5, files=3)
    project = Project(tmp_path / "p", engine="spark")
    real_write = SparkCatalog.write
    crashed: list[str] = []

    def commit_then_crash(self: SparkCatalog, name: str, data: Any, **kwargs: Any) -> int | None:
        written = real_write(self, name, data, **kwargs)
        if name == "bronze.telemetry" and not crashed and not isinstance(data, pa.Table):
            crashed.append(name)
            raise RuntimeError("simulated crash after the Delta commit, before the checkpoint's")
        return written

    monkeypatch.setattr(SparkCatalog, "write", commit_then_crash)
    with pytest.raises(Exception, match="simulated crash"):
        project.run(select=["silver.telemetry"])
    assert crashed and (project.lakehouse.local_path() / "_lakeforge/checkpoints/telemetry/_spark/offsets").is_dir()
    committed = project.catalog.dataset("bronze.telemetry").count_rows()
    result = project.run(select=["silver.telemetry"])

    lines = landing_lines(project.landing.local_path() / "telemetry")
    assert committed == lines == project.catalog.dataset("bronze.telemetry").count_rows()
    assert next(s for s in result.stages if s.name == "ingest:telemetry").rows_out == 0
    assert project.catalog.dataset("silver.telemetry").count_rows() > 0
    project.close()
