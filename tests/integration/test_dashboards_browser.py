"""The dashboards in a real browser: headless Chromium (Debian's, under Playwright; tests/browser.py) against a real
``lakeforge serve`` on 127.0.0.1 over a generated, run and scored project. A user signs in with the URL's token,
loads every page, filters by a site, opens a machine, runs queries in the SQL explorer and downloads the CSV;
what each page shows is checked against the project's own tables (``Project.query``). Without the token the
browser gets the 401 page. No request leaves 127.0.0.1 (the harness fails a test whose page tries).

Screenshots of each page are taken on every run. They go to ``docs/img/`` (shown in docs/dashboards.md) only when
``LAKEFORGE_SCREENSHOTS=1`` (they differ on every run: run ids, times, ages), else to the test's tmp folder."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import selectors
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests

from lakeforge.ml import registry
from lakeforge.pipeline import events
from lakeforge.project import Project
from lakeforge.web.auth import TOKEN_ENV
from tests.browser import DOCS_IMG, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

# one worker runs the module (one project, one server: xdist --dist loadgroup, as `make test` runs it)
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("dashboards_browser")]

MACHINES, DAYS, SEED = 20, 10, 7
RISK_THRESHOLD = 0.5  # lakeforge.web.queries.RISK_THRESHOLD, as the executive page's KPI says it
SENSOR_CHARTS = ("volt", "rotate", "pressure", "vibration", "temperature")
SCREENSHOTS_ENV = "LAKEFORGE_SCREENSHOTS"


# -- the server --------------------------------------------------------------------------------------------------


class Server:
    """``lakeforge serve --no-scheduler`` in a subprocess on 127.0.0.1, a port the OS picks; the URL and the
    access token it made are read from its first line."""

    def __init__(self, project: Path, *, log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
        with open(log, "a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lakeforge.cli", "serve", "--project", str(project), "--host", "127.0.0.1",
                 "--port", "0", "--no-scheduler"], stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        assert self.proc.stdout is not None
        try:
            selector = selectors.DefaultSelector()
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=60):
                raise AssertionError(f"lakeforge serve printed nothing in 60 s:\n{log.read_text()}")
            self.line = self.proc.stdout.readline()
            assert self.line.startswith("lakeforge serve: http://127.0.0.1:"), (self.line, log.read_text())
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        url = urlsplit(self.line.split()[2])
        self.url = f"{url.scheme}://{url.netloc}"
        self.token = dict(parse_qsl(url.query))["token"]
        self.output = ""

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                # with the token: without it /health says the status only (issue 20: no error text to anyone)
                response = requests.get(f"{self.url}/health", timeout=5,
                                        headers={"authorization": f"Bearer {self.token}"})
                response.raise_for_status()
                data: dict[str, Any] = response.json()
                return data
            except requests.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM, then its exit code (killed after 40 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=40)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stdout is not None
        self.output = self.proc.stdout.read()
        self.proc.stdout.close()
        return code


@dataclass
class Fleet:
    """The served project: the URL without the token, the token, and the project to check the pages against."""

    path: Path
    project: Project
    url: str
    token: str
    runs: list[dict[str, Any]]  # the runs the fixture made, newest first

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return self.project.query(sql).to_pylist()

    def latest_risk(self) -> dict[int, dict[str, Any]]:
        """Each machine's latest score in gold.machine_risk."""
        return {r["machine_id"]: r for r in self.rows(
            "SELECT machine_id, arg_max(p_failure_24h, hour) AS p, arg_max(predicted_component, hour) AS component,"
            " max(hour) AS hour FROM gold.machine_risk GROUP BY machine_id")}

    def machines(self) -> dict[int, dict[str, Any]]:
        return {r["machine_id"]: r for r in self.rows(
            "SELECT machine_id, model, site_id, site_name FROM gold.dim_machine ORDER BY machine_id")}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A generated project, run, with the failure model trained, promoted and scored (as `lakeforge demo` does),
    served by a real `lakeforge serve` (stopped with SIGTERM at the end: it must exit 0)."""
    root = tmp_path_factory.mktemp("dashboards")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("MLFLOW_REGISTRY_URI", raising=False)
        Project.init(root / "plant").generate(machines=MACHINES, days=DAYS, seed=SEED)
        project = Project(root / "plant")
        try:
            assert project.run().status == "succeeded"
            registry.train(project)
            registry.promote(project)
            project.score()
            assert project.catalog.exists("gold.machine_risk") and project.catalog.exists("gold.anomalies")
            runs = events.runs(project, limit=None)
            server = Server(root / "plant", log=root / "serve.log")
            try:  # stopped whatever happens
                health = server.wait_healthy()
                assert health["status"] == "ok" and health["last_run"]["run_id"] == runs[0]["run_id"], health
                yield Fleet(path=root / "plant", project=project, url=server.url, token=server.token, runs=runs)
            finally:
                code = server.stop()
            assert code == 0, f"lakeforge serve exited {code}:\n{(root / 'serve.log').read_text()}"
            assert "lakeforge serve: stopped" in server.output
        finally:
            project.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go: docs/img with LAKEFORGE_SCREENSHOTS=1, else this test's tmp folder."""
    return DOCS_IMG if os.environ.get(SCREENSHOTS_ENV) == "1" else tmp_path / "img"


# -- reading the pages -------------------------------------------------------------------------------------------


def sign_in(page: Page, fleet: Fleet) -> None:
    """Open the URL `lakeforge serve` printed (with ?token=): the browser gets its cookie and lands on ``/``."""
    page.goto(f"{fleet.url}/?token={fleet.token}")
    page.wait_for_url(f"{fleet.url}/")
    page.get_by_test_id("kpi-machines").wait_for()


def kpi(page: Page, testid: str) -> str:
    return page.get_by_test_id(testid).locator(".value").inner_text().strip()


def table(locator: Locator) -> list[dict[str, str]]:
    """A table's body rows as dicts by header text, as the browser renders them."""
    rows: list[dict[str, str]] = locator.evaluate("""t => {
        const head = [...t.tHead.rows[0].cells].map(c => c.innerText.trim());
        return [...t.tBodies[0].rows].map(r => Object.fromEntries([...r.cells].map((c, i) =>
            [head[i], c.innerText.trim()])));
    }""")
    return rows


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def shown_range(page: Page) -> tuple[dt.date, dt.date]:
    found = re.fullmatch(r"showing (\S+) to (\S+)", page.get_by_test_id("filter-range").inner_text().strip())
    assert found, page.get_by_test_id("filter-range").inner_text()
    return dt.date.fromisoformat(found[1]), dt.date.fromisoformat(found[2])


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def assert_clean(page: Page) -> None:
    """No stale-data notice, no failed query, no panel without data."""
    for testid in ("notice", "error", "no-data"):
        assert page.get_by_test_id(testid).count() == 0, (testid, page.get_by_test_id(testid).all_inner_texts())


def assert_charts(page: Page, *keys: str) -> None:
    for key in keys:
        figure = page.locator(f'[data-testid="chart"][data-chart="{key}"]')
        assert figure.count() == 1, key
        assert figure.locator("svg").first.is_visible(), key


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def shoot(page: Page, name: str, folder: Path) -> Path:
    path = screenshot(page, name, folder=folder)
    width, height = png_size(path)
    assert width == 1280 and height >= 800, (path, width, height)
    assert path.stat().st_size > 20_000, f"{path}: {path.stat().st_size} bytes, a blank page?"
    return path


# -- the pages ---------------------------------------------------------------------------------------------------


def test_the_executive_dashboard_shows_the_fleet(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page, fleet)
    assert page.title() == "Executive dashboard · lakeforge"
    assert_clean(page)
    assert page.get_by_test_id("project").inner_text() == fleet.project.config.name
    start, end = shown_range(page)
    days = fleet.rows("SELECT min(date) AS first, max(date) AS last FROM gold.fact_telemetry_daily")[0]
    assert (start, end) == (days["first"], days["last"])

    assert kpi(page, "kpi-machines") == str(MACHINES)
    availability = float(kpi(page, "kpi-availability").rstrip("%"))
    assert 0 < availability <= 100
    failures = fleet.rows(f"SELECT count(*) AS n FROM gold.fact_failures WHERE date BETWEEN '{start}' AND '{end}'")
    assert kpi(page, "kpi-failures") == str(failures[0]["n"])

    # machines at risk: each machine's latest score, highest first, the top one as gold.machine_risk has it
    risk = fleet.latest_risk()
    assert len(risk) == MACHINES
    expected = sorted(risk.values(), key=lambda r: (-r["p"], r["machine_id"]))
    assert expected[0]["p"] >= RISK_THRESHOLD, "the seed must give a machine at risk (for the screenshots)"
    assert kpi(page, "kpi-at-risk") == str(sum(r["p"] >= RISK_THRESHOLD for r in risk.values()))
    rows = table(page.get_by_test_id("risk-table"))
    assert [int(r["machine"]) for r in rows] == [r["machine_id"] for r in expected][:20]
    assert [r["p(failure in 24 h)"] for r in rows] == [pct(r["p"]) for r in expected][:20]
    assert rows[0]["component"] == expected[0]["component"]
    assert rows[0]["scored hour (UTC)"] == ts(expected[0]["hour"])
    machines = fleet.machines()
    assert all(r["site"] == machines[int(r["machine"])]["site_name"] for r in rows)

    sites = table(page.get_by_test_id("site-table"))
    per_site: dict[str, int] = {}
    for m in machines.values():
        per_site[m["site_name"]] = per_site.get(m["site_name"], 0) + 1
    assert {r["site"]: int(r["machines"]) for r in sites} == per_site
    assert_charts(page, "availability", "failures", "downtime", "components")
    assert page.get_by_test_id("footer").inner_text().startswith("warehouse snapshot of")
    shoot(page, "dashboard-executive", shots)


def test_the_machines_list(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page, fleet)
    page.get_by_test_id("nav-fleet").click()
    page.wait_for_url(f"{fleet.url}/machines")
    assert_clean(page)
    machines, risk = fleet.machines(), fleet.latest_risk()
    start, end = shown_range(page)
    anomalies: dict[int, int] = {}
    for r in fleet.rows("SELECT machine_id, ts FROM gold.anomalies"):
        if start <= r["ts"].astimezone(dt.UTC).date() <= end:
            anomalies[r["machine_id"]] = anomalies.get(r["machine_id"], 0) + 1
    rows = table(page.get_by_test_id("machine-table"))
    assert [int(r["machine"]) for r in rows] == sorted(machines)
    for row in rows:
        machine = int(row["machine"])
        assert (row["site"], row["model"]) == (machines[machine]["site_name"], machines[machine]["model"])
        assert row["p(failure in 24 h)"] == pct(risk[machine]["p"])
        assert 0 <= float(row["availability"].rstrip("%")) <= 100
        assert int(row["anomalies"]) == anomalies.get(machine, 0)
    assert page.get_by_test_id("machine-link").count() == MACHINES
    shoot(page, "dashboard-machines", shots)


def test_the_operations_dashboard_lists_the_runs(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page, fleet)
    page.get_by_test_id("nav-ops").click()
    page.wait_for_url(f"{fleet.url}/ops")
    assert_clean(page)
    runs = table(page.get_by_test_id("runs-table"))
    # the fixture's runs: the pipeline run and the scoring run, newest first
    assert len(fleet.runs) >= 2
    assert [r["run"] for r in runs] == [r["run_id"] for r in fleet.runs][:15]
    assert [r["status"] for r in runs] == [r["status"] for r in fleet.runs][:15]
    assert kpi(page, "kpi-last-run") == fleet.runs[0]["status"] == "succeeded"
    assert kpi(page, "kpi-success-rate") == "100.0%"
    assert kpi(page, "kpi-backlog") == "0 files"  # everything generated was ingested
    loads = {r["warehouse table"] for r in table(page.get_by_test_id("loads-table"))}
    assert {"dim_machine", "fact_maintenance", "machine_risk", "anomalies"} <= loads
    assert table(page.get_by_test_id("dq-table")), "the run's expectations"
    assert_charts(page, "runs", "duration", "throughput", "dq")
    shoot(page, "dashboard-operations", shots)


def test_filter_by_a_site(page: Page, fleet: Fleet) -> None:
    sign_in(page, fleet)
    page.get_by_test_id("nav-fleet").click()
    page.wait_for_url(f"{fleet.url}/machines")
    machines = fleet.machines()
    site_id = max(m["site_id"] for m in machines.values())
    site_name = next(m["site_name"] for m in machines.values() if m["site_id"] == site_id)
    mine = sorted(m for m, row in machines.items() if row["site_id"] == site_id)
    assert 0 < len(mine) < MACHINES

    # a site applies at once (app.js submits the form on change)
    page.get_by_test_id("filter-site").select_option(label=site_name)
    page.wait_for_url(re.compile(rf"/machines\?(.*&)?site={site_id}(&|$)"))
    assert [int(r["machine"]) for r in table(page.get_by_test_id("machine-table"))] == mine
    # dates with the Apply button
    start, end = shown_range(page)
    chosen = (start + dt.timedelta(days=2), start + dt.timedelta(days=5))
    assert chosen[1] <= end
    page.get_by_test_id("filter-from").fill(chosen[0].isoformat())
    page.get_by_test_id("filter-to").fill(chosen[1].isoformat())
    page.get_by_test_id("filter-apply").click()
    page.wait_for_url(re.compile(r"/machines\?.*to=\d{4}"))
    assert query_of(page) == {"site": [str(site_id)], "from": [chosen[0].isoformat()], "to": [chosen[1].isoformat()]}
    assert shown_range(page) == chosen
    assert page.get_by_test_id("filter-site").input_value() == str(site_id)
    rows = table(page.get_by_test_id("machine-table"))
    assert [int(r["machine"]) for r in rows] == mine
    assert {r["site"] for r in rows} == {site_name}
    assert_clean(page)

    # the links keep the filters: the executive dashboard of that site
    page.get_by_test_id("nav-executive").click()
    page.wait_for_url(re.compile(r"/\?.*site="))
    assert query_of(page)["site"] == [str(site_id)]
    assert kpi(page, "kpi-machines") == str(len(mine))
    assert {int(r["machine"]) for r in table(page.get_by_test_id("risk-table"))} == set(mine)
    assert [r["site"] for r in table(page.get_by_test_id("site-table"))] == [site_name]
    page.get_by_test_id("filter-reset").click()
    page.wait_for_url(f"{fleet.url}/")
    assert kpi(page, "kpi-machines") == str(MACHINES)


def test_open_a_machine_at_risk(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page, fleet)
    risk = fleet.latest_risk()
    top = max(risk.values(), key=lambda r: (r["p"], -r["machine_id"]))
    link = page.get_by_test_id("risk-table").get_by_test_id("machine-link").first
    assert link.inner_text() == str(top["machine_id"])
    link.click()
    machine_id = top["machine_id"]
    page.wait_for_url(f"{fleet.url}/machines/{machine_id}")
    assert page.title() == f"Machine {machine_id} · lakeforge"
    assert_clean(page)
    start, end = shown_range(page)
    info = page.get_by_test_id("machine-info").inner_text()
    machine = fleet.machines()[machine_id]
    assert f"model {machine['model']}" in info and machine["site_name"] in info
    assert page.get_by_test_id("machine-select").input_value() == str(machine_id)

    # its risk
    risk_kpi = page.get_by_test_id("kpi-risk")
    assert kpi(page, "kpi-risk") == pct(top["p"])
    assert top["component"] in risk_kpi.locator(".sub").inner_text()
    assert "warn" in (risk_kpi.get_attribute("class") or "")

    # its maintenance history in the range: gold.fact_maintenance
    maintenance = sorted(((ts(r["ts"]), r["component"], r["reason"]) for r in fleet.rows(
        f"SELECT ts, component, reason FROM gold.fact_maintenance WHERE machine_id = {machine_id} "
        f"AND date BETWEEN '{start}' AND '{end}'")), reverse=True)
    assert maintenance, "the seed must give the machine at risk some maintenance"
    shown = [(r["time (UTC)"], r["component"], r["reason"]) for r in table(page.get_by_test_id("maintenance-table"))]
    assert shown == maintenance
    assert kpi(page, "kpi-maintenance") == str(len(maintenance))

    # its anomalies in the range: gold.anomalies, in the table and marked on the charts
    anomalies = [r for r in fleet.rows(f"SELECT sensor, ts, reason FROM gold.anomalies WHERE machine_id = {machine_id}")
                 if start <= r["ts"].astimezone(dt.UTC).date() <= end]
    assert anomalies, "the seed must give the machine at risk some anomalies"
    listed = table(page.get_by_test_id("anomaly-table"))
    assert sorted((r["time (UTC)"], r["sensor"], r["reason"]) for r in listed) == sorted(
        (ts(a["ts"]), a["sensor"], a["reason"]) for a in anomalies)
    assert [r["time (UTC)"] for r in listed] == sorted((r["time (UTC)"] for r in listed), reverse=True)
    # a sensor's anomaly on its own chart, one over several sensors on every sensor chart
    own = sum(a["sensor"].removesuffix("_avg") in SENSOR_CHARTS for a in anomalies)
    assert page.get_by_test_id("anomaly-marker").count() == own + (len(anomalies) - own) * len(SENSOR_CHARTS)
    assert page.get_by_test_id("anomaly-marker").first.is_visible()
    assert_charts(page, *SENSOR_CHARTS, "risk")
    shoot(page, "dashboard-equipment", shots)

    # the picker goes to another machine
    other = min(m for m in risk if m != machine_id)
    page.get_by_test_id("machine-select").select_option(str(other))
    page.wait_for_url(f"{fleet.url}/machines/{other}")
    assert kpi(page, "kpi-risk") == pct(risk[other]["p"])


# -- the SQL explorer --------------------------------------------------------------------------------------------

DAILY_SQL = ("SELECT date, round(avg(vibration_avg), 2) AS vibration_avg,\n"
             "       round(avg(vibration_max), 2) AS vibration_max\n"
             "FROM fact_telemetry_daily GROUP BY date ORDER BY date")


def test_the_explorer_runs_a_query_and_exports_csv(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page, fleet)
    page.get_by_test_id("nav-explore").click()
    page.wait_for_url(f"{fleet.url}/explore")
    names = page.get_by_test_id("table-name").all_inner_texts()
    assert {"dim_machine", "fact_maintenance", "fact_telemetry_daily", "machine_risk", "anomalies"} <= set(names)

    page.get_by_test_id("sql-input").fill(DAILY_SQL)
    page.get_by_test_id("sql-run").click()
    page.wait_for_url(re.compile(r"/explore\?.*sql="))
    assert query_of(page)["sql"] == [DAILY_SQL.replace("\n", "\r\n")]  # a textarea submits CRLF line breaks
    expected = [(r["date"], r["vibration_avg"], r["vibration_max"]) for r in fleet.rows(DAILY_SQL)]
    assert len(expected) == DAYS
    assert page.get_by_test_id("sql-error").count() == 0
    assert page.get_by_test_id("result-summary").inner_text().startswith(f"{DAYS} rows in")
    rows = table(page.get_by_test_id("result-table"))
    assert [(r["date"], r["vibration_avg"], r["vibration_max"]) for r in rows] == [
        (day.isoformat(), f"{avg:.6g}", f"{top:.6g}") for day, avg, top in expected]
    assert_charts(page, "result")
    assert page.get_by_test_id("sql-input").input_value().replace("\r\n", "\n") == DAILY_SQL
    shoot(page, "dashboard-explorer", shots)

    with page.expect_download() as info:
        page.get_by_test_id("csv-export").click()
    download = info.value
    assert download.failure() is None
    assert re.fullmatch(r"lakeforge-query-\d{8}T\d{6}\.csv", download.suggested_filename)
    text = Path(download.path()).read_text()
    table_ = list(csv.reader(io.StringIO(text)))
    assert table_[0] == ["date", "vibration_avg", "vibration_max"]
    assert [(dt.date.fromisoformat(d), float(a), float(m)) for d, a, m in table_[1:]] == expected


def test_the_explorer_refuses_to_write(page: Page, fleet: Fleet, tmp_path: Path) -> None:
    sign_in(page, fleet)
    page.goto(f"{fleet.url}/explore")
    # a table's name fills an empty box; Ctrl+Enter runs
    page.get_by_test_id("table-name").filter(has_text=re.compile(r"^dim_machine$")).click()
    assert page.get_by_test_id("sql-input").input_value() == "SELECT * FROM dim_machine LIMIT 100"
    page.get_by_test_id("sql-input").press("Control+Enter")
    page.wait_for_url(re.compile(r"/explore\?.*sql="))
    assert sorted(int(r["machine_id"]) for r in table(page.get_by_test_id("result-table"))) == sorted(
        fleet.machines())

    target = tmp_path / "x.csv"
    for sql, said in ((f"COPY dim_machine TO '{target}'", "COPY statements are not allowed"),
                      (f"SELECT * FROM read_csv('{target}')", "read_csv() is not allowed"),
                      ("SELECT 1; DROP TABLE dim_machine", "one statement at a time")):
        page.get_by_test_id("sql-input").fill(sql)
        with page.expect_navigation() as navigation:
            page.get_by_test_id("sql-run").click()
        response = navigation.value
        assert response is not None and response.status == 400, sql
        assert said in page.get_by_test_id("sql-error").inner_text(), sql
        assert page.get_by_test_id("result-table").count() == 0
        assert page.get_by_test_id("csv-export").count() == 0
        assert page.get_by_test_id("sql-input").input_value() == sql  # kept, to fix it
    assert not target.exists()
    assert fleet.rows("SELECT count(*) AS n FROM dim_machine")[0]["n"] == MACHINES


# -- the token ---------------------------------------------------------------------------------------------------


def test_without_the_token_the_browser_gets_the_token_form(page: Page, fleet: Fleet) -> None:
    response = page.goto(f"{fleet.url}/machines")
    assert response is not None and response.status == 401
    assert "needs its access token" in page.get_by_test_id("auth-error").inner_text()
    assert page.get_by_test_id("kpi-machines").count() == 0 and page.get_by_test_id("machine-table").count() == 0
    assert page.context.cookies() == []

    page.get_by_test_id("token-input").fill("not-the-token-0123456789")
    page.get_by_test_id("token-submit").click()
    page.wait_for_url(re.compile(r"token="))
    assert "the access token in the URL is wrong" in page.get_by_test_id("auth-error").inner_text()

    page.get_by_test_id("token-input").fill(fleet.token)
    page.get_by_test_id("token-submit").click()
    page.wait_for_url(f"{fleet.url}/machines")  # signed in, the token gone from the address bar
    assert page.get_by_test_id("machine-link").count() == MACHINES
    cookies = page.context.cookies()
    assert [c["httpOnly"] for c in cookies] == [True] and fleet.token not in cookies[0]["value"]
