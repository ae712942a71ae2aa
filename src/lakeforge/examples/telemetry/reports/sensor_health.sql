-- description: "Sensor health per machine over the last 24 hours of data: hours reported, vibration and
--   temperature against the machine's own baseline, and a status: silent (nothing in the last 6 hours),
--   drifting (vibration 20% above its baseline, or a temperature peak 15 degrees above it) or ok."
WITH newest AS (SELECT max(hour) AS newest FROM gold.fact_telemetry_hourly),
stats AS (
  SELECT
    t.machine_id,
    max(t.hour) AS last_hour,
    CAST(count_if(t.hour > n.newest - INTERVAL 24 HOURS) AS BIGINT) AS hours_last_24h,
    avg(t.vibration_avg) AS vibration_baseline,
    avg(CASE WHEN t.hour > n.newest - INTERVAL 24 HOURS THEN t.vibration_avg END) AS vibration_last_24h,
    avg(t.temperature_avg) AS temperature_baseline,
    max(CASE WHEN t.hour > n.newest - INTERVAL 24 HOURS THEN t.temperature_max END) AS temperature_max_last_24h
  FROM gold.fact_telemetry_hourly AS t
  CROSS JOIN newest AS n
  GROUP BY t.machine_id
)
SELECT
  s.machine_id,
  m.model,
  m.site_id,
  s.last_hour,
  s.hours_last_24h,
  s.vibration_baseline,
  s.vibration_last_24h,
  s.vibration_last_24h / nullif(s.vibration_baseline, 0) AS vibration_ratio,
  s.temperature_max_last_24h,
  CASE
    WHEN s.last_hour <= n.newest - INTERVAL 6 HOURS THEN 'silent'
    WHEN s.vibration_last_24h > 1.2 * s.vibration_baseline THEN 'drifting'
    WHEN s.temperature_max_last_24h > s.temperature_baseline + 15 THEN 'drifting'
    ELSE 'ok'
  END AS status
FROM stats AS s
CROSS JOIN newest AS n
LEFT JOIN gold.dim_machine AS m ON m.machine_id = s.machine_id
