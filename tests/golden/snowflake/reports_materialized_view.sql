SELECT table_type, comment, created FROM information_schema.tables WHERE table_schema = 'GOLD' AND table_name = 'SITE_SUMMARY_MV';
CREATE OR REPLACE MATERIALIZED VIEW site_summary_mv COMMENT = 'lakeforge report materialized_view a09fb0f9fe166e77' AS SELECT site, count(*) AS readings, avg(value) AS value_avg FROM readings GROUP BY site;
SELECT table_type, comment, created FROM information_schema.tables WHERE table_schema = 'GOLD' AND table_name = 'SITE_SUMMARY_MV';
CREATE OR REPLACE MATERIALIZED VIEW site_summary_mv COMMENT = 'lakeforge report materialized_view a09fb0f9fe166e77' AS SELECT site, count(*) AS readings, avg(value) AS value_avg FROM readings GROUP BY site;
