"""The web app of ``lakeforge serve`` on a generated project (24 machines on 2 sites, 24 days): every page renders
with its data, the filters change what is shown, the equipment page has the machine's maintenance history, the
ML tables show "no data yet" until they exist, the SQL explorer returns rows, a chart and a CSV within its row
limit and timeout, and everything it must refuse (writes, files, attaching, settings, several statements, a
missing or wrong token) is refused with a clear message while nothing is written."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import duckdb
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from lakeforge.errors import ConfigError
from lakeforge.ops.serve import create_app
from lakeforge.project import Project
from lakeforge.web.app import WebSettings
from lakeforge.web.auth import TOKEN_ENV, resolve_token, session_value
from lakeforge.web.store import connect_duckdb

TOKEN = "web-test-token-0123456789abcdef"
BEARER = {"authorization": f"Bearer {TOKEN}"}
SETTINGS = WebSettings(timeout_seconds=3.0, background_refresh=False)
VOID = {"input", "meta", "link", "br", "img", "hr", "source", "col", "wbr"}


# -- reading the pages -------------------------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parts: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)  # a table's rows (header row first)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


class Page(HTMLParser):
    """The elements of a page that have a ``data-testid``, their text, and tables' cells."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.stack: list[Element] = []
        self.testids: dict[str, list[Element]] = defaultdict(list)
        self.links: list[Element] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        if "data-testid" in element.attrs:
            self.testids[element.attrs["data-testid"]].append(element)
        if tag == "a":
            self.links.append(element)
        if tag == "tr":
            table = next((e for e in reversed(self.stack) if e.tag == "table"), None)
            if table is not None:
                table.rows.append([])
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        if "data-testid" in element.attrs:
            self.testids[element.attrs["data-testid"]].append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            element = self.stack.pop()
            if element.tag in ("td", "th"):
                table = next((e for e in reversed(self.stack) if e.tag == "table"), None)
                if table is not None and table.rows:
                    table.rows[-1].append(element.text)
            if element.tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.parts.append(data)

    def one(self, testid: str) -> Element:
        found = self.testids.get(testid, [])
        assert len(found) == 1, f"{len(found)} elements with data-testid={testid!r}"
        return found[0]

    def has(self, testid: str) -> bool:
        return bool(self.testids.get(testid))

    def count(self, testid: str) -> int:
        return len(self.testids.get(testid, []))

    def table(self, testid: str) -> list[dict[str, str]]:
        """A table's rows as dicts by header."""
        rows = self.one(testid).rows
        header, body = rows[0], rows[1:]
        return [dict(zip(header, row, strict=True)) for row in body]


def get(client: TestClient, url: str, status: int = 200, **kwargs: Any) -> Page:
    response = client.get(url, **kwargs)
    assert response.status_code == status, (url, response.status_code, response.text[:2000])
    return Page(response.text)


# -- the project -------------------------------------------------------------------------------------------------


def add_ml_tables(warehouse: Path, *, zoned: bool = False) -> None:
    """machine_risk and anomalies with the ML stage's columns (replacing any the run made). Every machine's latest
    hour scores machine_id / 25 (so machines 13..24 are at risk), every earlier hour 0.999 (the latest hour must be
    the one shown); three anomalies on machine 5 (volt, vibration, multivariate) and one on machine 6.
    ``zoned``: timestamps WITH TIME ZONE and sensors named by their column (``volt_avg``), as the scoring stage
    writes them; else UTC TIMESTAMPs and plain sensor names."""
    ts, suffix = ("TIMESTAMPTZ", "_avg") if zoned else ("TIMESTAMP", "")
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("SET TimeZone='UTC'")
        con.execute(f"""
            CREATE OR REPLACE TABLE machine_risk (machine_id BIGINT, hour {ts}, p_failure_24h DOUBLE, p_comp1 DOUBLE,
              p_comp2 DOUBLE, p_comp3 DOUBLE, p_comp4 DOUBLE, predicted_component VARCHAR, model_name VARCHAR,
              model_version VARCHAR, scored_at {ts}, run_id VARCHAR)""")
        con.execute(f"""
            INSERT INTO machine_risk
            SELECT machine_id, hour, p, p / 4, p / 4, p / 4, p / 4,
                   CASE WHEN p >= 0.5 THEN 'comp' || (1 + machine_id % 4) ELSE 'none' END,
                   'pdm_failure_24h', '7', hour + INTERVAL 5 MINUTE, 'test-run'
            FROM (SELECT machine_id, CAST(hour AS {ts}) AS hour,
                         CASE WHEN hour = max(hour) OVER (PARTITION BY machine_id) THEN machine_id / 25.0
                              ELSE 0.999 END AS p
                  FROM fact_telemetry_hourly)""")
        con.execute(f"""
            CREATE OR REPLACE TABLE anomalies (machine_id BIGINT, sensor VARCHAR, ts {ts}, value DOUBLE,
              score DOUBLE, reason VARCHAR, detector VARCHAR, run_id VARCHAR)""")
        con.execute(f"""
            INSERT INTO anomalies VALUES
              (5, 'volt{suffix}', '2024-01-12 05:00:00', 231.5, 0.97, 'volt 60 above its rolling mean', 'zscore', 'r'),
              (5, 'vibration{suffix}', '2024-01-13 08:00:00', 71.0, 0.91, 'vibration spike', 'zscore', 'r'),
              (5, 'multivariate', '2024-01-14 10:00:00', NULL, 0.88, 'unusual sensor mix', 'iforest', 'r'),
              (6, 'rotate{suffix}', '2024-01-03 01:00:00', 300.0, 0.75, 'rotate dip', 'zscore', 'r')""")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def drop_ml_tables(warehouse: Path) -> None:
    """The warehouse as it is before the ML stage has scored anything."""
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("DROP TABLE IF EXISTS machine_risk")
        con.execute("DROP TABLE IF EXISTS anomalies")
        con.execute("CHECKPOINT")
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web")
    Project.init(root / "plant").generate(machines=24, days=24, seed=7, files=4, readings_per_hour=2)
    with Project(root / "plant") as project:
        assert project.run().status == "succeeded"
    drop_ml_tables(root / "plant" / "warehouse.duckdb")
    shutil.copytree(root / "plant", root / "scored")
    add_ml_tables(root / "scored" / "warehouse.duckdb")
    return root


def warehouse_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path / "warehouse.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone='UTC'")
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def app_client(built: Path) -> Iterator[TestClient]:
    """The plant project (no ML tables), every request with the bearer token."""
    with TestClient(create_app(Project(built / "plant"), scheduler=False, token=TOKEN, web=SETTINGS),
                    headers=BEARER) as client:
        yield client


@pytest.fixture(scope="module")
def scored_client(built: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Project(built / "scored"), scheduler=False, token=TOKEN, web=SETTINGS),
                    headers=BEARER) as client:
        yield client


# -- pages -------------------------------------------------------------------------------------------------------


def test_every_page_renders_with_the_projects_data(app_client: TestClient, built: Path) -> None:
    machines = warehouse_rows(built / "plant", "SELECT count(*) FROM dim_machine")[0][0]
    failures = warehouse_rows(built / "plant", "SELECT count(*) FROM fact_failures")[0][0]
    page = get(app_client, "/")
    for testid in ("filters", "filter-site", "filter-model", "filter-from", "filter-to", "filter-apply",
                   "nav-executive", "nav-ops", "nav-fleet", "nav-explore", "site-table", "kpi-availability",
                   "kpi-downtime", "kpi-mtbf", "kpi-mttr", "kpi-at-risk"):
        assert page.has(testid), testid
    assert page.one("kpi-machines").text == f"Machines {machines}"
    assert page.one("kpi-failures").text == f"Failures {failures}"
    assert re.fullmatch(r"Fleet availability \d+\.\d% hours up / fleet hours", page.one("kpi-availability").text)
    charts = {e.attrs["data-chart"] for e in page.testids["chart"]}
    assert charts == {"availability", "failures", "downtime", "components"}
    assert page.one("filter-range").text == "showing 2024-01-01 to 2024-01-24"
    assert {o for o in page.one("filter-site").text.split()} >= {"all", "sites"}

    ops = get(app_client, "/ops")
    assert ops.one("kpi-last-run").text.startswith("Last run succeeded")
    assert ops.one("kpi-success-rate").text.startswith("Run success rate 100.0%")
    assert ops.one("kpi-backlog").text.startswith("Backlog 0 files")
    for testid in ("kpi-freshness", "kpi-dq-pass-rate", "kpi-throughput", "kpi-cost-per-gb", "runs-table",
                   "freshness-table", "site-freshness-table", "dq-table", "backlog-table", "stages-table",
                   "loads-table"):
        assert ops.has(testid), testid
    assert len(ops.table("runs-table")) == 1
    assert {r["model:rule"] for r in ops.table("dq-table")} >= {"silver.telemetry:volt_in_range"}
    assert {r["table"] for r in ops.table("freshness-table")} >= {"gold.fact_telemetry_hourly", "silver.telemetry"}
    assert {e.attrs["data-chart"] for e in ops.testids["chart"]} == {"runs", "duration", "throughput",
                                                                     "cost-per-gb", "dq"}

    listing = get(app_client, "/machines")
    assert len(listing.table("machine-table")) == machines
    machine = get(app_client, "/machines/7")
    assert machine.one("machine-info").text.startswith("model model")
    assert {e.attrs["data-chart"] for e in machine.testids["chart"]} >= {"volt", "rotate", "pressure",
                                                                         "vibration", "temperature"}
    explore = get(app_client, "/explore")
    for testid in ("sql-input", "sql-run", "row-limit", "chart-type", "table-list"):
        assert explore.has(testid), testid
    assert "fact_telemetry_hourly" in {e.text for e in explore.testids["table-name"]}

    # the JSON the pages are made of
    data = app_client.get("/api/executive").json()
    assert data["results"]["kpis"]["rows"][0]["machines"] == machines
    assert app_client.get("/api/ops").json()["results"]["runs_summary"]["rows"][0]["runs"] == 1
    assert {o["label"] for o in app_client.get("/api/options").json()["model"]} == {
        r[0] for r in warehouse_rows(built / "plant", "SELECT DISTINCT model FROM dim_machine")}
    assert app_client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert app_client.get("/static/../../etc/passwd").status_code == 404


def test_executive_availability_is_the_fleet_availability_report(app_client: TestClient, built: Path) -> None:
    report = {r["date"]: r for r in Project(built / "plant").report("fleet_availability").to_pylist()}
    trend = app_client.get("/api/executive").json()["results"]["trend"]["rows"]
    assert len(trend) == len(report) == 24
    for row in trend:
        day = dt.date.fromisoformat(row["period"])
        assert row["availability"] == pytest.approx(report[day]["availability"]), day
        assert row["downtime_hours"] == pytest.approx(report[day]["repair_hours"]), day


def test_filters_change_what_is_shown(app_client: TestClient, built: Path) -> None:
    plant = built / "plant"
    by_site: dict[int, set[str]] = defaultdict(set)
    by_model: dict[str, set[str]] = defaultdict(set)
    for machine_id, site_id, model in warehouse_rows(plant, "SELECT machine_id, site_id, model FROM dim_machine"):
        by_site[site_id].add(str(machine_id))
        by_model[model].add(str(machine_id))
    assert len(by_site) == 2
    for site, machines in by_site.items():
        listing = get(app_client, f"/machines?site={site}")
        assert {r["machine"] for r in listing.table("machine-table")} == machines
        assert listing.one("filter-site").attrs  # the select keeps the choice:
        assert f'<option value="{site}" selected>' in app_client.get(f"/machines?site={site}").text
        page = get(app_client, f"/?site={site}")
        assert page.one("kpi-machines").text == f"Machines {len(machines)}"
        assert len(page.table("site-table")) == 1
        failures = warehouse_rows(plant, f"SELECT count(*) FROM fact_failures JOIN dim_machine USING (machine_id) "
                                         f"WHERE site_id = {site}")[0][0]
        assert page.one("kpi-failures").text == f"Failures {failures}"
        # links keep the filters (navigation and machine links)
        assert all(f"site={site}" in a.attrs["href"] for a in page.links if a.attrs.get("data-testid") == "nav-ops")
    model, machines = max(by_model.items(), key=lambda kv: len(kv[1]))
    listing = get(app_client, f"/machines?model={model}")
    assert {r["machine"] for r in listing.table("machine-table")} == machines
    assert get(app_client, f"/?model={model}").one("kpi-machines").text == f"Machines {len(machines)}"

    week = app_client.get("/api/executive?from=2024-01-05&to=2024-01-11").json()
    assert [r["period"] for r in week["results"]["trend"]["rows"]] == [
        (dt.date(2024, 1, 5) + dt.timedelta(days=i)).isoformat() for i in range(7)]
    failures = warehouse_rows(plant, "SELECT count(*) FROM fact_failures WHERE date BETWEEN '2024-01-05' AND "
                                     "'2024-01-11'")[0][0]
    assert week["results"]["kpis"]["rows"][0]["failures"] == failures
    page = get(app_client, "/?from=2024-01-05&to=2024-01-11")
    assert page.one("filter-range").text == "showing 2024-01-05 to 2024-01-11"
    assert page.one("filter-from").attrs["value"] == "2024-01-05"

    bad = get(app_client, "/?from=2024-13-01", status=400)
    assert "from='2024-13-01' is not a date" in bad.one("error").text
    assert get(app_client, "/?from=2024-01-10&to=2024-01-01", status=400).one("error").text.startswith(
        "to (2024-01-01) is before from (2024-01-10)")
    assert app_client.get("/api/executive?site=x").json()["error"] == "site='x' is not a site id"


def test_the_equipment_page_shows_the_machines_history(app_client: TestClient, built: Path) -> None:
    plant = built / "plant"
    machine = warehouse_rows(plant, "SELECT machine_id FROM fact_maintenance GROUP BY 1 "
                                    "ORDER BY count(*) DESC, 1")[0][0]
    history = warehouse_rows(plant, f"SELECT strftime(ts, '%Y-%m-%d %H:%M'), component, reason FROM fact_maintenance "
                                    f"WHERE machine_id = {machine} ORDER BY ts DESC")
    page = get(app_client, f"/machines/{machine}")
    shown = [(r["time (UTC)"], r["component"], r["reason"]) for r in page.table("maintenance-table")]
    assert shown == history and len(history) >= 3
    assert [r["component"] for r in page.table("last-maintenance-table")] == sorted({h[1] for h in history})
    assert "(daily mean)" in next(e.text for e in page.testids["chart"] if e.attrs["data-chart"] == "volt")
    failures = warehouse_rows(plant, f"SELECT count(*) FROM fact_failures WHERE machine_id = {machine}")[0][0]
    assert page.one("kpi-failures").text == f"Failures {failures}"
    # a week: hourly values, and only that week's maintenance
    week = get(app_client, f"/machines/{machine}?from=2024-01-08&to=2024-01-14")
    assert "(hourly mean)" in next(e.text for e in week.testids["chart"] if e.attrs["data-chart"] == "volt")
    in_week = [h for h in history if "2024-01-08" <= h[0][:10] <= "2024-01-14"]
    if in_week:
        assert [(r["time (UTC)"], r["component"], r["reason"]) for r in week.table("maintenance-table")] == in_week
    else:
        assert week.has("maintenance-table-empty")
    hourly = app_client.get(f"/api/machines/{machine}?from=2024-01-08&to=2024-01-14").json()["results"]
    assert len(hourly["sensors_hourly"]["rows"]) == 7 * 24
    # the picker goes to a machine, keeping the filters; an unknown machine says so
    response = app_client.get("/machines?machine=3&site=1", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/machines/3?site=1"
    assert "no machine 999 in the warehouse" in get(app_client, "/machines/999").one("no-data").text


def test_ml_tables_missing_show_no_data_yet(app_client: TestClient) -> None:
    page = get(app_client, "/")
    missing = {e.attrs["data-query"]: e.text for e in page.testids["no-data"]}
    assert missing["at_risk"] == "no data yet: the warehouse has no machine_risk table"
    assert page.one("kpi-at-risk").text.startswith("Machines at risk no data yet")
    machine = get(app_client, "/machines/5")
    missing = {e.attrs["data-query"]: e.text for e in machine.testids["no-data"]}
    assert missing["anomalies"] == "no data yet: the warehouse has no anomalies table"
    assert missing["risk"] == "no data yet: the warehouse has no machine_risk table"
    assert machine.one("kpi-risk").text.startswith("p(failure in 24 h) no data yet")


def test_machines_at_risk_and_anomalies(scored_client: TestClient, built: Path) -> None:
    page = get(scored_client, "/")
    rows = page.table("risk-table")
    assert [r["machine"] for r in rows] == [str(m) for m in range(24, 4, -1)]  # the latest hour, highest first
    assert rows[0]["p(failure in 24 h)"] == "96.0%" and rows[0]["component"] == "comp1"
    assert page.one("kpi-at-risk").text.startswith("Machines at risk 12")
    links = [a.attrs["href"] for a in page.testids["machine-link"]]
    assert links[0] == "/machines/24"
    site_machines = {str(r[0]) for r in warehouse_rows(built / "scored", "SELECT machine_id FROM dim_machine "
                                                                          "WHERE site_id = 2")}
    filtered = get(scored_client, "/?site=2").table("risk-table")
    assert {r["machine"] for r in filtered} == site_machines
    assert [float(r["p(failure in 24 h)"].rstrip("%")) for r in filtered] == sorted(
        (float(r["p(failure in 24 h)"].rstrip("%")) for r in filtered), reverse=True)

    machine = get(scored_client, "/machines/5")
    anomalies = machine.table("anomaly-table")
    assert [(r["sensor"], r["reason"]) for r in anomalies] == [
        ("multivariate", "unusual sensor mix"), ("vibration", "vibration spike"),
        ("volt", "volt 60 above its rolling mean")]
    # each sensor's chart marks its own anomalies and the multivariate one
    assert machine.count("anomaly-marker") == 2 + 1 + 1 + 2 + 1
    assert machine.one("kpi-risk").text.startswith("p(failure in 24 h) 20.0%")
    assert "risk" in {e.attrs["data-chart"] for e in machine.testids["chart"]}
    assert get(scored_client, "/machines/5?from=2024-01-20&to=2024-01-24").has("anomaly-table-empty")


def test_the_snapshot_follows_the_warehouse(built: Path, tmp_path: Path) -> None:
    """A page shows "no data yet" for the ML tables; once they are loaded, the next page shows them."""
    shutil.copytree(built / "plant", tmp_path / "plant")
    with TestClient(create_app(Project(tmp_path / "plant"), scheduler=False, token=TOKEN, web=SETTINGS),
                    headers=BEARER) as client:
        assert get(client, "/").has("no-data")
        # the web app holds no connection between requests; the scoring stage's own column types
        add_ml_tables(tmp_path / "plant" / "warehouse.duckdb", zoned=True)
        assert [r["machine"] for r in get(client, "/").table("risk-table")][:3] == ["24", "23", "22"]
        machine = get(client, "/machines/5")
        assert [r["sensor"] for r in machine.table("anomaly-table")] == ["multivariate", "vibration_avg", "volt_avg"]
        assert machine.count("anomaly-marker") == 7
    Project.init(tmp_path / "empty")
    with TestClient(create_app(Project(tmp_path / "empty"), scheduler=False, token=TOKEN, web=SETTINGS),
                    headers=BEARER) as client:
        for url in ("/", "/ops", "/machines", "/machines/1"):
            page = get(client, url)
            assert "the warehouse warehouse.duckdb does not exist yet" in page.one("notice").text, url
        assert "does not exist yet" in client.get("/api/explore?sql=SELECT+1").json()["error"]


# -- the SQL explorer --------------------------------------------------------------------------------------------


def test_the_explorer_returns_rows_a_chart_and_a_csv(app_client: TestClient, built: Path) -> None:
    sql = "SELECT date, sum(readings) AS readings FROM fact_telemetry_daily GROUP BY date ORDER BY date"
    expected = warehouse_rows(built / "plant", sql)
    page = get(app_client, "/explore", params={"sql": sql})
    rows = page.table("result-table")
    assert [(r["date"], int(r["readings"])) for r in rows] == [(d.isoformat(), n) for d, n in expected]
    assert page.one("result-summary").text.startswith("24 rows in")
    chart = next(e for e in page.testids["chart"] if e.attrs["data-chart"] == "result")
    assert chart.tag == "figure"
    assert page.one("sql-input").text == sql  # the query stays in the box (and in the URL)
    href = page.one("csv-export").attrs["href"]
    assert dict(parse_qsl(urlsplit(href).query))["sql"] == sql
    response = app_client.get(href)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == ["date", "readings"]
    assert [(r[0], int(r[1])) for r in table[1:]] == [(d.isoformat(), n) for d, n in expected]
    # the filters are the query's parameters
    answer = app_client.get("/api/explore", params={"sql": "SELECT count(*) AS n FROM dim_machine "
                                                           "WHERE $site IS NULL OR site_id = $site", "site": "1"})
    assert answer.json()["rows"] == [[warehouse_rows(built / "plant", "SELECT count(*) FROM dim_machine "
                                                                      "WHERE site_id = 1")[0][0]]]
    posted = app_client.post("/api/explore", json={"sql": "VALUES (1, 'a'), (2, 'b')", "limit": 5}).json()
    assert posted["rows"] == [[1, "a"], [2, "b"]] and posted["truncated"] is False
    bar = get(app_client, "/explore", params={"sql": "SELECT component, count(*) AS n FROM fact_failures GROUP BY 1",
                                              "chart": "bar"})
    assert "result" in {e.attrs["data-chart"] for e in bar.testids["chart"]}
    assert not get(app_client, "/explore", params={"sql": sql, "chart": "none"}).has("chart")


def test_the_row_limit_and_the_timeout(app_client: TestClient) -> None:
    answer = app_client.get("/api/explore", params={"sql": "SELECT range AS i FROM range(50) ORDER BY i DESC",
                                                    "limit": "10"}).json()
    assert answer["rows"] == [[i] for i in range(49, 39, -1)] and answer["truncated"] is True
    assert app_client.get("/api/explore", params={"sql": "SELECT * FROM range(2000)"}).json()["row_count"] == 1000
    page = get(app_client, "/explore", params={"sql": "SELECT * FROM range(50)", "limit": "10"})
    assert len(page.table("result-table")) == 10
    assert "(the first 10: the query has more rows" in page.one("result-summary").text
    response = app_client.get(page.one("csv-export").attrs["href"])
    assert response.headers["x-lakeforge-truncated"] == "true" and len(response.text.splitlines()) == 11
    refused = app_client.get("/api/explore", params={"sql": "SELECT 1", "limit": "0"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "the row limit must be between 1 and 100,000, not 0"

    started = time.perf_counter()
    slow = app_client.get("/api/explore", params={
        "sql": "SELECT sum(a.range * b.range) FROM range(1000000) AS a, range(1000000) AS b"})
    assert time.perf_counter() - started < 10
    assert slow.status_code == 400
    assert slow.json()["error"] == "the query ran longer than 3 s and was stopped"
    page = get(app_client, "/explore", status=400, params={
        "sql": "SELECT count(*) FROM range(1000000) AS a, range(1000000) AS b WHERE a.range + b.range = 3"})
    assert page.one("sql-error").text == "the query ran longer than 3 s and was stopped"
    assert app_client.get("/api/explore", params={"sql": "SELECT 42"}).json()["rows"] == [[42]]  # still serving


FORBIDDEN = {  # SQL -> what the message says
    "COPY dim_machine TO '{out}'": "COPY statements are not allowed",
    "COPY (SELECT * FROM dim_machine) TO '{out}' (FORMAT csv)": "COPY statements are not allowed",
    "ATTACH '{db}' AS other": "ATTACH statements are not allowed",
    "DETACH warehouse": "DETACH statements are not allowed",
    "INSTALL httpfs": "INSTALL statements are not allowed",
    "LOAD httpfs": "LOAD statements are not allowed",
    "SELECT * FROM read_csv('/etc/passwd')": "the function read_csv() is not allowed",
    "SELECT * FROM read_csv_auto('/etc/passwd')": "the function read_csv_auto() is not allowed",
    "SELECT * FROM read_parquet('{out}')": "the function read_parquet() is not allowed",
    "SELECT * FROM read_json('/etc/passwd')": "the function read_json() is not allowed",
    "SELECT read_text('/etc/passwd')": "the function read_text() is not allowed",
    "SELECT * FROM glob('/etc/*')": "the function glob() is not allowed",
    "SELECT * FROM parquet_scan('{out}')": "the function parquet_scan() is not allowed",
    "SELECT * FROM query('SELECT 1')": "the function query() is not allowed",
    "SELECT * FROM '/etc/passwd'": "reading files is not allowed: FROM '/etc/passwd' would read a file",
    "SELECT * FROM dim_machine, '/etc/passwd'": "reading files is not allowed: '/etc/passwd' is not a table",
    "SELECT * FROM \"/etc/passwd\"": "reading files is not allowed",
    "SET enable_external_access = true": "SET statements are not allowed",
    "SET threads = 1": "SET statements are not allowed",
    "PRAGMA database_list": "PRAGMA statements are not allowed",
    "CALL pragma_version()": "CALL statements are not allowed",
    "CREATE TABLE stolen AS SELECT * FROM dim_machine": "CREATE statements are not allowed",
    "CREATE TEMP TABLE t AS SELECT 1": "CREATE statements are not allowed",
    "INSERT INTO dim_site VALUES (99, 'x', 'y', 'z')": "INSERT statements are not allowed",
    "UPDATE dim_machine SET age = 0": "UPDATE statements are not allowed",
    "DELETE FROM fact_failures": "DELETE statements are not allowed",
    "DROP TABLE fact_failures": "DROP statements are not allowed",
    "EXPORT DATABASE '{dir}'": "EXPORT statements are not allowed",
    "IMPORT DATABASE '{dir}'": "IMPORT statements are not allowed",
    "SELECT 1; DROP TABLE fact_failures": "one statement at a time: this SQL holds 2",
    "SELECT 1; SELECT 2": "one statement at a time: this SQL holds 2",
    "WITH x AS (DELETE FROM fact_failures RETURNING *) SELECT * FROM x": "DELETE is not allowed inside a query",
    "SELECT * INTO stolen FROM dim_machine": "SELECT ... INTO is not allowed",
    "/* hidden */ DROP TABLE dim_site": "DROP statements are not allowed",
    "SELECT * FROM not_a_table": "there is no table or view not_a_table in the warehouse",
    "SELECT getenv('LAKEFORGE_TOKEN')": "the function getenv() is not allowed",
    "SELECT current_setting('enable_external_access')": "the function current_setting() is not allowed",
    "SELECT $token": "unknown parameter $token",
    "DESCRIBE dim_machine": "DESCRIBE statements are not allowed",
    "": "there is no query",
}


def test_the_explorer_refuses_what_could_write_or_read_files(app_client: TestClient, built: Path,
                                                             tmp_path: Path) -> None:
    warehouse = built / "plant" / "warehouse.duckdb"
    before = hashlib.sha256(warehouse.read_bytes()).hexdigest()
    files_before = sorted(p.relative_to(built) for p in built.rglob("*"))
    out, other, folder = tmp_path / "stolen.csv", tmp_path / "other.duckdb", tmp_path / "export"
    problems = []
    for template, message in FORBIDDEN.items():
        sql = template.format(out=out, db=other, dir=folder)
        response = app_client.get("/api/explore", params={"sql": sql})
        error = response.json().get("error", "") if response.status_code == 400 else ""
        if response.status_code != 400 or message not in error or "\n" in error:
            problems.append(f"{sql!r}: {response.status_code} {response.text[:300]}")
        csv_response = app_client.get("/explore/csv", params={"sql": sql})
        if csv_response.status_code != 400 or message not in csv_response.text:
            problems.append(f"csv {sql!r}: {csv_response.status_code} {csv_response.text[:300]}")
    assert not problems, "\n".join(problems)
    page = get(app_client, "/explore", status=400, params={"sql": f"COPY dim_machine TO '{out}'"})
    assert page.one("sql-error").text.startswith("COPY statements are not allowed: the explorer runs one read-only")
    assert app_client.post("/api/explore", json={"sql": "DROP TABLE dim_site"}).status_code == 400
    assert not out.exists() and not other.exists() and not folder.exists()
    assert hashlib.sha256(warehouse.read_bytes()).hexdigest() == before
    assert sorted(p.relative_to(built) for p in built.rglob("*")) == files_before
    assert warehouse_rows(built / "plant", "SELECT count(*) FROM fact_failures")[0][0] > 0


def test_duckdb_itself_refuses_on_the_explorers_connection(built: Path, tmp_path: Path) -> None:
    """The second guard, without the first: the connection the explorer runs on cannot write or reach files."""
    con = connect_duckdb(built / "plant" / "warehouse.duckdb")
    try:
        for sql in (f"COPY dim_machine TO '{tmp_path / 'x.csv'}'", f"ATTACH '{tmp_path / 'x.duckdb'}' AS x",
                    "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM glob('/etc/*')", "INSTALL httpfs",
                    "LOAD httpfs", "CREATE TABLE t AS SELECT 1", "DELETE FROM fact_failures",
                    "SET enable_external_access = true", "SET lock_configuration = false", "SET memory_limit = '64GB'",
                    f"EXPORT DATABASE '{tmp_path / 'dump'}'"):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
        secret_rows = pa.table({"token": [TOKEN]})  # DuckDB would read a Python variable by name; not here
        with pytest.raises(duckdb.CatalogException):
            con.execute("SELECT * FROM secret_rows")
        assert secret_rows.num_rows == 1
        assert con.execute("SELECT count(*) FROM dim_machine").fetchall()[0][0] == 24
    finally:
        con.close()
    assert list(tmp_path.iterdir()) == []


# -- the token ---------------------------------------------------------------------------------------------------


def test_requests_without_the_token_are_refused(app_client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    anonymous = TestClient(app_client.app)
    caplog.set_level(logging.INFO, logger="lakeforge")
    wrong = "wrong-token-9876543210abcdef"
    for url in ("/", "/ops", "/machines", "/machines/1", "/explore", "/explore?sql=SELECT+1",
                "/explore/csv?sql=SELECT+1", "/api/executive", "/api/explore?sql=SELECT+1", "/metrics",
                "/static/app.css", "/nothing-here"):
        response = anonymous.get(url)
        assert response.status_code == 401, url
        assert response.json()["error"] == "unauthorized: this server needs its access token", url
        assert response.headers["www-authenticate"] == 'Bearer realm="lakeforge"'
        assert anonymous.get(url, headers={"authorization": f"Bearer {wrong}"}).json()["error"] == (
            "unauthorized: the access token is wrong")
        assert anonymous.get(url, params={"token": wrong}).status_code == 401
    assert anonymous.post("/api/explore", json={"sql": "SELECT 1"}).status_code == 401
    assert anonymous.get("/", headers={"authorization": f"Basic {TOKEN}"}).json()["error"] == (
        "unauthorized: the Authorization header is not `Bearer <token>`")
    browser = anonymous.get("/", headers={"accept": "text/html"})
    assert browser.status_code == 401 and browser.headers["content-type"].startswith("text/html")
    assert Page(browser.text).one("auth-error").text == "Unauthorized: this server needs its access token."
    assert Page(browser.text).has("token-input")
    # /health stays open for liveness probes; /metrics takes the bearer token (Prometheus' authorization)
    assert anonymous.get("/health").status_code == 200
    metrics = anonymous.get("/metrics", headers=BEARER)
    assert metrics.status_code == 200 and "lakeforge_up 1.0" in metrics.text
    assert TOKEN not in caplog.text and wrong not in caplog.text
    assert "refused GET /metrics from testclient: this server needs its access token" in caplog.text


def test_the_token_in_the_url_signs_the_browser_in(app_client: TestClient) -> None:
    browser = TestClient(app_client.app, headers={"accept": "text/html"})
    response = browser.get("/ops", params={"site": "1", "token": TOKEN}, follow_redirects=False)
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    value = rest.split(";")[0]
    assert name == "lakeforge_token_80" and value == session_value(TOKEN) and TOKEN not in cookie
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
    assert '<meta http-equiv="refresh" content="0;url=/ops?site=1">' in response.text  # the token leaves the URL
    page = get(browser, "/ops?site=1")  # the cookie stays in the client
    assert page.has("kpi-last-run")
    stranger = TestClient(app_client.app, headers={"accept": "text/html"})
    stranger.cookies.set(name, session_value("another-token-of-another-server"))
    assert stranger.get("/").status_code == 401
    # scripts: ?token= is served as is, without a cookie; security headers everywhere
    api = TestClient(app_client.app).get("/api/options", params={"token": TOKEN})
    assert api.status_code == 200 and "set-cookie" not in api.headers
    assert api.headers["x-frame-options"] == "DENY" and api.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'self'" in api.headers["content-security-policy"]


def test_where_the_token_comes_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    first, source = resolve_token()
    assert source == "generated" and len(first) >= 40 and resolve_token()[0] != first
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert resolve_token() == (TOKEN, "env")
    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(ConfigError, match="too short: 5 characters, at least 16"):
        resolve_token()
