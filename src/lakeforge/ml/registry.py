"""The failure-within-a-horizon model of a project (``ml: failure:``; 24 hours by default), tracked and
registered in MLflow.

- Tracking: ``sqlite:///<project>/mlflow/mlflow.db`` with artifacts under ``<project>/mlflow/artifacts`` (an
  embedded store: nothing to run), unless the ``tracking_uri`` argument, ``MLFLOW_TRACKING_URI`` or ``ml:
  tracking_uri`` of lakeforge.yml (a tracking server in production) says otherwise, in that order; the registry
  is the tracking store unless ``MLFLOW_REGISTRY_URI`` or ``ml: registry_uri``.
- :func:`train` fits :mod:`lakeforge.ml.pdm`'s model on the project's data, logs its parameters, metrics, the
  model (with an input example and a signature), the feature importance and the feature encoding, registers it
  as ``<project>_failure_<horizon>h`` (``_failure_24h``) and points the alias ``challenger`` at the new version.
- :func:`promote` scores the challenger and the champion on the same holdout (the current data's test split)
  and moves ``champion`` to the challenger only when its macro F1 is higher (a tie keeps the champion; the
  first model becomes champion).
- :func:`models` lists the versions with their aliases and metrics.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from lakeforge.errors import LakeforgeError, MissingDependency
from lakeforge.ml import pdm

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from lakeforge.workspace import Workspace

# MLflow's usage telemetry would send traffic to the internet: off unless the user turns it on
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

CHAMPION = "champion"
CHALLENGER = "challenger"
METRIC = "macro_f1"  # what promotion compares (higher is better)
ENCODING_FILE = "feature_encoding.json"
IMPORTANCE_FILE = "feature_importance.json"


class TrainResult(pdm.SplitSummary):
    """``lakeforge ml train``: the version registered (the challenger), the split and the holdout metrics."""

    model: str
    version: str
    alias: str
    run_id: str
    tracking_uri: str
    seed: int
    num_boost_round: int
    metrics: dict[str, float]  # pdm.metrics: macro_f1, auc_pr_any_failure, per class precision, recall ...


class PromoteResult(TypedDict):
    """``lakeforge ml promote``: the challenger's and the champion's scores on the rows after both training
    cutoffs, the verdict."""

    model: str
    metric: str
    challenger: str
    challenger_score: float
    rows_test: int
    holdout_after: str  # ISO 8601: the later training cutoff of the two versions; the holdout is after it
    champion_before: str | None
    champion_score: float | None
    promoted: bool
    reason: str
    champion: str | None  # after


class RegisteredVersion(TypedDict):
    """A registered version (``lakeforge ml models``); ``metrics``: its MLflow run's, as logged."""

    model: str
    version: str
    aliases: list[str]
    run_id: str | None
    created: int | None  # ms since the epoch (MLflow's creation_timestamp)
    tags: dict[str, str]
    seed: str | None  # an MLflow run parameter: text
    metrics: dict[str, float]


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise MissingDependency("MLflow is not installed", hint="pip install 'lakeforge[ml]'") from None
    pdm.require()
    for noisy in ("mlflow.store.db.utils", "alembic.runtime.migration"):  # "Creating initial MLflow database ..."
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return mlflow


def model_name(workspace: Workspace) -> str:
    return f"{workspace.config.name}_failure_{workspace.config.ml.failure.horizon_hours}h"


def store_dir(workspace: Workspace) -> Path:
    return workspace.path / "mlflow"


def tracking_uri(workspace: Workspace, *, override: str | None = None) -> str:
    """The argument, else ``MLFLOW_TRACKING_URI``, else ``ml.tracking_uri`` of lakeforge.yml, else the project's
    embedded SQLite store."""
    uri = override or os.environ.get("MLFLOW_TRACKING_URI") or workspace.config.ml.tracking_uri
    if uri:
        return uri
    return f"sqlite:///{(store_dir(workspace) / 'mlflow.db').as_posix()}"


def registry_uri(workspace: Workspace, *, tracking: str) -> str:
    """``MLFLOW_REGISTRY_URI``, else ``ml.registry_uri``, else the tracking store."""
    return os.environ.get("MLFLOW_REGISTRY_URI") or workspace.config.ml.registry_uri or tracking


def _sqlite_file(uri: str) -> Path | None:
    """The database file of an SQLite tracking URI (``sqlite:///relative`` or ``sqlite:////absolute``)."""
    return Path(uri.removeprefix("sqlite:///")).resolve() if uri.startswith("sqlite:///") else None


def _store_file(workspace: Workspace, uri: str | None) -> Path | None:
    """The SQLite file of the store the project tracks to (None for a server)."""
    return _sqlite_file(tracking_uri(workspace, override=uri))


@contextmanager
def _tracking(workspace: Workspace, uri: str | None) -> Iterator[tuple[Any, MlflowClient, str]]:
    """MLflow pointed at the project's store for the duration (the process-wide URIs are restored after)."""
    mlflow = _mlflow()
    from mlflow.tracking import _model_registry, _tracking_service

    uri = tracking_uri(workspace, override=uri)
    registry = registry_uri(workspace, tracking=uri)
    database = _sqlite_file(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved = (_tracking_service.utils._tracking_uri, _model_registry.utils._registry_uri)
    progress = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # no progress bars in lakeforge's output
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry)
    try:
        yield mlflow, mlflow.MlflowClient(tracking_uri=uri, registry_uri=registry), uri
    finally:
        _tracking_service.utils._tracking_uri, _model_registry.utils._registry_uri = saved
        for key, value in {**saved_env, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": progress}.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _experiment(mlflow: Any, workspace: Workspace, uri: str) -> str:
    name = model_name(workspace)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    database = _sqlite_file(uri)  # an SQLite store keeps its artifacts beside the database; a server decides
    location = None if database is None else (database.parent / "artifacts").as_uri()
    return str(mlflow.create_experiment(name, artifact_location=location))


def train(workspace: Workspace, *, seed: int = 42, num_boost_round: int = pdm.NUM_BOOST_ROUND,
          test_fraction: float = 0.3, tracking_uri: str | None = None,
          progress: pdm.Progress | None = None) -> TrainResult:
    """Fit on the project's current data, log everything to MLflow, register a version: the new challenger.
    ``progress(what, done, total)`` hears of each step and boosting round."""
    say = progress or (lambda what, done, total: None)
    task = pdm.task_of(workspace)
    say(f"reading {task.features_table} and {task.events_table}", 0, 1)
    frame = pdm.load(workspace, task=task)
    say(f"reading {task.features_table} and {task.events_table}", 1, 1)
    trained = pdm.train_frame(frame, task=task, seed=seed, num_boost_round=num_boost_round,
                              test_fraction=test_fraction, progress=progress)
    say("logging to MLflow", 0, 1)
    name = model_name(workspace)
    with _tracking(workspace, tracking_uri) as (mlflow, client, uri):
        from mlflow.models import infer_signature

        experiment_id = _experiment(mlflow, workspace, uri)
        x_train = trained.encoding.transform(trained.split.train)
        example = x_train.head(5)
        signature = infer_signature(example, trained.booster.predict(example))
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{name}-seed{seed}") as run:
            mlflow.log_params({
                **{f"lgbm.{k}": v for k, v in trained.params.items()},
                "num_boost_round": num_boost_round,
                "seed": seed,
                "test_fraction": test_fraction,
                "horizon_hours": task.horizon_hours,
                "feature_hours": task.feature_hours,
                "gap_hours": trained.split.gap_hours,
                "cutoff": trained.split.cutoff.isoformat(),
                "features": len(trained.encoding.features),
                "class_weights": json.dumps({k: round(v, 4) for k, v in trained.class_weights.items()}),
                "features_table": task.features_table,
                "failures_table": task.events_table,
                "entity": task.entity,
                "time": task.time,
                "classes": ",".join(task.classes),
            })
            mlflow.log_metrics({**trained.metrics, **{k: float(v) for k, v in trained.split.describe().items()
                                                      if isinstance(v, int) and k.startswith(("rows_", "failures_"))}})
            mlflow.set_tags({"lakeforge.project": workspace.config.name,
                             "lakeforge.task": f"failure_{task.horizon_hours}h"})
            mlflow.log_dict({"importance": pdm.importance(trained.booster)}, IMPORTANCE_FILE)
            mlflow.log_dict(trained.encoding.to_dict(), ENCODING_FILE)
            info = mlflow.lightgbm.log_model(trained.booster, name="model", input_example=example,
                                             signature=signature, registered_model_name=name)
        version = str(info.registered_model_version)
        client.set_registered_model_alias(name, CHALLENGER, version)
    say("logging to MLflow", 1, 1)
    return {"model": name, "version": version, "alias": CHALLENGER, "run_id": run.info.run_id,
            "tracking_uri": uri, "seed": seed, "num_boost_round": num_boost_round, **trained.split.describe(),
            "metrics": trained.metrics}


def _version_of(client: MlflowClient, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _load(mlflow: Any, name: str, version: Any) -> tuple[Any, pdm.Encoding]:
    """A registered version's booster and the feature encoding it was trained with."""
    encoding = pdm.Encoding.from_dict(mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{ENCODING_FILE}"))
    return mlflow.lightgbm.load_model(f"models:/{name}/{version.version}"), encoding


def _score(mlflow: Any, name: str, version: Any, test: Any, task: pdm.Task) -> dict[str, float] | None:
    """A registered version's metrics on ``test``; None when it predicts other classes than ``task``'s."""
    booster, encoding = _load(mlflow, name, version)
    if tuple(encoding.classes) != task.classes:
        return None
    return pdm.metrics(test[pdm.LABEL], pdm.predict_proba(booster, test, encoding), classes=task.classes)


def _holdout(client: MlflowClient, versions: list[Any], frame: Any, *, test_fraction: float,
             task: pdm.Task) -> tuple[Any, str]:
    """The rows neither version trained on: after the later of their training cutoffs (each run's ``cutoff``
    parameter), and never before the current data's own holdout."""
    import pandas as pd

    current = pdm.split(frame, test_fraction=test_fraction, gap_hours=task.gap_hours, time=task.time)
    cutoffs = [pd.Timestamp(current.cutoff)]
    for version in versions:
        logged = client.get_run(version.run_id).data.params.get("cutoff") if version.run_id else None
        if logged is not None:
            cutoffs.append(pd.Timestamp(logged))
    after = max(cutoffs)
    test = frame[pd.to_datetime(frame[task.time], utc=True) > after].reset_index(drop=True)
    if test.empty or not (test[pdm.LABEL] != "none").any():
        raise LakeforgeError(f"no labelled failure after {after.isoformat()}, the later training cutoff of the "
                             "models compared: they cannot be compared on data neither has seen",
                             hint="land and run more data, then promote (or train again on the current data)")
    return test, after.isoformat()


def promote(workspace: Workspace, *, test_fraction: float = 0.3, tracking_uri: str | None = None) -> PromoteResult:
    """Move ``champion`` to the challenger when it scores a higher macro F1 than the champion on the rows after
    both versions' training cutoffs; the first model becomes champion. Tags both versions with the scores."""
    name = model_name(workspace)
    with _tracking(workspace, tracking_uri) as (mlflow, client, _uri):
        challenger = _version_of(client, name, CHALLENGER)
        if challenger is None:
            raise LakeforgeError(f"model {name} has no {CHALLENGER} to promote",
                                 hint="train one first: `lakeforge ml train`")
        champion = _version_of(client, name, CHAMPION)
        compared = [v for v in (challenger, champion) if v is not None]
        task = pdm.task_of(workspace)
        test, holdout_after = _holdout(client, compared, pdm.load(workspace, task=task),
                                       test_fraction=test_fraction, task=task)
        challenger_scores = _score(mlflow, name, challenger, test, task)
        if challenger_scores is None:
            raise LakeforgeError(f"the {CHALLENGER} (version {challenger.version}) predicts other classes than "
                                 f"ml.failure.classes ({', '.join(task.classes)})",
                                 hint="train a new challenger on the current settings: `lakeforge ml train`")
        champion_before = None if champion is None else str(champion.version)
        champion_score: float | None = None
        if champion is None:
            promoted, reason = True, "no champion yet: the first model becomes champion"
        elif str(champion.version) == str(challenger.version):
            promoted, reason = False, "the challenger is already the champion"
            champion_score = challenger_scores[METRIC]
        else:
            promoted, reason, champion_score = _verdict(challenger_scores[METRIC],
                                                        _score(mlflow, name, champion, test, task))
        client.set_model_version_tag(name, str(challenger.version), f"holdout_{METRIC}",
                                     f"{challenger_scores[METRIC]:.6f}")
        client.set_model_version_tag(name, str(challenger.version), "promotion",
                                     "accepted" if promoted else "rejected")
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, str(challenger.version))
            client.delete_registered_model_alias(name, CHALLENGER)
    return {"model": name, "metric": METRIC, "challenger": str(challenger.version),
            "challenger_score": challenger_scores[METRIC], "rows_test": len(test), "holdout_after": holdout_after,
            "champion_before": champion_before,
            "champion_score": champion_score, "promoted": promoted, "reason": reason,
            "champion": str(challenger.version) if promoted else champion_before}


def _verdict(challenger: float, champion: dict[str, float] | None) -> tuple[bool, str, float | None]:
    """Whether the challenger replaces the champion, why, and the champion's score."""
    if champion is None:
        return True, "the champion predicts other classes than ml.failure.classes: the challenger replaces it", None
    score = champion[METRIC]
    if challenger > score:
        return True, f"{METRIC} {challenger:.4f} > {score:.4f}", score
    return False, f"{METRIC} {challenger:.4f} <= {score:.4f}: the champion stays", score


def models(workspace: Workspace, *, tracking_uri: str | None = None) -> list[RegisteredVersion]:
    """Every registered version of the project's model, newest first, with aliases, metrics and seed."""
    from mlflow.exceptions import MlflowException

    name = model_name(workspace)
    with _tracking(workspace, tracking_uri) as (_mlflow, client, _uri):
        try:
            aliases = client.get_registered_model(name).aliases or {}
            versions = client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            return []
        by_version: dict[str, list[str]] = {}
        for alias, number in aliases.items():
            by_version.setdefault(str(number), []).append(alias)
        out: list[RegisteredVersion] = []
        for v in sorted(versions, key=lambda v: -int(v.version)):
            run = client.get_run(v.run_id) if v.run_id else None
            out.append({
                "model": name, "version": str(v.version), "aliases": sorted(by_version.get(str(v.version), [])),
                "run_id": v.run_id, "created": v.creation_timestamp, "tags": dict(v.tags or {}),
                "seed": None if run is None else run.data.params.get("seed"),
                "metrics": {} if run is None else dict(sorted(run.data.metrics.items())),
            })
    return out


@dataclass(frozen=True)
class Champion:
    """The champion version, loaded: what batch scoring and ``lakeforge serve`` predict with."""

    model: str
    version: str
    booster: Any
    encoding: pdm.Encoding
    run_id: str


def champion_version(workspace: Workspace, *, tracking_uri: str | None = None) -> str | None:
    """The version the ``champion`` alias points at, or None (no model, or no champion yet). An embedded store
    without a database file has none: answered without importing MLflow (every run asks)."""
    database = _store_file(workspace, tracking_uri)
    if database is not None and not database.exists():
        return None
    with _tracking(workspace, tracking_uri) as (_mlflow, client, _uri):
        version = _version_of(client, model_name(workspace), CHAMPION)
    return None if version is None else str(version.version)


def load_champion(workspace: Workspace, *, tracking_uri: str | None = None) -> Champion | None:
    """The champion's booster and feature encoding, or None when there is no champion."""
    name = model_name(workspace)
    if champion_version(workspace, tracking_uri=tracking_uri) is None:
        return None
    with _tracking(workspace, tracking_uri) as (mlflow, client, _uri):
        version = _version_of(client, name, CHAMPION)
        if version is None:
            return None
        booster, encoding = _load(mlflow, name, version)
    return Champion(model=name, version=str(version.version), booster=booster, encoding=encoding,
                    run_id=str(version.run_id))
