SELECT table_type, comment, created FROM information_schema.tables WHERE table_schema = 'GOLD' AND table_name = 'SITE_SUMMARY';
CREATE OR REPLACE DYNAMIC TABLE site_summary TARGET_LAG = '1 hour' WAREHOUSE = LOAD_WH COMMENT = 'lakeforge report dynamic_table e207c5c0c631598d' AS SELECT site, count(*) AS readings, avg(value) AS value_avg FROM readings GROUP BY site;
SELECT table_type, comment, created FROM information_schema.tables WHERE table_schema = 'GOLD' AND table_name = 'SITE_SUMMARY';
SELECT max(created) FROM information_schema.tables WHERE table_schema = 'GOLD' AND table_type = 'BASE TABLE' AND coalesce(comment, '') NOT LIKE 'lakeforge report %';
ALTER DYNAMIC TABLE site_summary REFRESH;
