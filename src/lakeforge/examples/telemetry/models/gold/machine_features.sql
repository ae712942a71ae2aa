-- kind: materialized
-- unique_key: [machine_id, hour]
-- cluster_by: [hour]  # Z-order in the lakehouse; clustering key (Snowflake) or index (PostgreSQL) in the warehouse
-- description: >-
--   Point-in-time features per machine and hour for predictive maintenance: rolling 3 h and 24 h mean, standard
--   deviation and slope (per hour) of each sensor's hourly average, errors in the last 24 h, hours since each
--   component's last maintenance, machine model and age. A row reads only hourly rows up to its hour, and events
--   (errors, maintenance) with ts <= hour: it never sees a later row. The hourly averages are rounded to 6
--   decimals first, so a recomputation (backfill, fresh project) whose averages differ in the last bit (float
--   summation order) gives the same features.
WITH t AS (
  SELECT
    machine_id,
    hour,
    CAST(unix_seconds(hour) AS DOUBLE) / 3600 AS epoch_hour,
    round(volt_avg, 6) AS volt,
    round(rotate_avg, 6) AS rotate,
    round(pressure_avg, 6) AS pressure,
    round(vibration_avg, 6) AS vibration,
    round(temperature_avg, 6) AS temperature
  FROM gold.fact_telemetry_hourly
),
rolling AS (
  SELECT
    machine_id,
    hour,
    avg(volt) OVER w3 AS volt_mean_3h,
    stddev_samp(volt) OVER w3 AS volt_std_3h,
    nullif(regr_slope(volt, epoch_hour) OVER w3, CAST('NaN' AS DOUBLE)) AS volt_slope_3h,
    avg(volt) OVER w24 AS volt_mean_24h,
    stddev_samp(volt) OVER w24 AS volt_std_24h,
    nullif(regr_slope(volt, epoch_hour) OVER w24, CAST('NaN' AS DOUBLE)) AS volt_slope_24h,
    avg(rotate) OVER w3 AS rotate_mean_3h,
    stddev_samp(rotate) OVER w3 AS rotate_std_3h,
    nullif(regr_slope(rotate, epoch_hour) OVER w3, CAST('NaN' AS DOUBLE)) AS rotate_slope_3h,
    avg(rotate) OVER w24 AS rotate_mean_24h,
    stddev_samp(rotate) OVER w24 AS rotate_std_24h,
    nullif(regr_slope(rotate, epoch_hour) OVER w24, CAST('NaN' AS DOUBLE)) AS rotate_slope_24h,
    avg(pressure) OVER w3 AS pressure_mean_3h,
    stddev_samp(pressure) OVER w3 AS pressure_std_3h,
    nullif(regr_slope(pressure, epoch_hour) OVER w3, CAST('NaN' AS DOUBLE)) AS pressure_slope_3h,
    avg(pressure) OVER w24 AS pressure_mean_24h,
    stddev_samp(pressure) OVER w24 AS pressure_std_24h,
    nullif(regr_slope(pressure, epoch_hour) OVER w24, CAST('NaN' AS DOUBLE)) AS pressure_slope_24h,
    avg(vibration) OVER w3 AS vibration_mean_3h,
    stddev_samp(vibration) OVER w3 AS vibration_std_3h,
    nullif(regr_slope(vibration, epoch_hour) OVER w3, CAST('NaN' AS DOUBLE)) AS vibration_slope_3h,
    avg(vibration) OVER w24 AS vibration_mean_24h,
    stddev_samp(vibration) OVER w24 AS vibration_std_24h,
    nullif(regr_slope(vibration, epoch_hour) OVER w24, CAST('NaN' AS DOUBLE)) AS vibration_slope_24h,
    avg(temperature) OVER w3 AS temperature_mean_3h,
    stddev_samp(temperature) OVER w3 AS temperature_std_3h,
    nullif(regr_slope(temperature, epoch_hour) OVER w3, CAST('NaN' AS DOUBLE)) AS temperature_slope_3h,
    avg(temperature) OVER w24 AS temperature_mean_24h,
    stddev_samp(temperature) OVER w24 AS temperature_std_24h,
    nullif(regr_slope(temperature, epoch_hour) OVER w24, CAST('NaN' AS DOUBLE)) AS temperature_slope_24h
  FROM t
  WINDOW
    w3 AS (PARTITION BY machine_id ORDER BY hour RANGE BETWEEN INTERVAL 2 HOURS PRECEDING AND CURRENT ROW),
    w24 AS (PARTITION BY machine_id ORDER BY hour RANGE BETWEEN INTERVAL 23 HOURS PRECEDING AND CURRENT ROW)
),
errors AS (
  SELECT
    t.machine_id,
    t.hour,
    count(e.error_id) AS errors_24h,
    count(e.error_id) FILTER (WHERE e.error_id = 'error1') AS error1_24h,
    count(e.error_id) FILTER (WHERE e.error_id = 'error2') AS error2_24h,
    count(e.error_id) FILTER (WHERE e.error_id = 'error3') AS error3_24h,
    count(e.error_id) FILTER (WHERE e.error_id = 'error4') AS error4_24h,
    count(e.error_id) FILTER (WHERE e.error_id = 'error5') AS error5_24h
  FROM t
  LEFT JOIN gold.fact_errors AS e
    ON e.machine_id = t.machine_id AND e.ts <= t.hour AND e.ts > t.hour - INTERVAL 24 HOURS
  GROUP BY t.machine_id, t.hour
),
maintenance AS (
  SELECT
    t.machine_id,
    t.hour,
    max(m.ts) FILTER (WHERE m.component = 'comp1') AS comp1_last,
    max(m.ts) FILTER (WHERE m.component = 'comp2') AS comp2_last,
    max(m.ts) FILTER (WHERE m.component = 'comp3') AS comp3_last,
    max(m.ts) FILTER (WHERE m.component = 'comp4') AS comp4_last
  FROM t
  LEFT JOIN gold.fact_maintenance AS m
    ON m.machine_id = t.machine_id AND m.ts <= t.hour
  GROUP BY t.machine_id, t.hour
)
SELECT
  r.*,
  e.errors_24h,
  e.error1_24h,
  e.error2_24h,
  e.error3_24h,
  e.error4_24h,
  e.error5_24h,
  CAST(unix_seconds(m.hour) - unix_seconds(m.comp1_last) AS DOUBLE) / 3600 AS comp1_hours_since_maint,
  CAST(unix_seconds(m.hour) - unix_seconds(m.comp2_last) AS DOUBLE) / 3600 AS comp2_hours_since_maint,
  CAST(unix_seconds(m.hour) - unix_seconds(m.comp3_last) AS DOUBLE) / 3600 AS comp3_hours_since_maint,
  CAST(unix_seconds(m.hour) - unix_seconds(m.comp4_last) AS DOUBLE) / 3600 AS comp4_hours_since_maint,
  d.model,
  d.age
FROM rolling AS r
JOIN errors AS e ON e.machine_id = r.machine_id AND e.hour = r.hour
JOIN maintenance AS m ON m.machine_id = r.machine_id AND m.hour = r.hour
LEFT JOIN gold.dim_machine AS d ON d.machine_id = r.machine_id
