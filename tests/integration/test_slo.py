"""``lakeforge report slo``: the objectives measured from event logs with known answers, and from real runs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from lakeforge.cli import app
from lakeforge.errors import LakeforgeError
from lakeforge.ops import slo
from lakeforge.pipeline import events
from lakeforge.project import Project

TARGETS = {"window_days": 7, "success_rate": 0.9, "freshness_minutes": 10, "dq_accuracy": 0.99,
           "recovery_minutes": 15, "cost_per_gb": 0.10}


def project_with(path: Path, targets: dict[str, Any] = TARGETS) -> Project:
    Project.init(path)
    config = yaml.safe_load((path / "lakeforge.yml").read_text())
    config["monitoring"] = {"slo": targets}
    (path / "lakeforge.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return Project(path)


def clock(now: dt.datetime) -> Any:
    base = now - dt.timedelta(days=1)
    return lambda minutes: base + dt.timedelta(minutes=minutes)


def run(at: Any, status: str, start: float, end: float, *, cost: float | None = 0.01,
        bytes_in: int | None = None) -> dict[str, Any]:
    return {"run_id": f"r{start}", "event": "run", "name": "telemetry", "kind": "run", "status": status,
            "started_at": at(start), "ended_at": at(end), "cost": cost, "bytes_in": bytes_in}


def observed(at: Any, name: str, minutes: float, when: float) -> dict[str, Any]:
    return {"run_id": "x", "event": "table", "name": name, "kind": name.split(".")[0], "status": "observed",
            "started_at": at(when) - dt.timedelta(minutes=minutes), "ended_at": at(when),
            "freshness_seconds": minutes * 60}


def known_log(now: dt.datetime) -> list[dict[str, Any]]:
    """10 runs in the window (8 good), two failure episodes of 22 and 18 minutes, 3 GB for USD 0.09; gold.a's
    freshness 1..20 minutes, silver.b's 5; rule checks 990 of 1000 passed. Plus rows outside the window."""
    at = clock(now)
    rows = [
        run(at, "succeeded", 0, 1, bytes_in=1_500_000_000),
        run(at, "failed", 10, 11),                      # episode 1 begins ...
        run(at, "succeeded", 30, 32, bytes_in=1_500_000_000),  # ... and ends: 32 - 10 = 22 minutes
        run(at, "succeeded", 40, 41),
        run(at, "nothing_to_do", 50, 50.5),
        run(at, "crashed", 60, 60, cost=None),          # episode 2 ...
        run(at, "succeeded", 70, 78),                   # ... 18 minutes
        run(at, "succeeded", 80, 81),
        run(at, "succeeded", 90, 91),
        run(at, "nothing_to_do", 100, 100.5),
        run(at, "failed", -10 * 24 * 60, -10 * 24 * 60 + 1, bytes_in=10**12),  # 11 days ago: outside
    ]
    rows += [observed(at, "gold.a", m, m * 5) for m in range(1, 21)]
    rows += [observed(at, "silver.b", 5, w) for w in range(0, 100, 10)]
    rows += [observed(at, "quarantine.silver_b", 10_000, 50),   # quarantine tables are not measured
             observed(at, "gold.a", 99_999, -10 * 24 * 60)]      # outside the window
    rows += [{"run_id": "r30", "event": "expectation", "name": "silver.b:not_null", "kind": "drop",
              "status": "passed", "started_at": at(30), "ended_at": at(31), "dq_passed": 500, "dq_failed": 0},
             {"run_id": "r70", "event": "expectation", "name": "silver.b:range", "kind": "quarantine",
              "status": "failed", "started_at": at(70), "ended_at": at(71), "dq_passed": 490, "dq_failed": 10},
             {"run_id": "old", "event": "expectation", "name": "silver.b:range", "kind": "quarantine",
              "status": "failed", "started_at": at(-20_000), "ended_at": at(-20_000), "dq_passed": 0,
              "dq_failed": 10**6}]
    return rows


def test_known_answers(tmp_path: Path) -> None:
    now = dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.UTC)
    project = project_with(tmp_path / "p")
    events.append(project, known_log(now))
    found = slo.compute(project, now=now)
    json.dumps(found)  # the CLI's --json
    assert found["runs"] == 10 and found["window_days"] == 7
    assert found["to"] == now.isoformat() and found["from"] == (now - dt.timedelta(days=7)).isoformat()
    assert found["runs_by_status"] == {"succeeded": 6, "nothing_to_do": 2, "failed": 1, "crashed": 1}
    objectives = found["objectives"]
    assert set(objectives) == {"success_rate", "freshness", "dq_accuracy", "recovery", "cost_per_gb"}
    for objective in objectives.values():
        assert {"value", "target", "unit", "met", "detail"} <= set(objective)

    assert objectives["success_rate"]["value"] == pytest.approx(0.8)
    assert objectives["success_rate"]["met"] is False  # target 0.9

    fresh = objectives["freshness"]
    assert fresh["value"] == pytest.approx(19.05)  # p95 of 1..20, linear interpolation
    assert fresh["met"] is False and fresh["unit"] == "minutes"
    assert [(t["table"], t["observations"], t["met"]) for t in fresh["tables"]] == [
        ("gold.a", 20, False), ("silver.b", 10, True)]
    assert fresh["tables"][1]["p95_minutes"] == pytest.approx(5)

    assert objectives["dq_accuracy"]["value"] == pytest.approx(0.99)
    assert objectives["dq_accuracy"]["met"] is True  # 0.99 >= 0.99

    recovery = objectives["recovery"]
    assert recovery["value"] == pytest.approx(20)  # (22 + 18) / 2
    assert [(e["minutes"], e["open"], e["failed_runs"]) for e in recovery["episodes"]] == [
        (pytest.approx(22), False, 1), (pytest.approx(18), False, 1)]
    assert recovery["met"] is False  # target 15

    assert objectives["cost_per_gb"]["value"] == pytest.approx(0.09 / 3)
    assert objectives["cost_per_gb"]["met"] is True
    assert found["met"] is False

    # the window can be narrowed: the hour to minute 135 holds the runs of minutes 80-100 only, all good
    narrow = slo.compute(project, now=clock(now)(135), window_days=1 / 24)
    assert narrow["runs"] == 3 and narrow["objectives"]["success_rate"]["value"] == 1
    assert narrow["objectives"]["recovery"]["met"] is None  # no failure: not measurable
    assert narrow["objectives"]["cost_per_gb"]["value"] is None  # nothing ingested
    console = Console(record=True, width=160)
    slo.render(found, console)
    text = console.export_text()
    assert "pipeline success rate" in text and "80.00%" in text and "gold.a" in text and "missed" in text


def test_an_open_episode_counts_up_to_now(tmp_path: Path) -> None:
    now = dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.UTC)
    at = clock(now)
    project = project_with(tmp_path / "p")
    events.append(project, [run(at, "succeeded", 0, 1), run(at, "failed", 10, 11), run(at, "crashed", 20, 20),
                            run(at, "failed", 30, 31, cost=None, bytes_in=None)])
    recovery = slo.compute(project, now=now)["objectives"]["recovery"]
    (episode,) = recovery["episodes"]
    assert episode["open"] is True and episode["failed_runs"] == 3 and episode["recovered_at"] is None
    assert recovery["value"] == pytest.approx(24 * 60 - 10)
    assert "still open" in recovery["detail"] and recovery["met"] is False


def test_nothing_to_measure_is_said_and_not_met(tmp_path: Path) -> None:
    project = project_with(tmp_path / "p")
    found = slo.compute(project)
    assert found["runs"] == 0 and found["met"] is False
    for objective in found["objectives"].values():
        assert objective["value"] is None and objective["met"] is None
        assert objective["detail"].startswith("not measurable")
    with pytest.raises(LakeforgeError, match="longer than 0"):
        slo.compute(project, window_days=0)


def test_cli_json_and_exit_code(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    at = clock(now)
    project = project_with(tmp_path / "good")
    good = [run(at, "succeeded", 0, 1, bytes_in=10**9), observed(at, "gold.a", 3, 1),
            {"run_id": "r0", "event": "expectation", "name": "m:r", "started_at": at(0), "ended_at": at(1),
             "dq_passed": 100, "dq_failed": 0}]
    events.append(project, good)
    runner = CliRunner()
    result = runner.invoke(app, ["report", "slo", "--project", str(project.path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["met"] is True and data["runs"] == 1
    assert data["objectives"]["success_rate"]["value"] == 1 and data["objectives"]["recovery"]["met"] is None
    plain = runner.invoke(app, ["report", "slo", "--project", str(project.path)])
    assert plain.exit_code == 0 and "every measurable objective is met" in plain.stdout

    bad = project_with(tmp_path / "bad")
    events.append(bad, known_log(now))
    result = runner.invoke(app, ["report", "slo", "--project", str(bad.path), "--json"])
    assert result.exit_code == 3  # a check failing (docs/cli.md's exit codes)
    data = json.loads(result.stdout)
    assert data["met"] is False and data["objectives"]["success_rate"]["value"] == pytest.approx(0.8)
    wide = runner.invoke(app, ["report", "slo", "--project", str(bad.path), "--json", "--window-days", "30"])
    assert json.loads(wide.stdout)["runs"] == 11  # the run of 11 days ago is in a 30-day window


def test_real_runs_with_a_failure_and_a_crash(tmp_path: Path) -> None:
    Project.init(tmp_path / "demo").generate(machines=12, days=3, seed=7, files=6)
    broken = tmp_path / "demo" / "models" / "gold" / "broken.sql"
    with Project(tmp_path / "demo") as project:
        assert project.run().status == "succeeded"
        broken.write_text("-- kind: materialized\nSELECT no_such_column FROM silver.telemetry\n")
        with pytest.raises(LakeforgeError):
            project.run()
        broken.unlink()
        failed = project.runs()[0]
        assert failed["status"] == "failed"
        # a run that died after the failure: the next run logs it as crashed
        events.mark_started(project, "20000101T000000000000-dead00", failed["started_at"].isoformat())
        recovered = project.run()
        assert recovered.status in ("succeeded", "nothing_to_do") and recovered.crashed_runs
        found = slo.compute(project)
        runs = sorted(project.runs(), key=lambda r: (r["started_at"], r["ended_at"]))  # started_at: to the second
    assert [r["status"] for r in runs] == ["succeeded", "failed", "crashed", recovered.status]
    objectives = found["objectives"]
    assert found["runs"] == 4 and objectives["success_rate"]["value"] == pytest.approx(0.5)
    (episode,) = objectives["recovery"]["episodes"]
    assert episode["failed_runs"] == 2 and episode["open"] is False
    assert objectives["recovery"]["value"] == pytest.approx(
        (runs[3]["ended_at"] - runs[1]["started_at"]).total_seconds() / 60)
    assert objectives["recovery"]["met"] is True  # a few seconds against 15 minutes
    tables = {t["table"]: t for t in objectives["freshness"]["tables"]}
    assert {"bronze.telemetry", "silver.telemetry", "gold.fact_telemetry_hourly"} <= set(tables)
    assert not any(name.startswith("quarantine.") for name in tables)
    assert tables["silver.telemetry"]["observations"] == 3  # at the end of each of the three runs
    assert objectives["freshness"]["met"] is True
    assert 0.9 < objectives["dq_accuracy"]["value"] < 1  # the example's rules drop and quarantine some rows
    assert objectives["cost_per_gb"]["value"] > 0
    assert found["met"] is False  # 2 good runs of 4
