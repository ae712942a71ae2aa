"""``run --engine`` changes only the engine's type (issue 21, point 4): the settings of lakeforge.yml are kept
where they apply, dropped (not refused) where they do not, and every DuckDB connection of the project keeps to
the DuckDB ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lakeforge.config import DuckDBEngineConfig, SparkEngineConfig
from lakeforge.errors import ConfigError
from lakeforge.project import Project
from lakeforge.workspace import _engine_config

LIMIT = "SELECT current_setting('memory_limit'), current_setting('threads')"
DUCKDB = {"type": "duckdb", "threads": 1, "memory_limit": "300MB", "stage": "disk", "temp_directory": "spill"}


def _project(root: Path, engine: dict[str, object]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "lakeforge.yml").write_text(yaml.safe_dump({"name": "plant", "engine": engine}))
    return root


def test_the_same_engine_keeps_every_setting(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", DUCKDB)
    with Project(root, engine="duckdb") as project:
        assert project.config.engine == DuckDBEngineConfig(
            threads=1, memory_limit="300MB", stage="disk", temp_directory=str(root / "spill"))
        assert project.duckdb_settings is project.config.engine
        assert project.engine.con.execute(LIMIT).fetchall()[0] == ("286.1 MiB", 1)
        warehouse = project.warehouse()
        try:
            assert warehouse.con.execute(LIMIT).fetchall()[0] == ("286.1 MiB", 1)  # type: ignore[attr-defined]
        finally:
            warehouse.close()


def test_spark_over_a_duckdb_engine_drops_what_spark_has_not(tmp_path: Path) -> None:
    """No error for the DuckDB settings; Spark's are its defaults; the project's DuckDB connections (interactive
    queries, the warehouse, the web app) keep the DuckDB settings of lakeforge.yml."""
    with Project(_project(tmp_path / "p", DUCKDB), engine="spark") as project:
        assert project.config.engine == SparkEngineConfig()
        assert project.duckdb_settings.memory_limit == "300MB" and project.duckdb_settings.threads == 1
        assert project.local_engine.con.execute(LIMIT).fetchall()[0] == ("286.1 MiB", 1)  # type: ignore[attr-defined]


def test_duckdb_over_a_spark_engine_drops_what_duckdb_has_not(tmp_path: Path) -> None:
    spark = {"type": "spark", "master": "local[2]", "shuffle_partitions": 2, "conf": {"spark.x": "1"}}
    with Project(_project(tmp_path / "p", spark), engine="duckdb") as project:
        assert project.config.engine == DuckDBEngineConfig()
        assert project.duckdb_settings is project.config.engine


def test_settings_both_engines_have_are_kept() -> None:
    """Only the type changes: what the other type also has carries over (today the two share no setting, so
    the check runs on a Spark config that made none but its type, and on one unknown engine)."""
    configured = DuckDBEngineConfig(threads=3)
    assert _engine_config("duckdb", configured) is configured
    assert _engine_config("spark", configured) == SparkEngineConfig()
    with pytest.raises(ConfigError, match="unknown engine 'flink'"):
        _engine_config("flink", configured)
