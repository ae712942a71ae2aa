WITH operating AS (
  SELECT
    m.model,
    COUNT(DISTINCT t.machine_id) AS machines,
    COUNT(*) AS operating_hours
  FROM fact_telemetry_hourly AS t
  JOIN dim_machine AS m
    ON m.machine_id = t.machine_id
  GROUP BY
    m.model
), repairs AS (
  SELECT
    f.machine_id,
    f.component,
    f.ts,
    MIN(m.ts) AS repaired_at
  FROM fact_failures AS f
  LEFT JOIN fact_maintenance AS m
    ON m.machine_id = f.machine_id
    AND m.component = f.component
    AND m.reason = 'failure'
    AND m.ts >= f.ts
  GROUP BY
    f.machine_id,
    f.component,
    f.ts
), failures AS (
  SELECT
    d.model,
    COUNT(*) AS failures,
    AVG(
      CAST((
        EXTRACT(EPOCH FROM r.repaired_at) - EXTRACT(EPOCH FROM r.ts)
      ) AS DOUBLE PRECISION) / 3600.0
    ) AS mttr_hours
  FROM repairs AS r
  JOIN dim_machine AS d
    ON d.machine_id = r.machine_id
  GROUP BY
    d.model
)
SELECT
  o.model,
  o.machines,
  o.operating_hours,
  COALESCE(f.failures, 0) AS failures,
  CAST(o.operating_hours AS DOUBLE PRECISION) / NULLIF(f.failures, 0) AS mtbf_hours,
  CAST(f.mttr_hours AS DOUBLE PRECISION) AS mttr_hours
FROM operating AS o
LEFT JOIN failures AS f
  ON f.model = o.model
