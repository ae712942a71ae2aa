-- kind: incremental
-- unique_key: [machine_id, ts, component]
-- on_conflict: keep_first
-- description: Failures, one row per machine, time and component.
SELECT machine_id, ts, CAST(ts AS DATE) AS date, component FROM silver.failures
