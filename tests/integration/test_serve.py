"""``lakeforge serve`` as a real process: ``/metrics`` equals the event log and the lakehouse; a scheduled run
happens once per fire, whether the server is killed during the run, stopped with SIGTERM during it (it waits
for the run and exits 0), or restarted right after it."""

from __future__ import annotations

import datetime as dt
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from lakeforge.ops.scheduler import STATE
from lakeforge.pipeline import events
from lakeforge.project import Project
from lakeforge.web.auth import TOKEN_ENV

YEARLY = "0 0 1 1 *"


class Server:
    """``lakeforge serve`` in a subprocess on 127.0.0.1 (a port the OS picks, and the access token it made, read
    from its first line; or ``token``, given as LAKEFORGE_TOKEN)."""

    def __init__(self, project: Path, *args: str, log: Path, token: str | None = None) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV} | ({TOKEN_ENV: token} if token else {})
        with open(log, "a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lakeforge.cli", "serve", "--project", str(project), "--port", "0", *args],
                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=30):
            self.proc.kill()
            raise AssertionError(f"lakeforge serve printed nothing in 30 s: {log.read_text()}")
        self.line = self.proc.stdout.readline()
        assert self.line.startswith("lakeforge serve: http://127.0.0.1:"), (self.line, log.read_text())
        url = urlsplit(self.line.split()[2])
        self.url = f"{url.scheme}://{url.netloc}"
        self.token = token or dict(parse_qsl(url.query))["token"]
        self.auth = {"authorization": f"Bearer {self.token}"}
        self.health()  # answered at once: no retry, the URL line is printed once the port listens

    def health(self) -> dict[str, Any]:
        response = requests.get(f"{self.url}/health", headers=self.auth, timeout=20)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        response = requests.get(f"{self.url}/metrics", headers=self.auth, timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
        return found

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=40)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        assert self.proc.stdout is not None
        self.output = self.proc.stdout.read()
        self.proc.stdout.close()
        return code


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(project: Path, *args: str, token: str | None = None) -> Server:
        server = Server(project, *args, log=tmp_path / "serve.log", token=token)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def demo(tmp_path: Path) -> Path:
    Project.init(tmp_path / "demo").generate(machines=12, days=3, seed=7, files=6)
    with Project(tmp_path / "demo") as project:
        project.run()
    return tmp_path / "demo"


def land_more(path: Path) -> None:
    Project(path).generate(machines=12, days=2, seed=7, files=4, start="2024-01-04")


def by(metric: dict[tuple[tuple[str, str], ...], float], label: str) -> dict[str, float]:
    return {dict(key)[label]: value for key, value in metric.items()}


def test_metrics_equal_the_event_log_and_the_lakehouse(tmp_path: Path, served: Callable[..., Server]) -> None:
    path = demo(tmp_path)
    server = served(path, "--no-scheduler")
    assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 401  # the token is needed
    health = server.health()
    project = Project(path)
    runs = events.read(project, event="run").to_pylist()
    assert health["status"] == "ok" and health["last_run"]["run_id"] == runs[0]["run_id"]
    assert health["scheduler"] == {"enabled": False, "running": False, "schedules": [], "blocked": None}

    def check() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        scraped_at = time.time()
        found = server.metrics()
        log = events.read(project)
        runs = [r for r in log.to_pylist() if r["event"] == "run"]
        stages = [r for r in log.to_pylist() if r["event"] == "stage"]
        assert found["lakeforge_up"] == {(): 1.0}
        statuses = by(found["lakeforge_runs_total"], "status")
        assert {s: n for s, n in statuses.items() if n} == {
            s: float(sum(r["status"] == s for r in runs)) for s in {r["status"] for r in runs}}
        rows: dict[tuple[tuple[str, str], ...], float] = {}
        for stage in stages:
            key = (("kind", stage["kind"]), ("stage", stage["name"]))
            rows[key] = rows.get(key, 0) + (stage["rows_out"] or 0)
        assert found["lakeforge_rows_total"] == rows
        assert by(found["lakeforge_bytes_ingested_total"], "source") == {
            source: float(sum(s["bytes_in"] or 0 for s in stages if s["name"] == f"ingest:{source}"))
            for source in project.config.sources}
        assert found["lakeforge_cost_usd_total"][()] == pytest.approx(sum(r["cost"] for r in runs))
        last = max(runs, key=lambda r: r["started_at"])
        assert found["lakeforge_run_duration_seconds"][()] == pytest.approx(last["seconds"])
        assert by(found["lakeforge_stage_duration_seconds"], "stage") == pytest.approx(
            {s["name"]: s["seconds"] for s in stages if s["run_id"] == last["run_id"]})
        assert found["lakeforge_last_success_timestamp_seconds"][()] == pytest.approx(
            max(r["ended_at"] for r in runs if r["status"] in ("succeeded", "nothing_to_do")).timestamp())
        status = project.status()
        freshness = by(found["lakeforge_table_freshness_seconds"], "table")
        assert set(freshness) == {t["name"] for t in status["tables"]}
        for table in status["tables"]:
            age = scraped_at - project.catalog.info(table["name"]).last_modified
            assert freshness[table["name"]] == pytest.approx(age, abs=3)
            assert freshness[table["name"]] == pytest.approx(table["freshness_seconds"], abs=3)
            assert found["lakeforge_table_rows"][(("table", table["name"]),)] == table["rows"]
        assert by(found["lakeforge_backlog_files"], "source") == {
            s: float(b["files"]) for s, b in status["backlog"].items()}
        assert by(found["lakeforge_backlog_bytes"], "source") == {
            s: float(b["bytes"]) for s, b in status["backlog"].items()}
        return found

    found = check()
    checks = events.read(project, event="expectation").to_pylist()  # one run: its pass rates
    assert len({c["run_id"] for c in checks}) == 1
    assert found["lakeforge_dq_pass_rate"] == pytest.approx({
        (("model", c["name"].split(":")[0]), ("rule", c["name"].split(":")[1])):
            c["dq_passed"] / (c["dq_passed"] + c["dq_failed"]) for c in checks})
    assert min(found["lakeforge_dq_pass_rate"].values()) < 1  # the generator's bad readings
    assert sum(found["lakeforge_backlog_files"].values()) == 0

    land_more(path)  # a backlog, then a run that takes it (the server sees the event log's new version)
    found = check()
    assert by(found["lakeforge_backlog_files"], "source") == {
        s: float(project.backlog().get(s, 0)) for s in project.config.sources}
    assert found["lakeforge_backlog_files"][(("source", "telemetry"),)] == 4
    with Project(path) as running:
        result = running.run()
    assert result.status == "succeeded"
    found = check()
    assert by(found["lakeforge_runs_total"], "status")["succeeded"] == 2
    assert sum(found["lakeforge_backlog_files"].values()) == 0
    assert server.health()["last_run"]["run_id"] == result.run_id

    assert server.stop() == 0
    assert "stopped" in server.output


def write_state(path: Path, cron: str, last_fire: str) -> None:
    Project(path).lakehouse.write_json_atomic(STATE, {"version": 1, "schedules": {
        "yearly": {"cron": cron, "last_fire": last_fire, "status": "succeeded"}}})


def read_state(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path / "lakehouse" / STATE).read_text())["schedules"]["yearly"]
    return data


def wait_for(what: Callable[[], Any], *, seconds: float = 30, every: float = 0.01) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def test_scheduled_runs_once_per_fire_across_kill_and_restarts(tmp_path: Path,
                                                                served: Callable[..., Server]) -> None:
    path = demo(tmp_path)
    with open(path / "lakeforge.yml", "a") as fh:
        fh.write(f"orchestration:\n  schedules:\n    yearly: {{cron: '{YEARLY}'}}\n"
                 "alerts:\n  rules:\n    - {name: stale, type: freshness, max_age_minutes: 0.001}\n")
    project = Project(path)
    now = dt.datetime.now(dt.UTC)
    fire = dt.datetime(now.year, 1, 1, tzinfo=dt.UTC).isoformat()  # due: the last fire claimed was in 2000
    markers = path / "lakehouse" / "_lakeforge" / "runs"

    def run_ids() -> list[str]:
        return sorted(events.read(project, event="run")["run_id"].to_pylist())

    def records() -> set[str]:
        return {p.name for p in markers.glob("*")}

    def started() -> set[str]:
        return {name for name in records() if name.endswith(".started")}

    before = run_ids()
    assert len(before) == 1

    # 1. killed (SIGKILL) in the middle of the scheduled run: nothing logged yet, the run's marker left
    land_more(path)
    write_state(path, YEARLY, "2000-01-01T00:00:00+00:00")
    server = served(path)
    wait_for(lambda: read_state(path)["status"] == "running")  # claimed, before the run starts
    wait_for(lambda: started() - set())  # the run has taken the lock and is under way
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    assert read_state(path)["last_fire"] == fire
    assert run_ids() == before
    left = records()
    assert any(name.endswith(".started") for name in left)

    # 2. restarted at once: the claimed fire is not run again
    server = served(path)
    health = wait_for(lambda: (h := server.health())["scheduler"]["last_alert_check"] and h)  # checked at start
    assert health["scheduler"]["running"] is True
    assert health["scheduler"]["schedules"][0]["status"] == "interrupted"
    assert (path / "lakehouse" / "_lakeforge" / "alerts" / "state.json").exists()
    assert health["scheduler"]["schedules"][0]["last_fire"] == fire
    assert dt.datetime.fromisoformat(health["scheduler"]["schedules"][0]["next_fire"]).year == now.year + 1
    time.sleep(1.5)  # the loop has ticked (at start, and it would at any due time)
    assert records() == left and run_ids() == before
    assert server.stop() == 0

    # 3. the next fire (state made due again) runs; SIGTERM during the run waits for it, then exits 0
    write_state(path, YEARLY, "2000-01-01T00:00:00+00:00")
    server = served(path)
    wait_for(lambda: started() - left)  # the run is under way (its marker beside the one of step 1)
    assert server.stop() == 0
    state = read_state(path)
    assert state["status"] == "succeeded", state
    log = {r["run_id"]: r for r in events.read(project, event="run").to_pylist()}
    assert set(log) - set(before) == {state["run_id"], next(n for n in left if n.endswith(".started"))
                                      .removesuffix(".started")}
    assert log[state["run_id"]]["status"] == "succeeded"  # the files of step 1, ingested now
    assert sorted(r["status"] for r in log.values()) == ["crashed", "succeeded", "succeeded"]
    after = run_ids()

    # 4. restarted right after a run: no second run for its fire
    server = served(path)
    health = wait_for(lambda: (h := server.health())["scheduler"]["schedules"][0]["status"] == "succeeded" and h)
    assert health["status"] == "ok" and health["last_run"]["run_id"] == state["run_id"]
    found = server.metrics()
    assert by(found["lakeforge_runs_total"], "status") == {"crashed": 1, "failed": 0, "nothing_to_do": 0,
                                                            "succeeded": 2}
    assert found["lakeforge_run_duration_seconds"][()] == pytest.approx(log[state["run_id"]]["seconds"])
    assert found["lakeforge_last_success_timestamp_seconds"][()] == pytest.approx(
        log[state["run_id"]]["ended_at"].timestamp())
    time.sleep(1.5)
    assert run_ids() == after and read_state(path) == state
    assert not any(name.endswith(".started") for name in records())
    assert server.stop() == 0


def test_serve_needs_its_token(tmp_path: Path, served: Callable[..., Server]) -> None:
    """The token of LAKEFORGE_TOKEN is not printed; without it only /health answers; with it the dashboards do."""
    path = demo(tmp_path)
    token = "serve-test-token-0123456789"
    server = served(path, "--no-scheduler", token=token)
    assert token not in server.line and "the token is $LAKEFORGE_TOKEN" in server.line
    for url in ("/", "/ops", "/explore", "/metrics", "/api/executive"):
        response = requests.get(f"{server.url}{url}", timeout=10)
        assert response.status_code == 401, url
        assert response.json()["error"] == "unauthorized: this server needs its access token"
    anonymous = requests.get(f"{server.url}/health", timeout=10)
    assert anonymous.status_code == 200 and set(anonymous.json()) == {"status"}  # no errors, no schedules
    page = requests.get(f"{server.url}/?site=1", headers=server.auth, timeout=30)
    assert page.status_code == 200 and 'data-testid="kpi-availability"' in page.text
    browser = requests.Session()
    browser.headers["accept"] = "text/html"
    signed = browser.get(f"{server.url}/ops", params={"token": token}, timeout=30)
    assert signed.status_code == 200 and "url=/ops" in signed.text  # the cookie, then the URL without the token
    assert browser.get(f"{server.url}/ops", timeout=30).status_code == 200
    rows = requests.get(f"{server.url}/api/explore", params={"sql": "SELECT count(*) FROM dim_machine"},
                        headers=server.auth, timeout=30).json()["rows"]
    assert rows == [[12]]
    assert server.stop() == 0
    assert token not in server.log.read_text()
