"""Bring your own equipment data (issue 23): the Azure predictive-maintenance files as published go through
``lakeforge init --from`` (sources, silver models and the equipment mapping it proposes, with no edit), ``run``,
``ml train`` / ``promote`` / ``score`` on the generated features, and ``lakeforge serve``: the executive and equipment
pages show those machines, in a real browser. The user's columns (``machineID``, ``datetime``, ``comp``) are never
renamed: the generated gold models map them to the standard star schema."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from lakeforge.ml import pdm, registry
from lakeforge.pipeline import events
from lakeforge.project import Project
from tests.integration.test_cli import lakeforge
from tests.integration.test_dashboards_browser import Fleet, Server, assert_charts, kpi, pct, sign_in, table

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("byo_browser")]

AZURE = Path(__file__).resolve().parents[3] / "shared" / "data" / "azure-pdm"
SENSORS = ("volt", "rotate", "pressure", "vibration")  # the telemetry file's header


@pytest.fixture(scope="module")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    assert AZURE.is_dir(), f"{AZURE} is missing: the shared data folder must sit beside the repository"
    root = tmp_path_factory.mktemp("byo")
    made = lakeforge("init", str(root / "pdm"), "--from", str(AZURE), "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["equipment"]["readings"] == {
        "table": "silver.telemetry", "machine": "machineID", "time": "datetime", "sensors": list(SENSORS)}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("MLFLOW_REGISTRY_URI", raising=False)
        project = Project(root / "pdm")
        try:
            assert project.run().status == "succeeded"
            task = pdm.task_of(project.workspace)
            assert task.classes == ("none", "comp1", "comp2", "comp3", "comp4")  # the failures' components
            assert "vibration_mean_24h" in task.features and "error1_24h" in task.features
            trained = registry.train(project)
            assert trained["metrics"]["macro_f1"] > 0.5, trained["metrics"]
            registry.promote(project)
            project.score()
            assert project.catalog.exists("gold.machine_risk")
            runs = events.runs(project, limit=None)
            server = Server(root / "pdm", log=root / "serve.log")
            try:
                assert server.wait_healthy()["status"] == "ok"
                yield Fleet(path=root / "pdm", project=project, url=server.url, token=server.token, runs=runs)
            finally:
                code = server.stop()
            assert code == 0, f"lakeforge serve exited {code}:\n{(root / 'serve.log').read_text()}"
        finally:
            project.close()


def test_the_users_columns_are_kept(azure: Fleet) -> None:
    config = yaml.safe_load((azure.path / "lakeforge.yml").read_text())
    assert config["sources"]["failures"]["columns"] == ["datetime", "machineID", "comp"]
    silver = azure.rows("SELECT * FROM silver.failures LIMIT 1")[0]
    assert {"datetime", "machineID", "comp"} <= set(silver)
    generated = (azure.path / "models" / "gold" / "fact_failures.sql").read_text()
    assert "`machineID` AS machine_id" in generated and "FROM silver.failures" in generated


def test_the_executive_page_shows_the_azure_machines(page: Page, azure: Fleet) -> None:
    sign_in(page, azure)
    machines = azure.rows("SELECT count(*) AS n FROM gold.dim_machine")[0]["n"]
    assert machines == 100  # PdM_machines.csv
    assert kpi(page, "kpi-machines") == str(machines)
    days = azure.rows("SELECT min(date) AS first, max(date) AS last FROM gold.fact_telemetry_daily")[0]
    failures = azure.rows(f"SELECT count(*) AS n FROM gold.fact_failures WHERE date BETWEEN '{days['first']}' "
                          f"AND '{days['last']}'")[0]["n"]
    assert failures > 0 and kpi(page, "kpi-failures") == str(failures)
    risk = {r["machine_id"]: r["p"] for r in azure.rows(
        "SELECT machine_id, arg_max(p_failure_24h, hour) AS p FROM gold.machine_risk GROUP BY machine_id")}
    assert sorted(risk) == list(range(1, 21))  # the machines with telemetry
    rows = table(page.get_by_test_id("risk-table"))
    expected = sorted(risk.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    assert [(int(r["machine"]), r["p(failure in 24 h)"]) for r in rows] == [(m, pct(p)) for m, p in expected]
    assert_charts(page, "availability", "failures", "components")


def test_the_equipment_page_shows_a_machines_sensors(page: Page, azure: Fleet) -> None:
    sign_in(page, azure)
    page.goto(f"{azure.url}/machines/7")
    page.wait_for_url(f"{azure.url}/machines/7")
    assert page.title() == "Machine 7 · lakeforge"
    model = azure.rows("SELECT model FROM gold.dim_machine WHERE machine_id = 7")[0]["model"]
    assert f"model {model}" in page.get_by_test_id("machine-info").inner_text()
    assert_charts(page, *SENSORS, "risk")
    assert page.locator('[data-testid="chart"][data-chart="temperature"]').count() == 0  # not a sensor here
    start = dt.date.fromisoformat(page.get_by_test_id("filter-range").inner_text().split()[1])
    end = dt.date.fromisoformat(page.get_by_test_id("filter-range").inner_text().split()[3])
    failures = azure.rows(f"SELECT count(*) AS n FROM gold.fact_failures WHERE machine_id = 7 "
                          f"AND date BETWEEN '{start}' AND '{end}'")[0]["n"]
    assert kpi(page, "kpi-failures") == str(failures)
