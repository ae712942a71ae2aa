-- kind: incremental
-- unique_key: [machine_id]
-- on_conflict: update
-- order_by: [_batch_id, _source_file]
-- description: Machines with model, age and site (latest values win).
-- expectations:
--   - {name: machine_id_numeric, expr: machine_id IS NOT NULL, action: quarantine}
--   - {name: age_plausible, expr: age IS NULL OR age BETWEEN 0 AND 100, action: warn}
SELECT
  try_cast(machine_id AS BIGINT) AS machine_id,
  model,
  try_cast(age AS INT) AS age,
  try_cast(site_id AS BIGINT) AS site_id,
  try_cast(install_date AS DATE) AS install_date,
  _batch_id,
  _source_file
FROM bronze.machines
