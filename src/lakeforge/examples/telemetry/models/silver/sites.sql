-- kind: incremental
-- unique_key: [site_id]
-- on_conflict: update
-- order_by: [_batch_id, _source_file]
-- description: Sites where machines run.
-- expectations:
--   - {name: site_id_numeric, expr: site_id IS NOT NULL, action: quarantine}
SELECT
  try_cast(site_id AS BIGINT) AS site_id,
  site_name,
  region,
  timezone,
  _batch_id,
  _source_file
FROM bronze.sites
