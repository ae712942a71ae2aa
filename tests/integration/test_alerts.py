"""Alert rules on real runs of small projects, delivered to a local HTTP receiver and a local SMTP server."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakeforge.errors import ExpectationFailed
from lakeforge.ops.alerts import evaluate, status
from lakeforge.project import Project
from tests.conftest import write_project
from tests.receivers import HttpReceiver, SmtpReceiver, free_port, http_receiver, smtp_receiver

pytestmark = pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")

ROWS = [{"id": 1, "v": 5.0}, {"id": 2, "v": 500.0}, {"id": 3, "v": 7.0}, {"id": 4, "v": 9.0}]  # v=500: out of range
WEBHOOK_FIELDS = {"alert", "state", "severity", "message", "project", "subject", "value", "threshold", "at"}


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with smtp_receiver(credentials=("alerts", "s3cret")) as receiver:
        yield receiver


@pytest.fixture
def projects() -> Iterator[list[Project]]:
    opened: list[Project] = []
    yield opened
    for project in opened:
        project.close()


def model(action: str | None = "warn") -> str:
    rule = f"--   - {{name: v_range, in_range: {{column: v, min: 0, max: 100}}, action: {action}}}\n" if action else ""
    return ("-- expectations:\n" + rule if rule else "") + "SELECT id, v FROM bronze.events\n"


def open_project(root: Path, alerts: dict[str, Any], projects: list[Project], *, action: str | None = "warn",
                 land: int = 1) -> Project:
    config: dict[str, object] = {"name": "plant", "sources": {"events": {"format": "jsonl",
                                                      "schema_hints": {"id": "bigint", "v": "double"}}},
              "alerts": alerts}
    write_project(root, config, {"silver.events": model(action)})
    project = Project(root)
    projects.append(project)
    folder = project.landing.local_path("events")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(land):
        (folder / f"f{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return project


def reopen(project: Project, alerts: dict[str, Any], projects: list[Project]) -> Project:
    """The same project (lakehouse and alert state) with other alert settings."""
    config = project.config.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    write_project(project.path, {**config, "alerts": alerts}, {})
    again = Project(project.path)
    projects.append(again)
    return again


def later(minutes: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)


def keys(sent: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(s["state"], s["name"], s["subject"]) for s in sent}


def test_failure_fires_once_repeats_when_due_and_resolves_when_fixed(tmp_path: Path, http: HttpReceiver,
                                                                      projects: list[Project]) -> None:
    alerts = {"rules": [{"name": "run_failed", "type": "failure"}], "repeat_minutes": 30,
              "channels": {"hook": {"type": "webhook", "url": f"{http.url}/hook", "headers": {"X-Token": "t0k"}}}}
    project = open_project(tmp_path / "p", alerts, projects, action="fail")
    for _ in range(2):  # two failing runs: one message (de-duplicated)
        with pytest.raises(ExpectationFailed):
            project.run()
    assert [r.path for r in http.requests] == ["/hook"]
    body = http.requests[0].json
    assert set(body) == WEBHOOK_FIELDS and http.requests[0].headers["x-token"] == "t0k"
    assert body["state"] == "firing" and body["alert"] == "run_failed" and body["severity"] == "critical"
    assert body["project"] == "plant" and body["subject"] == "run" and body["value"] == "failed"
    assert "silver.events" in body["message"] and "v_range" in body["message"] and "lakeforge runs" in body["message"]
    [active] = status(project)
    assert active["name"] == "run_failed" and active["since"] and active["last_sent"] and active["pending"] == []

    assert evaluate(project, now=later(10)) == []  # throttled
    [repeat] = evaluate(project, now=later(31))
    assert repeat["state"] == "repeat" and repeat["channels"] == ["hook"]
    assert evaluate(project, now=later(40)) == []  # repeat_minutes counts from the repeat
    assert [r.json["state"] for r in http.requests] == ["firing", "repeat"]

    (project.path / "models" / "silver" / "events.sql").write_text(model(None))  # fixed
    assert project.run().status == "succeeded"
    assert [r.json["state"] for r in http.requests] == ["firing", "repeat", "resolved"]
    assert "no longer fires" in http.requests[-1].json["message"]
    assert status(project) == [] and evaluate(project) == []  # resolved once
    assert len(http.requests) == 3


def test_dq_long_run_cost_and_freshness_fire_then_resolve(tmp_path: Path, http: HttpReceiver,
                                                          projects: list[Project]) -> None:
    rules = [{"name": "dq_low", "type": "dq_pass_rate", "model": "silver.events", "min_pass_rate": 0.9},
             {"name": "dq_other", "type": "dq_pass_rate", "model": "silver.other", "min_pass_rate": 0.9},
             {"name": "slow", "type": "long_run", "max_seconds": 0.001, "severity": "warning"},
             {"name": "pricey", "type": "cost", "max_cost": 1e-9},
             {"name": "stale", "type": "freshness", "max_age_minutes": 60},
             {"name": "stale_missing", "type": "freshness", "table": "gold.nothing", "max_age_minutes": 60}]
    alerts = {"rules": rules, "repeat_minutes": 1000, "channels": {"hook": {"type": "webhook", "url": http.url}}}
    project = open_project(tmp_path / "p", alerts, projects)
    assert project.run().status == "succeeded"  # a warn rule: 3 of 4 rows pass
    states = {(b["state"], b["alert"], b["subject"]): b for b in http.bodies()}
    assert set(states) == {("firing", "dq_low", "silver.events:v_range"), ("firing", "slow", "run"),
                           ("firing", "pricey", "cost"), ("firing", "stale_missing", "gold.nothing")}
    dq = states[("firing", "dq_low", "silver.events:v_range")]
    assert dq["value"] == 0.75 and dq["threshold"] == 0.9 and "75.0%" in dq["message"]
    assert states[("firing", "slow", "run")]["severity"] == "warning"
    assert states[("firing", "pricey", "cost")]["value"] > 1e-9

    # two hours on: both tables are stale, each its own alert; the others (from the event log) still fire
    sent = evaluate(project, now=later(120))
    assert keys(sent) == {("firing", "stale", "bronze.events"), ("firing", "stale", "silver.events")}
    assert all(s["value"] >= 119 and s["threshold"] == 60 for s in sent)
    assert len(status(project)) == 6
    # now: the tables are fresh again
    assert keys(evaluate(project)) == {("resolved", "stale", "bronze.events"), ("resolved", "stale", "silver.events")}

    relaxed = [{**r, "min_pass_rate": 0.5} if r["type"] == "dq_pass_rate" else
               {**r, "max_seconds": 3600} if r["type"] == "long_run" else
               {**r, "max_cost": 100} if r["type"] == "cost" else r for r in rules if r["name"] != "stale_missing"]
    project = reopen(project, {**alerts, "rules": relaxed}, projects)
    assert keys(evaluate(project)) == {("resolved", "dq_low", "silver.events:v_range"), ("resolved", "slow", "run"),
                                       ("resolved", "pricey", "cost")}  # stale_missing left the config: dropped
    assert status(project) == [] and evaluate(project) == []


def test_every_channel_delivers_and_rules_route_to_named_channels(tmp_path: Path, http: HttpReceiver,
                                                                  smtp: SmtpReceiver,
                                                                  projects: list[Project]) -> None:
    alerts = {
        "rules": [{"name": "backlog_any", "type": "backlog", "max_files": 1},
                  {"name": "backlog_events", "type": "backlog", "source": "events", "max_files": 0,
                   "severity": "warning", "channels": ["mail"]}],
        "channels": {
            "hook": {"type": "webhook", "url": f"{http.url}/hook", "headers": {"Authorization": "Bearer abc"}},
            "chat": {"type": "slack", "url": f"{http.url}/services/T0/B0/xyz"},
            "mail": {"type": "email", "smtp_host": smtp.host, "smtp_port": smtp.port, "from": "lakeforge@plant.test",
                     "to": ["ops@plant.test", "oncall@plant.test"], "username": "alerts", "password": "s3cret"},
        }}
    project = open_project(tmp_path / "p", alerts, projects, land=3)  # files landed, not run
    sent = evaluate(project)
    assert keys(sent) == {("firing", "backlog_any", "events"), ("firing", "backlog_events", "events")}
    assert {s["name"]: s["channels"] for s in sent} == {"backlog_any": ["hook", "chat", "mail"],
                                                        "backlog_events": ["mail"]}

    [hook] = http.bodies("/hook")  # backlog_events is routed to mail only
    assert set(hook) == WEBHOOK_FIELDS and hook["alert"] == "backlog_any" and hook["value"] == 3
    assert hook["threshold"] == 1 and hook["subject"] == "events" and "lakeforge run" in hook["message"]
    assert http.requests[0].headers["authorization"] == "Bearer abc"
    [chat] = http.bodies("/services/T0/B0/xyz")
    assert set(chat) == {"text"} and "FIRING critical: backlog_any (events) on plant" in chat["text"]
    assert "3 files wait" in chat["text"]

    mails = smtp.wait_for(2)
    assert smtp.logins == ["alerts", "alerts"]
    assert sorted(m["Subject"] for m in mails) == ["[lakeforge] FIRING critical: backlog_any (events) on plant",
                                                   "[lakeforge] FIRING warning: backlog_events (events) on plant"]
    for mail in mails:
        assert mail["From"] == "lakeforge@plant.test" and mail["To"] == "ops@plant.test, oncall@plant.test"
        assert mail.envelope == ("lakeforge@plant.test", ["ops@plant.test", "oncall@plant.test"])  # type: ignore[attr-defined]
        body = mail.get_content()
        assert "files wait in the landing zone for source events" in body and "threshold: " in body

    assert evaluate(project) == []  # still firing: not sent again
    assert project.run().status == "succeeded"  # the backlog is ingested: resolved, on the same routes
    assert [b["state"] for b in http.bodies("/hook")] == ["firing", "resolved"]
    assert "RESOLVED critical: backlog_any" in http.bodies("/services/T0/B0/xyz")[-1]["text"]
    assert sorted(m["Subject"] for m in smtp.wait_for(4)[2:]) == [
        "[lakeforge] RESOLVED critical: backlog_any (events) on plant",
        "[lakeforge] RESOLVED warning: backlog_events (events) on plant"]


def test_a_failing_channel_fails_neither_the_run_nor_the_others_and_is_retried(
        tmp_path: Path, http: HttpReceiver, projects: list[Project], capsys: pytest.CaptureFixture[str]) -> None:
    alerts = {"rules": [{"name": "slow", "type": "long_run", "max_seconds": 0.001}],
              "channels": {"hook": {"type": "webhook", "url": f"{http.url}/hook"},
                           "chat": {"type": "slack", "url": f"{http.url}/services/T0/B0/secret-token"},
                           "mail": {"type": "email", "smtp_host": "127.0.0.1", "smtp_port": free_port(),
                                    "from": "a@plant.test", "to": ["b@plant.test"], "timeout_seconds": 2}}}
    project = open_project(tmp_path / "p", alerts, projects)
    http.fail_next(1, status=500)  # the webhook (first channel) answers 500
    assert project.run().status == "succeeded"
    err = capsys.readouterr().err
    assert "channel 'hook' (webhook)" in err and "HTTP 500" in err and "channel 'mail' (email)" in err
    assert "secret-token" not in err
    assert [(r.path, r.status) for r in http.requests] == [("/hook", 500), ("/services/T0/B0/secret-token", 200)]
    [active] = status(project)
    assert active["pending"] == ["hook", "mail"] and active["last_sent"]

    [retry] = evaluate(project)  # the next evaluation: the pending channels only
    assert retry["state"] == "firing" and retry["channels"] == ["hook"] and retry["failed"] == ["mail"]
    assert [(r.path, r.status) for r in http.requests][-1] == ("/hook", 200)
    assert http.requests[-1].json["state"] == "firing"
    assert status(project)[0]["pending"] == ["mail"]
    assert len(http.requests) == 3


def test_the_alerts_commands(tmp_path: Path, http: HttpReceiver, projects: list[Project]) -> None:
    alerts = {"rules": [{"name": "backlog_any", "type": "backlog", "max_files": 0}],
              "channels": {"hook": {"type": "webhook", "url": http.url}}}
    project = open_project(tmp_path / "p", alerts, projects)

    def lakeforge(*args: str, code: int) -> Any:
        done = subprocess.run([sys.executable, "-m", "lakeforge.cli", *args, "--project", str(project.path),
                               "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode == code, done.stderr
        return json.loads(done.stdout)

    [sent] = lakeforge("alerts", "check", code=3)  # 3: the command worked and an alert fires
    assert sent["state"] == "firing" and sent["name"] == "backlog_any" and "1 file waits" in sent["message"]
    [active] = lakeforge("alerts", code=3)
    assert {"name", "severity", "message", "since"} <= set(active) and active["severity"] == "critical"
    assert lakeforge("alerts", "check", code=3) == [] and len(http.requests) == 1  # still firing, already sent
    assert project.run().status == "succeeded"  # the backlog is ingested (and the run's evaluation resolves it)
    assert http.requests[-1].json["state"] == "resolved"
    assert lakeforge("alerts", "check", code=0) == [] and lakeforge("alerts", code=0) == []


def test_email_over_starttls_with_login(tmp_path: Path, projects: list[Project],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cryptography")
    with smtp_receiver(credentials=("alerts", "s3cret"), starttls=True) as smtp:
        assert smtp.cafile
        monkeypatch.setenv("SSL_CERT_FILE", smtp.cafile)  # trust the receiver's self-signed certificate
        alerts = {"rules": [{"name": "backlog_any", "type": "backlog", "max_files": 0}],
                  "channels": {"mail": {"type": "email", "smtp_host": smtp.host, "smtp_port": smtp.port,
                                        "starttls": True, "username": "alerts", "password": "s3cret",
                                        "from": "lakeforge@plant.test", "to": ["ops@plant.test"]}}}
        project = open_project(tmp_path / "p", alerts, projects)
        [sent] = evaluate(project)
        assert sent["channels"] == ["mail"] and sent["failed"] == []
        [mail] = smtp.wait_for(1)
        assert mail["Subject"] == "[lakeforge] FIRING critical: backlog_any (events) on plant"
        assert smtp.logins == ["alerts"]
