"""``lakeforge deploy databricks``: the Asset Bundle's job and pipeline are valid Databricks settings, follow the
task graph and ``deploy:``, and the declarative pipeline's files say what each flavor can run."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml
from databricks.sdk.service.jobs import JobSettings
from databricks.sdk.service.pipelines import PipelineSpec
from pyspark.pipelines.cli import unpack_pipeline_spec
from sqlglot import exp
from typer.testing import CliRunner

from lakeforge.cli import app
from lakeforge.deploy.databricks import quartz_cron, task_key, write_job_bundle
from lakeforge.deploy.pipeline import write_pipeline
from lakeforge.deploy.pipeline_bronze import java_datetime_pattern
from lakeforge.errors import ConfigError
from lakeforge.project import Project
from tests.conftest import write_project

MakeProject = Callable[..., Project]


@pytest.fixture
def example(tmp_path: Path) -> Project:
    return Project.init(tmp_path / "demo")  # the models are enough: no data


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _job(out: Path, key: str = "lakeforge_telemetry") -> dict[str, Any]:
    job: dict[str, Any] = _yaml(out / "resources" / f"{key}.job.yml")["resources"]["jobs"][key]
    return job


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- cron ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cron", "quartz"), [
    ("0 * * * *", "0 0 * * * ?"),
    ("*/15 6-18 * * 1-5", "0 */15 6-18 ? * MON-FRI"),
    ("30 2 * * 0", "0 30 2 ? * SUN"),
    ("0 0 * * 7", "0 0 0 ? * SUN"),  # cron's 7 is Sunday too
    ("0 0 * * 5-7", "0 0 0 ? * SUN,FRI-SAT"),
    ("0 12 * * mon,wed,fri", "0 0 12 ? * MON,WED,FRI"),
    ("0 0 * * */2", "0 0 0 ? * SUN,TUE,THU,SAT"),  # cron counts from 0 (Sunday), Quartz from 1
    ("0 0 1 * *", "0 0 0 1 * ?"),
    ("5 4 1,15 jan,jul *", "0 5 4 1,15 JAN,JUL ?"),
    ("0 0 * * *", "0 0 0 * * ?"),
    ("@daily", "0 0 0 * * ?"),
    ("@weekly", "0 0 0 ? * SUN"),
])
def test_cron_becomes_quartz_with_named_days(cron: str, quartz: str) -> None:
    assert quartz_cron(cron) == quartz


@pytest.mark.parametrize(("cron", "says"), [
    ("0 * * *", "5-field"),
    ("61 * * * *", "outside 0-59"),
    ("0 0 1 * 1", "both the day of the month and the day of the week"),
    ("0 0 * * funday", "not a valid day of week"),
    ("*/0 * * * *", "outside"),
])
def test_cron_that_quartz_cannot_say_is_refused(cron: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        quartz_cron(cron)


# -- the job bundle ------------------------------------------------------------------------------------------------
def test_job_is_valid_job_settings_and_follows_the_task_graph(example: Project, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    write_job_bundle(example, out)
    job = _job(out)
    # from_dict silently drops keys it does not know: a round trip equal to the input means every key is right
    assert JobSettings.from_dict(job).as_dict() == job
    graph = example.tasks()
    assert [t["task_key"] for t in job["tasks"]] == [task_key(t) for t in graph]
    for task, entry in zip(graph, job["tasks"], strict=True):
        assert [d["task_key"] for d in entry.get("depends_on", [])] == [task_key(d) for d in graph[task]]
        assert entry["python_wheel_task"] == {
            "package_name": "lakeforge", "entry_point": "lakeforge",
            "parameters": ["run", "--task", task, "--project", "${workspace.file_path}/project", "--engine", "spark",
                           "--json"]}
        assert entry["job_cluster_key"] == "lakeforge"
        assert entry["libraries"] == [{"pypi": {"package": "lakeforge"}}]
        retry = (entry["max_retries"], entry["min_retry_interval_millis"], entry["timeout_seconds"])
        assert retry == (2, 300_000, 3600)
    assert task_key("ingest:telemetry") == "ingest__telemetry" and task_key("silver.telemetry") == "silver__telemetry"
    assert job["max_concurrent_runs"] == 1
    assert job["schedule"] == {"quartz_cron_expression": "0 0 * * * ?", "timezone_id": "UTC",
                               "pause_status": "UNPAUSED"}
    assert job["health"] == {"rules": [{"metric": "RUN_DURATION_SECONDS", "op": "GREATER_THAN", "value": 90 * 60}]}
    assert "email_notifications" not in job  # nobody to tell
    cluster = job["job_clusters"][0]["new_cluster"]
    assert (cluster["spark_version"], cluster["node_type_id"], cluster["num_workers"]) == (
        "17.3.x-scala2.13", "i3.xlarge", 2)
    assert cluster["spark_conf"]["spark.sql.session.timeZone"] == "UTC"


def test_bundle_root_targets_and_the_project_copy(example: Project, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    written = write_job_bundle(example, out)
    root = _yaml(out / "databricks.yml")
    assert root["bundle"] == {"name": "lakeforge_telemetry"} and root["include"] == ["resources/*.yml"]
    assert root["sync"] == {"include": ["project/**"]}
    assert root["targets"]["dev"] == {"mode": "development", "default": True}
    assert root["targets"]["prod"]["mode"] == "production"
    assert (out / "project" / "lakeforge.yml").read_bytes() == (example.path / "lakeforge.yml").read_bytes()
    models = sorted(p.relative_to(example.path / "models") for p in (example.path / "models").rglob("*.sql"))
    assert sorted(p.relative_to(out / "project" / "models") for p in (out / "project" / "models").rglob("*.sql")) \
        == models
    assert any("landing is the local folder" in n for n in written.notes)


def test_bundle_is_deterministic_and_drops_stale_models(example: Project, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write_job_bundle(example, first)
    write_job_bundle(example, second)
    assert _files(first) == _files(second)
    (example.path / "models" / "gold" / "dim_site.sql").unlink()
    write_job_bundle(Project(example.path), first)  # again into the same folder
    assert not (first / "project" / "models" / "gold" / "dim_site.sql").exists()
    assert "gold__dim_site" not in {t["task_key"] for t in _job(first)["tasks"]}


def test_deploy_settings_map_to_the_job(tmp_path: Path) -> None:
    project = Project(write_project(tmp_path / "proj", {
        "name": "test",
        "sources": {"events": {"schema_hints": {"id": "bigint"}}},
        "engine": {"type": "spark", "shuffle_partitions": 8, "conf": {"spark.sql.ansi.enabled": "false"}},
        "deploy": {"schedule": None, "retries": 0, "retry_delay_minutes": 0.5, "timeout_minutes": None,
                   "sla_minutes": 30, "notify": ["ops@example.com"],
                   "databricks": {"spark_version": "16.4.x-scala2.12", "node_type_id": "m5.large",
                                  "num_workers": 0, "wheel": "/Volumes/main/libs/lakeforge-0.1.0-py3-none-any.whl"}},
    }, {"silver.events": "SELECT id FROM bronze.events"}))  # (make_project would set the engine)
    out = tmp_path / "bundle"
    write_job_bundle(project, out)
    job = _job(out, "lakeforge_test")
    assert JobSettings.from_dict(job).as_dict() == job
    assert "schedule" not in job  # triggered only
    assert job["email_notifications"] == {"on_failure": ["ops@example.com"],
                                          "on_duration_warning_threshold_exceeded": ["ops@example.com"]}
    assert job["health"]["rules"][0]["value"] == 1800
    task = job["tasks"][0]
    assert (task["max_retries"], task["min_retry_interval_millis"]) == (0, 30_000) and "timeout_seconds" not in task
    assert task["libraries"] == [{"whl": "/Volumes/main/libs/lakeforge-0.1.0-py3-none-any.whl"}]
    cluster = job["job_clusters"][0]["new_cluster"]
    assert (cluster["spark_version"], cluster["node_type_id"], cluster["num_workers"]) == ("16.4.x-scala2.12",
                                                                                          "m5.large", 0)
    assert cluster["spark_conf"]["spark.sql.shuffle.partitions"] == "8"
    assert cluster["spark_conf"]["spark.sql.ansi.enabled"] == "false"


def test_out_must_be_a_folder_of_its_own(example: Project, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="over the project itself"):
        write_job_bundle(example, example.path)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "project").mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not written by lakeforge"):
        write_job_bundle(example, foreign)
    assert (foreign / "notes.txt").exists() and (foreign / "project").is_dir()


# -- the declarative pipeline ---------------------------------------------------------------------------------------
def _statements(path: Path) -> list[str]:
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("--"))
    return [s.strip() for s in text.split(";\n") if s.strip().rstrip(";")]


def _query(statement: str) -> str | None:
    _, sep, query = statement.partition("\nAS\n")
    return query.rstrip(";") if sep else None


def test_databricks_pipeline_bundle_is_valid_and_its_sql_parses(example: Project, tmp_path: Path) -> None:
    out = tmp_path / "pipeline"
    write_pipeline(example, out, target="databricks")
    resources = _yaml(out / "resources" / "lakeforge_telemetry.pipeline.yml")["resources"]
    pipeline = resources["pipelines"]["lakeforge_telemetry"]
    assert PipelineSpec.from_dict(pipeline).as_dict() == pipeline
    assert pipeline["libraries"] == [{"glob": {"include": "../transformations/**"}}]
    assert pipeline["configuration"]["lakeforge.reader"] == "cloudFiles"
    refresh = resources["jobs"]["lakeforge_telemetry_refresh"]
    assert JobSettings.from_dict(refresh).as_dict() == refresh
    assert refresh["tasks"][0]["pipeline_task"]["pipeline_id"] == "${resources.pipelines.lakeforge_telemetry.id}"
    assert refresh["schedule"]["quartz_cron_expression"] == "0 0 * * * ?"
    spec = _yaml(out / "spark-pipeline.yml")
    unpack_pipeline_spec(spec)  # what spark-pipelines itself accepts
    assert spec["database"] == "telemetry"
    sql_files = sorted((out / "transformations").rglob("*.sql"))
    assert {p.stem for p in sql_files} == {m.table for m in example.models() if m.config.kind != "view"}
    for path in sql_files:
        for statement in _statements(path):
            assert statement.startswith(("CREATE OR REFRESH ", "CREATE TEMPORARY VIEW ", "CREATE FLOW ")), statement
            query = _query(statement)
            if query is not None:
                tree = sqlglot.parse_one(query, read="databricks")
                assert isinstance(tree, exp.Query), statement
                names = {t.name for t in tree.find_all(exp.Table)}
                assert not any("." in n for n in names)
            predicates = re.findall(r"CONSTRAINT `\w+` EXPECT \((.*)\)(?: ON VIOLATION [A-Z ]+)?,?$", statement,
                                    flags=re.MULTILINE)
            assert len(predicates) == statement.count("CONSTRAINT ")
            for predicate in predicates:
                sqlglot.parse_one(predicate, read="databricks")
    compile((out / "transformations" / "bronze.py").read_text(), "bronze.py", "exec")


def test_pipeline_is_deterministic(example: Project, tmp_path: Path) -> None:
    for target in ("databricks", "spark"):
        out = tmp_path / target
        write_pipeline(example, out, target=target)
        first = _files(out)
        write_pipeline(Project(example.path), out, target=target)
        assert _files(out) == first


def test_databricks_flavor_maps_models_to_auto_cdc_and_materialized_views(example: Project, tmp_path: Path) -> None:
    out = tmp_path / "pipeline"
    write_pipeline(example, out, target="databricks")
    silver = out / "transformations" / "silver"
    sites = (silver / "sites.sql").read_text()  # on_conflict: update, order_by: SCD type 1
    assert "CREATE OR REFRESH STREAMING TABLE silver_sites (" in sites
    assert "FROM STREAM(bronze_sites) AS sites" in sites
    assert re.search(r"AS AUTO CDC INTO silver_sites\nFROM STREAM\(silver_sites__changes\)\nKEYS \(`site_id`\)\n"
                     r"SEQUENCE BY struct\(`_batch_id`, `_source_file`\)\nSTORED AS SCD TYPE 1", sites)
    machines = (silver / "machines.sql").read_text()  # scd: 2
    assert "STORED AS SCD TYPE 2\nTRACK HISTORY ON `model`, `age`, `site_id`, `install_date`" in machines
    assert "SEQUENCE BY `_ingested_at`" in machines
    assert "__START_AT AS valid_from, __END_AT AS valid_to" in machines
    telemetry = (silver / "telemetry.sql").read_text()  # keep_first: a materialized view keeping the first row
    assert "CREATE OR REFRESH MATERIALIZED VIEW silver_telemetry (" in telemetry and "AUTO CDC" not in telemetry
    assert "QUALIFY row_number() OVER (PARTITION BY `machine_id`, `ts` ORDER BY CASE WHEN " in telemetry
    assert "`_batch_id` ASC NULLS LAST, `_source_file` ASC NULLS LAST) = 1" in telemetry
    assert "CLUSTER BY (`machine_id`, `ts`)" in telemetry
    assert "CONSTRAINT `ts_present` EXPECT (NOT ts IS NULL) ON VIOLATION DROP ROW" in telemetry
    assert re.search(r"CONSTRAINT `all_sensors_reported` EXPECT \([^\n]*\)\n", telemetry)  # warn: EXPECT only
    assert "CREATE OR REFRESH MATERIALIZED VIEW quarantine_silver_telemetry" in telemetry
    hourly = (out / "transformations" / "gold" / "fact_telemetry_hourly.sql").read_text()
    assert "FROM silver_telemetry AS telemetry" in hourly and "QUALIFY" not in hourly  # an aggregate: no dedup


EVERY_ACTION = {
    "sources": {"events": {"format": "csv", "schema_hints": {"id": "bigint", "ts": "timestamp"},
                           "timestamp_format": "%d/%m/%Y %H:%M"}},
}
EVENTS = """\
    -- kind: incremental
    -- expectations:
    --   - {name: id_known, expr: id IS NOT NULL, action: quarantine}
    --   - {name: id_positive, expr: id > 0, action: drop}
    --   - {name: ts_known, not_null: ts, action: fail}
    --   - {name: recent, expr: "ts > '2020-01-01'", action: warn}
    --   - {name: one_per_id, unique: id, action: warn}
    SELECT id, ts, _rescued_data FROM bronze.events
"""


def test_expectations_by_action_in_each_flavor(make_project: MakeProject, tmp_path: Path) -> None:
    project = make_project(EVERY_ACTION, {"silver.events": EVENTS})
    dbx = write_pipeline(project, tmp_path / "dbx", target="databricks")
    text = (tmp_path / "dbx" / "transformations" / "silver" / "events.sql").read_text()
    assert "CREATE OR REFRESH STREAMING TABLE silver_events (" in text  # no key: streams from bronze
    assert "CONSTRAINT `id_known` EXPECT (NOT id IS NULL) ON VIOLATION DROP ROW" in text
    assert "CONSTRAINT `id_positive` EXPECT (id > 0) ON VIOLATION DROP ROW" in text
    assert "CONSTRAINT `ts_known` EXPECT (NOT `ts` IS NULL) ON VIOLATION FAIL UPDATE" in text
    assert "CONSTRAINT `recent` EXPECT (ts > '2020-01-01')\n" in text
    assert "one_per_id" not in text.split("quarantine_silver_events")[0]  # a rule over the table: left out
    assert any("one_per_id" in n and "left out" in n for n in dbx.notes)
    spark = write_pipeline(project, tmp_path / "oss", target="spark")
    text = (tmp_path / "oss" / "transformations" / "silver" / "events.sql").read_text()
    assert "CONSTRAINT" not in text and "OR REFRESH" not in text
    assert "CREATE STREAMING TABLE silver_events" in text
    assert "WHERE coalesce((NOT id IS NULL), false)\n  AND coalesce((id > 0), false)\n" in text
    assert "assert_true(coalesce((NOT `ts` IS NULL), false), 'expectation ts_known failed') IS NULL" in text
    assert "recent" not in text.split("quarantine_silver_events")[0]
    assert any("recent" in n and "not evaluated" in n for n in spark.notes)
    quarantine = text.split("CREATE MATERIALIZED VIEW quarantine_silver_events")[1]
    assert "WHERE NOT (coalesce((NOT id IS NULL), false))" in quarantine and "_failed_rules" in quarantine
    bronze = (tmp_path / "oss" / "transformations" / "bronze.py").read_text()
    settings = json.loads(bronze.split('SOURCES = json.loads(r"""')[1].split('""")')[0])
    assert settings == [{
        "source": "events", "table": "bronze_events", "folder": "events", "formats": ["csv"], "globs": {"csv": "*"},
        "name_regex": None, "columns": {"id": "BIGINT", "ts": "TIMESTAMP"}, "timestamp_format": "dd/MM/yyyy HH:mm",
        "header": True, "delimiter": ",", "quote": '"', "max_files_per_batch": 1000, "max_bytes_per_batch": None,
        "allow_overwrites": False, "clean_source": "off", "move_to": "processed", "retention_hours": 0.0,
        "rescue_unknown": False}]


def test_spark_flavor_spec_and_local_spark_settings(example: Project, tmp_path: Path) -> None:
    out = tmp_path / "oss"
    write_pipeline(example, out, target="spark")
    spec = _yaml(out / "spark-pipeline.yml")
    unpack_pipeline_spec(spec)
    assert spec["configuration"]["lakeforge.reader"] == "files"
    assert spec["configuration"]["lakeforge.landing"] == str(example.path / "landing")
    assert spec["configuration"]["spark.sql.sources.default"] == "delta"
    assert (spec["catalog"], spec["database"], spec["storage"]) == ("spark_catalog", "default",
                                                                     (out / "storage").as_uri())
    # static settings cannot be in the spec (every flow re-applies its configuration): they are in conf/
    assert not any(k in spec["configuration"] for k in ("spark.jars", "spark.sql.extensions", "spark.ui.enabled"))
    defaults = dict(line.split(" ", 1) for line in (out / "conf" / "spark-defaults.conf").read_text().splitlines()
                    if line and not line.startswith("#"))
    assert defaults["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert defaults["spark.sql.warehouse.dir"] == str(out / "warehouse")
    assert defaults["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert "SPARK_DIST_CLASSPATH=" in (out / "conf" / "spark-env.sh").read_text()
    machines = (out / "transformations" / "silver" / "machines.sql").read_text()
    assert "AUTO CDC" not in machines and "lead(valid_from) OVER (PARTITION BY `machine_id`" in machines
    for path in sorted((out / "transformations").rglob("*.sql")):
        for statement in _statements(path):
            query = _query(statement)
            assert query is not None and isinstance(sqlglot.parse_one(query, read="spark"), exp.Query)


def test_bronze_python_reads_both_ways(example: Project, tmp_path: Path) -> None:
    write_pipeline(example, tmp_path / "p", target="databricks")
    bronze = (tmp_path / "p" / "transformations" / "bronze.py").read_text()
    compile(bronze, "bronze.py", "exec")
    settings = json.loads(bronze.split('SOURCES = json.loads(r"""')[1].split('""")')[0])
    assert [s["table"] for s in settings] == [f"bronze_{n}" for n in example.config.sources]
    telemetry = settings[0]
    assert telemetry["formats"] == ["jsonl", "csv", "parquet"]  # format: auto
    assert telemetry["columns"]["machine_id"] == "BIGINT" and telemetry["columns"]["ts"] == "TIMESTAMP"
    assert '"cloudFiles" if READER == "cloudFiles"' in bronze and "rescuedDataColumn" in bronze


def test_strptime_to_java_patterns() -> None:
    assert java_datetime_pattern("%Y-%m-%dT%H:%M:%S.%f") == "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"
    assert java_datetime_pattern("%d/%m/%Y %H:%M") == "dd/MM/yyyy HH:mm"
    with pytest.raises(ConfigError, match="%U"):
        java_datetime_pattern("%U")


def test_pipeline_needs_declared_columns(make_project: MakeProject, tmp_path: Path) -> None:
    project = make_project({"sources": {"events": {}}}, {"silver.events": "SELECT * FROM bronze.events"})
    with pytest.raises(ConfigError, match="schema_hints"):
        write_pipeline(project, tmp_path / "p", target="spark")


def test_cli_writes_each_kind(example: Project) -> None:
    runner = CliRunner()
    for args, folder in ((["--as", "job"], "databricks"), (["--as", "pipeline"], "databricks-pipeline"),
                         (["--as", "pipeline", "--target", "spark"], "spark-pipeline")):
        result = runner.invoke(app, ["deploy", "databricks", "-p", str(example.path), *args, "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout.splitlines()[0])
        assert data["out"] == str(example.path / "deploy" / folder) and data["files"]
    bad = runner.invoke(app, ["deploy", "databricks", "-p", str(example.path), "--as", "job", "--target", "spark"])
    assert bad.exit_code != 0


def test_bronze_python_projects_odd_names_with_the_engines_projection(make_project: MakeProject,
                                                                      tmp_path: Path) -> None:
    odd = {"id": "bigint", "a`b": "double", 'q"r s': "timestamp", "it's": "string"}
    project = make_project({"sources": {"events": {"format": "auto", "schema_hints": odd,
                                                   "timestamp_format": "%d/%m/%Y %H:%M"}}},
                           {"silver.events": "SELECT * FROM bronze.events"})
    write_pipeline(project, tmp_path / "p", target="spark")
    bronze = (tmp_path / "p" / "transformations" / "bronze.py").read_text()
    compile(bronze, "bronze.py", "exec")
    projections = json.loads(bronze.split('PROJECTIONS = json.loads(r"""')[1].split('""")')[0])
    text, parquet = projections["bronze_events"]["text"], projections["bronze_events"]["parquet"]
    assert text["schema"] == "`id` STRING, `a``b` STRING, `q\"r s` STRING, `it's` STRING"
    assert parquet["schema"] == "`id` BIGINT, `a``b` DOUBLE, `q\"r s` TIMESTAMP, `it's` STRING"
    typed = [sqlglot.parse_one(c, read="databricks") for c in text["columns"]]
    assert [c.alias_or_name for c in typed] == list(odd)
    assert "TRY_TO_TIMESTAMP(`q\"r s`, 'dd/MM/yyyy HH:mm')" in text["columns"][2]
    rescued = sqlglot.parse_one(text["rescued"], read="databricks")
    assert {c.name for c in rescued.find_all(exp.Column)} == {"id", "a`b", 'q"r s'}  # text stays text
    assert parquet["columns"] == ["`id` AS `id`", "`a``b` AS `a``b`", "`q\"r s` AS `q\"r s`", "`it's` AS `it's`"]
    assert parquet["rescued"] == "CAST(NULL AS STRING)"  # Parquet is read with the declared types
