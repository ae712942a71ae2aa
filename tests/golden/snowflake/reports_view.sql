SELECT table_type, comment, created FROM information_schema.tables WHERE table_schema = 'GOLD' AND table_name = 'SITE_SUMMARY_VIEW';
CREATE OR REPLACE VIEW site_summary_view AS SELECT site, count(*) AS readings, avg(value) AS value_avg FROM readings GROUP BY site;
SELECT table_type, comment, created FROM information_schema.tables WHERE table_schema = 'GOLD' AND table_name = 'SITE_SUMMARY_VIEW';
CREATE OR REPLACE VIEW site_summary_view AS SELECT site, count(*) AS readings, avg(value) AS value_avg FROM readings GROUP BY site;
