"""Scoring in every run (the example project's ``ml:`` block): ``gold.anomalies`` from the streaming detector and
the isolation forest, ``gold.machine_risk`` from the champion, both incremental, idempotent, in the warehouse;
online predictions; the scoring stages as orchestrator tasks."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from lakeforge.errors import ConfigError, LakeforgeError, NotFound
from lakeforge.ml import registry, scoring
from lakeforge.project import Project
from lakeforge.results import RunResult, StageResult

# the tests follow one project through its life, in order: `make test` runs a module on one worker (--dist loadscope)
pytestmark = pytest.mark.slow
SEED = 11
SENSORS = {"volt_avg", "rotate_avg", "pressure_avg", "vibration_avg"}


@pytest.fixture(autouse=True)
def _mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("scoring") / "fleet"
    Project.init(root).generate(machines=20, days=14, seed=SEED, files=3)
    project = Project(root)
    yield project
    project.close()


def _rows(table: pa.Table, *, without: tuple[str, ...] = ("run_id",)) -> set[tuple[object, ...]]:
    keep = [c for c in table.column_names if c not in without]
    return {tuple(r[c] for c in keep) for r in table.select(keep).to_pylist()}


def _state(project: Project, stage: str) -> dict[str, object]:
    return dict(project.lakehouse.read_json(scoring.STATE.format(stage)))


def test_the_example_scores_anomalies_in_the_run_and_risk_waits_for_a_champion(fleet: Project) -> None:
    result = fleet.run()
    stages = {s.name: s for s in result.stages}
    assert [s.name for s in result.stages][-3:] == ["ml:anomalies", "ml:risk", "warehouse"]
    assert stages["ml:anomalies"].status == "ok" and stages["ml:anomalies"].balanced()
    risk = stages["ml:risk"]
    assert risk.status == "skipped" and "lakeforge ml train" in risk.detail and "promote" in risk.detail
    assert not (fleet.path / "mlflow" / "mlflow.db").exists()  # asking for a champion created no store

    found = fleet.table("gold.anomalies")
    assert found.num_rows > 0
    rows = found.to_pylist()
    assert {r["sensor"] for r in rows} <= SENSORS | {"multivariate"}
    assert {"multivariate"} < {r["sensor"] for r in rows}  # both detectors flag something on this fleet
    for r in rows:
        assert 0 < r["score"] < 1 and r["reason"] and r["run_id"] == result.run_id
        assert (r["value"] is None) == (r["sensor"] == "multivariate")
        if r["sensor"] != "multivariate":
            assert r["sensor"] in r["reason"]
    keys = [(r["machine_id"], r["sensor"], r["ts"]) for r in rows]
    assert len(keys) == len(set(keys))
    # the history the detector warms up on is not flagged: nothing in the first 72 hours of a machine
    first = min(r["hour"] for r in fleet.table("gold.fact_telemetry_hourly").to_pylist())
    streaming = [r for r in rows if r["sensor"] != "multivariate"]
    assert min(r["ts"] for r in streaming) >= first + dt.timedelta(hours=72)
    # and the warehouse holds the same rows
    copy = fleet.query("SELECT * FROM anomalies")
    assert _rows(copy) == _rows(found)


def test_new_readings_are_scored_once_and_earlier_anomalies_stay(fleet: Project) -> None:
    before = fleet.table("gold.anomalies")
    marks = _state(fleet, "anomalies")["watermarks"]
    assert isinstance(marks, dict) and len(marks) == 20
    saved = json.dumps(_state(fleet, "anomalies"))
    fleet.generate(machines=20, days=3, seed=SEED + 1, files=1, start="2024-01-15")
    result = fleet.run()
    stage = next(s for s in result.stages if s.name == "ml:anomalies")
    assert stage.status == "ok" and 0 < stage.rows_in <= 20 * 3 * 24 + 20  # new hours only, not the lake
    after = fleet.table("gold.anomalies")
    assert _rows(before) <= _rows(after)  # earlier anomalies kept as they were
    added = _rows(after) - _rows(before)
    limit = max(dt.datetime.fromisoformat(str(v)) for v in marks.values())
    assert added and all(row[2] > dt.datetime.fromisoformat(str(marks[str(row[0])])) for row in added)
    assert any(row[2] > limit for row in added)
    # a run that died after its commit but before its state: the rerun changes nothing
    fleet.lakehouse.write_json_atomic(scoring.STATE.format("anomalies"), json.loads(saved))
    again = scoring.score_anomalies(fleet, run_id="rerun")
    assert again.status == "ok"
    assert _rows(fleet.table("gold.anomalies")) == _rows(after)
    assert next(s for s in fleet.run().stages if s.name == "ml:anomalies").status == "skipped"


def test_risk_is_scored_with_the_champion_in_gold_the_warehouse_and_online(fleet: Project) -> None:
    trained = registry.train(fleet, seed=SEED)
    assert registry.promote(fleet)["promoted"]
    result = fleet.score()
    stage = next(s for s in result.stages if s.name == "ml:risk")
    features = fleet.table("gold.machine_features")
    assert stage.status == "ok" and stage.rows_written == features.num_rows
    risk = fleet.table("gold.machine_risk")
    assert risk.num_rows == features.num_rows
    assert _rows(risk.select(["machine_id", "hour"])) == _rows(features.select(["machine_id", "hour"]))
    for r in risk.to_pylist()[:500]:
        assert r["model_version"] == trained["version"] and r["model_name"] == trained["model"]
        assert r["p_failure_24h"] == pytest.approx(sum(r[f"p_comp{i}"] for i in range(1, 5)), abs=1e-9)
        assert 0 <= r["p_failure_24h"] <= 1
    assert fleet.query("SELECT count(*) AS n FROM machine_risk").to_pylist()[0]["n"] == risk.num_rows

    # online: the machine's latest features, the champion's answer = what batch scoring wrote for that hour
    online = scoring.OnlineScorer(fleet)
    machine = int(risk["machine_id"][0].as_py())
    answer = online.predict(machine)
    latest = max((r for r in risk.to_pylist() if r["machine_id"] == machine), key=lambda r: r["hour"])
    assert answer["hour"] == latest["hour"].isoformat() and answer["model_version"] == trained["version"]
    assert answer["p_failure_24h"] == pytest.approx(latest["p_failure_24h"], abs=1e-12)
    with pytest.raises(NotFound, match="machine_id 9999 has no row"):
        online.predict(9999)

    # and over HTTP from lakeforge serve, with the token
    from fastapi.testclient import TestClient

    from lakeforge.ops.serve import create_app

    token = "t" * 32
    with TestClient(create_app(fleet, scheduler=False, token=token)) as client:
        auth = {"Authorization": f"Bearer {token}"}
        served = client.get(f"/api/ml/predict/{machine}", headers=auth)
        assert served.status_code == 200
        body = served.json()
        assert body.pop("scored_at") >= answer.pop("scored_at") and body == json.loads(json.dumps(answer))
        missing = client.get("/api/ml/predict/9999", headers=auth)
        assert missing.status_code == 404 and "machine_id 9999" in missing.json()["error"] and missing.json()["fix"]
        assert client.get(f"/api/ml/predict/{machine}").status_code == 401

    # a run with no new feature hours does not score; new data scores only the new hours
    assert next(s for s in fleet.run().stages if s.name == "ml:risk").status == "skipped"
    fleet.generate(machines=20, days=1, seed=SEED + 2, files=1, start="2024-01-18")
    run = fleet.run()
    new = next(s for s in run.stages if s.name == "ml:risk")
    grown = fleet.table("gold.machine_risk")
    assert new.status == "ok" and 0 < new.rows_written <= 20 * 25 and grown.num_rows == risk.num_rows + new.rows_written


def test_a_new_champion_rescores_every_hour(fleet: Project) -> None:
    second = registry.train(fleet, seed=SEED + 5)
    with registry._tracking(fleet, None) as (_mlflow, client, _uri):
        client.set_registered_model_alias(registry.model_name(fleet), registry.CHAMPION, second["version"])
    result = fleet.score()
    stage = next(s for s in result.stages if s.name == "ml:risk")
    risk = fleet.table("gold.machine_risk")
    assert stage.rows_written == risk.num_rows == fleet.table("gold.machine_features").num_rows
    assert set(risk["model_version"].to_pylist()) == {second["version"]}
    assert scoring.OnlineScorer(fleet).predict(1)["model_version"] == second["version"]


def test_scoring_stages_are_tasks_for_orchestrators(fleet: Project) -> None:
    graph = fleet.tasks()
    assert graph["ml:anomalies"] == ["gold.fact_telemetry_hourly"]
    assert graph["ml:risk"] == ["gold.machine_features"]
    assert {"ml:anomalies", "ml:risk"} <= set(graph["warehouse"])
    result = fleet.run(task="ml:anomalies")
    assert [s.name for s in result.stages] == ["ml:anomalies"]


def test_ml_settings_are_checked(tmp_path: Path) -> None:
    project = Project.init(tmp_path / "p")
    config = yaml.safe_load((project.path / "lakeforge.yml").read_text())
    config["ml"]["anomalies"]["detector"] = {"min_hist": 10}
    (project.path / "lakeforge.yml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="min_hist") as info:
        Project(project.path)
    assert "min_history" in str(info.value)
    config["ml"]["anomalies"] = {"enabled": True}
    (project.path / "lakeforge.yml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="sensors"):
        Project(project.path)


def test_a_detector_that_could_never_score_within_the_context_is_refused(tmp_path: Path) -> None:
    """The detector's defaults learn for context_learn readings (300 for the contextual default; the k-NN detector's
    min_history + likelihood_samples: 888); hourly data with 240 h of context would never reach a score: the run
    fails and says what to change."""
    root = tmp_path / "p"
    Project.init(root).generate(machines=2, days=2, seed=SEED, files=1)
    config = yaml.safe_load((root / "lakeforge.yml").read_text())
    config["ml"]["anomalies"]["detector"] = {}
    (root / "lakeforge.yml").write_text(yaml.safe_dump(config))
    with Project(root) as project, pytest.raises(LakeforgeError, match=r"learns for 300 readings .* context_hours "
                                                 r"240 holds 240 readings of machine_id") as caught:
        project.run()
    assert "at least 300" in (caught.value.hint or "") and "context_learn" in (caught.value.hint or "")


def _anomaly_stage(result: RunResult) -> StageResult:
    return next(s for s in result.stages if s.name == scoring.ANOMALY_STAGE)


def test_the_isolation_forest_is_kept_between_runs_and_fitted_again_as_configured(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "kept"
    Project.init(root).generate(machines=6, days=4, seed=SEED, files=1)
    project = Project(root)
    first = _anomaly_stage(project.run())
    assert first.strategy == scoring.REFIT and "isolation forest fitted" in first.detail
    kept = project.lakehouse.read_bytes(scoring.FOREST)
    fitted = _state(project, "anomalies")["forest"]
    assert isinstance(fitted, dict) and fitted["rows"] >= 100
    project.close()

    # a day of new readings: scored with the kept forest, in a process that never imports scikit-learn
    Project(root).generate(machines=6, days=1, seed=SEED + 1, files=1, start="2024-01-05")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "lakeforge.cli", "run", "--json",
                           "--project", str(root)], capture_output=True, text=True, check=True)
    record = json.loads(proc.stdout)
    stage = next(s for s in record["stages"] if s["name"] == scoring.ANOMALY_STAGE)
    assert stage["status"] == "ok" and stage["rows_in"] > 0 and stage["strategy"] == "stream"
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    assert "numpy" in imported and not {m for m in imported if m.split(".")[0] == "sklearn"}
    project = Project(root)
    assert project.lakehouse.read_bytes(scoring.FOREST) == kept
    assert _state(project, "anomalies")["forest"] == fitted

    # once the history has grown by forest_refit_hours, the next run fits it again on the history it has
    config = yaml.safe_load((root / "lakeforge.yml").read_text())
    config["ml"]["anomalies"]["forest_refit_hours"] = 12
    (root / "lakeforge.yml").write_text(yaml.safe_dump(config))
    project.close()
    project = Project(root)
    project.generate(machines=6, days=1, seed=SEED + 2, files=1, start="2024-01-06")
    again = _anomaly_stage(project.run())
    refitted = _state(project, "anomalies")["forest"]
    assert again.strategy == scoring.REFIT and isinstance(refitted, dict)
    assert refitted["fitted_through"] > fitted["fitted_through"] and refitted["rows"] > fitted["rows"]
    # and a full refresh fits anew, whatever is kept
    assert _anomaly_stage(project.run(full_refresh=True)).strategy == scoring.REFIT
    project.close()
