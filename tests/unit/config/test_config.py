from __future__ import annotations

from pathlib import Path

import pytest

from lakeforge.config import load_config
from lakeforge.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "lakeforge.yml").write_text(text)
    return tmp_path


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "name: plant\n"))
    assert config.engine.type == "duckdb"
    assert config.warehouse.type == "duckdb"
    assert config.dialect == "databricks"
    assert config.sources == {}


def test_unknown_setting_names_file_field_and_suggests_fix(tmp_path: Path) -> None:
    write(tmp_path, "name: plant\nsources:\n  telemetry: {fromat: jsonl}\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    text = str(info.value)
    assert "lakeforge.yml" in text
    assert "sources.telemetry.fromat" in text
    assert "did you mean 'format'" in text


def test_bad_enum_value_names_the_field_and_the_value(tmp_path: Path) -> None:
    write(tmp_path, "name: plant\nsources:\n  telemetry: {format: xml}\n")
    with pytest.raises(ConfigError, match=r"sources\.telemetry\.format.*'xml'"):
        load_config(tmp_path)


def test_unknown_engine_type_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "name: plant\nengine: {type: oracle}\n")
    with pytest.raises(ConfigError, match="engine"):
        load_config(tmp_path)


def test_missing_name_says_to_add_it(tmp_path: Path) -> None:
    write(tmp_path, "landing: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert "name: required setting is missing" in str(info.value)
    assert "add `name:`" in str(info.value)


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    write(tmp_path, "name: plant\nsources:\n  telemetry: {format: jsonl\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(tmp_path)


def test_csv_without_header_needs_columns(tmp_path: Path) -> None:
    write(tmp_path, "name: plant\nsources:\n  failures: {format: csv, header: false}\n")
    with pytest.raises(ConfigError, match="needs 'columns"):
        load_config(tmp_path)


def test_unknown_hint_type_lists_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, "name: plant\nsources:\n  t: {schema_hints: {ts: datetime64}}\n")
    with pytest.raises(ConfigError, match=r"unknown type 'datetime64'.*timestamp"):
        load_config(tmp_path)


def test_env_overlay_and_interpolation_and_secrets(tmp_path: Path) -> None:
    write(tmp_path, "name: plant\nlanding: ${LANDING_ROOT:-./landing}\nwarehouse: {path: wh.duckdb}\n")
    (tmp_path / "secrets.yml").write_text("lakehouse: /secret/lake\n")
    env = {"LAKEFORGE__WAREHOUSE__PATH": "/tmp/other.duckdb", "LANDING_ROOT": "/data/landing"}
    config = load_config(tmp_path, environ=env)
    assert config.warehouse.path == "/tmp/other.duckdb"
    assert config.landing == "/data/landing"
    assert config.lakehouse == "/secret/lake"
    assert load_config(tmp_path, environ={}).landing == "./landing"


def test_unset_variable_without_default_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "name: plant\nlanding: ${NOPE_NOT_SET}\n")
    with pytest.raises(ConfigError, match="NOPE_NOT_SET is not set"):
        load_config(tmp_path, environ={})


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lakeforge init"):
        load_config(tmp_path)


def test_unset_warehouse_and_channel_variables_wait_until_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """A command that neither connects nor sends (plan, status, a local run's stages) needs no credentials: the
    variables of the warehouse's connection and of the alert channels are checked when they are used, and the error
    names the variable and the setting (issue 20, point 8)."""
    from lakeforge.config.loader import require_set
    from lakeforge.ops.channels import Notification, send
    from lakeforge.project import Project

    for name in ("PG_PASSWORD_NOT_SET", "HOOK_TOKEN_NOT_SET"):
        monkeypatch.delenv(name, raising=False)
    write(tmp_path, "name: plant\n"
                    "warehouse: {type: postgres, host: 127.0.0.1, password: '${PG_PASSWORD_NOT_SET}'}\n"
                    "alerts:\n  channels:\n    hook: {type: webhook, url: 'http://127.0.0.1:9/h?t=${HOOK_TOKEN_NOT_SET}'}\n")
    project = Project(tmp_path)
    assert project.plan()["models"] == [] and "backlog" in project.status()  # read-only commands work
    with pytest.raises(ConfigError, match=r"PG_PASSWORD_NOT_SET, which is not set \(warehouse.password"):
        project.warehouse()
    channel = project.config.alerts.channels["hook"]
    with pytest.raises(ConfigError, match=r"HOOK_TOKEN_NOT_SET, which is not set \(alerts.channels.url"):
        send(channel, Notification(alert="a", state="firing", severity="critical", subject="run", message="m",
                                   project="plant", value=None, threshold=None, at="2026-01-01T00:00:00Z"))
    monkeypatch.setenv("PG_PASSWORD_NOT_SET", "s3cret-value")
    require_set(Project(tmp_path).config.warehouse, at="warehouse", use="the warehouse")  # set: no error
    write(tmp_path, "name: plant\nstorage: {delta_options: {aws_secret_access_key: '${AWS_NOT_SET_HERE}'}}\n")
    with pytest.raises(ConfigError, match="AWS_NOT_SET_HERE is not set"):  # elsewhere: an error when read
        load_config(tmp_path, environ={})


def test_the_failure_model_reads_the_example_tables_unless_told_otherwise(tmp_path: Path) -> None:
    failure = load_config(write(tmp_path, "name: plant\n")).ml.failure
    assert (failure.features, failure.events, failure.entity, failure.time, failure.horizon_hours,
            failure.feature_hours) == ("gold.machine_features", "gold.fact_failures", "machine_id", "hour", 24, 1)
    write(tmp_path, "name: plant\nml:\n  failure: {features: gold.asset_hours, events: gold.breakdowns, "
                    "entity: asset, time: t, event_time: failed_at, label: part, horizon: 2d, "
                    "classes: [pump, motor], columns: [temp_mean, vendor]}\n")
    failure = load_config(tmp_path).ml.failure
    assert failure.horizon_hours == 48 and failure.classes == ["pump", "motor"]
    assert failure.columns == ["temp_mean", "vendor"]


@pytest.mark.parametrize(("setting", "message"), [
    ("horizon: soon", r"ml\.failure\.horizon: 'soon' is not a duration .*24h or 2d"),
    ("horizon: 0h", r"ml\.failure\.horizon: at least 1h"),
    ("classes: [none, pump]", r"'none' \(no failure\) is implied"),
    ("columns: [hour, volt]", r"hour is a key, not a feature"),
    ("lable: part", r"(?s)ml\.failure\.lable.*did you mean 'label'"),
])
def test_a_wrong_failure_setting_names_itself(tmp_path: Path, setting: str, message: str) -> None:
    write(tmp_path, f"name: plant\nml:\n  failure:\n    {setting}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)
