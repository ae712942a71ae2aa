WITH failures AS (
  SELECT
    component,
    COUNT(*) AS failures,
    COUNT(DISTINCT machine_id) AS machines_affected,
    MAX(ts) AS last_failure
  FROM fact_failures
  GROUP BY
    component
), total AS (
  SELECT
    COUNT(*) AS failures
  FROM fact_failures
), operating AS (
  SELECT
    COUNT(*) AS operating_hours
  FROM fact_telemetry_hourly
)
SELECT
  f.component,
  f.failures,
  f.machines_affected,
  CAST(f.failures AS DOUBLE PRECISION) / total.failures AS share_of_failures,
  CAST(operating.operating_hours AS DOUBLE PRECISION) / f.failures AS operating_hours_per_failure,
  f.last_failure
FROM failures AS f
CROSS JOIN total
CROSS JOIN operating
