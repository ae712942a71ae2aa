-- kind: incremental
-- unique_key: [machine_id, ts, error_id]
-- on_conflict: keep_first
-- order_by: [_batch_id, _source_file]
-- description: Error events raised by machines.
-- expectations:
--   - {name: no_rescued_values, expr: _rescued_data IS NULL, action: quarantine}
--   - {name: event_complete, expr: ts IS NOT NULL AND machine_id IS NOT NULL AND error_id IS NOT NULL, action: quarantine}
SELECT
  ts,
  machine_id,
  error_id,
  _rescued_data,
  _batch_id,
  _source_file
FROM bronze.errors
