"""Project configuration: pydantic models and the YAML loader (env overlay, secrets file)."""

from lakeforge.config.loader import CONFIG_FILE, load_config
from lakeforge.config.models import (
    DuckDBEngineConfig,
    DuckDBWarehouseConfig,
    EngineConfig,
    ProjectConfig,
    SourceConfig,
    StorageConfig,
    WarehouseConfig,
)

__all__ = [
    "CONFIG_FILE",
    "DuckDBEngineConfig",
    "DuckDBWarehouseConfig",
    "EngineConfig",
    "ProjectConfig",
    "SourceConfig",
    "StorageConfig",
    "WarehouseConfig",
    "load_config",
]
