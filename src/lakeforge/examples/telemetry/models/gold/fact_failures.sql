-- kind: incremental
-- unique_key: [machine_id, ts, component]
-- on_conflict: keep_first
-- cluster_by: [date]  # Z-order in the lakehouse; clustering key (Snowflake) or index (PostgreSQL) in the warehouse
-- description: Failures, one row per machine, time and component.
SELECT machine_id, ts, CAST(ts AS DATE) AS date, component FROM silver.failures
