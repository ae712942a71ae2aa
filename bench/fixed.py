"""The fixed cost of a run: what one small new file costs on the example project as ``lakeforge init`` makes it.

The example (all six sources, every model, the ML stages and the DuckDB warehouse), 10 machines x 2 days, after
its first run. Each round starts from a copy of that project (run once more untimed, as a project run in place
would have been), lands one new file of 20 telemetry rows and times
``lakeforge run`` as a whole process (interpreter start, imports, the run, exit), then a second ``lakeforge run``
with nothing to do; beside them, in the same round, ``python -c pass`` (the interpreter alone) and the time
``import lakeforge.cli`` takes in a process of its own (the imports). Medians over the rounds, wall and CPU
seconds (user + system: steadier than wall on a loaded machine); the run's stage times come from its run record.
Figures, not assertions: the section says whether the whole process stayed under the target.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from lakeforge.project import Project

MACHINES, DAYS = 10, 2
NEW_ROWS = 20
TARGET_SECONDS = 1.0
HELP_GOAL = 0.3  # issue 23: `lakeforge --help` within this of `python -c pass`
NOOP_GOAL = 0.4  # issue 23: a run with nothing to do under this, whole process
ROUNDS = {"quick": 3, "full": 7}

# The measured command runs as this launcher's child: wall seconds from fork to exit, the child's peak RSS and CPU.
# Not measured from the harness: on Linux a child's ru_maxrss starts from the RSS of the process it was forked from
# (the high-water mark survives exec), so once a harness has grown every child would report at least that. This
# launcher is small (~10 MB) when it forks. bench/run.py uses it too.
LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\n__lf_child seconds={time.perf_counter() - started} peak_kb={usage.ru_maxrss} "
                 f"cpu={usage.ru_utime + usage.ru_stime}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


# the imports of the command, timed inside the process (its exit is not theirs: a process that has imported them
# takes a while to tear them down, which `lakeforge` avoids by freezing them)
_IMPORTS = """
import time
wall, cpu = time.perf_counter(), time.process_time()
import {}
print(time.perf_counter() - wall, time.process_time() - cpu)
"""
# What a run with new data cannot do without: the libraries its stages import (pandas comes with pyarrow's first
# conversion from Python objects; scipy.special with the anomaly detector's normal tail). Timed alone, in a process
# of its own, in the same rounds: the floor under the run's figure.
LIBRARIES = "numpy, pyarrow, pandas, duckdb, deltalake, sqlglot, pydantic, scipy.special"


def _timed(cmd: list[str], *, cwd: Path | None = None) -> tuple[float, float, str]:
    """Wall and CPU seconds of ``cmd`` as a process, and its stdout."""
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], cwd=cwd, capture_output=True, text=True)
    last = proc.stderr.rstrip("\n").rpartition("\n")[2]
    if proc.returncode or not last.startswith("__lf_child"):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    fields = dict(part.split("=") for part in last.split()[1:])
    return float(fields["seconds"]), float(fields["cpu"]), proc.stdout


def _run(lakeforge: list[str], project: Path, *, expect: str) -> tuple[float, float, dict[str, Any]]:
    """``lakeforge run --json`` timed as a process: wall and CPU seconds and its run record, whose status must be
    ``expect``."""
    wall, cpu, out = _timed([*lakeforge, "run", "--json", "--project", str(project)])
    record: dict[str, Any] = json.loads(out)
    if record["status"] != expect:
        raise SystemExit(f"the fixed-cost run ended {record['status']}, not {expect}: {record.get('error')}")
    return wall, cpu, record


def _lakeforge() -> list[str]:
    """The ``lakeforge`` command of this interpreter's environment (what a user types), else ``python -m``."""
    script = Path(sys.executable).parent / "lakeforge"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lakeforge.cli"]


def _base(work: Path) -> Path:
    """The example project after its first run."""
    base = work / "fixed-base"
    shutil.rmtree(base, ignore_errors=True)
    project = Project.init(base, name="fixed")
    project.generate(machines=MACHINES, days=DAYS, seed=42)
    project.close()
    _, _, out = _timed([*_lakeforge(), "run", "--json", "--project", str(base)])
    if json.loads(out)["status"] != "succeeded":
        raise SystemExit(f"the first run of the fixed-cost project failed: {out[-2000:]}")
    return base


def _land(project: Path, *, after: int = 1) -> None:
    """A new file of ``NEW_ROWS`` readings, ``after`` days after the generated ones (the first lines of the
    generated days' last file)."""
    last = sorted(p for p in (project / "landing" / "telemetry").iterdir() if not p.name.startswith("new-"))[-1]
    lines = last.read_text().splitlines()[:NEW_ROWS]
    day = (dt.date(2024, 1, 1) + dt.timedelta(days=DAYS - 1)).isoformat()
    later = (dt.date(2024, 1, 1) + dt.timedelta(days=DAYS - 1 + after)).isoformat()
    (project / "landing" / "telemetry" / f"new-{after:03d}.jsonl").write_text(
        "\n".join(line.replace(day, later) for line in lines) + "\n")


def _fitted(record: dict[str, Any]) -> bool:
    """Whether the run's anomaly stage fitted its isolation forest (its strategy says so)."""
    return any(s["name"] == "ml:anomalies" and s.get("strategy") == "stream+refit" for s in record["stages"])


def measure(work: Path, *, mode: str = "full") -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    base = _base(work)
    lakeforge = _lakeforge()
    samples: dict[str, list[float]] = {k: [] for k in (
        "python_seconds", "python_cpu", "import_seconds", "import_cpu", "run_seconds", "run_cpu", "record_seconds",
        "stages_seconds", "noop_seconds", "noop_cpu", "noop_record_seconds", "fit_seconds", "libraries_seconds",
        "libraries_cpu", "help_seconds", "help_cpu", "status_seconds", "status_cpu")}
    fits: list[bool] = []
    stage_samples: dict[str, list[float]] = {}
    idle: list[int] = []
    for _ in range(ROUNDS[mode]):
        project = work / "fixed-round"
        shutil.rmtree(project, ignore_errors=True)
        shutil.copytree(base, project, symlinks=True)
        # once more, untimed, with a first new file: to the warehouse stage a copied DuckDB file is another file,
        # opened and checked in full by the first run that sees it, and the anomaly stage fits its isolation forest
        # once the machines have 30 hours of history (then keeps it for ml.anomalies.forest_refit_hours): a project
        # run in place has both behind it. That run is the fitting run's figure.
        _land(project, after=1)
        wall, _, record = _run(lakeforge, project, expect="succeeded")
        samples["fit_seconds"].append(wall)
        fits.append(_fitted(record))
        _land(project, after=2)
        wall, cpu, _ = _timed([sys.executable, "-c", "pass"])
        samples["python_seconds"].append(wall)
        samples["python_cpu"].append(cpu)
        for key, args in (("help", ["--help"]), ("status", ["status", "--project", str(project)])):
            wall, cpu, _ = _timed([*lakeforge, *args])
            samples[f"{key}_seconds"].append(wall)
            samples[f"{key}_cpu"].append(cpu)
        for key, modules in (("import", "lakeforge.cli"), ("libraries", LIBRARIES)):
            _, _, out = _timed([sys.executable, "-c", _IMPORTS.format(modules)])
            wall, cpu = (float(x) for x in out.split())
            samples[f"{key}_seconds"].append(wall)
            samples[f"{key}_cpu"].append(cpu)
        wall, cpu, record = _run(lakeforge, project, expect="succeeded")
        samples["run_seconds"].append(wall)
        samples["run_cpu"].append(cpu)
        samples["record_seconds"].append(float(record["seconds"]))
        samples["stages_seconds"].append(sum(float(s["seconds"]) for s in record["stages"]))
        for s in record["stages"]:
            stage_samples.setdefault(s["name"], []).append(float(s["seconds"]))
        idle.append(sum(1 for s in record["stages"] if s["status"] == "skipped"))
        if _fitted(record):
            raise SystemExit("the timed run fitted the isolation forest again: the warm-up run should have")
        wall, cpu, noop = _run(lakeforge, project, expect="nothing_to_do")
        samples["noop_seconds"].append(wall)
        samples["noop_cpu"].append(cpu)
        samples["noop_record_seconds"].append(float(noop["seconds"]))
    shutil.rmtree(work / "fixed-round", ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    median = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    stages = {name: round(statistics.median(v), 3) for name, v in stage_samples.items()}
    return {
        "date": dt.date.today().isoformat(), "mode": mode, "rounds": ROUNDS[mode], "machines": MACHINES,
        "days": DAYS, "new_rows": NEW_ROWS, "command": " ".join(Path(c).name for c in lakeforge[:1]) + " run",
        **median, "run_seconds_max": round(max(samples["run_seconds"]), 3),
        "run_over_python": round(median["run_seconds"] / median["python_seconds"], 1),
        "noop_over_python": round(median["noop_seconds"] / median["python_seconds"], 1),
        "help_over_python": round(median["help_seconds"] - median["python_seconds"], 3),
        "stages": stages, "stages_with_nothing_to_do": round(statistics.median(idle)), "warmup_fitted": all(fits),
        "load_average": round(os.getloadavg()[0], 2), "libraries": LIBRARIES,
    }


def section(r: dict[str, Any]) -> str:
    """The fixed-cost section of docs/benchmarks.md."""
    top = sorted(((s, name) for name, s in r["stages"].items() if s >= 0.02), reverse=True)
    rest = [s for s in r["stages"].values() if s < 0.02]
    per_stage = ", ".join(f"{name} {s}" for s, name in top)
    models = sum(1 for name in r["stages"] if not name.startswith(("ingest:", "ml:")) and name != "warehouse")
    met = "met" if r["run_seconds"] < TARGET_SECONDS else "MISSED"
    besides = round(r["run_seconds"] - r["python_seconds"] - r["import_seconds"] - r["record_seconds"], 3)
    rows = [("`python -c pass`", r["python_seconds"], r["python_cpu"], "1x"),
            ("`import lakeforge.cli` (in the process)", r["import_seconds"], r["import_cpu"],
             f"{round(r['import_seconds'] / r['python_seconds'], 1)}x"),
            (f"the libraries a run with new data imports ({r.get('libraries', LIBRARIES)}; in the process)",
             r["libraries_seconds"], r["libraries_cpu"], f"{round(r['libraries_seconds'] / r['python_seconds'], 1)}x"),
            (f"`{r['command']}`, one new {r['new_rows']}-row file", f"**{r['run_seconds']}**", r["run_cpu"],
             f"{r['run_over_python']}x"),
            (f"`{r['command']}`, nothing to do", r["noop_seconds"], r["noop_cpu"], f"{r['noop_over_python']}x"),
            ("`lakeforge --help`", r["help_seconds"], r["help_cpu"],
             f"{round(r['help_seconds'] / r['python_seconds'], 1)}x"),
            ("`lakeforge status`", r["status_seconds"], r["status_cpu"],
             f"{round(r['status_seconds'] / r['python_seconds'], 1)}x")]
    table = "\n".join(f"| {what} | {wall} | {cpu} | {ratio} |" for what, wall, cpu, ratio in rows)
    return f"""
## Fixed cost of a run ({r['date']}, `bench/run.py --only fixed`)

`bench/fixed.py`: the example project as `lakeforge init` makes it (six sources, {models} models, the ML stages
and the DuckDB warehouse), {r['machines']} machines x {r['days']} days, after its first run. One new file of
{r['new_rows']} telemetry rows lands and `{r['command']}` takes it; then a run with nothing to do. Each is a whole
process (interpreter start, imports, the run, exit), timed in the same rounds as `python -c pass` (the interpreter
alone) and `import lakeforge.cli` (timed inside a process of its own: the imports every command pays); each round
on a fresh copy of the project, run once untimed first (to the warehouse stage a copied DuckDB file is another
file, checked in full once); medians of {r['rounds']} rounds; CPU is user + system (steadier than wall on a loaded
machine).

| | wall s | CPU s | wall vs `python -c pass` |
|---|---|---|---|
{table}

The run before it in each round (untimed as part of the table: a first new file, in which the anomaly stage fitted
its isolation forest, as it does again after `forest_refit_hours` of new history) took {r['fit_seconds']} s whole
(the forest fitted in every round: {r['warmup_fitted']}). The run with the new file, by its run record:
{r['record_seconds']} s, of which its {len(r['stages'])} stages
{r['stages_seconds']} s ({r['stages_with_nothing_to_do']} of them with nothing to do; {len(rest)} stages under
0.02 s took {round(sum(rest), 3)} s together). Stages of 0.02 s or more: {per_stage}. The run with nothing to
do: {r['noop_record_seconds']} s by its record.

Where the whole process goes: the interpreter {r['python_seconds']} s, `import lakeforge.cli` {r['import_seconds']}
s (the command line imports what a command needs when it runs), the run {r['record_seconds']} s by its record, and
{besides} s besides (before the record's clock starts, opening the project: lakeforge's modules, the configuration's
pydantic models, the models' cached headers; after it stops, the record and the event log written, the engine
closed, printing, exit). The run imports the libraries its stages use when they first need them, so the first stage
that reads data pays for them (`ingest:telemetry` above is mostly DuckDB, pyarrow, pandas and deltalake arriving);
timed alone those libraries take {r['libraries_seconds']} s ({r['libraries_cpu']} s CPU). The run with nothing to do
imports deltalake (the tables' versions) and, for its ML stages, numpy and pyarrow; not DuckDB, pandas or sqlglot.
Of the rest, the models are the engine's own work (a merge into `silver.telemetry`, the hourly
and daily facts' touched groups, and four materialized models computed again, `gold.machine_features` the largest, a
CTE chain lakeforge cannot prove incremental); `ml:anomalies` scores the new readings with the isolation forest it
keeps; the warehouse stage loads the gold tables that changed, one transaction each, and DuckDB checkpoints the file
when it closes.

Start-up (issue 23's goals): `lakeforge --help` takes {round(r['help_seconds'] - r['python_seconds'], 3)} s more than
`python -c pass` (goal: within {HELP_GOAL:g} s: **{"met" if r['help_seconds'] - r['python_seconds'] <= HELP_GOAL else
"MISSED"}**); the run with nothing to do takes {r['noop_seconds']} s (goal: under {NOOP_GOAL:g} s: **{"met" if
r['noop_seconds'] < NOOP_GOAL else "MISSED"}**); `lakeforge status` {r['status_seconds']} s. All three import
what they use only: `tests/unit/cli/test_startup.py` keeps the heavy modules out of `import lakeforge.cli`.

Target, the whole process under {TARGET_SECONDS:g} s (one new file on a small lake, ML stages and warehouse
included): **{met}** (median {r['run_seconds']} s, worst of the rounds {r['run_seconds_max']} s; load average
{r['load_average']} at the end). The run with nothing to do is under it. For the run with new data the libraries
alone leave {round(TARGET_SECONDS - r['python_seconds'] - r['libraries_seconds'], 3)} s for {len(r['stages'])}
stages, the record and the exit, which take {round(r['run_seconds'] - r['python_seconds'] - r['libraries_seconds'],
3)} s today: lakeforge's share can shrink further, but the target also needs the libraries lakeforge is built on to
import faster (pandas arrives with pyarrow's conversions and has no switch). Earlier figures of the same
measurement: 3.08 s with the new file and 2.26 s with nothing to do on 2026-12-06 (`ml:risk` imported LightGBM and
scikit-learn to learn there was no champion); 3.195 s and 1.147 s on the morning of 2026-12-07, before the anomaly
stage kept its forest (it imported scikit-learn and fitted every run, 1.18 s) and before the command line and the
engine imported lazily. An isolation forest of our own, written to skip scikit-learn's import, was measured (the run
1.48 s) and left out: it re-implemented a library lakeforge depends on.
"""
