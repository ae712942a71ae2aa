from lakeforge.warehouses.duckdb.warehouse import DuckDBWarehouse

__all__ = ["DuckDBWarehouse"]
