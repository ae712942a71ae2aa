-- kind: incremental
-- unique_key: [machine_id, ts, error_id]
-- on_conflict: keep_first
-- description: Error events.
SELECT machine_id, ts, CAST(ts AS DATE) AS date, error_id FROM silver.errors
