-- description: "Data freshness: per warehouse table, the gold version loaded, when, and how long ago; and the
--   newest reading in the warehouse. Always a view: its answer changes with the clock."
-- materialize: false
SELECT
  l.table_name,
  l.source_table,
  l.source_version,
  l.row_count,
  l.loaded_at,
  (extract(EPOCH FROM current_timestamp()) - extract(EPOCH FROM l.loaded_at)) / 60.0 AS minutes_since_load,
  n.newest_reading,
  (extract(EPOCH FROM current_timestamp()) - extract(EPOCH FROM n.newest_reading)) / 3600.0 AS hours_since_newest_reading
FROM _lakeforge_loads AS l
CROSS JOIN (SELECT max(hour) AS newest_reading FROM gold.fact_telemetry_hourly) AS n
