-- kind: materialized
-- description: Machine dimension with its current site (silver.machines keeps the history).
SELECT m.machine_id, m.model, m.age, m.install_date, m.site_id, s.site_name, s.region, m.valid_from
FROM silver.machines AS m
LEFT JOIN silver.sites AS s ON s.site_id = m.site_id
WHERE m.is_current
