SELECT
  l.table_name,
  l.source_table,
  l.source_version,
  l.row_count,
  l.loaded_at,
  (
    EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) - EXTRACT(EPOCH FROM l.loaded_at)
  ) / 60.0 AS minutes_since_load,
  n.newest_reading,
  (
    EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) - EXTRACT(EPOCH FROM n.newest_reading)
  ) / 3600.0 AS hours_since_newest_reading
FROM _lakeforge_loads AS l
CROSS JOIN (
  SELECT
    MAX(hour) AS newest_reading
  FROM fact_telemetry_hourly
) AS n
