"""Project configuration: pydantic models and the YAML loader (env overlay, secrets file)."""

from lakeforge.config.loader import CONFIG_FILE, load_config
from lakeforge.config.models import (
    DeployConfig,
    DuckDBEngineConfig,
    DuckDBWarehouseConfig,
    EngineConfig,
    PostgresWarehouseConfig,
    ProjectConfig,
    SnowflakeWarehouseConfig,
    SourceConfig,
    SparkEngineConfig,
    StorageConfig,
    WarehouseConfig,
)

__all__ = [
    "CONFIG_FILE",
    "DeployConfig",
    "DuckDBEngineConfig",
    "DuckDBWarehouseConfig",
    "EngineConfig",
    "PostgresWarehouseConfig",
    "ProjectConfig",
    "SnowflakeWarehouseConfig",
    "SourceConfig",
    "SparkEngineConfig",
    "StorageConfig",
    "WarehouseConfig",
    "load_config",
]
