"""Data-quality benchmarks (imported by bench/run.py).

- overhead: the silver telemetry model with its 10 expectations against the same model without them (dedup
  kept), on the same bronze rows, in the same process: the rules' share of the silver step;
- Great Expectations 1.x: the same 10 checks (imported into GX from lakeforge's suite mapping) on the same
  rows, in the same run; loading the rows into pandas is timed apart.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import ingestion  # type: ignore[import-not-found]  # bench/ingestion.py, beside this file

from lakeforge.project import Project

TENTH_RULE = "--   - {name: machine_id_plausible, in_range: {column: machine_id, min: 1, max: 100000}, action: warn}\n"


def _project(path: Path, landing: Path, memory_limit: str) -> Project:
    ingestion._project(path, landing, only_telemetry=True, memory_limit=memory_limit,
                       keep_models=("silver/telemetry.sql",))
    model = path / "models" / "silver" / "telemetry.sql"
    text = model.read_text()
    text = text.replace("-- expectations:\n", "-- expectations:\n" + TENTH_RULE, 1)
    model.write_text(text)
    return Project(path)


def overhead(work: Path, landing: Path, *, memory_limit: str, repeat: int = 5) -> dict[str, Any]:
    """With and without the rules, interleaved (with, without, with, ...): a drift of the machine over the
    measurement (page cache, write-back of earlier benchmarks) then weighs on both sides alike; measured one side
    after the other, two full runs of this benchmark the same day gave 20% and 6%."""
    project = _project(work / "dq", landing, memory_limit)
    project.run()  # bronze and a first silver
    model = project.path / "models" / "silver" / "telemetry.sql"
    rules = len(project.graph().models["silver.telemetry"].config.expectations)
    with_text = model.read_text()
    without_text = re.sub(r"-- expectations:\n(--   - .*\n)+", "", with_text)

    def silver_seconds(text: str) -> float:
        model.write_text(text)
        result = project.run(select=["silver.telemetry"], full_refresh=True)
        return next(s.seconds for s in result.stages if s.name == "silver.telemetry")

    pairs = [(silver_seconds(with_text), silver_seconds(without_text)) for _ in range(repeat)]
    model.write_text(with_text)
    rows = project.catalog.dataset("bronze.telemetry").count_rows()
    project.close()
    with_rules, without = min(w for w, _ in pairs), min(o for _, o in pairs)
    shares = sorted(w / o - 1 for w, o in pairs)
    return {"rows": rows, "rules": rules, "with_rules_seconds": round(with_rules, 2),
            "without_rules_seconds": round(without, 2), "overhead": round(with_rules / without - 1, 3),
            "pairs": [[round(w, 2), round(o, 2)] for w, o in pairs],
            "overhead_median_of_pairs": round(shares[len(shares) // 2], 3)}


def great_expectations(work: Path) -> dict[str, Any] | None:
    """GX 1.x on the bronze rows of the overhead run (None when GX or the importer is missing)."""
    try:
        import great_expectations  # noqa: F401

        from lakeforge.quality import gx as lf_gx  # noqa: F401
    except ImportError:
        return None
    from bench_gx import run_gx  # type: ignore[import-not-found]  # bench/bench_gx.py

    project = Project(work / "dq")
    dataset = project.catalog.dataset("bronze.telemetry")
    started = time.perf_counter()
    frame = dataset.to_table().to_pandas()
    load = time.perf_counter() - started
    checks = run_gx(frame)
    project.close()
    return {"rows": len(frame), "load_seconds": round(load, 2), **checks}
