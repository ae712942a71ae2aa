-- kind: incremental
-- unique_key: [machine_id, ts, error_id]
-- on_conflict: keep_first
-- cluster_by: [date]  # Z-order in the lakehouse; clustering key (Snowflake) or index (PostgreSQL) in the warehouse
-- description: Error events.
SELECT machine_id, ts, CAST(ts AS DATE) AS date, error_id FROM silver.errors
