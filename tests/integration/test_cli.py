"""The ``lakeforge`` command as a user runs it: JSON contracts, exit codes, one red line on errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def lakeforge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lakeforge.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "plant"
    assert lakeforge("init", str(path)).returncode == 0
    gen = lakeforge("generate", "--project", str(path), "--machines", "5", "--days", "2", "--files", "3", "--json")
    assert gen.returncode == 0, gen.stderr
    data = json.loads(gen.stdout)
    assert set(data) >= {"files", "rows", "path"} and data["files"] == 8 and data["rows"] > 5 * 2 * 24 * 6
    return path


def test_run_json_contract_then_nothing_to_do(project: Path) -> None:
    first = lakeforge("run", "--json", cwd=project)
    assert first.returncode == 0, first.stderr
    run = json.loads(first.stdout)
    assert run["status"] == "succeeded" and run["run_id"] and run["bytes_processed"] > 0
    for stage in run["stages"]:
        assert {"name", "rows_in", "rows_out", "rows_dropped", "rows_quarantined", "seconds"} <= set(stage)
        assert stage["rows_in"] == stage["rows_out"] + stage["rows_dropped"] + stage["rows_quarantined"]
    second = lakeforge("run", "--json", "--project", str(project))
    assert json.loads(second.stdout)["status"] == "nothing_to_do"
    plain = lakeforge("run", "--project", str(project))
    assert "nothing to do" in plain.stdout
    # issue 23: a run with nothing to do (the example's ML stages included) imports none of the heavy libraries
    probe = ("import atexit, runpy, sys\n"
             "atexit.register(lambda: print(sorted(m for m in ('numpy', 'pyarrow', 'pandas', 'duckdb', 'sqlglot', "
             "'sklearn', 'lightgbm', 'mlflow') if m in sys.modules), file=sys.stderr))\n"
             f"sys.argv = ['lakeforge', 'run', '--project', {str(project)!r}]\n"
             "runpy.run_module('lakeforge.cli', run_name='__main__')\n")
    idle = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert "nothing to do" in idle.stdout and idle.stderr.strip().splitlines()[-1] == "[]", idle.stderr


def test_status_json_contract(project: Path) -> None:
    lakeforge("run", "--project", str(project))
    out = lakeforge("status", "--json", "--project", str(project))
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert {"tables", "quarantine_rows", "last_run"} <= set(status)
    names = {t["name"] for t in status["tables"]}
    assert {"bronze.telemetry", "silver.telemetry", "gold.fact_telemetry_hourly"} <= names
    for table in status["tables"]:
        assert {"name", "layer", "rows", "version", "last_modified", "freshness_seconds"} <= set(table)


def test_query_json_contract_and_layers(project: Path) -> None:
    lakeforge("run", "--project", str(project))
    out = lakeforge("query", "--json", "--project", str(project),
                    "SELECT count(*) AS n FROM silver.telemetry")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["columns"] == ["n"]
    out = lakeforge("query", "--json", "--project", str(project),
                    "SELECT machine_id, count(*) AS hours FROM fact_telemetry_hourly GROUP BY 1 ORDER BY 1")
    result = json.loads(out.stdout)
    assert result["columns"] == ["machine_id", "hours"] and [r[0] for r in result["rows"]] == [1, 2, 3, 4, 5]


def test_query_takes_the_projects_dialect_and_duckdb_on_request(project: Path) -> None:
    """Databricks SQL as the models are written (backticks, max_by, to_date); --dialect duckdb passes through."""
    lakeforge("run", "--project", str(project))
    databricks = lakeforge("query", "--json", "--project", str(project),
                           "SELECT `machine_id`, max_by(`volt_avg`, `hour`) AS last_volt, "
                           "to_date(max(`hour`)) AS last_day FROM gold.fact_telemetry_hourly GROUP BY 1 ORDER BY 1")
    assert databricks.returncode == 0, databricks.stderr
    rows = json.loads(databricks.stdout)["rows"]
    duck = lakeforge("query", "--json", "--dialect", "duckdb", "--project", str(project),
                     "SELECT \"machine_id\", arg_max(volt_avg, hour) AS last_volt, "
                     "CAST(max(hour) AS DATE) AS last_day FROM gold.fact_telemetry_hourly GROUP BY 1 ORDER BY 1")
    assert duck.returncode == 0, duck.stderr
    assert json.loads(duck.stdout)["rows"] == rows and len(rows) == 5
    struct = "SELECT {'volt': 1} AS s"  # a DuckDB struct literal: not Databricks SQL
    refused = lakeforge("query", "--project", str(project), struct)
    assert refused.returncode == 1 and "databricks SQL" in refused.stderr and "--dialect duckdb" in refused.stderr
    assert lakeforge("query", "--dialect", "duckdb", "--project", str(project), struct).returncode == 0


def test_errors_are_one_red_line_and_a_fix_with_exit_code_1(tmp_path: Path) -> None:
    (tmp_path / "lakeforge.yml").write_text("name: p\nwarehouse: {type: duckdb, paht: x}\n")
    out = lakeforge("status", "--project", str(tmp_path))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "warehouse.paht" in lines[0] and "lakeforge.yml" in lines[0]
    assert lines[1] == "fix: did you mean 'path'?"
    assert "Traceback" not in out.stderr
    debug = lakeforge("--debug", "status", "--project", str(tmp_path))
    assert "Traceback" in debug.stderr


def test_query_refuses_writes(project: Path) -> None:
    out = lakeforge("query", "--project", str(project), "DROP TABLE fact_telemetry_hourly")
    assert out.returncode == 1 and "read-only" in out.stderr


def test_plain_output_is_log_lines_when_not_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "p"
    lakeforge("init", str(path))
    lakeforge("generate", "--project", str(path), "--machines", "2", "--days", "1", "--files", "2")
    out = lakeforge("run", "--project", str(path))
    assert out.returncode == 0
    assert "lakeforge: ingest:telemetry:" in out.stderr and "\x1b[" not in out.stderr


@pytest.mark.slow
def test_demo_prints_its_summary(tmp_path: Path) -> None:
    out = lakeforge("demo", str(tmp_path / "demo"), "--machines", "10", "--days", "2")
    assert out.returncode == 0, out.stderr
    for text in ("stages", "data quality", "silver.telemetry", "try next", "succeeded"):
        assert text in out.stdout
    assert "no failure model trained" in out.stdout and "too few" in out.stdout  # 2 days: nothing to split
    again = lakeforge("run", "--json", "--project", str(tmp_path / "demo"))
    assert json.loads(again.stdout)["status"] == "nothing_to_do"


@pytest.mark.slow
def test_demo_trains_a_champion_and_scores_risk_and_anomalies_into_the_warehouse(tmp_path: Path) -> None:
    out = lakeforge("demo", str(tmp_path / "demo"), "--machines", "20", "--days", "10")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "made it the champion" in text and "machines at risk" in text and "anomalies (gold.anomalies)" in text
    for table in ("machine_risk", "anomalies"):
        found = lakeforge("query", "--json", "--project", str(tmp_path / "demo"), f"SELECT count(*) AS n FROM {table}")
        assert json.loads(found.stdout)["rows"][0][0] > 0, table


def test_deploy_iam_writes_the_policy_for_the_project_buckets(tmp_path: Path) -> None:
    (tmp_path / "lakeforge.yml").write_text(
        "name: p\nlanding: s3://acme-landing/raw\nlakehouse: s3://acme-lake/lakehouse\n"
        "sources:\n  telemetry: {clean_source: move, move_to: archive}\n")
    out = lakeforge("deploy", "iam", "--project", str(tmp_path), "--out", str(tmp_path / "policy.json"))
    assert out.returncode == 0, out.stderr
    alias = lakeforge("deploy", "iam", "--project", str(tmp_path), "--output", str(tmp_path / "again.json"))
    assert alias.returncode == 0, alias.stderr  # --output: the old name, kept hidden
    assert (tmp_path / "again.json").read_text() == (tmp_path / "policy.json").read_text()
    policy = json.loads((tmp_path / "policy.json").read_text())
    resources = {r for s in policy["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str)
                                                          else s["Resource"])}
    assert "arn:aws:s3:::acme-landing/raw/telemetry/*" in resources
    assert "arn:aws:s3:::acme-landing/raw/archive/*" in resources
    assert "arn:aws:s3:::acme-lake/lakehouse/*" in resources
    assert not any(r.endswith(":::acme-landing/*") for r in resources)
    local = lakeforge("deploy", "iam", "--project", str(tmp_path / "nope"))
    assert local.returncode == 1


def test_plan_and_dry_run(project: Path) -> None:
    out = lakeforge("plan", "--json", "--project", str(project), "--select", "gold.fact_telemetry_hourly+")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["models"][0]["name"] == "gold.fact_telemetry_hourly"
    dry = lakeforge("run", "--dry-run", "--project", str(project))
    assert dry.returncode == 0 and "silver.telemetry" in dry.stdout and "why" in dry.stdout


def test_profile_optimize_vacuum_commands(project: Path) -> None:
    lakeforge("run", "--project", str(project))
    out = lakeforge("profile", "silver.telemetry", "--json", "--project", str(project))
    assert out.returncode == 0, out.stderr
    profile = json.loads(out.stdout)
    assert profile["rows"] > 0 and {"volt", "ts"} <= {c["name"] for c in profile["columns"]}
    assert lakeforge("optimize", "bronze.telemetry", "--project", str(project)).returncode == 0
    vac = lakeforge("vacuum", "--project", str(project))
    assert vac.returncode == 0 and "dry run" in vac.stdout


def test_import_gx_appends_rules_to_a_model(tmp_path: Path) -> None:
    path = tmp_path / "p"
    lakeforge("init", str(path))
    lakeforge("generate", "--project", str(path), "--machines", "2", "--days", "1", "--files", "2")
    suite = {"name": "telemetry", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "volt"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "rotate", "min_value": 0,
                                                                  "max_value": 3000}},
        {"type": "expect_column_kl_divergence_to_be_less_than", "kwargs": {"column": "volt"}},
    ]}
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    out = lakeforge("import-gx", str(tmp_path / "suite.json"), "--project", str(path), "--model", "silver.telemetry")
    assert out.returncode == 0, out.stderr
    assert "2 rules added" in out.stdout and "kl_divergence" in out.stderr
    run = json.loads(lakeforge("run", "--json", "--project", str(path)).stdout)
    rules = {r["rule"] for r in run["expectations"] if r["model"] == "silver.telemetry"}
    assert {"volt_not_null", "rotate_between"} <= rules


def test_init_names_the_project_after_its_folder_or_the_name_given(tmp_path: Path) -> None:
    out = lakeforge("init", str(tmp_path / "press-line"))
    assert out.returncode == 0 and "created project press_line in" in out.stdout
    assert "name: press_line" in (tmp_path / "press-line" / "lakeforge.yml").read_text()
    named = lakeforge("init", str(tmp_path / "x"), "--name", "plant_7")
    assert named.returncode == 0 and "created project plant_7 in" in named.stdout
    bad = lakeforge("init", str(tmp_path / "y"), "--name", "7-plant")
    assert bad.returncode == 1 and "'7-plant' cannot name a project" in bad.stderr and "--name" in bad.stderr
    assert not (tmp_path / "y").exists()  # refused before anything was written


def test_version_usage_errors_and_flags_in_help() -> None:
    from lakeforge import __version__

    version = lakeforge("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"lakeforge {__version__}"
    usage = lakeforge("run", "--no-such-option")
    assert usage.returncode == 2 and "No such option" in usage.stderr  # 2: a usage error (docs/cli.md)
    for command in (["run"], ["init"], ["deploy", "iam"], ["deploy", "databricks"]):
        shown = lakeforge(*command, "--help")
        assert shown.returncode == 0 and "<bool>" not in shown.stdout, command  # a flag takes no value
        assert "--output" not in shown.stdout, command  # one name per concept: --out
    assert "--out" in lakeforge("deploy", "databricks", "--help").stdout
