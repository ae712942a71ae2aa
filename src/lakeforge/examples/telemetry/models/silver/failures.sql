-- kind: incremental
-- unique_key: [machine_id, ts, component]
-- on_conflict: keep_first
-- order_by: [_batch_id, _source_file]
-- description: Component failures.
-- expectations:
--   - {name: no_rescued_values, expr: _rescued_data IS NULL, action: quarantine}
--   - {name: event_complete, expr: ts IS NOT NULL AND machine_id IS NOT NULL AND component IS NOT NULL, action: quarantine}
SELECT
  ts,
  machine_id,
  component,
  _rescued_data,
  _batch_id,
  _source_file
FROM bronze.failures
