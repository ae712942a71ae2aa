from lakeforge.warehouses.postgres.warehouse import PostgresWarehouse

__all__ = ["PostgresWarehouse"]
