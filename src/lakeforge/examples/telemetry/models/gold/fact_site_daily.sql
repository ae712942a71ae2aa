-- kind: materialized
-- cluster_by: [date]  # Z-order in the lakehouse; clustering key (Snowflake) or index (PostgreSQL) in the warehouse
-- description: Daily fleet statistics per site.
SELECT
  m.site_id,
  d.date,
  count(DISTINCT d.machine_id) AS machines_reporting,
  CAST(sum(d.readings) AS BIGINT) AS readings,
  avg(d.vibration_avg) AS vibration_avg,
  avg(d.temperature_avg) AS temperature_avg
FROM gold.fact_telemetry_daily AS d
JOIN gold.dim_machine AS m ON m.machine_id = d.machine_id
GROUP BY m.site_id, d.date
