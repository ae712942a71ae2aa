"""Hand-written reference for the end-to-end benchmark: the same work as lakeforge's telemetry path, written
directly against DuckDB and deltalake, with no framework.

landing JSON lines -> bronze (typed, rescued values, file metadata) -> silver (9 checks, quarantine, dedup)
-> gold hourly and daily aggregates -> DuckDB warehouse tables.

Usage: python bench/reference.py LANDING_DIR OUT_DIR
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import sys
import time

import duckdb
from deltalake import DeltaTable, write_deltalake

SENSORS = ["volt", "rotate", "pressure", "vibration", "temperature", "humidity"]
RANGES = {"volt": (0, 400), "rotate": (0, 3000), "pressure": (0, 300), "vibration": (0, 200),
          "temperature": (-40, 150)}


def main(landing: str, out: str) -> None:
    started = time.perf_counter()
    con = duckdb.connect(config={"threads": os.cpu_count() or 1})
    con.execute("SET TimeZone='UTC'")
    files = sorted(glob.glob(f"{landing}/telemetry/*.jsonl"))
    paths = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    names = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM read_json({paths}, format='newline_delimited', "
                                   "union_by_name=true)").fetchall()]
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    types = {"ts": "TIMESTAMPTZ", "machine_id": "BIGINT", **{s: "DOUBLE" for s in SENSORS}}
    casts = ", ".join(f"TRY_CAST({c} AS {t}) AS {c}" for c, t in types.items() if c in names)
    failed = [f"({c} IS NOT NULL AND TRY_CAST({c} AS {t}) IS NULL)" for c, t in types.items() if c in names]
    rescued = (f"CASE WHEN {' OR '.join(failed)} THEN CAST(to_json(map_from_entries(list_filter(["
               + ", ".join(f"{{'k': '{c}', 'v': CASE WHEN {f} THEN {c} END}}"
                           for (c, _), f in zip([x for x in types.items() if x[0] in names], failed, strict=True))
               + "], lambda x: x.v IS NOT NULL))) AS VARCHAR) END")
    now = dt.datetime.now(dt.UTC).isoformat()
    bronze = f"{out}/bronze/telemetry"
    reader = con.sql(
        f"SELECT * REPLACE ({casts}), {rescued} AS _rescued_data, "
        f"CAST('{now}' AS TIMESTAMPTZ) AS _ingested_at, CAST(0 AS BIGINT) AS _batch_id "
        f"FROM read_json({paths}, format='newline_delimited', columns={columns}, filename='_source_file')"
    ).to_arrow_reader(256 * 1024)
    write_deltalake(bronze, reader, mode="overwrite")
    t_bronze = time.perf_counter()

    con.register("bronze_telemetry", DeltaTable(bronze).to_pyarrow_dataset())
    checks = ["_rescued_data IS NULL", "ts IS NOT NULL", "machine_id IS NOT NULL"]
    checks += [f"({c} IS NULL OR {c} BETWEEN {lo} AND {hi})" for c, (lo, hi) in RANGES.items()]
    warn = " AND ".join(f"{c} IS NOT NULL" for c in RANGES)
    rules = ", ".join(f"coalesce({c}, false) AS r{i}" for i, c in enumerate(checks))
    ok = " AND ".join(f"r{i}" for i in range(len(checks)))
    con.execute(
        f"CREATE TABLE stage AS SELECT *, row_number() OVER (PARTITION BY machine_id, ts ORDER BY ({ok}) DESC, "
        f"_batch_id, _source_file) AS rn, coalesce({warn}, false) AS all_reported FROM "
        f"(SELECT *, {rules} FROM bronze_telemetry)"
    )
    internal = ", ".join([f"r{i}" for i in range(len(checks))] + ["rn", "all_reported"])
    write_deltalake(f"{out}/silver/telemetry", con.sql(
        f"SELECT * EXCLUDE ({internal}) FROM stage WHERE {ok} AND rn = 1").to_arrow_reader(256 * 1024))
    write_deltalake(f"{out}/quarantine/silver_telemetry", con.sql(
        f"SELECT * EXCLUDE ({internal}) FROM stage WHERE NOT ({ok})").to_arrow_table())
    con.execute("DROP TABLE stage")
    t_silver = time.perf_counter()

    con.register("silver_telemetry", DeltaTable(f"{out}/silver/telemetry").to_pyarrow_dataset())
    hourly = ("SELECT machine_id, date_trunc('HOUR', ts) AS hour, count(*) AS readings, "
              + ", ".join(f"avg({s}) AS {s}_avg, min({s}) AS {s}_min, max({s}) AS {s}_max"
                          for s in ("volt", "rotate", "pressure", "vibration"))
              + ", stddev_samp(vibration) AS vibration_std, avg(temperature) AS temperature_avg, "
              "max(temperature) AS temperature_max FROM silver_telemetry GROUP BY ALL")
    daily = ("SELECT machine_id, CAST(ts AS DATE) AS date, count(*) AS readings, avg(volt) AS volt_avg, "
             "avg(rotate) AS rotate_avg, avg(pressure) AS pressure_avg, avg(vibration) AS vibration_avg, "
             "max(vibration) AS vibration_max, avg(temperature) AS temperature_avg FROM silver_telemetry GROUP BY ALL")
    for name, sql in (("fact_telemetry_hourly", hourly), ("fact_telemetry_daily", daily)):
        write_deltalake(f"{out}/gold/{name}", con.sql(sql).to_arrow_reader(256 * 1024))
    t_gold = time.perf_counter()

    wh = duckdb.connect(f"{out}/warehouse.duckdb")
    for name in ("fact_telemetry_hourly", "fact_telemetry_daily"):
        wh.register("src", DeltaTable(f"{out}/gold/{name}").to_pyarrow_dataset())
        wh.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM src")
        wh.unregister("src")
    wh.close()
    end = time.perf_counter()
    print(f"bronze {t_bronze - started:.2f}s silver {t_silver - t_bronze:.2f}s gold {t_gold - t_silver:.2f}s "
          f"warehouse {end - t_gold:.2f}s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
