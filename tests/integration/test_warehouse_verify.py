"""`lakeforge warehouse verify`: a warehouse equal to gold passes; a lost row or a changed value is found, with
its table and partition."""

from __future__ import annotations

import json

import duckdb
from typer.testing import CliRunner

from lakeforge.cli import app
from lakeforge.project import Project


def test_verify_finds_what_differs_from_gold(example: Project) -> None:
    example.run()
    checks = {c["table"]: c for c in example.verify_warehouse()}
    assert "gold.fact_telemetry_hourly" in checks and all(c["ok"] for c in checks.values()), checks
    hourly = checks["gold.fact_telemetry_hourly"]
    assert hourly["gold_rows"] == hourly["warehouse_rows"] > 0 and hourly["partitions"] >= 1

    con = duckdb.connect(str(example.path / "warehouse.duckdb"))
    con.execute("DELETE FROM fact_errors WHERE rowid = (SELECT min(rowid) FROM fact_errors)")
    con.execute("UPDATE fact_telemetry_hourly SET readings = readings + 1 "
                "WHERE rowid = (SELECT min(rowid) FROM fact_telemetry_hourly)")
    lost_month = con.sql("SELECT CAST(date_trunc('month', min(hour)) AS VARCHAR) FROM fact_telemetry_hourly"
                         ).fetchall()[0][0]
    con.close()

    checks = {c["table"]: c for c in example.verify_warehouse()}
    bad = {name for name, c in checks.items() if not c["ok"]}
    assert bad == {"gold.fact_errors", "gold.fact_telemetry_hourly"}
    errors = checks["gold.fact_errors"]
    assert errors["warehouse_rows"] == errors["gold_rows"] - 1
    changed = checks["gold.fact_telemetry_hourly"]  # same rows, one value changed: the checksum finds it
    assert changed["warehouse_rows"] == changed["gold_rows"]
    assert [d["partition"] for d in changed["differing"]] == [lost_month]

    result = CliRunner().invoke(app, ["warehouse", "verify", "--project", str(example.path), "--json"])
    assert result.exit_code == 3  # a check failing (docs/cli.md's exit codes)
    assert {c["table"] for c in json.loads(result.stdout) if not c["ok"]} == bad
