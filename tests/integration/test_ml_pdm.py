"""Predictive maintenance on the example project: labels, the time split, and the model's life in MLflow
(a run in the project's SQLite store, the registry's challenger and champion, reproducibility); then the Azure
sample through the same pipeline and features."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lakeforge
from lakeforge.cli import app
from lakeforge.ml import pdm, registry
from lakeforge.project import Project
from tests.conftest import write_project

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("lightgbm")
pytest.importorskip("sklearn")

SEED = 7
FEATURES_SQL = Path(lakeforge.__file__).parent / "examples" / "telemetry" / "models" / "gold" / "machine_features.sql"


@pytest.fixture(autouse=True)
def _mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage events sent from tests
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """30 machines over 20 days: ~30 failures, ~4% of the machine-hours fail within 24 h."""
    root = tmp_path_factory.mktemp("pdm") / "fleet"
    Project.init(root).generate(machines=30, days=20, seed=SEED, files=4)
    project = Project(root)
    assert project.run().status == "succeeded"
    yield project
    project.close()


def test_labels_look_24_hours_ahead_from_the_end_of_the_feature_hour_and_the_split_keeps_a_gap(
        fleet: Project) -> None:
    frame = pdm.load(fleet)
    failures = fleet.table("gold.fact_failures").to_pylist()
    hours = fleet.table("gold.machine_features")["hour"].to_pylist()
    last = max(hours)
    assert frame["hour"].max().to_pydatetime() == last - dt.timedelta(hours=24)  # later labels are not known yet
    assert set(frame["label"]) == set(pdm.CLASSES)
    by_machine: dict[int, list[dict[str, object]]] = {}
    for f in failures:
        by_machine.setdefault(f["machine_id"], []).append(f)
    for row in frame.itertuples():
        hour = row.hour.to_pydatetime()
        ahead = sorted((f["ts"], f["component"]) for f in by_machine.get(row.machine_id, [])  # type: ignore[type-var]
                       if hour + dt.timedelta(hours=1) < f["ts"] <= hour + dt.timedelta(hours=25))  # type: ignore[operator]
        assert row.label == (ahead[0][1] if ahead else "none"), (row.machine_id, hour)

    parts = pdm.split(frame, test_fraction=0.3)
    assert parts.train["hour"].max() + dt.timedelta(hours=25) <= parts.cutoff < parts.test["hour"].min()
    assert len(parts.train) + len(parts.test) < len(frame)  # the gap's rows are in neither
    assert (parts.test["label"] != "none").sum() > 0 and (parts.train["label"] != "none").sum() > 0


def test_tracking_uri_defaults_to_the_project_store(fleet: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry.tracking_uri(fleet) == f"sqlite:///{fleet.path}/mlflow/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert registry.tracking_uri(fleet) == "http://mlflow.internal:5000"
    assert registry.tracking_uri(fleet, override="sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.slow
def test_train_promote_and_reproduce(fleet: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    name = registry.model_name(fleet)
    assert name == "telemetry_failure_24h"
    first = registry.train(fleet, seed=SEED)
    assert first["version"] == "1" and first["alias"] == "challenger"
    assert os.environ.get("MLFLOW_TRACKING_URI") is None  # the process-wide settings are restored

    # the run, in the project's embedded store
    uri = f"sqlite:///{fleet.path}/mlflow/mlflow.db"
    assert (fleet.path / "mlflow" / "mlflow.db").is_file() and first["tracking_uri"] == uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # for mlflow.artifacts and mlflow.models below (the same store)
    run = client.get_run(first["run_id"])
    assert run.data.params["seed"] == str(SEED) and run.data.params["lgbm.deterministic"] == "True"
    assert run.data.params["lgbm.num_threads"] == "1" and run.data.params["num_boost_round"] == "300"
    metrics = run.data.metrics
    for key in ("macro_f1", "auc_pr_any_failure", *(f"{m}_{c}" for m in ("precision", "recall", "f1")
                                                    for c in pdm.CLASSES)):
        assert key in metrics, key
    assert metrics["macro_f1"] == pytest.approx(first["metrics"]["macro_f1"])
    assert metrics["auc_pr_any_failure"] > 3 * metrics["failure_rate_test"]  # far better than chance
    assert metrics["macro_f1"] > 0.4
    artifacts = {a.path for a in client.list_artifacts(first["run_id"])}
    assert {"feature_importance.json", "feature_encoding.json"} <= artifacts
    importance = mlflow.artifacts.load_dict(f"runs:/{first['run_id']}/feature_importance.json")["importance"]
    assert importance[0]["gain"] > 0 and len(importance) == int(run.data.params["features"])
    assert any((fleet.path / "mlflow" / "artifacts").rglob("MLmodel"))  # artifacts beside the store
    version = client.get_model_version(name, "1")
    assert version.run_id == first["run_id"]
    info = mlflow.models.get_model_info(f"models:/{name}/1")
    assert info.signature is not None
    encoding = mlflow.artifacts.load_dict(f"runs:/{first['run_id']}/feature_encoding.json")
    assert info.signature.inputs.input_names() == encoding["features"]
    assert info.saved_input_example_info is not None
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "1"

    # the first model becomes champion
    promoted = registry.promote(fleet)
    assert promoted["promoted"] and promoted["champion"] == "1" and promoted["champion_before"] is None
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert promoted["challenger_score"] == pytest.approx(first["metrics"]["macro_f1"])

    # a worse challenger (two boosting rounds) stays a challenger
    worse = registry.train(fleet, seed=SEED, num_boost_round=2)
    assert worse["version"] == "2" and worse["metrics"]["macro_f1"] < first["metrics"]["macro_f1"]
    kept = registry.promote(fleet)
    assert not kept["promoted"] and kept["champion"] == "1" and kept["challenger"] == "2"
    assert kept["champion_score"] == pytest.approx(first["metrics"]["macro_f1"])
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert client.get_model_version(name, "2").tags["promotion"] == "rejected"

    # same data, same seed: the same metrics (through the CLI); a tie keeps the champion
    runner = CliRunner()
    out = runner.invoke(app, ["ml", "train", "-p", str(fleet.path), "--seed", str(SEED), "--json"])
    assert out.exit_code == 0, out.output
    again = json.loads(out.stdout)
    assert again["version"] == "3" and again["metrics"] == first["metrics"]
    assert client.get_run(again["run_id"]).data.metrics == metrics
    out = runner.invoke(app, ["ml", "promote", "-p", str(fleet.path), "--json"])
    assert out.exit_code == 0, out.output
    tie = json.loads(out.stdout)
    assert not tie["promoted"] and tie["challenger_score"] == tie["champion_score"] and tie["champion"] == "1"
    out = runner.invoke(app, ["ml", "models", "-p", str(fleet.path), "--json"])
    assert out.exit_code == 0, out.output
    listed = {v["version"]: v for v in json.loads(out.stdout)}
    assert {v: listed[v]["aliases"] for v in listed} == {"1": ["champion"], "2": [], "3": ["challenger"]}
    assert listed["3"]["metrics"]["macro_f1"] == listed["1"]["metrics"]["macro_f1"]
    assert listed["2"]["metrics"]["macro_f1"] < listed["1"]["metrics"]["macro_f1"]


def test_promote_without_a_model_says_what_to_do(tmp_path: Path) -> None:
    Project.init(tmp_path / "empty")
    out = CliRunner().invoke(app, ["ml", "promote", "-p", str(tmp_path / "empty")])
    assert out.exit_code != 0
    assert "no challenger" in str(out.exception) or "no challenger" in out.output


AZURE_GOLD = {
    "gold.fact_telemetry_hourly": """
        -- kind: incremental
        -- unique_key: [machine_id, hour]
        SELECT machineID AS machine_id, date_trunc('HOUR', datetime) AS hour, avg(volt) AS volt_avg,
               avg(rotate) AS rotate_avg, avg(pressure) AS pressure_avg, avg(vibration) AS vibration_avg,
               CAST(NULL AS DOUBLE) AS temperature_avg
        FROM silver.telemetry GROUP BY machineID, date_trunc('HOUR', datetime)
    """,
    "gold.fact_errors": "SELECT machineID AS machine_id, datetime AS ts, errorID AS error_id FROM silver.errors",
    "gold.fact_maintenance": "SELECT machineID AS machine_id, datetime AS ts, comp AS component FROM silver.maint",
    "gold.fact_failures": "SELECT machineID AS machine_id, datetime AS ts, failure AS component FROM silver.failures",
    "gold.dim_machine": "SELECT machineID AS machine_id, model, age FROM silver.machines",
}



@pytest.mark.slow
def test_promote_compares_on_rows_after_both_training_cutoffs(fleet: Project, tmp_path: Path) -> None:
    """A champion trained on more of the data (a later cutoff) is not scored on rows it trained on: the holdout
    starts after the later cutoff of the two."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    late = registry.train(fleet, seed=SEED, test_fraction=0.2, tracking_uri=uri)  # the later cutoff
    registry.promote(fleet, tracking_uri=uri)
    early = registry.train(fleet, seed=SEED, test_fraction=0.4, tracking_uri=uri)
    assert early["cutoff"] < late["cutoff"]
    verdict = registry.promote(fleet, tracking_uri=uri)
    assert verdict["holdout_after"] == late["cutoff"]
    frame = pdm.load(fleet)
    after = frame[frame["hour"] > dt.datetime.fromisoformat(late["cutoff"])]
    assert verdict["rows_test"] == len(after) == late["rows_test"]

@pytest.mark.slow
def test_azure_sample_through_the_pipeline(tmp_path: Path) -> None:
    """The Azure sample (machines 1-20, Q1 2015) through ingestion, silver, gold and the same feature model."""
    from tests.integration.test_azure_pdm import AZURE, CONFIG, MODELS

    if not AZURE.is_dir():
        pytest.skip(f"the shared datasets are not at {AZURE}")
    models = {k: v for k, v in MODELS.items() if k.startswith("silver.")}
    models |= {**AZURE_GOLD, "gold.machine_features": FEATURES_SQL.read_text()}
    with Project(write_project(tmp_path / "azure", CONFIG, models)) as project:
        assert project.run().status == "succeeded"
        assert project.table("gold.machine_features").num_rows == 20 * 2160
        result = pdm.evaluate(project, seed=42)
    assert result["failures_test"] > 0 and result["rows_test"] > 10_000
    assert result["macro_f1"] > 0.85  # 0.881 with labels after the feature hour (0.975 when the failure hour leaked)
    assert result["auc_pr_any_failure"] > 0.9 > 10 * result["failure_rate_test"]


# -- a user's own tables (ml: failure: in lakeforge.yml) ------------------------------------------------------
PARTS = {"comp1": "pump", "comp2": "motor", "comp3": "belt", "comp4": "fan"}


def _own_tables(fleet: Project, root: Path, **failure: object) -> Project:
    """A project whose failure tables have other names, columns and classes: the fleet's, renamed. The age
    feature is ``machine_age`` and the machine model ``vendor`` (a text column, encoded as categories)."""
    import pyarrow as pa
    import yaml

    Project.init(root)
    config = yaml.safe_load((root / "lakeforge.yml").read_text())
    renamed = {"machine_id": "asset", "hour": "t", "age": "machine_age", "model": "vendor"}
    columns = [renamed.get(c, c) for c in pdm.FEATURES]
    config["ml"]["failure"] = {"features": "gold.asset_hours", "events": "gold.breakdowns", "entity": "asset",
                               "time": "t", "event_time": "failed_at", "label": "part",
                               "classes": list(PARTS.values()), "columns": columns, **failure}
    (root / "lakeforge.yml").write_text(yaml.safe_dump(config))
    features = fleet.table("gold.machine_features")
    features = features.rename_columns([renamed.get(c, c) for c in features.column_names])
    events = fleet.table("gold.fact_failures")
    events = pa.table({"asset": events["machine_id"], "failed_at": events["ts"],
                       "part": [PARTS[c] for c in events["component"].to_pylist()]})
    project = Project(root)
    project.catalog.write("gold.asset_hours", features, mode="overwrite")
    project.catalog.write("gold.breakdowns", events, mode="overwrite")
    return project


def test_a_users_own_tables_train_without_renaming_and_give_the_same_model(fleet: Project, tmp_path: Path) -> None:
    """The same data under other table, column and class names, declared in lakeforge.yml: the same split and
    the same scores as the example's tables (a differential test of the configuration)."""
    with _own_tables(fleet, tmp_path / "own") as own:
        mine, example = pdm.evaluate(own, seed=SEED), pdm.evaluate(fleet, seed=SEED)
    for key in ("cutoff", "rows_train", "rows_test", "failures_train", "failures_test", "macro_f1",
                "auc_pr_any_failure"):
        assert mine[key] == example[key], key
    for comp, part in PARTS.items():
        assert mine[f"f1_{part}"] == example[f"f1_{comp}"]


def test_the_horizon_and_an_unknown_class_come_from_the_configuration(fleet: Project, tmp_path: Path) -> None:
    with _own_tables(fleet, tmp_path / "own", horizon="2d") as own:
        frame = pdm.load(own)
        events = own.table("gold.breakdowns").to_pylist()
        last = max(own.table("gold.asset_hours")["t"].to_pylist())
    assert frame["t"].max().to_pydatetime() == last - dt.timedelta(hours=48)
    assert set(frame["label"]) <= {"none", *PARTS.values()} and (frame["label"] != "none").any()
    for row in frame.sample(n=2000, random_state=0).itertuples():
        t = row.t.to_pydatetime()
        ahead = sorted((e["failed_at"], e["part"]) for e in events if e["asset"] == row.asset
                       and t + dt.timedelta(hours=1) < e["failed_at"] <= t + dt.timedelta(hours=49))
        assert row.label == (ahead[0][1] if ahead else "none"), (row.asset, t)
    with _own_tables(fleet, tmp_path / "fewer", classes=["pump", "motor", "belt"]) as fewer, \
            pytest.raises(lakeforge.errors.LakeforgeError, match="failures of 'fan', not a known class") as caught:
        pdm.load(fewer)
    assert "pump, motor, belt" in (caught.value.hint or "") and "ml.failure.classes" in (caught.value.hint or "")


@pytest.mark.slow
def test_a_users_own_tables_are_scored_under_their_own_names(fleet: Project, tmp_path: Path) -> None:
    """Train, promote and score a project with its own tables and a 48 h horizon: the model, the risk table's
    key and probability columns follow the configuration."""
    with _own_tables(fleet, tmp_path / "own", horizon="48h") as own:
        assert registry.model_name(own) == "telemetry_failure_48h"
        import io

        from lakeforge.pipeline.progress import LogReporter

        log = io.StringIO()
        trained = own.train(seed=SEED, num_boost_round=100, reporter=LogReporter(log))
        assert trained["metrics"]["macro_f1"] > 0.3
        assert log.getvalue().splitlines() == [  # what `lakeforge ml train` prints off a terminal, as it goes
            "lakeforge: reading gold.asset_hours and gold.breakdowns 0/1",
            "lakeforge: reading gold.asset_hours and gold.breakdowns 1/1",
            *(f"lakeforge: training: boosting rounds {n}/100" for n in (0, 25, 50, 75, 100)),
            "lakeforge: logging to MLflow 0/1", "lakeforge: logging to MLflow 1/1"]
        assert own.promote()["promoted"]
        assert own.score().status == "succeeded"
        risk = own.table("gold.machine_risk")
        features = own.table("gold.asset_hours")
    assert risk.column_names[:7] == ["asset", "t", "p_failure_48h", "p_pump", "p_motor", "p_belt", "p_fan"]
    assert risk.num_rows == features.num_rows
    assert set(risk["predicted_component"].to_pylist()) <= {"none", *PARTS.values()}
