"""``lakeforge deploy databricks --as pipeline --target spark`` runs on open-source Spark's ``spark-pipelines``
(local Spark Connect, Delta's jars from ``make spark-deps``, nothing downloaded, loopback only) and computes what
lakeforge's own DuckDB run computes from the same landing files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakeforge.deploy.pipeline import write_pipeline
from lakeforge.project import Project
from tests.conftest import REPO, landing_lines

pytestmark = [pytest.mark.slow, pytest.mark.spark]

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Path]]:
    project = Project.init(tmp_path_factory.mktemp("sdp") / "plant")
    project.generate(machines=4, days=2, seed=3, files=2)
    out = write_pipeline(project, project.path / "deploy" / "spark-pipeline", target="spark").out
    yield project, out
    project.close()


def spark_pipelines(command: str, out: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "PYSPARK_SUBMIT_ARGS", "SPARK_HOME")}
    env |= {"SPARK_CONF_DIR": str(out / "conf"), "LAKEFORGE_SPARK_JARS": str(REPO / ".cache" / "spark-jars"),
            "PYSPARK_PYTHON": sys.executable, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "spark-pipelines"), command, "--spec", str(out / "spark-pipeline.yml")],
                          cwd=out, env=env, capture_output=True, text=True, timeout=560)
    return done, time.perf_counter() - started


def sdp_table(out: Path, name: str) -> pa.Table:
    return DeltaTable(str(out / "warehouse" / name)).to_pyarrow_table()


def rows(table: pa.Table, columns: list[str]) -> list[dict[str, object]]:
    return table.select(columns).sort_by([(c, "ascending") for c in columns]).to_pylist()


def test_spark_pipelines_dry_run_then_run_computes_what_lakeforge_computes(pipeline: tuple[Project, Path]) -> None:
    project, out = pipeline
    dry, dry_seconds = spark_pipelines("dry-run", out)
    assert dry.returncode == 0, dry.stderr[-4000:]
    assert "Run is COMPLETED" in dry.stdout + dry.stderr
    assert not (out / "warehouse" / "silver_telemetry" / "_delta_log").exists()  # a dry run writes no data
    run, run_seconds = spark_pipelines("run", out)
    assert run.returncode == 0, run.stderr[-4000:]
    print(f"spark-pipelines dry-run {dry_seconds:.0f}s, run {run_seconds:.0f}s")

    # bronze: every line of the landing files, typed, with lakeforge's metadata columns
    bronze = sdp_table(out, "bronze_telemetry")
    assert bronze.num_rows == landing_lines(project.landing.local_path("telemetry")) > 0
    assert {"_rescued_data", "_source_file", "_ingested_at", "_batch_id"} <= set(bronze.column_names)
    assert pa.types.is_int64(bronze.schema.field("machine_id").type)
    assert all(path.startswith("telemetry/telemetry-") for path in bronze["_source_file"].to_pylist())

    # the same landing files through lakeforge's own run (DuckDB): the same tables
    project.run()
    for name in ("bronze.telemetry", "bronze.machines", "silver.telemetry", "quarantine.silver_telemetry",
                 "silver.machines", "silver.sites", "silver.errors", "silver.failures", "silver.maintenance",
                 "gold.dim_machine", "gold.fact_telemetry_hourly", "gold.fact_errors", "gold.fact_site_daily"):
        assert sdp_table(out, name.replace(".", "_")).num_rows == project.catalog.dataset(name).count_rows(), name
    columns = ["machine_id", "date", "readings"]
    assert rows(sdp_table(out, "gold_fact_telemetry_daily"), columns) == rows(
        project.catalog.dataset("gold.fact_telemetry_daily").to_table(), columns)
    kpis = ["date", "machines_reporting", "readings", "failures", "maintenance_actions", "errors"]
    assert rows(sdp_table(out, "gold_fleet_kpi_daily"), kpis) == rows(
        project.catalog.dataset("gold.fleet_kpi_daily").to_table(), kpis)
    quarantined = sdp_table(out, "quarantine_silver_telemetry")
    assert quarantined.num_rows > 0 and all(quarantined["_failed_rules"].to_pylist())
