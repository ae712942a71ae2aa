"""What the command line prints: one module for every command's output, as a table, plain lines or ``--json``.

The commands (``cli.py``) call :class:`~lakeforge.project.Project` and hand the typed result here: :func:`show`
prints it as JSON on stdout with ``--json``, else through the command's text form below. Errors are
:func:`fail`'s: one ``error:`` line and one ``fix:`` line on stderr. rich is imported with this module, which
the command line imports when a command runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast

from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

if TYPE_CHECKING:  # the results' types: declared where each is produced
    import pyarrow as pa

    from lakeforge.deploy.databricks import Written
    from lakeforge.generate import GenerateSummary
    from lakeforge.ml.cmapss import CmapssEvaluation
    from lakeforge.ml.nab_eval import NabEvaluation
    from lakeforge.ml.registry import PromoteResult, RegisteredVersion, TrainResult
    from lakeforge.ops.alerts import ActiveAlert, SentAlert
    from lakeforge.ops.slo import SloReport
    from lakeforge.pipeline.backfill import BackfillResult
    from lakeforge.pipeline.events import EventRow
    from lakeforge.pipeline.plan import Plan
    from lakeforge.pipeline.status import StatusReport
    from lakeforge.project import Optimized, Vacuumed
    from lakeforge.quality.gx import ImportResult
    from lakeforge.quality.profile import TableProfile
    from lakeforge.results import RunResult
    from lakeforge.warehouses.verify import TableCheckDict

out = Console()
err = Console(stderr=True)
T = TypeVar("T")


class ReportEntry(TypedDict):
    """A report's line of ``lakeforge report`` (without a name)."""

    name: str
    materialize: bool
    description: str | None


def emit(data: object) -> None:
    """``data`` as one line of JSON on stdout."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")


def show(data: T, *, as_json: bool, text: Callable[[T], None]) -> None:
    """``data`` as JSON (``--json``) or in its text form."""
    if as_json:
        emit(data)
    else:
        text(data)


def note(message: str) -> None:
    err.print(message, highlight=False, soft_wrap=True)


def fail(message: str, hint: str | None, *, status: int = 1) -> None:
    """The one error line and its fix, then exit with ``status``."""
    err.print(f"[red]error: {escape(message)}[/]", highlight=False, soft_wrap=True)
    if hint:  # plain text: a hint like pip install 'lakeforge[serve]' is not markup
        err.print(f"fix: {hint}", highlight=False, soft_wrap=True, markup=False)
    sys.exit(status)


def unexpected(exc: Exception) -> tuple[str, str]:
    """One line for an error lakeforge did not expect, and the fix: a file the system refused, or a bug to report."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return (f"{exc.strerror}{where}", "check that the path exists and this user may read and write it; "
                "`lakeforge --debug ...` shows where it happened")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (f"unexpected {type(exc).__name__}: {lines[0] if lines else 'no message'}",
            "this is a bug in lakeforge: run the command again with --debug and report what it prints "
            "(the traceback), with the command and `pip show lakeforge`")


# -- the text forms, one per kind of result ----------------------------------------------------------------------
def run_line(result: RunResult) -> None:
    if result.status == "nothing_to_do":
        out.print("nothing to do: no new files and every table is up to date")
    else:
        out.print(f"run {result.run_id} {result.status} in {result.seconds:.2f}s")


def generated(result: GenerateSummary) -> None:
    out.print(f"wrote {result['rows']:,} rows in {result['files']} files to {result['path']}")


def scaffolded(result: dict[str, Any]) -> None:
    """``init --from``: each source's files, columns and key, then what was guessed and why."""
    out.print(f"profiled {result['from']}: {len(result['sources'])} sources", highlight=False)
    for name, source in result["sources"].items():
        columns = ", ".join(f"{c} {t}" for c, t in source["columns"].items())
        out.print(f"\n[bold]{escape(name)}[/] ({source['rows_sampled']:,} rows sampled): {escape(columns)}",
                  highlight=False, soft_wrap=True)
        for why in source["why"]:
            out.print(f"  - {escape(why)}", highlight=False, soft_wrap=True)
    out.print(f"\nwrote {', '.join(result['written'])} in {result['path']}; next: lakeforge run --project "
              f"{result['path']}", highlight=False, soft_wrap=True)


def equipment_files(fates: dict[str, str]) -> None:
    """``lakeforge equipment``: each generated file and what became of it."""
    for path, fate in fates.items():
        note_ = {"yours": " (no generated marker: kept as you edited it)", "stale": " (the mapping changed: "
                 "`lakeforge equipment` rewrites it)", "missing": " (`lakeforge equipment` writes it)"}.get(fate, "")
        out.print(f"{fate:>9}  {escape(path)}{note_}", highlight=False, soft_wrap=True)


def plan(data: Plan) -> None:
    table = Table("step", "would", "recomputes", "why")
    for s in data["sources"]:
        table.add_row(f"ingest {s['name']}", "run" if s["run"] else "skip", "new files" if s["run"] else "",
                      f"{s['files']} new files ({s['bytes']:,} bytes)" if s["run"] else "no new files")
    for m in data["models"]:
        why = m["reason"]
        if m["incremental"] and m["run"] and m["strategy"] == "full" and m["incremental"]["strategy"] != "full":
            why += f" (incrementally: {m['incremental']['strategy']})"
        table.add_row(escape(f"{m['name']} ({m['kind']})"), f"run ({m['strategy']})" if m["run"] else "skip",
                      escape(m["recompute"]), escape(why))
    out.print(table)


def profile(data: TableProfile) -> None:
    out.print(f"{data['table']} v{data['version']}: {data['rows']:,} rows")
    grid = Table("column", "type", "nulls", "distinct", "min", "max", "p50")
    for c in data["columns"]:
        grid.add_row(c["name"], c["type"], f"{c['null_rate']:.1%}", f"{c['distinct']:,}", str(c["min"]),
                     str(c["max"]), str(c.get("quantiles", {}).get("p50", "")))
    out.print(grid)


def optimized(done: list[Optimized]) -> None:
    for d in done:
        out.print(f"{d['table']}: {d['files_removed']} files compacted into {d['files_added']}"
                  + (f", Z-ordered by {', '.join(d['zorder'])}" if d["zorder"] else ""))


def vacuumed(done: list[Vacuumed], *, applied: bool) -> None:
    for d in done:
        verb = "deleted" if d["deleted"] else "would delete"
        out.print(f"{d['table']}: {verb} {len(d['files'])} files")
    if not applied:
        out.print("dry run: pass --apply to delete")


def status(data: StatusReport) -> None:
    table = Table("table", "rows", "version", "last modified", "freshness (s)")
    for t in data["tables"]:
        table.add_row(t["name"], f"{t['rows']:,}", str(t["version"]), t["last_modified"], str(t["freshness_seconds"]))
    out.print(table)
    out.print(f"quarantine rows: {data['quarantine_rows']:,}")
    for name, backlog in data["backlog"].items():
        out.print(f"backlog {name}: {backlog['files']} files, {backlog['bytes']:,} bytes")
        if backlog.get("changed_after_ingest"):
            out.print(f"[yellow]changed after ingest {name}: {backlog['changed_after_ingest']} files[/yellow] (their "
                      "new content is not ingested; `lakeforge runs` and the event log name them)")
    last = data["last_run"]
    if last:
        out.print(f"last run: {last['run_id']} {last['status']} ({last['seconds']}s)")


def runs(history: list[EventRow]) -> None:
    table = Table("run", "status", "started", "seconds", "rows in", "MB in", "cost $", "error")
    for r in history:
        state = r["status"] if r["status"] in ("succeeded", "nothing_to_do") else f"[red]{r['status']}[/red]"
        table.add_row(r["run_id"], state, str(r["started_at"] or ""), f"{r['seconds'] or 0:.1f}",
                      f"{r['rows_in'] or 0:,}", f"{(r['bytes_in'] or 0) / 1e6:,.1f}", f"{r['cost'] or 0:.4f}",
                      (r["error"] or "").split("\n")[0][:80])
    out.print(table)


def rows(result: pa.Table, *, as_json: bool) -> None:
    """An Arrow table as JSON (``columns``, ``rows``) or as a table on the terminal."""
    values = [list(r.values()) for r in result.to_pylist()]
    if as_json:
        emit({"columns": result.column_names, "rows": values})
        return
    table = Table(*result.column_names)
    for row in values:
        table.add_row(*[str(v) for v in row])
    out.print(table)


def backfilled(result: BackfillResult) -> None:
    for item in result["models"]:
        out.print(f"{item['model']}: {item['rows_deleted']:,} rows replaced by {item['rows_written']:,} "
                  f"({item['column']} in {result['from']} .. {result['to']})")


def alerts_firing(active: list[ActiveAlert]) -> None:
    for item in active:
        out.print(f"[red]{item['name']}[/red] ({item['severity']}): {item['message']} — since {item['since']}")
    if not active:
        out.print("no alert is firing")


def alerts_sent(sent: list[SentAlert]) -> None:
    for item in sent:
        out.print(f"{item['state']}: {item['name']}: {item['message']}", soft_wrap=True)


def pairs(result: CmapssEvaluation | NabEvaluation) -> None:
    for key, value in result.items():
        out.print(f"{key}: {value}")


def _nab_score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def nab_evaluated(result: CmapssEvaluation | NabEvaluation) -> None:
    """A NAB corpus: each profile's score and threshold, then per category and per stream (standard profile
    unless said; a stream without labeled windows shows its false positives, not a score)."""
    if "profiles" not in result:
        pairs(result)
        return
    nab = cast("NabEvaluation", result)
    profiles = Table("profile", "score", "threshold", "windows found", "false positives")
    for name, p in nab["profiles"].items():
        profiles.add_row(name, f"{p['score']:.2f}", f"{p['threshold']:.4f}",
                         f"{p['windows_detected']}/{p['windows_detected'] + p['windows_missed']}",
                         str(p["false_positives"]))
    out.print(profiles)
    names = list(nab["profiles"])
    categories = Table(Column("category", overflow="fold"), "streams", "windows",
                       *[Column(n, overflow="fold") for n in names], "false positives (standard)")
    for category, g in nab["categories"].items():
        categories.add_row(category, str(g["streams"]), str(g["windows"]), *[_nab_score(g["scores"][n]) for n in names],
                           str(g["false_positives"]["standard"]))
    out.print(categories)
    streams = Table(Column("stream", overflow="fold"), "windows", "found", "standard", "false positives", "raw")
    for key, s in nab["streams"].items():
        streams.add_row(key, str(s["windows"]), str(s["windows_detected"]["standard"]),
                        _nab_score(s["scores"]["standard"]), str(s["false_positives"]["standard"]),
                        f"{s['raw']['standard']:.3f}")
    out.print(streams)
    cv = nab["cross_validated"]
    if cv is not None:
        out.print(f"NAB standard score, cross-validated (each of {len(nab['folds'])} categories scored at the "
                  f"threshold chosen on the others): {cv:.2f}", soft_wrap=True)
    out.print(f"NAB standard score, in-sample (one threshold chosen on these {len(nab['streams'])} streams): "
              f"{nab['score']:.2f}; published, over the whole corpus of 58: "
              + ", ".join(f"{k} {v}" for k, v in nab["published"].items()), soft_wrap=True)


def trained(result: TrainResult) -> None:
    m = result["metrics"]
    out.print(f"{result['model']} version {result['version']} is the {result['alias']}: macro F1 "
              f"{m['macro_f1']:.3f}, AUC-PR (any failure) {m.get('auc_pr_any_failure', float('nan')):.3f} on "
              f"{result['rows_test']:,} holdout rows (run {result['run_id']})", soft_wrap=True)


def promoted(result: PromoteResult) -> None:
    verdict = "promoted" if result["promoted"] else "not promoted"
    out.print(f"{result['model']} version {result['challenger']} {verdict}: {result['reason']}; "
              f"champion: version {result['champion']}", soft_wrap=True)


def scored(result: RunResult) -> None:
    for s in result.stages:
        out.print(f"{s.name}: {s.status}: {s.detail}", soft_wrap=True, highlight=False, markup=False)


def registered(versions: list[RegisteredVersion]) -> None:
    table = Table("version", "aliases", "macro F1", "AUC-PR", "seed", "run")
    for v in versions:
        m = v["metrics"]
        table.add_row(v["version"], ", ".join(v["aliases"]), f"{m.get('macro_f1', float('nan')):.3f}",
                      f"{m.get('auc_pr_any_failure', float('nan')):.3f}", str(v["seed"]), str(v["run_id"]))
    out.print(table if versions else "no model is registered yet: `lakeforge ml train`")


def slo(data: SloReport) -> None:
    from lakeforge.ops.slo import render

    render(data, out)


def reports(listing: list[ReportEntry]) -> None:
    for item in listing:
        out.print(f"{item['name']}: {' '.join(str(item['description'] or '').split())}")


def verified(checks: list[TableCheckDict]) -> None:
    for check in checks:
        if check["ok"]:
            out.print(f"{check['table']}: ok ({check['gold_rows']:,} rows, {check['partitions']} partitions)")
            continue
        where = ", ".join(f"{d['partition']} (gold {d['gold_rows']:,}, warehouse {d['warehouse_rows']:,})"
                          for d in check["differing"])
        if not where and check["gold_rows"] != check["warehouse_rows"]:
            where = "row counts"
        why = [f"in {where}"] if where else []
        if check["stale_source"]:
            why.append("loaded from another Delta table (the lakehouse was created again since): "
                       "`lakeforge run` reloads it in full")
        out.print(f"[red]{check['table']}: differs[/red] {'; '.join(why)}")


def deployed(written: Written, *, as_json: bool) -> None:
    """What a ``deploy`` command wrote, and its notes on stderr."""
    if as_json:
        emit({"out": str(written.out), "files": [str(f) for f in written.files], "notes": written.notes})
    else:
        out.print(f"wrote {len(written.files)} files to {written.out}", soft_wrap=True)
    for line in written.notes:
        note(f"note: {line}")


def gx_imported(result: ImportResult, *, written: Path | None, as_json: bool) -> None:
    """The imported rules: as JSON, as header lines to paste, or the model file they were added to."""
    if as_json:
        emit(result.to_dict())
    elif written is None:
        sys.stdout.write(result.header())
    else:
        out.print(f"{written}: {len(result.expectations)} rules added")
    for item in result.unsupported:
        note(f"not imported: #{item['index']} {item['type']}: {item['reason']}")
    for line in result.notes:
        note(f"note: {line}")
