-- kind: incremental
-- unique_key: [machine_id, ts, error_id]
-- on_conflict: keep_first
-- order_by: [_batch_id, _source_file]
-- description: Error events raised by machines.
-- expectations:
--   - {name: event_complete, expr: ts IS NOT NULL AND machine_id IS NOT NULL AND error_id IS NOT NULL, action: quarantine}
SELECT
  try_cast(ts AS TIMESTAMP) AS ts,
  try_cast(machine_id AS BIGINT) AS machine_id,
  error_id,
  _batch_id,
  _source_file
FROM bronze.errors
