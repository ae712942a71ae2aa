-- kind: incremental
-- unique_key: [machine_id, hour]
-- cluster_by: [hour]  # Z-order in the lakehouse; clustering key (Snowflake) or index (PostgreSQL) in the warehouse
-- description: Hourly sensor statistics per machine. Late readings recompute the hour they belong to.
SELECT
  machine_id,
  date_trunc('HOUR', ts) AS hour,
  count(*) AS readings,
  avg(volt) AS volt_avg, min(volt) AS volt_min, max(volt) AS volt_max,
  avg(rotate) AS rotate_avg, min(rotate) AS rotate_min, max(rotate) AS rotate_max,
  avg(pressure) AS pressure_avg, min(pressure) AS pressure_min, max(pressure) AS pressure_max,
  avg(vibration) AS vibration_avg, min(vibration) AS vibration_min, max(vibration) AS vibration_max,
  stddev_samp(vibration) AS vibration_std,
  avg(temperature) AS temperature_avg, max(temperature) AS temperature_max
FROM silver.telemetry
GROUP BY machine_id, date_trunc('HOUR', ts)
