-- kind: incremental
-- unique_key: [machine_id, ts, component]
-- on_conflict: keep_first
-- description: Component failures.
-- expectations:
--   - {name: event_complete, expr: ts IS NOT NULL AND machine_id IS NOT NULL AND component IS NOT NULL, action: quarantine}
SELECT
  try_cast(ts AS TIMESTAMP) AS ts,
  try_cast(machine_id AS BIGINT) AS machine_id,
  component
FROM bronze.failures
