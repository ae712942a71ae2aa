-- description: "Fleet availability per day: the share of the fleet's machine-hours in which machines were up
--   and reporting. A machine-hour is down when the machine sent no telemetry in it or was under repair
--   (from a failure until its corrective maintenance was recorded)."
WITH fleet AS (SELECT count(*) AS machines FROM gold.dim_machine),
reporting AS (  -- one pass over the hourly fact; machines per day come from the daily fact (a row per machine-day)
  SELECT h.date, h.reporting_hours, d.machines_reporting
  FROM (SELECT CAST(hour AS DATE) AS date, count(*) AS reporting_hours
        FROM gold.fact_telemetry_hourly GROUP BY CAST(hour AS DATE)) AS h
  LEFT JOIN (SELECT date, count(*) AS machines_reporting FROM gold.fact_telemetry_daily GROUP BY date) AS d
    ON d.date = h.date
),
repairs AS (
  SELECT f.machine_id, f.ts, min(m.ts) AS repaired_at
  FROM gold.fact_failures AS f
  JOIN gold.fact_maintenance AS m
    ON m.machine_id = f.machine_id AND m.component = f.component AND m.reason = 'failure' AND m.ts >= f.ts
  GROUP BY f.machine_id, f.ts
),
repair_hours AS (
  SELECT CAST(ts AS DATE) AS date, count(*) AS failures,
         sum((extract(EPOCH FROM repaired_at) - extract(EPOCH FROM ts)) / 3600.0) AS repair_hours
  FROM repairs
  GROUP BY CAST(ts AS DATE)
)
SELECT
  r.date,
  fleet.machines,
  r.machines_reporting,
  CAST(fleet.machines * 24 AS BIGINT) AS fleet_hours,
  r.reporting_hours,
  coalesce(h.failures, 0) AS failures,
  CAST(coalesce(h.repair_hours, 0) AS DOUBLE) AS repair_hours,
  CAST(greatest(r.reporting_hours - coalesce(h.repair_hours, 0), 0) / (fleet.machines * 24.0) AS DOUBLE) AS availability
FROM reporting AS r
CROSS JOIN fleet
LEFT JOIN repair_hours AS h ON h.date = r.date
