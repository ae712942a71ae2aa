-- kind: incremental
-- unique_key: [machine_id]
-- scd: 2
-- updated_at: _ingested_at
-- track: [model, age, site_id, install_date]
-- description: Machines with model, age and site; every change is kept as a version (SCD type 2).
-- expectations:
--   - {name: no_rescued_values, expr: _rescued_data IS NULL, action: quarantine}
--   - {name: machine_id_numeric, expr: machine_id IS NOT NULL, action: quarantine}
--   - {name: age_plausible, expr: age IS NULL OR age BETWEEN 0 AND 100, action: warn}
SELECT
  machine_id,
  model,
  age,
  site_id,
  install_date,
  _rescued_data,
  _ingested_at,
  _source_file
FROM bronze.machines
