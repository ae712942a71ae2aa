WITH newest AS (
  SELECT
    MAX(hour) AS newest
  FROM fact_telemetry_hourly
), stats AS (
  SELECT
    t.machine_id,
    MAX(t.hour) AS last_hour,
    CAST(SUM(CASE WHEN t.hour > n.newest - INTERVAL '24 HOURS' THEN 1 ELSE 0 END) AS BIGINT) AS hours_last_24h,
    AVG(t.vibration_avg) AS vibration_baseline,
    AVG(CASE WHEN t.hour > n.newest - INTERVAL '24 HOURS' THEN t.vibration_avg END) AS vibration_last_24h,
    AVG(t.temperature_avg) AS temperature_baseline,
    MAX(CASE WHEN t.hour > n.newest - INTERVAL '24 HOURS' THEN t.temperature_max END) AS temperature_max_last_24h
  FROM fact_telemetry_hourly AS t
  CROSS JOIN newest AS n
  GROUP BY
    t.machine_id
)
SELECT
  s.machine_id,
  m.model,
  m.site_id,
  s.last_hour,
  s.hours_last_24h,
  s.vibration_baseline,
  s.vibration_last_24h,
  CAST(s.vibration_last_24h AS DOUBLE PRECISION) / NULLIF(s.vibration_baseline, 0) AS vibration_ratio,
  s.temperature_max_last_24h,
  CASE
    WHEN s.last_hour <= n.newest - INTERVAL '6 HOURS'
    THEN 'silent'
    WHEN s.vibration_last_24h > 1.2 * s.vibration_baseline
    THEN 'drifting'
    WHEN s.temperature_max_last_24h > s.temperature_baseline + 15
    THEN 'drifting'
    ELSE 'ok'
  END AS status
FROM stats AS s
CROSS JOIN newest AS n
LEFT JOIN dim_machine AS m
  ON m.machine_id = s.machine_id
