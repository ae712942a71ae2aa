"""Ingestion benchmarks (imported by bench/run.py).

- throughput: lakeforge's landing -> bronze stage against DuckDB's own JSON-to-Delta (read_json with an
  explicit schema, streamed into deltalake) on the same clean files, in the same run, each in its own process;
- freshness: with `lakeforge run --watch` running, the time from a 100k-row file landing to its rows being
  counted in gold.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from deltalake import DeltaTable

from lakeforge.generate import Dirt, generate
from lakeforge.project import Project

REFERENCE = """
import sys, duckdb, glob, time
from deltalake import write_deltalake
started = time.perf_counter()
landing, out = sys.argv[1], sys.argv[2]
files = sorted(glob.glob(landing + "/telemetry/*.jsonl"))
paths = "[" + ", ".join("'" + f + "'" for f in files) + "]"
con = duckdb.connect()
columns = ("{'ts': 'TIMESTAMP', 'machine_id': 'BIGINT', 'volt': 'DOUBLE', 'rotate': 'DOUBLE', "
           "'pressure': 'DOUBLE', 'vibration': 'DOUBLE', 'temperature': 'DOUBLE'}")
reader = con.sql(f"SELECT * FROM read_json({paths}, format='newline_delimited', columns={columns}, "
                 "filename='_source_file')").to_arrow_reader(256 * 1024)
write_deltalake(out, reader, mode="overwrite")
print(f"{time.perf_counter() - started:.4f}", file=sys.stderr)
"""


def _lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def _project(path: Path, landing: Path, *, only_telemetry: bool, memory_limit: str,
             keep_models: tuple[str, ...] | None = None) -> Path:
    """The example project on ``landing``; ``only_telemetry`` keeps one source and the models in ``keep_models``
    (paths under models/, default none)."""
    if path.exists():
        shutil.rmtree(path)
    Project.init(path).close()
    config = yaml.safe_load((path / "lakeforge.yml").read_text())
    config["landing"] = str(landing)
    config["engine"] = {"type": "duckdb", "memory_limit": memory_limit}
    if only_telemetry:
        config["sources"] = {"telemetry": config["sources"]["telemetry"]}
        for sql in (path / "models").rglob("*.sql"):
            if str(sql.relative_to(path / "models")) not in (keep_models or ()):
                sql.unlink()
    (path / "lakeforge.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def throughput(work: Path, *, machines: int, days: int, repeat: int, timed: Any, memory_limit: str) -> dict:
    landing = work / "landing-clean"
    shutil.rmtree(landing, ignore_errors=True)
    generate(landing, machines=machines, days=days, seed=2, files=20, dirt=Dirt.none())
    rows = sum(_lines(f) for f in (landing / "telemetry").iterdir())
    ref_times, lf_times, ref_work, lf_work = [], [], [], []
    for i in range(repeat):
        out = work / "duckdb-delta"
        shutil.rmtree(out, ignore_errors=True)
        seconds, _, err = timed([sys.executable, "-c", REFERENCE, str(landing), str(out)])
        ref_times.append(seconds)
        ref_work.append(float(err.strip().splitlines()[-1]))
        project = _project(work / "ingest-only", landing, only_telemetry=True, memory_limit=memory_limit)
        seconds, _, _ = timed([sys.executable, "-m", "lakeforge.cli", "run", "--json", "--project", str(project)])
        record = Project(project).status()["last_run"]
        ingested = next(s["rows_out"] for s in record["stages"] if s["name"] == "ingest:telemetry")
        if record["status"] != "succeeded" or ingested != rows:
            raise SystemExit(f"the ingestion run missed rows: {record['status']}, {ingested:,} of {rows:,}")
        lf_times.append(seconds)
        lf_work.append(next(s["seconds"] for s in record["stages"] if s["name"] == "ingest:telemetry"))
        print(f"  ingestion {i + 1}: DuckDB JSON->Delta {ref_work[-1]:.2f}s of work ({ref_times[-1]:.2f}s process), "
              f"lakeforge {lf_work[-1]:.2f}s ({lf_times[-1]:.2f}s process)", flush=True)
    ref, lf = min(ref_work), min(lf_work)
    return {"rows": rows, "duckdb_seconds": round(ref, 2), "lakeforge_seconds": round(lf, 2),
            "relative_throughput": round(ref / lf, 3), "lakeforge_rows_per_second": round(rows / lf),
            "duckdb_process_seconds": round(min(ref_times), 2), "lakeforge_process_seconds": round(min(lf_times), 2),
            "relative_process": round(min(ref_times) / min(lf_times), 3)}


def _staged(work: Path, trial: int) -> Path:
    """A clean file of 100 machines x 7 days of telemetry (another month for each trial), outside the landing zone."""
    staging = work / f"staging-{trial}"
    shutil.rmtree(staging, ignore_errors=True)
    generate(staging, machines=100, days=7, seed=10 + trial, files=1, start=f"2024-0{trial + 2}-01",
             dirt=Dirt.none())
    return next((staging / "telemetry").iterdir())


def freshness(work: Path, *, memory_limit: str, trials: int = 3) -> dict:
    """Seconds from a 100k-row file landing to its rows being counted in gold, with `run --watch` going."""
    landing = work / "landing-watch"
    shutil.rmtree(landing, ignore_errors=True)
    generate(landing, machines=100, days=3, seed=3, files=3)
    project = _project(work / "watch", landing, only_telemetry=False, memory_limit=memory_limit)
    Project(project).run()
    gold = project / "lakehouse" / "gold" / "fact_telemetry_hourly"

    def gold_rows() -> int:
        table = DeltaTable(str(gold)).to_pyarrow_dataset().to_table(columns=["readings"])
        return int(sum(table["readings"].to_pylist()))

    watcher = subprocess.Popen([sys.executable, "-m", "lakeforge.cli", "run", "--watch", "--interval", "0.2",
                                "--json", "--project", str(project)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    results = []
    try:
        time.sleep(2.0)  # the watcher's first pass (nothing to do) is over
        for trial in range(trials):
            before = gold_rows()
            source = _staged(work, trial)
            new_rows = _lines(source)
            target = landing / "telemetry" / source.name
            shutil.copy(source, landing / "telemetry" / f".{source.name}.tmp")
            landed = time.perf_counter()
            (landing / "telemetry" / f".{source.name}.tmp").rename(target)  # lands atomically
            deadline = landed + 60
            while time.perf_counter() < deadline:
                try:
                    if gold_rows() >= before + new_rows:
                        break
                except Exception:
                    pass
                time.sleep(0.05)
            seconds = time.perf_counter() - landed
            results.append(seconds)
            print(f"  freshness {trial + 1}: {new_rows:,} rows visible in gold after {seconds:.2f}s", flush=True)
    finally:
        watcher.terminate()
        watcher.wait(timeout=30)
    # the reference: the same kind of file taken by a one-shot `lakeforge run` (what a scheduler starts), from
    # its landing to the process's exit with the rows in gold
    source = _staged(work, trials)
    before = gold_rows()
    landed = time.perf_counter()
    shutil.copy(source, landing / "telemetry" / source.name)
    subprocess.run([sys.executable, "-m", "lakeforge.cli", "run", "--json", "--project", str(project)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    oneshot = time.perf_counter() - landed
    assert gold_rows() == before + _lines(source), "the one-shot run did not bring the file to gold"
    median = sorted(results)[len(results) // 2]
    return {"rows": new_rows, "seconds_median": round(median, 2), "seconds_max": round(max(results), 2),
            "oneshot_run_seconds": round(oneshot, 2), "ratio_to_oneshot_run": round(median / oneshot, 3)}
