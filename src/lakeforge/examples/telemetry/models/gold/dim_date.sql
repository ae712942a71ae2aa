-- kind: incremental
-- unique_key: [date]
-- description: Calendar dimension over the days that have telemetry.
SELECT DISTINCT
  date,
  year(date) AS year,
  month(date) AS month,
  day(date) AS day,
  dayofweek(date) AS day_of_week,
  weekofyear(date) AS week_of_year
FROM gold.fact_telemetry_daily
