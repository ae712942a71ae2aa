"""The summary plot of docs/benchmarks.md: every figure of a full run as a ratio against its reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RATIOS_IMAGE = "bench-ratios.png"


def ratios(result: dict[str, Any]) -> list[tuple[str, float]]:
    """(label, lakeforge over its reference) for each figure of a full run: below 1, lakeforge takes less."""
    found: list[tuple[str, float]] = [("end to end vs hand-written DuckDB + deltalake", float(result["ratio"]))]
    ing = result.get("ingestion")
    if ing:
        found.append(("ingestion vs DuckDB JSON -> Delta",
                      float(ing["lakeforge_seconds"]) / float(ing["duckdb_seconds"])))
    fr = result.get("freshness") or {}
    if fr.get("ratio_to_oneshot_run"):
        found.append(("freshness, watch vs one-shot run", float(fr["ratio_to_oneshot_run"])))
    dq = result.get("dq")
    if dq:
        found.append(("silver with rules vs without",
                      float(dq["with_rules_seconds"]) / float(dq["without_rules_seconds"])))
        gx = result.get("gx")
        marginal = float(dq["with_rules_seconds"]) - float(dq["without_rules_seconds"])
        if gx and marginal > 0:
            found.append(("rules' cost vs Great Expectations' checks", marginal / float(gx["checks_seconds"])))
    sp = result.get("spark")
    if sp:
        found.append(("Spark engine vs hand-written PySpark", float(sp["overhead"])))
        found.append(("DuckDB engine vs Spark engine (ingestion)", 1 / float(sp["duckdb_speedup"])))
    for name, x in ((result.get("dashboards") or {}).get("dashboards") or {}).items():
        found.append((f"dashboard {name} p95 vs full scan p50", float(x["p95_vs_reference_p50"])))
    for size in (result.get("scale") or {}).get("sizes", []):
        e2e = size["stages"]["end_to_end"]
        if e2e.get("ratio"):
            found.append((f"{round(size['telemetry_rows'] / 1e6):,}M rows end to end vs reference",
                          float(e2e["ratio"])))
        inc = size.get("incremental") or {}
        for which, key in (("first", ""), ("next", "next_")):
            if inc.get(f"{key}ratio_to_fresh_lake_of_the_file"):
                found.append((f"{which} new file on {round(size['telemetry_rows'] / 1e6):,}M rows vs that file alone",
                              float(inc[f"{key}ratio_to_fresh_lake_of_the_file"])))
    return found


def plot_ratios(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = ratios(result)
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(found) + 1.2))
    labels = [label for label, _ in found][::-1]
    values = [value for _, value in found][::-1]
    ax.barh(labels, values, color=["#2b7a3d" if v <= 1 else "#b5651d" for v in values])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("lakeforge / reference (log; below 1: lakeforge takes less)")
    ax.set_title(f"make bench, {result['date']}: against the reference of the same run", fontsize=10)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
