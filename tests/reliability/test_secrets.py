"""No secret in anything lakeforge prints or stores (issue 20, point 3).

Distinct secrets are planted in every configurable place that takes one (through ``${VAR}`` and through
``secrets.yml``): the warehouse's connection, the alert channels (a webhook URL's query token and header, a Slack
URL, SMTP credentials), the lineage endpoint (URL credentials, query and API key), the MLflow tracking URI, S3
options, the web token. The project then runs (the warehouse refuses, so the run fails and the alerts fire and
fail to deliver: the paths where secrets leaked), and every output of the commands, every file the project holds
(the Delta tables of the event log read back, not their compressed bytes) and the served pages are scanned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from lakeforge.project import Project

ENV = {  # planted through ${VAR} in lakeforge.yml
    "HOOK_TOKEN": "hooktok-A1b2C3d4", "HOOK_AUTH": "hookauth-E5f6G7h8", "PG_PASSWORD": "pgpass-I9j0K1l2",
    "LINEAGE_KEY": "linkey-M3n4O5p6", "AWS_SECRET": "awssec-Q7r8S9t0", "LAKEFORGE_TOKEN": "webtoken-U1v2W3x4y5z6",
}
NO_WAIT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}  # MLflow's client retries a refused server for about 4 minutes
FILE = {  # planted through secrets.yml
    "smtp": "smtppass-Z9y8X7w6", "slack": "slackpath-V5u4T3s2", "pg_user": "pguser-R1q2P3o4",
    "lineage_password": "linpass-N5m6L7k8", "lineage_query": "linquery-J9i0H1g2", "mlflow": "mlfpass-F3e4D5c6",
}
SECRETS = [*ENV.values(), *FILE.values()]

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


def _configure(root: Path) -> None:
    config = yaml.safe_load((root / "lakeforge.yml").read_text())
    config["warehouse"] = {"type": "postgres", "host": "127.0.0.1", "port": 9, "dbname": "gold",
                           "password": "${PG_PASSWORD}", "connect_timeout": 2}
    config.setdefault("orchestration", {})["retry"] = {"attempts": 1}  # the refused warehouse: no waits
    config["alerts"] = {
        "rules": [{"name": "run failed", "type": "failure"}],
        "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook?token=${HOOK_TOKEN}",
                              "headers": {"Authorization": "Bearer ${HOOK_AUTH}"}, "timeout_seconds": 2},
                     "slack": {"type": "slack", "url": "http://127.0.0.1:9/services/x", "timeout_seconds": 2},
                     "mail": {"type": "email", "smtp_host": "127.0.0.1", "smtp_port": 9, "from": "a@example.com",
                              "to": ["b@example.com"], "username": "ops", "timeout_seconds": 2}}}
    config.setdefault("monitoring", {})["lineage"] = {"transport": "http", "api_key": "${LINEAGE_KEY}",
                                                      "url": "http://127.0.0.1:9/", "timeout_seconds": 2}
    config.setdefault("storage", {})["delta_options"] = {"aws_secret_access_key": "${AWS_SECRET}"}
    (root / "lakeforge.yml").write_text(yaml.safe_dump(config))
    (root / "secrets.yml").write_text(yaml.safe_dump({
        "warehouse": {"user": FILE["pg_user"]},
        "alerts": {"channels": {"mail": {"password": FILE["smtp"]},
                                "slack": {"url": f"http://127.0.0.1:9/services/{FILE['slack']}"}}},
        "monitoring": {"lineage": {"url": f"http://ops:{FILE['lineage_password']}@127.0.0.1:9/"
                                          f"?key={FILE['lineage_query']}"}},
        "ml": {"tracking_uri": f"http://ml:{FILE['mlflow']}@127.0.0.1:9/"},
    }))


def _lakeforge(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lakeforge.cli", *args, "--project", str(root)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **ENV, **NO_WAIT})


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def _stored(root: Path) -> dict[str, str]:
    """Every file of the project as text, and each Delta table as its rows (compressed bytes hide strings)."""
    found: dict[str, str] = {}
    for path in root.rglob("*"):
        if path.is_file() and path.suffix != ".parquet" and path.name != "secrets.yml":
            found[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    for log in root.rglob("_delta_log"):
        rows: list[dict[str, Any]] = DeltaTable(str(log.parent)).to_pyarrow_table().to_pylist()
        found[str(log.parent)] = json.dumps(rows, default=str)
    return found


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "plant"
    Project.init(root).generate(machines=2, days=1, seed=9, files=1)
    _configure(root)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return root


def test_no_secret_in_any_output_file_or_page(project: Path, record: dict[str, Any]) -> None:
    outputs: dict[str, str] = {}
    run = _lakeforge(project, "run", "--json")
    assert run.returncode == 1 and json.loads(run.stdout)["failed_stage"] == "warehouse"
    assert "not delivered" in run.stderr  # the alerts fired and their channels refused: the paths of the leak
    outputs["run"] = run.stdout + run.stderr
    for command in (["alerts", "check", "--json"], ["alerts", "status", "--json"], ["status", "--json"],
                    ["runs"], ["runs", "--json"], ["plan"], ["report", "slo", "--json"]):
        done = _lakeforge(project, *command)
        outputs[" ".join(command)] = done.stdout + done.stderr
    assert "127.0.0.1:9/hook?***" in outputs["alerts check --json"] or "127.0.0.1:9" in outputs["run"]
    stored = _stored(project)
    for name, text in {**outputs, **stored}.items():
        assert not _leaks(text), f"{name} holds {_leaks(text)}"

    from lakeforge.ops.serve import create_app

    with TestClient(create_app(Project(project), scheduler=False)) as client:
        anonymous = client.get("/health")
        assert anonymous.status_code == 200 and set(anonymous.json()) == {"status"}
        assert anonymous.json()["status"] == "degraded"
        auth = {"authorization": f"Bearer {ENV['LAKEFORGE_TOKEN']}"}
        detail = client.get("/health", headers=auth).json()
        assert detail["last_run"]["status"] == "failed" and detail["last_run"]["error"]
        pages = [client.get(url, headers=auth).text for url in ("/", "/ops", "/api/ops", "/metrics")]
        for text in [json.dumps(detail), *pages]:
            assert not _leaks(text), _leaks(text)
    record.update(secrets=len(SECRETS), commands=len(outputs), files_and_tables=len(stored), pages=len(pages) + 2)
