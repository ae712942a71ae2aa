"""``lakeforge init --from``: the Azure predictive-maintenance files, as published, become a project that runs with
no edit, from a folder and from an S3 prefix (moto on 127.0.0.1); init never overwrites a project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lakeforge.cli import app
from lakeforge.project import Project
from tests.integration.test_cli import lakeforge
from tests.moto_server import Buckets, S3Server

AZURE = Path(__file__).resolve().parents[3] / "shared" / "data" / "azure-pdm"
LINES = {"errors": 3919, "failures": 761, "machines": 100, "maint": 3286, "telemetry": 43200}  # data lines


def _rows(project: Project, table: str) -> int:
    return int(project.query(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py())


def test_the_azure_files_become_a_project_that_runs(tmp_path: Path) -> None:
    assert AZURE.is_dir(), f"{AZURE} is missing: the shared data folder must sit beside the repository"
    result = CliRunner().invoke(app, ["init", str(tmp_path / "pdm"), "--from", str(AZURE), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["written"][0] == "lakeforge.yml"
    assert sum(w.startswith("models/silver/") for w in written["written"]) == 5
    assert written["equipment"] == {  # proposed from the profiles: the files' own names, nothing renamed
        "readings": {"table": "silver.telemetry", "machine": "machineID", "time": "datetime",
                     "sensors": ["volt", "rotate", "pressure", "vibration"]},
        "machines": {"table": "silver.machines", "id": "machineID", "model": "model"},
        "failures": {"table": "silver.failures", "machine": "machineID", "time": "datetime", "component": "comp",
                     "components": ["comp1", "comp2", "comp3", "comp4"]},
        "maintenance": {"table": "silver.maint", "machine": "machineID", "time": "datetime", "component": "comp",
                        "components": ["comp1", "comp2", "comp3", "comp4"]},
        "errors": {"table": "silver.errors", "machine": "machineID", "time": "datetime", "code": "error",
                   "codes": ["error1", "error2", "error3", "error4", "error5"]}}
    assert lakeforge("equipment", "--check", "--project", str(tmp_path / "pdm")).returncode == 0
    config = yaml.safe_load((tmp_path / "pdm" / "lakeforge.yml").read_text())
    assert config["sources"]["failures"]["columns"] == ["datetime", "machineID", "comp"]
    assert config["sources"]["failures"]["header"] is False
    with Project(tmp_path / "pdm") as project:
        run = project.run()
        assert run.status == "succeeded" and all(s.balanced() for s in run.stages)
        assert {name: _rows(project, f"silver.{name}") for name in LINES} == LINES  # no line lost, none added
        assert _rows(project, "gold.fact_telemetry_hourly") == LINES["telemetry"]  # one reading an hour
        assert _rows(project, "gold.dim_machine") == LINES["machines"]
        assert project.run().status == "nothing_to_do"
        types = project.query("SELECT typeof(datetime) AS t, typeof(machineID) AS m FROM silver.failures LIMIT 1")
        assert types.to_pylist() == [{"t": "TIMESTAMP WITH TIME ZONE", "m": "BIGINT"}]
    again = lakeforge("init", str(tmp_path / "pdm"), "--from", str(AZURE))
    assert again.returncode == 1 and "never overwrites" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.s3
def test_an_s3_prefix_of_sample_files(tmp_path: Path, s3_server: S3Server, s3_buckets: Buckets,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    client = s3_server.client()
    for name in ("PdM_failures.csv", "PdM_machines.csv", "PdM_telemetry_machines1-20_2015Q1.csv"):
        client.upload_file(str(AZURE / name), s3_buckets.landing, f"samples/{name}")
    scaffold = Project.init_from(tmp_path / "p", origin=f"s3://{s3_buckets.landing}/samples")
    assert sorted(s.name for s in scaffold.sources) == ["failures", "machines", "telemetry"]
    with Project(tmp_path / "p") as project:
        assert project.config.landing == f"s3://{s3_buckets.landing}/samples"
        assert project.run().status == "succeeded"
        assert _rows(project, "silver.failures") == LINES["failures"]
        assert _rows(project, "silver.telemetry") == LINES["telemetry"]
