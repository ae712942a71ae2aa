"""Warehouses behind one boundary; what each supports is declared as data (capabilities)."""

from lakeforge.warehouses.base import LoadResult, Warehouse, WarehouseCapabilities, create_warehouse

__all__ = ["LoadResult", "Warehouse", "WarehouseCapabilities", "create_warehouse"]
