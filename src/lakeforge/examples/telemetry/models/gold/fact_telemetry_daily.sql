-- kind: incremental
-- unique_key: [machine_id, date]
-- cluster_by: [date]  # Z-order in the lakehouse; clustering key (Snowflake) or index (PostgreSQL) in the warehouse
-- description: Daily sensor statistics per machine.
SELECT
  machine_id,
  CAST(ts AS DATE) AS date,
  count(*) AS readings,
  avg(volt) AS volt_avg,
  avg(rotate) AS rotate_avg,
  avg(pressure) AS pressure_avg,
  avg(vibration) AS vibration_avg,
  max(vibration) AS vibration_max,
  avg(temperature) AS temperature_avg
FROM silver.telemetry
GROUP BY machine_id, CAST(ts AS DATE)
