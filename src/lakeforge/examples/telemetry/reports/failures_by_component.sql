-- description: "Failures by component: how many, on how many machines, their share of all failures, the
--   fleet's operating hours per failure of the component, and the last one."
WITH failures AS (
  SELECT component, count(*) AS failures, count(DISTINCT machine_id) AS machines_affected, max(ts) AS last_failure
  FROM gold.fact_failures
  GROUP BY component
),
total AS (SELECT count(*) AS failures FROM gold.fact_failures),
operating AS (SELECT count(*) AS operating_hours FROM gold.fact_telemetry_hourly)
SELECT
  f.component,
  f.failures,
  f.machines_affected,
  CAST(f.failures AS DOUBLE) / total.failures AS share_of_failures,
  CAST(operating.operating_hours AS DOUBLE) / f.failures AS operating_hours_per_failure,
  f.last_failure
FROM failures AS f
CROSS JOIN total
CROSS JOIN operating
