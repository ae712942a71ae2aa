-- kind: incremental
-- unique_key: [machine_id, ts, error_id]
-- on_conflict: keep_first
-- description: Error events raised by machines.
-- expectations:
--   - {name: event_complete, expr: ts IS NOT NULL AND machine_id IS NOT NULL AND error_id IS NOT NULL, action: quarantine}
SELECT
  try_cast(ts AS TIMESTAMP) AS ts,
  try_cast(machine_id AS BIGINT) AS machine_id,
  error_id
FROM bronze.errors
