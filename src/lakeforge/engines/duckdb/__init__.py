from lakeforge.engines.duckdb.engine import DuckDBEngine

__all__ = ["DuckDBEngine"]
