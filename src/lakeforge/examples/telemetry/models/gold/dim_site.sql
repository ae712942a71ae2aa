-- kind: materialized
-- description: Site dimension.
SELECT site_id, site_name, region, timezone FROM silver.sites
