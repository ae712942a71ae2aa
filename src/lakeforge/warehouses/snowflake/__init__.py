"""Snowflake as warehouse (``pip install 'lakeforge[snowflake]'``): importing this package imports the driver."""

from lakeforge.warehouses.snowflake.warehouse import SnowflakeWarehouse

__all__ = ["SnowflakeWarehouse"]
