"""The Azure predictive-maintenance sample through the same path, checked against DuckDB on the raw CSVs."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from lakeforge.project import Project
from tests.conftest import SHARED_DATA

AZURE = SHARED_DATA / "azure-pdm"
pytestmark = pytest.mark.skipif(not AZURE.is_dir(), reason=f"the shared datasets are not at {AZURE}")

TS = {"datetime": "timestamp", "machineID": "bigint"}
CONFIG = {
    "name": "azure_pdm",
    "landing": str(AZURE),
    "sources": {
        "telemetry": {"format": "csv", "path": ".", "pattern": "PdM_telemetry*.csv",
                      "schema_hints": {**TS, "volt": "double", "rotate": "double", "pressure": "double",
                                       "vibration": "double"}},
        "errors": {"format": "csv", "path": ".", "pattern": "PdM_errors.csv", "header": False,
                   "columns": ["datetime", "machineID", "errorID"], "schema_hints": TS},
        "failures": {"format": "csv", "path": ".", "pattern": "PdM_failures.csv", "header": False,
                     "columns": ["datetime", "machineID", "failure"], "schema_hints": TS},
        "maint": {"format": "csv", "path": ".", "pattern": "PdM_maint.csv", "header": False,
                  "columns": ["datetime", "machineID", "comp"], "schema_hints": TS},
        "machines": {"format": "csv", "path": ".", "pattern": "PdM_machines.csv", "header": False,
                     "columns": ["machineID", "model", "age"], "schema_hints": {"machineID": "bigint", "age": "int"}},
    },
}
EVENT = """
    -- kind: incremental
    -- unique_key: [machineID, datetime, {col}]
    -- on_conflict: keep_first
    -- expectations:
    --   - {{name: complete, expr: datetime IS NOT NULL AND machineID IS NOT NULL, action: quarantine}}
    SELECT datetime, machineID, {col} FROM bronze.{src}
"""
MODELS = {
    "silver.telemetry": """
        -- kind: incremental
        -- unique_key: [machineID, datetime]
        -- expectations:
        --   - {name: typed, expr: _rescued_data IS NULL, action: quarantine}
        --   - {name: volt_plausible, expr: volt BETWEEN 0 AND 400, action: warn}
        SELECT datetime, machineID, volt, rotate, pressure, vibration, _rescued_data FROM bronze.telemetry
    """,
    "silver.errors": EVENT.format(col="errorID", src="errors"),
    "silver.failures": EVENT.format(col="failure", src="failures"),
    "silver.maint": EVENT.format(col="comp", src="maint"),
    "silver.machines": """
        -- kind: incremental
        -- unique_key: [machineID]
        SELECT machineID, model, age FROM bronze.machines
    """,
    "gold.telemetry_daily": """
        -- kind: incremental
        -- unique_key: [machineID, day]
        SELECT machineID, CAST(datetime AS DATE) AS day, count(*) AS readings,
               avg(volt) AS volt_avg, max(vibration) AS vibration_max, min(pressure) AS pressure_min
        FROM silver.telemetry GROUP BY machineID, CAST(datetime AS DATE)
    """,
    "gold.failures_by_model": """
        -- kind: materialized
        SELECT m.model, f.failure, count(*) AS failures
        FROM silver.failures AS f JOIN silver.machines AS m ON m.machineID = f.machineID
        GROUP BY m.model, f.failure
    """,
    "gold.errors_monthly": """
        -- kind: incremental
        -- unique_key: [machineID, month]
        SELECT machineID, date_trunc('MONTH', datetime) AS month, count(*) AS errors
        FROM silver.errors GROUP BY machineID, date_trunc('MONTH', datetime)
    """,
}
SOURCE_ROWS = {"telemetry": 43_200, "errors": 3_919, "failures": 761, "maint": 3_286, "machines": 100}


def raw(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, object]]:
    return con.sql(sql).to_arrow_table().to_pylist()


def test_azure_sample_end_to_end(make_project) -> None:  # type: ignore[no-untyped-def]
    project: Project = make_project(CONFIG, MODELS)
    result = project.run()
    assert result.status == "succeeded"
    stages = {s.name: s for s in result.stages}
    for stage in result.stages:
        assert stage.balanced(), stage
    for source, n in SOURCE_ROWS.items():
        assert stages[f"ingest:{source}"].rows_in == n
        assert project.catalog.dataset(f"bronze.{source}").count_rows() == n
        silver = stages[f"silver.{source}"]
        assert silver.rows_quarantined == 0 and silver.rows_dropped == 0, silver
        assert project.catalog.dataset(f"silver.{source}").count_rows() == n
    assert not project.catalog.exists("quarantine.bronze_telemetry")

    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    telemetry = f"read_csv('{AZURE / 'PdM_telemetry_machines1-20_2015Q1.csv'}', header=true)"
    expected = raw(con, f"SELECT machineID, CAST(datetime AS DATE) AS day, count(*) AS readings, "
                        f"round(avg(volt), 9) AS volt_avg, max(vibration) AS vibration_max, "
                        f"min(pressure) AS pressure_min FROM {telemetry} GROUP BY ALL ORDER BY ALL")
    got = project.query("SELECT machineID, day, readings, round(volt_avg, 9) AS volt_avg, vibration_max, "
                        "pressure_min FROM telemetry_daily ORDER BY ALL").to_pylist()
    assert len({r["machineID"] for r in got}) == 20 and len(got) == 20 * 91  # 2015-01-01 06:00 .. 2015-04-01
    assert got == expected

    failures = f"read_csv('{AZURE / 'PdM_failures.csv'}', header=false, names=['datetime','machineID','failure'])"
    machines = f"read_csv('{AZURE / 'PdM_machines.csv'}', header=false, names=['machineID','model','age'])"
    expected = raw(con, f"SELECT m.model, f.failure, count(*) AS failures FROM {failures} f JOIN {machines} m "
                        "USING (machineID) GROUP BY ALL ORDER BY ALL")
    got = project.query("SELECT * FROM failures_by_model ORDER BY ALL").to_pylist()
    assert got == expected and sum(r["failures"] for r in got) == 761  # type: ignore[misc]

    errors = f"read_csv('{AZURE / 'PdM_errors.csv'}', header=false, names=['datetime','machineID','errorID'])"
    expected = raw(con, f"SELECT machineID, count(*) AS errors FROM {errors} GROUP BY ALL ORDER BY ALL")
    got = project.query("SELECT machineID, CAST(sum(errors) AS BIGINT) AS errors FROM errors_monthly "
                        "GROUP BY ALL ORDER BY ALL").to_pylist()
    assert got == expected
    assert project.run().status == "nothing_to_do"


def test_azure_landing_is_only_read(make_project) -> None:  # type: ignore[no-untyped-def]
    before = {p.name: p.stat().st_mtime_ns for p in Path(AZURE).iterdir()}
    project: Project = make_project(CONFIG, {})
    project.run()
    assert {p.name: p.stat().st_mtime_ns for p in Path(AZURE).iterdir()} == before
    assert project.lakehouse.root.is_relative_to(project.path)
