-- kind: materialized
-- description: Machine dimension with its site.
SELECT m.machine_id, m.model, m.age, m.install_date, m.site_id, s.site_name, s.region
FROM silver.machines AS m
LEFT JOIN silver.sites AS s ON s.site_id = m.site_id
