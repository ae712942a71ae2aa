-- kind: incremental
-- unique_key: [machine_id, ts, component]
-- on_conflict: keep_first
-- order_by: [_batch_id, _source_file]
-- description: Component failures.
-- expectations:
--   - {name: event_complete, expr: ts IS NOT NULL AND machine_id IS NOT NULL AND component IS NOT NULL, action: quarantine}
SELECT
  try_cast(ts AS TIMESTAMP) AS ts,
  try_cast(machine_id AS BIGINT) AS machine_id,
  component,
  _batch_id,
  _source_file
FROM bronze.failures
