SELECT
  l.table_name,
  l.source_table,
  l.source_version,
  l.row_count,
  l.loaded_at,
  (
    DATE_PART(EPOCH, CURRENT_TIMESTAMP()) - DATE_PART(EPOCH, l.loaded_at)
  ) / 60.0 AS minutes_since_load,
  n.newest_reading,
  (
    DATE_PART(EPOCH, CURRENT_TIMESTAMP()) - DATE_PART(EPOCH, n.newest_reading)
  ) / 3600.0 AS hours_since_newest_reading
FROM _lakeforge_loads AS l
CROSS JOIN (
  SELECT
    MAX(hour) AS newest_reading
  FROM fact_telemetry_hourly
) AS n
