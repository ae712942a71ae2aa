-- kind: materialized
-- description: >-
--   Mean and standard deviation of every sensor (s1 .. s21) over the TRAINING engines, per subset and
--   operating condition (one condition in FD001/FD003, six in FD002/FD004). Features are z-scores against
--   these, so test engines are scaled with training statistics only; a standard deviation of 0 (a sensor
--   constant in that condition) makes the sensor's z-score 0 (gold.cycle_features).
SELECT
  subset,
  op_condition,
  count(*) AS cycles,
  avg(s1) AS s1_mean, stddev_samp(s1) AS s1_std,
  avg(s2) AS s2_mean, stddev_samp(s2) AS s2_std,
  avg(s3) AS s3_mean, stddev_samp(s3) AS s3_std,
  avg(s4) AS s4_mean, stddev_samp(s4) AS s4_std,
  avg(s5) AS s5_mean, stddev_samp(s5) AS s5_std,
  avg(s6) AS s6_mean, stddev_samp(s6) AS s6_std,
  avg(s7) AS s7_mean, stddev_samp(s7) AS s7_std,
  avg(s8) AS s8_mean, stddev_samp(s8) AS s8_std,
  avg(s9) AS s9_mean, stddev_samp(s9) AS s9_std,
  avg(s10) AS s10_mean, stddev_samp(s10) AS s10_std,
  avg(s11) AS s11_mean, stddev_samp(s11) AS s11_std,
  avg(s12) AS s12_mean, stddev_samp(s12) AS s12_std,
  avg(s13) AS s13_mean, stddev_samp(s13) AS s13_std,
  avg(s14) AS s14_mean, stddev_samp(s14) AS s14_std,
  avg(s15) AS s15_mean, stddev_samp(s15) AS s15_std,
  avg(s16) AS s16_mean, stddev_samp(s16) AS s16_std,
  avg(s17) AS s17_mean, stddev_samp(s17) AS s17_std,
  avg(s18) AS s18_mean, stddev_samp(s18) AS s18_std,
  avg(s19) AS s19_mean, stddev_samp(s19) AS s19_std,
  avg(s20) AS s20_mean, stddev_samp(s20) AS s20_std,
  avg(s21) AS s21_mean, stddev_samp(s21) AS s21_std
FROM silver.train
GROUP BY subset, op_condition
