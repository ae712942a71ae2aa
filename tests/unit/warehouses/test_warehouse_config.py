"""Warehouse settings: a `type` picks the target; secrets from secrets.yml or the environment, never echoed;
a missing driver names its pip extra; capabilities are data."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from lakeforge.config import PostgresWarehouseConfig, SnowflakeWarehouseConfig, load_config
from lakeforge.errors import ConfigError, MissingDependency
from lakeforge.warehouses import base
from lakeforge.warehouses.sql import LoadPlan, Statements, ident, sql_type


def write(tmp_path: Path, text: str, secrets: str | None = None) -> Path:
    (tmp_path / "lakeforge.yml").write_text(text)
    if secrets is not None:
        (tmp_path / "secrets.yml").write_text(secrets)
    return tmp_path


def test_snowflake_settings_with_the_password_in_secrets_yml(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "name: plant\nwarehouse: {type: snowflake, database: LF, schema: GOLD, "
                                         "compute_warehouse: LOAD_WH}\n",
                               secrets="warehouse: {password: s3cret}\n"))
    wh = config.warehouse
    assert isinstance(wh, SnowflakeWarehouseConfig)
    assert (wh.database, wh.db_schema, wh.compute_warehouse, wh.reports) == ("LF", "GOLD", "LOAD_WH", "dynamic_table")
    assert wh.password is not None and wh.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config) and "s3cret" not in str(wh)


def test_postgres_settings_from_the_environment_overlay(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "name: plant\nwarehouse: {type: postgres, host: db, dbname: analytics}\n"),
                         environ={"LAKEFORGE__WAREHOUSE__PORT": "6543", "LAKEFORGE__WAREHOUSE__UPSERT": "on_conflict"})
    wh = config.warehouse
    assert isinstance(wh, PostgresWarehouseConfig)
    assert (wh.host, wh.port, wh.dbname, wh.db_schema, wh.upsert) == ("db", 6543, "analytics", "gold", "on_conflict")


def test_an_unknown_warehouse_type_or_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="warehouse"):
        load_config(write(tmp_path, "name: plant\nwarehouse: {type: oracle}\n"))
    with pytest.raises(ConfigError, match=r"warehouse\.snowflake\.target_lg|target_lg"):
        load_config(write(tmp_path, "name: plant\nwarehouse: {type: snowflake, target_lg: 1 hour}\n"))


def test_a_missing_driver_names_the_pip_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base.BACKENDS, "snowflake", ("lakeforge_no_such_driver_module", "X", "snowflake"))
    config = load_config(write(tmp_path, "name: plant\nwarehouse: {type: snowflake}\n"))
    with pytest.raises(MissingDependency, match=r"pip install 'lakeforge\[snowflake\]'"):
        base.create_warehouse(config.warehouse, base_dir=tmp_path)


def test_capabilities_are_declared_as_data() -> None:
    from lakeforge.warehouses.duckdb import DuckDBWarehouse
    from lakeforge.warehouses.postgres import PostgresWarehouse
    from lakeforge.warehouses.snowflake import SnowflakeWarehouse

    caps = {c.capabilities.name: c.capabilities for c in (DuckDBWarehouse, SnowflakeWarehouse, PostgresWarehouse)}
    assert {n: c.dialect for n, c in caps.items()} == {"duckdb": "duckdb", "snowflake": "snowflake",
                                                       "postgres": "postgres"}
    assert caps["snowflake"].clustering and caps["snowflake"].dynamic_tables and caps["snowflake"].query_tags
    assert caps["postgres"].materialized_views and not caps["postgres"].dynamic_tables
    assert {n: c.staging for n, c in caps.items()} == {"duckdb": "arrow", "snowflake": "stage_files",
                                                       "postgres": "copy"}


def test_identifiers_stay_unquoted_unless_reserved_or_unusual() -> None:
    assert ident("machine_id", "snowflake") == "machine_id"
    assert ident("rows", "snowflake") == '"rows"'  # reserved in Snowflake
    assert ident("Machine", "postgres") == '"Machine"'  # would fold to lower case
    assert sql_type(pa.timestamp("us", "UTC"), "snowflake") == "TIMESTAMPTZ"
    assert sql_type(pa.float64(), "postgres") == "DOUBLE PRECISION"
    with pytest.raises(Exception, match="no warehouse type"):
        sql_type(pa.list_(pa.int64()), "postgres")


def test_merge_resolves_duplicate_keys_in_the_batch_before_merging() -> None:
    data = pa.table({"machine_id": [1, 1, 2], "hour": [5, 5, 5], "v": [1.0, 2.0, 3.0]})
    plan = LoadPlan(gold_table="gold.f", target="f", mode="incremental", from_version=3, to_version=5,
                    keys=["machine_id", "hour"], cluster_by=[], data=data, create=False, run_id="r")
    assert plan.batch == "f:v4-v5"
    tagged = plan.tagged()
    assert tagged["_lf_seq"].to_pylist() == [0, 1, 2] and set(tagged["_lf_batch"].to_pylist()) == {"f:v4-v5"}
    sql = Statements("postgres").merge(plan)
    assert "ROW_NUMBER() OVER (PARTITION BY machine_id, hour ORDER BY _lf_seq DESC)" in sql
    assert "_lf_rank = 1" in sql and sql.startswith("MERGE INTO f AS t USING (")
    # the same dedup query, run on DuckDB, keeps the last row of each key
    import duckdb

    con = duckdb.connect()
    con.register("_lf_stage_f", tagged)
    inner = sql[sql.index("(") + 1: sql.rindex(") AS s ON")]
    assert sorted(con.sql(inner).fetchall()) == [(1, 5, 2.0), (2, 5, 3.0)]
