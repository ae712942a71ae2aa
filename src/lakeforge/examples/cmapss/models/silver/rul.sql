-- kind: materialized
-- description: >-
--   True remaining useful life of each test engine at its last cycle. The published file has no unit
--   column: line N belongs to unit N. Ingestion keeps each file's lines in order and contiguous (one file is read
--   in one batch, in file order), so the line number is the row's position among its file's rows:
--   row_number() OVER () numbers the scan in order (an order-preserving streaming window), and subtracting the
--   file's first position restarts it per file. lakeforge.ml.cmapss checks the result against the file.
-- expectations:
--   - {name: no_rescued_values, expr: _rescued_data IS NULL, action: quarantine}
--   - {name: rul_present, expr: rul IS NOT NULL AND rul >= 0, action: quarantine}
WITH scanned AS (
  SELECT rul, _rescued_data, _source_file, _batch_id, row_number() OVER () AS position
  FROM bronze.rul
)
SELECT
  regexp_extract(_source_file, '(FD[0-9]{3})', 1) AS subset,
  CAST(position - min(position) OVER (PARTITION BY _source_file) + 1 AS BIGINT) AS unit,
  rul,
  _rescued_data,
  _source_file,
  _batch_id
FROM scanned
