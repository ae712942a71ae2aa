"""The lakehouse: Delta tables by name (``bronze.telemetry`` → location), commits with transaction ids."""

from lakeforge.lakehouse.catalog import LAYERS, Catalog, TableInfo

__all__ = ["LAYERS", "Catalog", "TableInfo"]
