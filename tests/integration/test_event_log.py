"""The event log: every run, stage, expectation and table freshness in a Delta table, queryable; crashed runs
are logged by the next run; cost per GB follows the configured rate; `lakeforge runs` lists history."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from deltalake import DeltaTable
from typer.testing import CliRunner

from lakeforge.cli import app
from lakeforge.pipeline import events
from lakeforge.project import Project
from tests.moto_server import Buckets, S3Server


def _configure(project: Project, **settings: object) -> Project:
    path = project.path / "lakeforge.yml"
    config = yaml.safe_load(path.read_text())
    config.update(settings)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Project(project.path)


def test_every_run_stage_and_rule_is_logged_and_queryable(example: Project) -> None:
    project = _configure(example, monitoring={"cost": {"preset": "databricks", "dbu_per_hour": 4,
                                                       "price_per_dbu": 0.5}})
    first = project.run()
    second = project.run()  # nothing to do: logged too
    log = DeltaTable(str(project.lakehouse.local_path("_lakeforge/event_log")))
    assert len(log.history()) == 2  # one commit per run
    rows = events.read(project).to_pylist()
    runs = {r["run_id"]: r for r in rows if r["event"] == "run"}
    assert {k: r["status"] for k, r in runs.items()} == {first.run_id: "succeeded", second.run_id: "nothing_to_do"}
    run = runs[first.run_id]
    assert run["bytes_in"] == first.bytes_processed > 0
    ingested = sum(s.rows_in for s in first.stages if s.kind == "ingest")
    assert run["rows_in"] == ingested > 0  # the rows that entered the run, not a sum over its layers
    assert sum(s.rows_in for s in first.stages) > ingested
    assert run["cost"] == pytest.approx(first.seconds / 3600 * 4 * 0.5)
    assert run["cost_per_gb"] == pytest.approx(run["cost"] / (first.bytes_processed / 1e9))
    stages = {r["name"]: r for r in rows if r["event"] == "stage" and r["run_id"] == first.run_id}
    assert set(stages) == {s.name for s in first.stages}
    for stage in first.stages:
        logged = stages[stage.name]
        assert (logged["rows_in"], logged["rows_out"], logged["rows_quarantined"], logged["attempts"]) == (
            stage.rows_in, stage.rows_out, stage.rows_quarantined, 1)
        assert logged["started_at"] <= logged["ended_at"]
    silver = DeltaTable(str(project.lakehouse.local_path("silver/telemetry")))
    quarantined = DeltaTable(str(project.lakehouse.local_path("quarantine/silver_telemetry")))
    sizes = [pa.table(t.get_add_actions(flatten=True))["size_bytes"].to_pylist() for t in (silver, quarantined)]
    assert stages["silver.telemetry"]["bytes_out"] == sum(map(sum, sizes)) > 0  # the files of the run's commits
    assert stages["ingest:telemetry"]["bytes_out"] > 0 and run["bytes_out"] >= sum(
        s["bytes_out"] or 0 for s in stages.values())
    rules = [r for r in rows if r["event"] == "expectation" and r["run_id"] == first.run_id]
    assert len(rules) == sum(len(s.rules) for s in first.stages) > 0
    assert sum(r["dq_failed"] for r in rules) == run["dq_failed"] > 0  # the generator's dirt
    tables = {r["name"] for r in rows if r["event"] == "table" and r["run_id"] == first.run_id}
    assert {"bronze.telemetry", "silver.telemetry", "gold.fact_telemetry_hourly"} <= tables

    counted = project.query("SELECT status, count(*) AS n FROM _lakeforge.event_log WHERE event = 'run' "
                            "GROUP BY status ORDER BY status").to_pylist()
    assert counted == [{"status": "nothing_to_do", "n": 1}, {"status": "succeeded", "n": 1}]
    listed = CliRunner().invoke(app, ["runs", "--project", str(project.path), "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [second.run_id, first.run_id]
    models = project.run(select=["silver.telemetry", "gold.fact_telemetry_hourly"], full_refresh=True)
    logged = next(r for r in events.read(project).to_pylist() if r["event"] == "run" and r["run_id"] == models.run_id)
    silver = next(s for s in models.stages if s.name == "silver.telemetry")
    assert logged["rows_in"] == silver.rows_in > 0  # no new files: what its lowest layer read


def test_a_run_that_died_is_logged_as_crashed_by_the_next(example: Project) -> None:
    example.run()
    events.mark_started(example, "20240101T000000000000-dead01", "2024-01-01T00:00:00+00:00")  # as a killed run leaves
    example.generate(machines=12, days=1, seed=8, files=2, start="2024-01-04")
    result = example.run()
    assert result.status == "succeeded" and result.crashed_runs == ["20240101T000000000000-dead01"]
    crashed = [r for r in example.runs(limit=None) if r["status"] == "crashed"]
    assert [r["run_id"] for r in crashed] == ["20240101T000000000000-dead01"]
    assert "resumed" in crashed[0]["error"]
    assert not list(example.lakehouse.local_path("_lakeforge/runs").glob("*.started"))
    assert example.run().crashed_runs == []  # logged once


def test_a_failed_run_logs_the_failed_stage_and_its_error(example: Project) -> None:
    broken = example.path / "models" / "gold" / "broken.sql"
    broken.write_text("-- kind: materialized\nSELECT nope FROM silver.telemetry\n")
    with pytest.raises(Exception, match="nope"):
        example.run()
    run = example.runs()[0]
    assert run["status"] == "failed" and "nope" in run["error"] and run["detail"] == "gold.broken"
    failed = [r for r in events.read(example, event="stage").to_pylist()
              if r["run_id"] == run["run_id"] and r["status"] == "failed"]
    assert [r["name"] for r in failed] == ["gold.broken"] and "nope" in failed[0]["error"]


@pytest.mark.s3
def test_the_event_log_lives_beside_an_s3_lakehouse(tmp_path: Path, s3_server: S3Server, s3_buckets: Buckets,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    project = Project.init(tmp_path / "plant")
    project = _configure(project, lakehouse=f"s3://{s3_buckets.lake}/lakehouse",
                         storage={"endpoint_url": s3_server.endpoint_url, "region": s3_server.region})
    with project:
        project.generate(machines=2, days=1, files=2)
        result = project.run()
        assert [r["run_id"] for r in project.runs()] == [result.run_id]
        keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_buckets.lake)["Contents"]}
        assert any(k.startswith("lakehouse/_lakeforge/event_log/_delta_log/") for k in keys)
        assert not any(k.endswith(".started") for k in keys)
