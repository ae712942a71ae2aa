-- kind: materialized
-- description: "Fleet KPIs per day: machines reporting, readings, failures, maintenance and errors."
WITH days AS (
  SELECT date, count(DISTINCT machine_id) AS machines_reporting, CAST(sum(readings) AS BIGINT) AS readings
  FROM gold.fact_telemetry_daily GROUP BY date
),
failures AS (SELECT date, count(*) AS failures FROM gold.fact_failures GROUP BY date),
maintenance AS (SELECT date, count(*) AS maintenance_actions FROM gold.fact_maintenance GROUP BY date),
errors AS (SELECT date, count(*) AS errors FROM gold.fact_errors GROUP BY date)
SELECT
  d.date,
  d.machines_reporting,
  d.readings,
  coalesce(f.failures, 0) AS failures,
  coalesce(m.maintenance_actions, 0) AS maintenance_actions,
  coalesce(e.errors, 0) AS errors,
  1.0 - coalesce(f.failures, 0) / d.machines_reporting AS availability_proxy
FROM days AS d
LEFT JOIN failures AS f ON f.date = d.date
LEFT JOIN maintenance AS m ON m.date = d.date
LEFT JOIN errors AS e ON e.date = d.date
