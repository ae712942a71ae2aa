"""OpenLineage events of a run (``monitoring.lineage``): to a JSON-lines file and to an HTTP endpoint."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakeforge.errors import LakeforgeError, MissingDependency
from lakeforge.ml import scoring
from lakeforge.ops import lineage
from lakeforge.pipeline import warehouse as warehouse_stage
from lakeforge.project import Project
from lakeforge.results import RunResult
from tests.receivers import free_port, http_receiver

SCHEMA_URL = "https://openlineage.io/spec/"


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    Project.init(tmp_path / "demo").generate(machines=12, days=3, seed=7, files=6)
    return tmp_path / "demo"


def configure(path: Path, lineage_config: dict[str, Any]) -> None:
    config = yaml.safe_load((path / "lakeforge.yml").read_text())
    config["monitoring"] = {"lineage": lineage_config}
    (path / "lakeforge.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def by_job(found: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    jobs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in found:
        jobs[event["job"]["name"]].append(event)
    return jobs


def names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def check_wellformed(found: list[dict[str, Any]]) -> None:
    times = []
    for event in found:
        when = dt.datetime.fromisoformat(event["eventTime"])
        assert when.tzinfo is not None
        times.append(when)
        assert event["schemaURL"].startswith(SCHEMA_URL) and event["schemaURL"].endswith("/RunEvent")
        assert event["producer"] == lineage.PRODUCER
        uuid.UUID(event["run"]["runId"])
        for facet in [*event["run"]["facets"].values(), *event["job"]["facets"].values()]:
            assert facet["_schemaURL"].startswith(SCHEMA_URL)
    assert times == sorted(times)


def check_run(found: list[dict[str, Any]], result: RunResult, project: Project, *, namespace: str,
              final: str = "COMPLETE") -> None:
    """START + COMPLETE for the pipeline and each stage, tied to the pipeline run, inputs and outputs as the graph."""
    jobs = by_job(found)
    pipeline = jobs[project.config.name]
    assert [e["eventType"] for e in pipeline] == ["START", final]
    parent = pipeline[0]["run"]["runId"]
    assert parent == pipeline[1]["run"]["runId"] == lineage.run_uuid(result.run_id, namespace)
    lakehouse = (project.path / "lakehouse").as_uri()
    graph = {m.name: m for m in project.graph().ordered()}
    stage_ids = set()
    for stage in result.stages:
        events = jobs[f"{project.config.name}.{stage.name}"]
        assert [e["eventType"] for e in events] == ["START", "COMPLETE"], stage.name
        start, complete = events
        run_id = start["run"]["runId"]
        assert run_id == complete["run"]["runId"] == lineage.run_uuid(result.run_id, namespace, stage.name)
        stage_ids.add(run_id)
        for event in events:
            assert event["job"]["namespace"] == namespace
            facet = event["run"]["facets"]["parent"]
            assert facet["run"]["runId"] == parent
            assert facet["job"] == {"namespace": namespace, "name": project.config.name, "facets": {}}
            assert event["job"]["facets"]["jobType"]["integration"] == "LAKEFORGE"
        inputs, outputs = names(complete["inputs"]), names(complete["outputs"])
        assert names(start["inputs"]) == inputs and names(start["outputs"]) == outputs
        if stage.kind == "ingest":
            source = stage.name.removeprefix("ingest:")
            assert inputs == [((project.path / "landing").as_uri(), source)]
            assert outputs == [(lakehouse, f"bronze.{source}")]
            assert complete["inputs"][0]["inputFacets"]["inputStatistics"]["size"] == stage.bytes
        elif stage.kind == "model":
            model = graph[stage.name]
            assert inputs == [(lakehouse, u) for u in model.upstream()]
            assert outputs == [(lakehouse, stage.name)]
            assert complete["job"]["facets"]["sql"]["query"] == model.sql.strip()
        elif stage.kind == "ml":
            reads, writes = scoring.io(project, stage.name)
            assert inputs == [(lakehouse, t) for t in reads] and outputs == [(lakehouse, t) for t in writes]
        else:
            tables = warehouse_stage.tables(project.workspace, list(graph.values()))
            gold = [t for t in tables if project.catalog.exists(t)]
            assert "gold.anomalies" in gold and "gold.machine_risk" not in gold  # no champion: no risk table
            warehouse = f"duckdb://{project.path / 'warehouse.duckdb'}"
            assert inputs == [(lakehouse, t) for t in gold]
            assert outputs == [(warehouse, f"main.{t.split('.')[1]}") for t in gold]
        if stage.kind != "load":
            (output,) = complete["outputs"]
            assert output["outputFacets"]["outputStatistics"]["rowCount"] == stage.rows_written, stage.name
            table = stage.name if stage.kind == "model" else outputs[0][1]
            if project.catalog.exists(table):
                columns = project.catalog.table(table).schema()
                assert [f["name"] for f in output["facets"]["schema"]["fields"]] == [f.name for f in columns.fields]
            else:  # ml:risk without a champion writes nothing: no schema to describe
                assert stage.name == "ml:risk" and stage.status == "skipped" and "schema" not in output["facets"]
            assert "outputStatistics" not in start["outputs"][0]["outputFacets"]
    assert len(stage_ids) == len(result.stages) and parent not in stage_ids
    check_wellformed(found)


def test_file_transport_start_and_complete_for_every_stage(demo: Path) -> None:
    configure(demo, {"transport": "file"})
    with Project(demo) as project:
        result = project.run()
        found = read_events(demo / "lineage" / "openlineage.jsonl")
        assert len(found) == 2 * (len(result.stages) + 1)
        check_run(found, result, project, namespace="telemetry")
        # the datasets form the model graph: gold.fact_telemetry_hourly reads silver.telemetry, which is written
        # by its model from bronze.telemetry, written by the ingestion from the landing folder telemetry
        jobs = by_job(found)
        hourly = jobs["telemetry.gold.fact_telemetry_hourly"][1]
        assert [d["name"] for d in hourly["inputs"]] == ["silver.telemetry"]
        assert [d["name"] for d in jobs["telemetry.silver.telemetry"][1]["inputs"]] == ["bronze.telemetry"]
        written: set[tuple[str, str]] = set()
        for event in found:  # every table a stage reads was written by a stage before it
            if event["eventType"] == "COMPLETE":
                assert set(names(event["inputs"])) - {((demo / "landing").as_uri(), s) for s in
                                                      project.config.sources} <= written, event["job"]["name"]
                written |= set(names(event["outputs"]))
        # a second run (nothing to do) appends its own events, with run ids of its own
        again = project.run()
        assert again.status == "nothing_to_do"
        more = read_events(demo / "lineage" / "openlineage.jsonl")[len(found):]
        check_run(more, again, project, namespace="telemetry")
        assert not {e["run"]["runId"] for e in more} & {e["run"]["runId"] for e in found}


def test_a_failing_model_sends_fail_with_the_error(demo: Path) -> None:
    configure(demo, {"transport": "file", "path": "out/events.jsonl", "namespace": "plant"})
    (demo / "models" / "gold" / "broken.sql").write_text("-- kind: materialized\nSELECT no_such_column FROM "
                                                         "silver.telemetry\n")
    with Project(demo) as project, pytest.raises(LakeforgeError, match="no_such_column"):
        project.run()
    jobs = by_job(read_events(demo / "out" / "events.jsonl"))
    broken = jobs["telemetry.gold.broken"]
    assert [e["eventType"] for e in broken] == ["START", "FAIL"]
    error = broken[1]["run"]["facets"]["errorMessage"]
    assert "no_such_column" in error["message"] and error["programmingLanguage"] == "python"
    assert "ModelError" in error["stackTrace"]
    assert [d["name"] for d in broken[1]["inputs"]] == ["silver.telemetry"]
    assert [d["name"] for d in broken[1]["outputs"]] == ["gold.broken"]
    pipeline = jobs["telemetry"]
    assert [e["eventType"] for e in pipeline] == ["START", "FAIL"]
    assert "no_such_column" in pipeline[1]["run"]["facets"]["errorMessage"]["message"]
    assert {e["job"]["namespace"] for events in jobs.values() for e in events} == {"plant"}
    assert "telemetry.warehouse" not in jobs  # the run stopped at the failure
    for name, events in jobs.items():  # the stages before the failure completed
        if name not in ("telemetry", "telemetry.gold.broken"):
            assert [e["eventType"] for e in events] == ["START", "COMPLETE"], name


def test_http_transport_posts_the_events_with_the_api_key(demo: Path) -> None:
    with http_receiver() as http:
        configure(demo, {"transport": "http", "url": http.url, "api_key": "s3cret", "timeout_seconds": 2})
        http.fail_next(1, status=503)  # a 5xx is retried
        with Project(demo) as project:
            result = project.run()
            received = http.requests
            assert received[0].status == 503 and received[1].body == received[0].body
            delivered = http.delivered
            assert {r.path for r in received} == {"/api/v1/lineage"}
            assert {r.method for r in received} == {"POST"}
            assert {r.headers["authorization"] for r in received} == {"Bearer s3cret"}
            assert {r.headers["content-type"] for r in received} == {"application/json"}
            found = [r.json for r in delivered]
            assert len(found) == 2 * (len(result.stages) + 1)
            check_run(found, result, project, namespace="telemetry")


def test_a_receiver_that_is_down_does_not_fail_the_run(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure(demo, {"transport": "http", "url": f"http://127.0.0.1:{free_port()}", "timeout_seconds": 1})
    started = time.monotonic()
    with Project(demo) as project:
        result = project.run()
    assert result.status == "succeeded"
    assert time.monotonic() - started < 30
    warnings = [line for line in capsys.readouterr().err.splitlines() if "lineage" in line]
    assert len(warnings) == 1 and "could not be sent" in warnings[0]  # said once, not once per event


def test_missing_client_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Project.init(tmp_path / "demo")
    configure(tmp_path / "demo", {"transport": "file"})
    monkeypatch.setitem(sys.modules, "openlineage.client", None)
    with Project(tmp_path / "demo") as project, pytest.raises(MissingDependency) as caught:
        project.run()
    assert caught.value.hint == "pip install 'lakeforge[lineage]'"


def test_http_needs_a_url(tmp_path: Path) -> None:
    Project.init(tmp_path / "demo")
    configure(tmp_path / "demo", {"transport": "http"})
    with pytest.raises(LakeforgeError, match="url"):
        Project(tmp_path / "demo")
