from __future__ import annotations

from pathlib import Path

import pytest

from lakeforge.errors import ConfigError, ModelError
from lakeforge.models import ModelGraph, load_models
from lakeforge.models.model import parse_model


def model_file(tmp_path: Path, name: str, text: str) -> Path:
    layer, table = name.split(".")
    path = tmp_path / "models" / layer / f"{table}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_header_and_dependencies_come_from_the_file(tmp_path: Path) -> None:
    path = model_file(tmp_path, "gold.hourly", (
        "-- kind: incremental\n"
        "-- unique_key: [machine_id, hour]\n"
        "-- expectations:\n"
        "--   - {name: positive, expr: n > 0, action: drop}\n"
        "WITH m AS (SELECT * FROM silver.machines)\n"
        "SELECT t.machine_id, date_trunc('HOUR', t.ts) AS hour, count(*) AS n\n"
        "FROM silver.telemetry AS t JOIN m ON m.machine_id = t.machine_id GROUP BY 1, 2\n"
    ))
    model = parse_model(path, name="gold.hourly", dialect="databricks")
    assert model.config.kind == "incremental"
    assert model.config.unique_key == ["machine_id", "hour"]
    assert model.config.expectations[0].action == "drop"
    assert sorted(model.upstream()) == ["silver.machines", "silver.telemetry"]
    assert model.driver() == "silver.telemetry"
    assert model.line_offset == 4


def test_group_keys_map_output_columns_to_expressions(tmp_path: Path) -> None:
    path = model_file(tmp_path, "gold.h", (
        "-- kind: incremental\n-- unique_key: [machine_id, hour]\n"
        "SELECT machine_id, date_trunc('HOUR', ts) AS hour, avg(v) AS v FROM silver.t GROUP BY 1, 2\n"
    ))
    keys = parse_model(path, name="gold.h", dialect="databricks").group_keys()
    assert keys is not None
    assert keys["machine_id"].sql() == "machine_id"
    assert "ts" in keys["hour"].sql(dialect="duckdb")


def test_databricks_sql_is_transpiled_to_duckdb(tmp_path: Path) -> None:
    path = model_file(tmp_path, "silver.t", "SELECT try_cast(x AS DOUBLE) AS x, to_timestamp(ts) AS ts FROM bronze.t\n")
    sql = parse_model(path, name="silver.t", dialect="databricks").duckdb_sql()
    assert sql == "SELECT TRY_CAST(x AS DOUBLE) AS x, CAST(ts AS TIMESTAMP) AS ts FROM bronze.t"


def test_unknown_table_is_an_error_before_anything_runs(tmp_path: Path) -> None:
    model_file(tmp_path, "silver.a", "SELECT * FROM bronze.nope\n")
    models = load_models(tmp_path / "models", dialect="duckdb")
    with pytest.raises(ModelError, match=r"(?s)silver\.a .* reads bronze\.nope.*known tables: bronze\.events"):
        ModelGraph(models, sources=["events"])


def test_cycle_is_an_error_naming_the_cycle(tmp_path: Path) -> None:
    model_file(tmp_path, "silver.a", "SELECT * FROM silver.b\n")
    model_file(tmp_path, "silver.b", "SELECT * FROM silver.a\n")
    with pytest.raises(ModelError, match=r"cycle: silver\.(a|b) -> silver\.(a|b) -> silver\.(a|b)"):
        ModelGraph(load_models(tmp_path / "models", dialect="duckdb"), sources=[])


def test_graph_orders_models_by_dependency(tmp_path: Path) -> None:
    model_file(tmp_path, "gold.z", "SELECT * FROM silver.y\n")
    model_file(tmp_path, "silver.y", "SELECT * FROM bronze.src\n")
    graph = ModelGraph(load_models(tmp_path / "models", dialect="duckdb"), sources=["src"])
    assert graph.order == ["silver.y", "gold.z"]
    assert graph.downstream_of("silver.y") == ["gold.z"]


def test_sql_syntax_error_names_model_and_file_line(tmp_path: Path) -> None:
    path = model_file(tmp_path, "silver.bad", "-- kind: materialized\n\nSELECT a,\n  (b FROM bronze.t\n")
    with pytest.raises(ModelError, match=r"model silver\.bad .* line [34]"):
        parse_model(path, name="silver.bad", dialect="databricks")


def test_header_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = model_file(tmp_path, "silver.h", "-- kind: sometimes\nSELECT 1 AS a FROM bronze.t\n")
    with pytest.raises(ConfigError, match=r"h\.sql: invalid model header: kind"):
        parse_model(path, name="silver.h", dialect="duckdb")


def test_only_one_select_statement_is_allowed(tmp_path: Path) -> None:
    path = model_file(tmp_path, "silver.d", "DELETE FROM bronze.t\n")
    with pytest.raises(ModelError, match="exactly one SELECT"):
        parse_model(path, name="silver.d", dialect="duckdb")


def test_models_must_live_in_a_layer_folder(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "loose.sql").write_text("SELECT 1\n")
    with pytest.raises(ConfigError, match=r"models/<layer>/<name>\.sql"):
        load_models(tmp_path / "models", dialect="duckdb")


def test_append_and_merge_are_the_incremental_kind(tmp_path: Path) -> None:
    path = model_file(tmp_path, "silver.a", "-- kind: append\nSELECT * FROM bronze.t\n")
    assert parse_model(path, name="silver.a", dialect="duckdb").config.kind == "incremental"
    path = model_file(tmp_path, "silver.m", "-- kind: merge\n-- unique_key: [id]\nSELECT * FROM bronze.t\n")
    config = parse_model(path, name="silver.m", dialect="duckdb").config
    assert (config.kind, config.unique_key) == ("incremental", ["id"])
    path = model_file(tmp_path, "silver.bad", "-- kind: merge\nSELECT * FROM bronze.t\n")
    with pytest.raises(ConfigError, match="merge needs unique_key"):
        parse_model(path, name="silver.bad", dialect="duckdb")


def test_a_header_that_is_not_yaml_is_one_line_with_the_file_and_line(tmp_path: Path) -> None:
    path = model_file(tmp_path, "silver.y", "-- kind: incremental\n-- unique_key: [id\n-- description: x\n"
                                            "SELECT * FROM bronze.t\n")
    with pytest.raises(ConfigError) as caught:
        parse_model(path, name="silver.y", dialect="duckdb")
    message = caught.value.message
    assert "\n" not in message and message.startswith(f"{path}, line ") and "not valid YAML" in message
    assert int(message.split(", line ")[1].split(":")[0]) in (2, 3)  # where the list opened or the parser noticed
    assert caught.value.hint and "quote a value" in caught.value.hint


def test_a_models_folder_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models_path: the folder .* does not exist") as caught:
        load_models(tmp_path / "modles", dialect="duckdb")
    assert caught.value.hint and "models_path" in caught.value.hint
    assert load_models(tmp_path / "models", dialect="duckdb", required=False) == []  # the default, unset: none


def test_a_models_path_set_to_a_folder_that_does_not_exist_fails_the_run(tmp_path: Path) -> None:
    from lakeforge.project import Project

    Project.init(tmp_path / "p")
    config = tmp_path / "p" / "lakeforge.yml"
    config.write_text(config.read_text() + "\nmodels_path: modles\n")
    with Project(tmp_path / "p") as project, pytest.raises(ConfigError, match="models_path: the folder"):
        project.run()
