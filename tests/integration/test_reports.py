"""The standard reports: defined once (reports/*.sql), kept in the warehouse, checked against gold computed
independently in Python; written by sqlglot for every target (golden SQL per dialect)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lakeforge.cli import app
from lakeforge.errors import ConfigError
from lakeforge.project import Project
from tests.golden import ROOT as GOLDEN_ROOT
from tests.golden import check

GOLDEN = GOLDEN_ROOT / "reports"
STANDARD = {"fleet_availability", "mtbf_mttr_by_model", "failures_by_component", "sensor_health", "data_freshness"}


def _gold(project: Project, name: str) -> list[dict]:
    return project.table(f"gold.{name}").to_pylist()


def _repairs(project: Project) -> dict[tuple, float]:
    """(machine, component, failure ts) -> hours until its corrective maintenance (None when none yet)."""
    fixes = defaultdict(list)
    for m in _gold(project, "fact_maintenance"):
        if m["reason"] == "failure":
            fixes[(m["machine_id"], m["component"])].append(m["ts"])
    out = {}
    for f in _gold(project, "fact_failures"):
        later = [ts for ts in fixes[(f["machine_id"], f["component"])] if ts >= f["ts"]]
        out[(f["machine_id"], f["component"], f["ts"])] = (
            (min(later) - f["ts"]).total_seconds() / 3600 if later else None)
    return out


@pytest.fixture
def loaded(tmp_path: Path) -> Project:
    project = Project.init(tmp_path / "demo")
    project.generate(machines=20, days=8, seed=11, files=4)
    project = Project(tmp_path / "demo")
    assert project.run().status == "succeeded"
    return project


def test_reports_equal_gold_computed_independently(loaded: Project) -> None:
    assert {r.name for r in loaded.reports()} == STANDARD
    hourly = _gold(loaded, "fact_telemetry_hourly")
    machines = {m["machine_id"]: m for m in _gold(loaded, "dim_machine")}
    failures = _gold(loaded, "fact_failures")
    assert failures, "the generated data must hold failures for this test to mean anything"
    repairs = _repairs(loaded)
    assert any(h for h in repairs.values()), "repairs take time in the generated data"

    by_component = {r["component"]: r for r in loaded.report("failures_by_component").to_pylist()}
    counts = Counter(f["component"] for f in failures)
    assert {c: r["failures"] for c, r in by_component.items()} == dict(counts)
    for component, row in by_component.items():
        assert row["machines_affected"] == len({f["machine_id"] for f in failures if f["component"] == component})
        assert row["share_of_failures"] == pytest.approx(counts[component] / len(failures))
        assert row["operating_hours_per_failure"] == pytest.approx(len(hourly) / counts[component])
        assert row["last_failure"] == max(f["ts"] for f in failures if f["component"] == component)

    per_model = {r["model"]: r for r in loaded.report("mtbf_mttr_by_model").to_pylist()}
    hours = Counter(machines[h["machine_id"]]["model"] for h in hourly)
    assert {m: r["operating_hours"] for m, r in per_model.items()} == dict(hours)
    for model, row in per_model.items():
        fails = [key for key in repairs if machines[key[0]]["model"] == model]
        assert row["failures"] == len(fails)
        if fails:
            assert row["mtbf_hours"] == pytest.approx(hours[model] / len(fails))
            known = [repairs[k] for k in fails if repairs[k] is not None]
            assert row["mttr_hours"] == pytest.approx(sum(known) / len(known))
        else:
            assert row["mtbf_hours"] is None and row["mttr_hours"] is None

    availability = {r["date"]: r for r in loaded.report("fleet_availability").to_pylist()}
    per_day = Counter(h["hour"].date() for h in hourly)
    repair_by_day: dict = defaultdict(float)
    for (_, _, ts), h in repairs.items():
        repair_by_day[ts.date()] += h or 0.0
    assert set(availability) == set(per_day)
    for day, row in availability.items():
        assert row["reporting_hours"] == per_day[day] and row["fleet_hours"] == 24 * len(machines)
        expected = max(per_day[day] - repair_by_day[day], 0) / (24 * len(machines))
        assert row["availability"] == pytest.approx(expected)
        assert 0 <= row["availability"] <= 1

    health = loaded.report("sensor_health").to_pylist()
    assert {r["machine_id"] for r in health} == {h["machine_id"] for h in hourly}
    newest = max(h["hour"] for h in hourly)
    one = health[0]
    mine = [h for h in hourly if h["machine_id"] == one["machine_id"]]
    recent = [h for h in mine if (newest - h["hour"]).total_seconds() < 24 * 3600]
    assert one["hours_last_24h"] == len(recent)
    assert one["vibration_baseline"] == pytest.approx(sum(h["vibration_avg"] for h in mine) / len(mine))
    assert {r["status"] for r in health} <= {"ok", "drifting", "silent"}

    freshness = {r["table_name"]: r for r in loaded.report("data_freshness").to_pylist()}
    assert freshness["fact_telemetry_hourly"]["source_version"] == loaded.catalog.version("gold.fact_telemetry_hourly")
    assert freshness["fact_telemetry_hourly"]["newest_reading"] == newest
    assert all(0 <= r["minutes_since_load"] < 60 for r in freshness.values())


def test_report_cli_lists_and_shows(loaded: Project) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["report", "--project", str(loaded.path), "--json"])
    assert listed.exit_code == 0, listed.output
    assert {r["name"] for r in json.loads(listed.stdout)} == STANDARD
    shown = runner.invoke(app, ["report", "failures_by_component", "--project", str(loaded.path), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["columns"][:2] == ["component", "failures"]
    missing = runner.invoke(app, ["report", "nope", "--project", str(loaded.path)])
    assert isinstance(missing.exception, ConfigError) and "failures_by_component" in str(missing.exception)


def test_a_report_comes_in_its_own_order_or_else_sorted_by_its_columns(loaded: Project) -> None:
    rows = loaded.report("sensor_health").to_pylist()  # no ORDER BY: by machine, then the next columns
    assert len(rows) == 20 and [r["machine_id"] for r in rows] == sorted(r["machine_id"] for r in rows)
    (loaded.path / "reports" / "shuffled.sql").write_text(
        "SELECT x, y FROM (VALUES (3, 'c'), (1, NULL), (1, 'a'), (2, 'b')) AS t(x, y)\n")
    assert loaded.run().status in ("succeeded", "nothing_to_do")
    assert [(r["x"], r["y"]) for r in loaded.report("shuffled").to_pylist()] == [(1, "a"), (1, None), (2, "b"),
                                                                                 (3, "c")]
    (loaded.path / "reports" / "machines_by_hours.sql").write_text(
        "SELECT machine_id, count(*) AS hours FROM gold.fact_telemetry_hourly GROUP BY machine_id "
        "ORDER BY hours DESC, machine_id DESC\n")
    assert loaded.run().status in ("succeeded", "nothing_to_do")
    own = loaded.report("machines_by_hours").to_pylist()
    assert own == sorted(own, key=lambda r: (-r["hours"], -r["machine_id"])) and len(own) == 20
    assert own != sorted(own, key=lambda r: r["machine_id"])  # not re-sorted by the first column


def test_a_report_named_like_a_gold_table_is_refused(loaded: Project) -> None:
    (loaded.path / "reports" / "dim_machine.sql").write_text("SELECT 1 AS x\n")
    with pytest.raises(ConfigError, match="dim_machine"):
        loaded.reports()


@pytest.mark.parametrize("dialect", ["duckdb", "snowflake", "postgres"])
def test_report_sql_per_dialect_matches_golden(tmp_path: Path, dialect: str) -> None:
    """sqlglot writes each report for each target; the files under tests/golden/reports/<dialect>/ are the
    reviewed output (regenerate with LAKEFORGE_UPDATE_GOLDEN=1 and read the diff)."""
    project = Project.init(tmp_path / "demo")
    for report in project.reports():
        check(GOLDEN / dialect / f"{report.name}.sql", report.sql_for(dialect) + "\n")


def _normalized(rows: list[dict], *, drop: set[str] = frozenset()) -> list[tuple]:  # type: ignore[assignment]
    """Rows as sorted tuples: floats rounded, decimals as floats, timestamps in UTC; columns in name order."""
    import datetime as dt
    from decimal import Decimal

    def value(v: object) -> object:
        if isinstance(v, Decimal):
            v = float(v)
        if isinstance(v, float):
            return round(v, 6)
        if isinstance(v, dt.datetime):
            return v.astimezone(dt.UTC) if v.tzinfo else v.replace(tzinfo=dt.UTC)
        return v

    return sorted((tuple((k.lower(), value(v)) for k, v in sorted(r.items()) if k.lower() not in drop)
                   for r in rows), key=repr)


def _with_warehouse(root: Path, warehouse: dict) -> Project:
    import yaml

    project = Project.init(root)
    project.generate(machines=20, days=8, seed=11, files=4)
    config = yaml.safe_load((root / "lakeforge.yml").read_text())
    config["warehouse"] = warehouse
    (root / "lakeforge.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return Project(root)


@pytest.mark.parametrize("target", [pytest.param("postgres", marks=pytest.mark.postgres),
                                    pytest.param("snowflake", marks=pytest.mark.snowflake)])
def test_every_report_answers_the_same_on_every_target(loaded: Project, tmp_path: Path, target: str,
                                                       request: pytest.FixtureRequest) -> None:
    """The reports, written once, give DuckDB's answers on PostgreSQL (materialized views) and Snowflake."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        if target == "postgres":
            dsn = request.getfixturevalue("postgres_dsn")
            project = _with_warehouse(tmp_path / "pg", {"type": "postgres", "dsn": dsn})
        else:
            from tests.snowflake_fake import fake_snowflake, snowflake_config

            stack.enter_context(fake_snowflake(tmp_path / "fakesnow"))
            project = _with_warehouse(tmp_path / "sf", snowflake_config())
        assert project.run().status == "succeeded"
        for report in loaded.reports():
            drop = {"loaded_at", "minutes_since_load", "hours_since_newest_reading", "row_count"}
            ours = _normalized(loaded.report(report.name).to_pylist(), drop=drop)
            theirs = _normalized(project.report(report.name).to_pylist(), drop=drop)
            assert theirs == ours, f"{report.name} on {target} differs from DuckDB"
            assert ours, report.name
