-- kind: incremental
-- unique_key: [subset, unit, cycle]
-- on_conflict: keep_first
-- order_by: [_batch_id, _source_file]
-- description: >-
--   Training engines, run to failure: one typed row per subset, unit and cycle. The subset
--   (FD001 .. FD004) comes from the file name: unit numbers restart in every file.
-- expectations:
--   - {name: no_rescued_values, expr: _rescued_data IS NULL, action: quarantine}
--   - {name: keys_present, expr: unit IS NOT NULL AND cycle IS NOT NULL, action: quarantine}
--   - {name: cycle_positive, expr: cycle >= 1, action: quarantine}
--   - {name: sensors_present, expr: s2 IS NOT NULL AND s21 IS NOT NULL, action: quarantine}
SELECT
  regexp_extract(_source_file, '(FD[0-9]{3})', 1) AS subset,
  unit,
  cycle,
  setting1, setting2, setting3,
  CAST(round(setting1) AS INT) AS op_condition,  -- the six operating conditions of FD002/FD004 differ in setting1
  s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15, s16, s17, s18, s19, s20, s21,
  _rescued_data,
  _source_file,
  _batch_id
FROM bronze.train
