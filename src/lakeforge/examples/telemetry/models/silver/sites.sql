-- kind: incremental
-- unique_key: [site_id]
-- on_conflict: update
-- order_by: [_batch_id, _source_file]
-- description: Sites where machines run.
-- expectations:
--   - {name: no_rescued_values, expr: _rescued_data IS NULL, action: quarantine}
--   - {name: site_id_numeric, expr: site_id IS NOT NULL, action: quarantine}
SELECT
  site_id,
  site_name,
  region,
  timezone,
  _rescued_data,
  _batch_id,
  _source_file
FROM bronze.sites
