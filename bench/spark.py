"""The Spark engine benchmark (imported by bench/run.py).

On the same clean landing zone as the ingestion benchmark (~10M telemetry rows of JSON lines), landing ->
bronze three ways, each in its own process, alternating, best of ``repeat``:

- lakeforge on Spark: ``lakeforge run --engine spark`` of a project with the telemetry source only;
- the same work hand-written in PySpark (``bench/spark_reference.py``), in lakeforge's Spark session;
- lakeforge on DuckDB: the same project, with its own engine.

Then (``silver``) the same project with the silver telemetry model kept, on Spark and on DuckDB.
Peak memory is sampled over the child's whole process tree (Python and the JVM PySpark starts: the JVM is not
the child's own waited-for child, so the wait4 figure of ``timed`` would miss it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import ingestion  # type: ignore[import-not-found]  # bench/ingestion.py, beside this file
import psutil

from lakeforge.config.models import SparkEngineConfig
from lakeforge.generate import Dirt, generate

BENCH = Path(__file__).resolve().parent
TARGET_OVERHEAD = 1.3
READINGS_PER_DAY = 24 * 6  # the generator's default: a reading every 10 minutes

Timed = Callable[..., tuple[float, float, str]]


class TreePeak:
    """Peak resident memory (GB) of this process's descendants, sampled every ``interval`` seconds, with a
    progress line every ``report`` seconds while a child runs long."""

    def __init__(self, label: str, *, interval: float = 0.2, report: float = 60.0) -> None:
        self.label, self.interval, self.report = label, interval, report
        self.peak_gb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        started = last = time.perf_counter()
        while not self._stop.wait(self.interval):
            rss = 0
            for proc in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # a process that has just ended
                    rss += proc.memory_info().rss
            self.peak_gb = max(self.peak_gb, rss / 1024**3)
            if time.perf_counter() - last >= self.report:
                last = time.perf_counter()
                print(f"    ... {self.label} still running: {last - started:.0f}s, {rss / 1024**3:.2f} GB now",
                      flush=True)


def clean_landing(work: Path, *, machines: int, days: int) -> tuple[Path, int]:
    """The ingestion benchmark's clean landing zone (same seed and files), reused when it holds the rows
    ``machines`` x ``days`` make, generated again otherwise."""
    landing = work / "landing-clean"
    expected = machines * days * READINGS_PER_DAY
    folder = landing / "telemetry"
    rows = sum(ingestion._lines(f) for f in folder.iterdir()) if folder.is_dir() else 0
    if rows != expected:
        print(f"  generating {expected:,} clean telemetry rows in {landing}", flush=True)
        shutil.rmtree(landing, ignore_errors=True)
        generate(landing, machines=machines, days=days, seed=2, files=20, dirt=Dirt.none())
        rows = sum(ingestion._lines(f) for f in folder.iterdir())
    return landing, rows


class RunFailed(Exception):
    """A ``lakeforge run`` that did not succeed: the failed stage, its error in short, and after how long."""

    def __init__(self, stage: str, error: str, seconds: float) -> None:
        super().__init__(f"{stage}: {error} (after {seconds:.0f} s)")
        self.stage, self.error, self.seconds = stage, error, seconds


def _short(error: str, stderr: str) -> str:
    """The gist of a failed run: the error's first line and its root cause (a JVM error's ``Caused by``)."""
    lines = [ln.strip() for ln in error.splitlines() if ln.strip() and not ln.strip().startswith("at ")]
    causes = [ln for ln in lines if ln.startswith("Caused by:")]
    if not causes:  # e.g. the JVM shut down: its log on stderr names the fatal error
        causes = [ln.strip() for ln in stderr.splitlines() if ln.startswith(("java.", "Caused by:"))][:1]
    first = lines[0] if lines else "no error recorded"
    return first[:300] + (f" ... {causes[-1][:200]}" if causes and causes[-1] not in first else "")


def _record(project: Path, stderr: str) -> dict[str, Any]:
    runs = sorted((project / "lakehouse" / "_lakeforge" / "runs").glob("*.json"))
    if not runs:
        raise SystemExit(f"no run record in {project}:\n{stderr[-3000:]}")
    record: dict[str, Any] = json.loads(runs[-1].read_text())
    if record["status"] != "succeeded":
        raise RunFailed(record.get("failed_stage") or "?", _short(record["error"] or "", stderr),
                        float(record["seconds"]))
    return record


def _lakeforge(project: Path, engine: str | None, *, rows: int, timed: Timed) -> dict[str, Any]:
    """One cold ``lakeforge run`` of ``project`` (a fresh lakehouse): process seconds, stage seconds, peak."""
    shutil.rmtree(project / "lakehouse", ignore_errors=True)
    (project / "warehouse.duckdb").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "lakeforge.cli", "run", *(["--engine", engine] if engine else []), "--json",
           "--project", str(project)]
    with TreePeak(f"lakeforge on {engine or 'duckdb'}") as peak:
        seconds, _, err = timed(cmd)
    record = _record(project, err)
    stages = {s["name"]: s for s in record["stages"]}
    ingested = stages["ingest:telemetry"]["rows_out"]
    if ingested != rows:
        raise SystemExit(f"lakeforge on {engine or 'duckdb'} ingested {ingested:,} of {rows:,} rows")
    return {"process": seconds, "run": float(record["seconds"]), "peak": peak.peak_gb,
            "stages": {name: float(s["seconds"]) for name, s in stages.items() if s["status"] != "skipped"}}


def _reference(landing: Path, out: Path, *, rows: int, timed: Timed) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    with TreePeak("hand-written PySpark") as peak:
        seconds, _, err = timed([sys.executable, str(BENCH / "spark_reference.py"), str(landing), str(out)])
    figures = json.loads(err.strip().splitlines()[-1])
    if figures["rows"] != rows:
        raise SystemExit(f"the PySpark reference wrote {figures['rows']:,} of {rows:,} rows")
    return {"process": seconds, "session": float(figures["session"]), "work": float(figures["work"]),
            "peak": peak.peak_gb}


def _java() -> str:
    """``Java 17.0.15``, from ``java -version``."""
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return "Java ?"
    match = re.search(r'version "([^"]+)"', out)
    return f"Java {match.group(1) if match else '?'}"


def compare(work: Path, *, machines: int, days: int, repeat: int, timed: Timed, memory_limit: str,
            silver: bool = True) -> dict[str, Any]:
    landing, rows = clean_landing(work, machines=machines, days=days)
    project = ingestion._project(work / "spark-ingest", landing, only_telemetry=True, memory_limit=memory_limit)
    ref, lf_spark, lf_duck = [], [], []
    load = os.getloadavg()[0]
    print(f"  spark: {rows:,} rows, load average {load:.1f} on {os.cpu_count()} cores", flush=True)
    for i in range(repeat):
        ref.append(_reference(landing, work / "spark-reference", rows=rows, timed=timed))
        print(f"  spark {i + 1}: hand-written PySpark {ref[-1]['work']:.2f}s of work "
              f"(session {ref[-1]['session']:.2f}s, process {ref[-1]['process']:.2f}s, "
              f"peak {ref[-1]['peak']:.2f} GB)", flush=True)
        lf_spark.append(_lakeforge(project, "spark", rows=rows, timed=timed))
        print(f"  spark {i + 1}: lakeforge on Spark {lf_spark[-1]['stages']['ingest:telemetry']:.2f}s of ingestion "
              f"(run {lf_spark[-1]['run']:.2f}s, process {lf_spark[-1]['process']:.2f}s, "
              f"peak {lf_spark[-1]['peak']:.2f} GB)", flush=True)
        lf_duck.append(_lakeforge(project, None, rows=rows, timed=timed))
        print(f"  spark {i + 1}: lakeforge on DuckDB {lf_duck[-1]['stages']['ingest:telemetry']:.2f}s of ingestion "
              f"(process {lf_duck[-1]['process']:.2f}s, peak {lf_duck[-1]['peak']:.2f} GB)", flush=True)

    def best(runs: list[dict[str, Any]], key: str) -> float:
        return min(r["stages"]["ingest:telemetry"] if key == "ingest" else r[key] for r in runs)

    spark_s, ref_s, duck_s = best(lf_spark, "ingest"), best(ref, "work"), best(lf_duck, "ingest")
    spark_p, ref_p, duck_p = best(lf_spark, "process"), best(ref, "process"), best(lf_duck, "process")
    config = SparkEngineConfig()
    result: dict[str, Any] = {
        "rows": rows,
        "repeat": repeat,
        "load_average": round(load, 1),
        "master": config.master,
        "shuffle_partitions": config.shuffle_partitions,
        "versions": f"PySpark {metadata.version('pyspark')}, delta-spark {metadata.version('delta-spark')}, "
                    f"{_java()}",
        "reference_seconds": round(ref_s, 2),
        "reference_session_seconds": round(best(ref, "session"), 2),
        "reference_process_seconds": round(ref_p, 2),
        "reference_peak_gb": round(max(r["peak"] for r in ref), 2),
        "spark_seconds": round(spark_s, 2),
        "spark_run_seconds": round(best(lf_spark, "run"), 2),
        "spark_process_seconds": round(spark_p, 2),
        "spark_peak_gb": round(max(r["peak"] for r in lf_spark), 2),
        "spark_rows_per_second": round(rows / spark_s),
        "duckdb_seconds": round(duck_s, 2),
        "duckdb_process_seconds": round(duck_p, 2),
        "duckdb_peak_gb": round(max(r["peak"] for r in lf_duck), 2),
        "overhead": round(spark_s / ref_s, 3),
        "overhead_process": round(spark_p / ref_p, 3),
        "duckdb_speedup": round(spark_s / duck_s, 2),
        "duckdb_speedup_reference": round(ref_s / duck_s, 2),
        "duckdb_speedup_process": round(spark_p / duck_p, 2),
        "silver": None,
    }
    if silver:
        result["silver"] = _silver(work, landing, rows=rows, repeat=repeat, timed=timed, memory_limit=memory_limit)
    return result


def _silver(work: Path, landing: Path, *, rows: int, repeat: int, timed: Timed, memory_limit: str) -> dict[str, Any]:
    """Ingestion and the silver telemetry model (10 rules, dedup on machine and time), on Spark and on DuckDB."""
    project = ingestion._project(work / "spark-silver", landing, only_telemetry=True, memory_limit=memory_limit,
                                 keep_models=("silver/telemetry.sql",))
    on_spark: list[dict[str, Any]] = []
    on_duckdb: list[dict[str, Any]] = []
    failed: RunFailed | None = None
    for i in range(repeat):
        for engine, runs in (("spark", on_spark), (None, on_duckdb)):
            if engine and failed:
                continue  # the same work fails the same way: no second try
            try:
                runs.append(_lakeforge(project, engine, rows=rows, timed=timed))
            except RunFailed as exc:
                if not engine:
                    raise SystemExit(f"lakeforge on DuckDB failed: {exc}") from None
                failed = exc
                print(f"  spark silver {i + 1}: lakeforge on spark FAILED in {exc}", flush=True)
                continue
            print(f"  spark silver {i + 1}: lakeforge on {engine or 'duckdb'}: {runs[-1]['stages']} "
                  f"(process {runs[-1]['process']:.2f}s, peak {runs[-1]['peak']:.2f} GB)", flush=True)

    def best(runs: list[dict[str, Any]], stage: str) -> float:
        return min(r["stages"][stage] for r in runs)

    out: dict[str, Any] = {"model": "silver.telemetry", "spark_error": None}
    for name, runs in (("spark", on_spark), ("duckdb", on_duckdb)):
        if name == "spark" and failed:
            out.update({"spark_error": failed.error, "spark_failed_stage": failed.stage,
                        "spark_failed_after_seconds": round(failed.seconds, 1)})
            continue
        out[f"{name}_ingest_seconds"] = round(best(runs, "ingest:telemetry"), 2)
        out[f"{name}_silver_seconds"] = round(best(runs, "silver.telemetry"), 2)
        out[f"{name}_process_seconds"] = round(min(r["process"] for r in runs), 2)
        out[f"{name}_peak_gb"] = round(max(r["peak"] for r in runs), 2)
    if not failed:
        out["duckdb_speedup_silver"] = round(out["spark_silver_seconds"] / out["duckdb_silver_seconds"], 2)
        out["duckdb_speedup_process"] = round(out["spark_process_seconds"] / out["duckdb_process_seconds"], 2)
    return out
