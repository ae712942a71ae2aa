WITH fleet AS (
  SELECT
    COUNT(*) AS machines
  FROM dim_machine
), reporting AS (
  SELECT
    h.date,
    h.reporting_hours,
    d.machines_reporting
  FROM (
    SELECT
      CAST(hour AS DATE) AS date,
      COUNT(*) AS reporting_hours
    FROM fact_telemetry_hourly
    GROUP BY
      CAST(hour AS DATE)
  ) AS h
  LEFT JOIN (
    SELECT
      date,
      COUNT(*) AS machines_reporting
    FROM fact_telemetry_daily
    GROUP BY
      date
  ) AS d
    ON d.date = h.date
), repairs AS (
  SELECT
    f.machine_id,
    f.ts,
    MIN(m.ts) AS repaired_at
  FROM fact_failures AS f
  JOIN fact_maintenance AS m
    ON m.machine_id = f.machine_id
    AND m.component = f.component
    AND m.reason = 'failure'
    AND m.ts >= f.ts
  GROUP BY
    f.machine_id,
    f.ts
), repair_hours AS (
  SELECT
    CAST(ts AS DATE) AS date,
    COUNT(*) AS failures,
    SUM(
      CAST((
        EXTRACT(EPOCH FROM repaired_at) - EXTRACT(EPOCH FROM ts)
      ) AS DOUBLE PRECISION) / 3600.0
    ) AS repair_hours
  FROM repairs
  GROUP BY
    CAST(ts AS DATE)
)
SELECT
  r.date,
  fleet.machines,
  r.machines_reporting,
  CAST(fleet.machines * 24 AS BIGINT) AS fleet_hours,
  r.reporting_hours,
  COALESCE(h.failures, 0) AS failures,
  CAST(COALESCE(h.repair_hours, 0) AS DOUBLE PRECISION) AS repair_hours,
  CAST(CAST(GREATEST(r.reporting_hours - COALESCE(h.repair_hours, 0), 0) AS DOUBLE PRECISION) / (
    fleet.machines * 24.0
  ) AS DOUBLE PRECISION) AS availability
FROM reporting AS r
CROSS JOIN fleet
LEFT JOIN repair_hours AS h
  ON h.date = r.date
