-- description: "MTBF and MTTR per machine model: operating hours (hours with telemetry) per failure, and the
--   mean hours from a failure to its corrective maintenance."
WITH operating AS (
  SELECT m.model, count(DISTINCT t.machine_id) AS machines, count(*) AS operating_hours
  FROM gold.fact_telemetry_hourly AS t
  JOIN gold.dim_machine AS m ON m.machine_id = t.machine_id
  GROUP BY m.model
),
repairs AS (
  SELECT f.machine_id, f.component, f.ts, min(m.ts) AS repaired_at
  FROM gold.fact_failures AS f
  LEFT JOIN gold.fact_maintenance AS m
    ON m.machine_id = f.machine_id AND m.component = f.component AND m.reason = 'failure' AND m.ts >= f.ts
  GROUP BY f.machine_id, f.component, f.ts
),
failures AS (
  SELECT d.model, count(*) AS failures,
         avg((extract(EPOCH FROM r.repaired_at) - extract(EPOCH FROM r.ts)) / 3600.0) AS mttr_hours
  FROM repairs AS r
  JOIN gold.dim_machine AS d ON d.machine_id = r.machine_id
  GROUP BY d.model
)
SELECT
  o.model,
  o.machines,
  o.operating_hours,
  coalesce(f.failures, 0) AS failures,
  CAST(o.operating_hours AS DOUBLE) / nullif(f.failures, 0) AS mtbf_hours,
  CAST(f.mttr_hours AS DOUBLE) AS mttr_hours
FROM operating AS o
LEFT JOIN failures AS f ON f.model = o.model
