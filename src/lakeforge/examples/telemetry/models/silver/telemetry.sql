-- kind: incremental
-- unique_key: [machine_id, ts]
-- on_conflict: keep_first
-- order_by: [_batch_id, _source_file]
-- description: Sensor readings, typed and deduplicated, one row per machine and timestamp.
-- owner: reliability-engineering
-- cluster_by: [machine_id, ts]
-- contract:
--   {machine_id: bigint, ts: timestamp, volt: double, rotate: double, pressure: double, pressure_kpa: double,
--    vibration: double,
--    temperature: double, humidity: double, _rescued_data: string, _source_file: string,
--    _ingested_at: timestamp, _batch_id: bigint}
-- expectations:
--   - {name: no_rescued_values, expr: _rescued_data IS NULL, action: quarantine}
--   - {name: ts_present, expr: ts IS NOT NULL, action: quarantine}
--   - {name: machine_present, expr: machine_id IS NOT NULL, action: quarantine}
--   - {name: volt_in_range, expr: volt IS NULL OR volt BETWEEN 0 AND 400, action: quarantine}
--   - {name: rotate_in_range, expr: rotate IS NULL OR rotate BETWEEN 0 AND 3000, action: quarantine}
--   - {name: pressure_in_range, expr: pressure IS NULL OR pressure BETWEEN 0 AND 300, action: quarantine}
--   - {name: vibration_in_range, expr: vibration IS NULL OR vibration BETWEEN 0 AND 200, action: quarantine}
--   - {name: temperature_in_range, expr: temperature IS NULL OR temperature BETWEEN -40 AND 150, action: quarantine}
--   - {name: all_sensors_reported, expr: volt IS NOT NULL AND rotate IS NOT NULL AND pressure IS NOT NULL AND vibration IS NOT NULL AND temperature IS NOT NULL, action: warn}
SELECT
  machine_id,
  ts,
  volt,
  rotate,
  pressure,
  round(pressure * 6.894757, 3) AS pressure_kpa,  -- unit normalization: psi as reported, kPa for analysis
  vibration,
  temperature,
  humidity,
  _rescued_data,
  _source_file,
  _ingested_at,
  _batch_id
FROM bronze.telemetry
