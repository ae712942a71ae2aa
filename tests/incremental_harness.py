"""The differential property of issue 19: incremental models equal a full refresh, for any model a user writes.

A :class:`Scenario` is a project (two sources, ``readings`` and the dimension ``machines``; silver models over
them; gold models of several levels drawn from :data:`SHAPES`) and a list of steps. Each step lands files (new
rows, late rows for old hours and days, exact copies, values that change in a later file, dimension updates) or
rewrites a model's SQL, then runs the project incrementally. After every run :func:`check_scenario` copies the
whole project folder (lakehouse included), runs ``full_refresh=True`` on the copy and compares every model's
table with the incremental one: the same columns and types, the same rows as multisets, floats equal within a
relative and absolute tolerance of :data:`REL_TOL` / :data:`ABS_TOL` (1e-9: an incremental sum adds the same
values in another order). Metadata columns (``_batch_id``, ``_ingested_at`` ...) compare as they are: the
refresh reads the same bronze.

Generated models are valid on a correct engine: ``append`` and ``merge`` only over row-wise SQL, a row-wise
``unique_key`` only over an input unique on it, window functions only over an input whose ordering has no ties.
Rows of one key differ in value only across different files (within a file that would leave ``keep_first`` and
``update`` to chance in any engine); exact copies may sit anywhere. The data is small (up to 12 rows a file, 4
machines, 3 days) so that a scenario runs in a second or two on DuckDB.

A failure names the model, the strategy its run chose, the rows only in either table and the scenario up to the
failing step; its exception class is its family (:func:`_mismatch`), so hypothesis reports each family. A full
refresh that commits nothing is a failure too, not a pass: the tables would be compared with themselves.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import Phase
from hypothesis import strategies as st

from lakeforge.errors import LakeforgeError
from lakeforge.project import Project
from tests.conftest import write_project

# no explain phase: it reruns a shrunk failure many times (seconds each) to say which parts vary freely
PHASES = (Phase.explicit, Phase.generate, Phase.shrink)
REL_TOL = 1e-9
ABS_TOL = 1e-9
# The limits on what a batch may throw away (issue 20) are off: a scenario's batches may be mostly copies, and the
# property is equality with a full refresh, whatever share is dropped (tests/reliability/test_limits.py tests them).
NO_LIMITS = {"max_quarantined": 1.0, "max_dropped": 1.0}
CONFIG: dict[str, object] = {"name": "prop", "dialect": "databricks", "sources": {
    "readings": {"format": "jsonl", "schema_hints": {"machine_id": "bigint", "ts": "timestamp", "v": "double"},
                 "max_quarantined": 1.0},
    "machines": {"format": "jsonl", "schema_hints": {"machine_id": "bigint", "model": "string", "site": "bigint"},
                 "max_quarantined": 1.0},
}}
COLUMNS = {"readings": ("machine_id", "ts", "v"), "machines": ("machine_id", "model", "site")}
ROW_KEY = ["machine_id", "ts"]
DAY_KEY = ["machine_id", "day"]


# -- scenarios -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    """A model file: its YAML header and SQL, in which ``{c}`` stands for the constant :class:`Edit` changes."""

    name: str
    header: dict[str, Any]
    sql: str
    c: int = 0
    shape: str = "custom"

    def text(self, c: int | None = None) -> str:
        lines = [f"-- {key}: {_yaml(value)}" for key, value in {**NO_LIMITS, **self.header}.items()]
        return "\n".join([*lines, self.sql.replace("{c}", str(self.c if c is None else c))]) + "\n"


@dataclass(frozen=True)
class Land:
    """A landing file of ``source`` (``readings``: machine_id, ts, v; ``machines``: machine_id, model, site)."""

    source: str
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Edit:
    """The model's SQL rewritten with another constant."""

    model: str
    c: int


@dataclass(frozen=True)
class Scenario:
    models: tuple[Model, ...]
    steps: tuple[tuple[Land | Edit, ...], ...]  # each step is followed by an incremental run

    def describe(self, *, upto: int | None = None) -> str:
        parts = [f"== {m.name} ==\n{m.text()}" for m in self.models]
        for number, step in enumerate(self.steps[: None if upto is None else upto + 1]):
            parts.append(f"-- step {number}, then run:")
            parts += [f"   {action}" for action in step]
        return "\n".join(parts)


def _yaml(value: Any) -> str:
    return f"[{', '.join(map(str, value))}]" if isinstance(value, list) else str(value)


# -- model shapes --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """A gold model over a table of type ``reads`` (``rows``: machine_id, ts, v; ``daily``: machine_id, day, n, v)
    that outputs a table of type ``output`` (None: nothing reads it). ``rowwise`` shapes keep their input's
    uniqueness, and take a ``unique_key`` only over a unique input."""

    name: str
    reads: str
    sql: str  # {src}: the input table, {join}: INNER or LEFT, {c}: the constant
    kinds: tuple[dict[str, Any], ...]
    output: str | None = None
    rowwise: bool = False
    needs_unique: bool = False

    @property
    def form(self) -> str:
        """What kind of SQL it is, for telling failures apart."""
        if self.rowwise:
            return "row-wise"
        if "JOIN" in self.sql:
            return "GROUP BY over a join"
        return {"window": "window", "latest": "window", "distinct": "DISTINCT"}.get(self.name, "aggregate")


def _kinds(*specs: str) -> tuple[dict[str, Any], ...]:
    """``"merge machine_id,ts"`` -> ``{"kind": "merge", "unique_key": ["machine_id", "ts"]}``."""
    found = []
    for spec in specs:
        kind, _, key = spec.partition(" ")
        found.append({"kind": kind, **({"unique_key": key.split(",")} if key else {})})
    return tuple(found)


_ROWWISE = _kinds("append", "merge machine_id,ts", "incremental machine_id,ts", "incremental", "materialized")
_JOIN = "FROM {src} AS t {join} JOIN silver.machines AS m ON m.machine_id = t.machine_id"
# in order of simplicity: hypothesis shrinks towards the first
SHAPES: tuple[Shape, ...] = (
    Shape("filter", "rows", "SELECT machine_id, ts, v, v * {c} + 1 AS w FROM {src} WHERE v > {c}", _ROWWISE,
          output="rows", rowwise=True),
    Shape("daily", "rows", "SELECT machine_id, CAST(ts AS DATE) AS day, count(*) AS n, sum(v) AS v FROM {src} "
          "WHERE v > {c} GROUP BY machine_id, CAST(ts AS DATE)",
          _kinds("incremental machine_id,day", "materialized machine_id,day", "incremental machine_id",
                 "incremental", "materialized"), output="daily"),
    Shape("join_aggregate", "rows", "SELECT t.machine_id, CAST(t.ts AS DATE) AS day, m.model, count(*) AS n, "
          "avg(t.v) AS v " + _JOIN + " WHERE t.v > {c} GROUP BY t.machine_id, CAST(t.ts AS DATE), m.model",
          _kinds("incremental machine_id,day", "materialized machine_id,day", "incremental"), output="daily"),
    Shape("join", "rows", "SELECT t.machine_id, t.ts, t.v, m.model, m.site " + _JOIN + " WHERE t.v > {c}",
          _ROWWISE, output="rows", rowwise=True),
    Shape("hourly", "rows", "SELECT machine_id, date_trunc('HOUR', ts) AS hour, count(*) AS n, max(v) AS v_max "
          "FROM {src} WHERE v > {c} GROUP BY machine_id, date_trunc('HOUR', ts)",
          _kinds("incremental machine_id,hour", "materialized machine_id,hour")),
    Shape("having", "rows", "SELECT machine_id, CAST(ts AS DATE) AS day, count(*) AS n, sum(v) AS v FROM {src} "
          "GROUP BY machine_id, CAST(ts AS DATE) HAVING count(*) < {c} + 4",
          _kinds("incremental machine_id,day", "materialized machine_id,day", "incremental"), output="daily"),
    Shape("site_aggregate", "rows", "SELECT m.site, count(*) AS n, sum(t.v) AS v " + _JOIN + " WHERE t.v > {c} "
          "GROUP BY m.site", _kinds("incremental site", "materialized site", "incremental")),
    Shape("total", "rows", "SELECT count(*) AS n, sum(v) + {c} AS v, max(ts) AS last_ts FROM {src}",
          _kinds("incremental", "materialized")),
    Shape("distinct", "rows", "SELECT DISTINCT machine_id, CAST(ts AS DATE) AS day FROM {src} WHERE v > {c}",
          _kinds("incremental", "incremental machine_id,day", "materialized")),
    Shape("window", "rows", "SELECT machine_id, ts, v, row_number() OVER (PARTITION BY machine_id ORDER BY ts) AS rn, "
          "sum(v) OVER (PARTITION BY machine_id ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
          "AS running FROM {src} WHERE v > {c}",
          _kinds("incremental machine_id,ts", "incremental", "materialized"), output="rows", needs_unique=True),
    Shape("latest", "rows", "SELECT machine_id, ts, v + {c} AS v FROM {src} "
          "QUALIFY row_number() OVER (PARTITION BY machine_id ORDER BY ts DESC) = 1",
          _kinds("incremental machine_id", "incremental", "materialized"), output="rows", needs_unique=True),
    Shape("daily_filter", "daily", "SELECT machine_id, day, n, v FROM {src} WHERE n > {c}",
          _kinds("append", "merge machine_id,day", "incremental", "materialized"), output="daily", rowwise=True),
    Shape("rollup", "daily", "SELECT machine_id, sum(n) AS n, max(v) + {c} AS v FROM {src} GROUP BY machine_id",
          _kinds("incremental machine_id", "materialized machine_id", "incremental", "materialized")),
)
SHAPE = {s.name: s for s in SHAPES}
# the shapes, a GROUP BY over a join and a join with the dimension, drawn three and two times as often
_WEIGHTED = (*SHAPES, *(SHAPE[n] for n in ("join_aggregate", "join_aggregate", "join")))
_ORDER = {"order_by": ["_batch_id", "_source_file"]}
SILVER_READINGS = {
    "keep_first": Model("silver.readings", {"kind": "incremental", "unique_key": ROW_KEY, "on_conflict": "keep_first",
                                            **_ORDER},
                        "SELECT machine_id, ts, v, _batch_id, _source_file FROM bronze.readings", shape="silver"),
    "update": Model("silver.readings", {"kind": "merge", "unique_key": ROW_KEY, "on_conflict": "update", **_ORDER},
                    "SELECT machine_id, ts, v, _batch_id, _source_file FROM bronze.readings", shape="silver"),
    "append": Model("silver.readings", {"kind": "append"}, "SELECT machine_id, ts, v FROM bronze.readings",
                    shape="silver"),
}
SILVER_MACHINES = Model("silver.machines",
                        {"kind": "incremental", "unique_key": ["machine_id"], "on_conflict": "update", **_ORDER},
                        "SELECT machine_id, model, site, _batch_id, _source_file FROM bronze.machines",
                        shape="dimension")


def gold_model(name: str, shape: Shape | str, src: str, *, kind: dict[str, Any], c: int = 0,
               join: str = "LEFT") -> Model:
    shape = SHAPE[shape] if isinstance(shape, str) else shape
    sql = shape.sql.replace("{src}", src).replace("{join}", join)
    return Model(name, dict(kind), sql, c=c, shape=shape.name)


@dataclass
class _Table:
    name: str
    type: str
    unique: bool
    level: int


CONSTANT_VALUES = range(-2, 5)
CONSTANTS = st.integers(CONSTANT_VALUES.start, CONSTANT_VALUES.stop - 1)


@st.composite
def models(draw: st.DrawFn, *, max_gold: int = 4, max_level: int = 3) -> tuple[Model, ...]:
    """silver.readings (keep_first, update or append), silver.machines, and 1..max_gold gold models, each over
    silver.readings or an earlier gold model (up to ``max_level`` gold levels)."""
    silver = SILVER_READINGS[draw(st.sampled_from(list(SILVER_READINGS)))]
    tables = [_Table("silver.readings", "rows", unique="unique_key" in silver.header, level=0)]
    gold: list[Model] = []
    for number in range(1, draw(st.integers(1, max_gold)) + 1):
        inputs = {s.name: [t for t in tables if t.level < max_level and s.reads == t.type
                           and (t.unique or not s.needs_unique)] for s in SHAPES}
        shape = draw(st.sampled_from([s for s in _WEIGHTED if inputs[s.name]]))
        table = draw(st.sampled_from(inputs[shape.name]))
        kinds = [k for k in shape.kinds if table.unique or not (shape.rowwise and "unique_key" in k)]
        model = gold_model(f"gold.g{number}", shape, table.name, kind=draw(st.sampled_from(kinds)),
                           c=draw(CONSTANTS), join=draw(st.sampled_from(["LEFT", "INNER"])))
        gold.append(model)
        if shape.output is not None:
            unique = table.unique if shape.rowwise else True
            tables.append(_Table(model.name, shape.output, unique=unique, level=table.level + 1))
    return (silver, SILVER_MACHINES, *gold)


# -- arrivals ------------------------------------------------------------------------------------------------------
def _timestamp(day: int, hour: int, minute: int) -> str:
    return f"2024-01-{day:02d} {hour:02d}:{minute:02d}:00"


MACHINE_IDS = st.integers(1, 4)
TIMESTAMPS = st.builds(_timestamp, st.integers(1, 3), st.integers(0, 23), st.sampled_from([0, 30]))
VALUES = st.integers(-4, 20).map(lambda i: i / 2)
READINGS = st.tuples(MACHINE_IDS, TIMESTAMPS, VALUES)
MACHINES = st.tuples(MACHINE_IDS, st.sampled_from(["A", "B", "C"]), st.integers(1, 2))


def consistent(rows: Iterable[tuple[Any, ...]], *, key: int) -> tuple[tuple[Any, ...], ...]:
    """Rows of one file: a later row of a key already in the file becomes an exact copy of the first."""
    first: dict[Any, tuple[Any, ...]] = {}
    return tuple(first.setdefault(row[:key], row) for row in rows)


@st.composite
def _file(draw: st.DrawFn, rows: st.SearchStrategy[tuple[Any, ...]], *, key: int, min_size: int,
          max_size: int) -> tuple[tuple[Any, ...], ...]:
    """A file's rows, out of order, some of them repeated in the same file."""
    drawn = draw(st.lists(rows, min_size=min_size, max_size=max_size))
    copies = draw(st.lists(st.integers(0, len(drawn) - 1), max_size=2)) if drawn else []
    return consistent([*drawn, *(drawn[i] for i in copies)], key=key)


@st.composite
def _earlier(draw: st.DrawFn, landed: list[tuple[Any, ...]], *, new_value: bool) -> tuple[Any, ...]:
    """A row landed before: an exact copy, or the same key with a value that may differ."""
    row = landed[draw(st.integers(0, len(landed) - 1))]
    return (*row[:2], draw(VALUES)) if new_value else row


STEP_KINDS = ("rows", "copies", "changed_values", "dimension", "edit", "two_files")


@st.composite
def arrivals(draw: st.DrawFn, gold: tuple[Model, ...], *, max_steps: int = 3) -> tuple[tuple[Land | Edit, ...], ...]:
    """A first load of both sources, then 1..max_steps steps: new or late rows, copies of landed rows, landed keys
    with other values, dimension updates, model edits, or two files of one batch."""
    readings = list(draw(_file(READINGS, key=2, min_size=2, max_size=12)))
    steps: list[tuple[Land | Edit, ...]] = [
        (Land("readings", tuple(readings)), Land("machines", draw(_file(MACHINES, key=1, min_size=1, max_size=4))))]
    constants = {m.name: m.c for m in gold}
    for _ in range(draw(st.integers(1, max_steps))):
        kind = draw(st.sampled_from([k for k in STEP_KINDS if k != "edit" or constants]))
        if kind == "edit":
            name = draw(st.sampled_from(sorted(constants)))
            constants[name] = draw(st.sampled_from([c for c in CONSTANT_VALUES if c != constants[name]]))
            steps.append((Edit(name, constants[name]),))
            continue
        if kind == "dimension":
            steps.append((Land("machines", draw(_file(MACHINES, key=1, min_size=1, max_size=3))),))
            continue
        files = []
        for _ in range(2 if kind == "two_files" else 1):
            new = list(draw(st.lists(READINGS, min_size=0 if kind != "rows" else 1, max_size=8)))
            if kind in ("copies", "changed_values", "two_files"):
                earlier = _earlier(readings, new_value=kind != "copies")
                new += draw(st.lists(earlier, min_size=1, max_size=4))
                new = list(draw(st.permutations(new)))
            files.append(Land("readings", consistent(new, key=2)))
            readings += files[-1].rows
        steps.append(tuple(files))
    return tuple(steps)


@st.composite
def scenarios(draw: st.DrawFn, *, max_gold: int = 4, max_steps: int = 3) -> Scenario:
    drawn = draw(models(max_gold=max_gold))
    return Scenario(drawn, draw(arrivals(tuple(m for m in drawn if m.name.startswith("gold.")), max_steps=max_steps)))


# -- the check -----------------------------------------------------------------------------------------------------
class Mismatch(AssertionError):
    """An incremental table that differs from a full refresh of the same inputs, or a run that failed."""

    family = ""


_FAMILIES: dict[str, type[Mismatch]] = {}


def _mismatch(family: str, message: str) -> Mismatch:
    """One exception class per family (the form of the model's SQL, the strategy the run chose, and what the step
    did): hypothesis tells failures apart by exception type and line, so each family is reported and shrunk on its
    own instead of one hiding the others."""
    if family not in _FAMILIES:
        _FAMILIES[family] = type(f"Mismatch[{family}]", (Mismatch,), {"family": family})
    return _FAMILIES[family](f"[{family}] {message}")


def check_scenario(scenario: Scenario, workdir: Path, *, engine: str = "duckdb") -> dict[str, list[dict[str, Any]]]:
    """Run the scenario's steps incrementally in ``workdir``; after every run, each model's table must equal what
    a full refresh of a copy of the whole project stores (see the module's docstring for "equal"). Returns the
    rows of every model's table after the last run."""
    root = write_project(workdir / "incremental", CONFIG, {m.name: m.text() for m in scenario.models})
    tables: dict[str, list[dict[str, Any]]] = {}
    with Project(root, engine=engine) as project:
        for number, step in enumerate(scenario.steps):
            _apply(project, step, number=number, models=scenario.models)
            try:
                result = project.run()
            except LakeforgeError as exc:
                failed = getattr(getattr(exc, "run", None), "failed_stage", None) or "the run"
                raise _mismatch(f"{_form(scenario, failed)} / run failed{_after(scenario, number)}",
                                f"the incremental run after step {number} failed: {exc}\n"
                                f"{scenario.describe(upto=number)}") from exc
            strategies = {s.name: s.strategy or s.status for s in result.stages if s.kind == "model"}
            _compare(project, workdir / f"refresh-{number}", scenario, number=number, strategies=strategies,
                     engine=engine)
        for model in scenario.models:
            tables[model.name] = project.table(model.name).to_pylist() if project.catalog.exists(model.name) else []
    return tables


def _apply(project: Project, step: tuple[Land | Edit, ...], *, number: int, models: tuple[Model, ...]) -> None:
    for index, action in enumerate(step):
        if isinstance(action, Edit):
            model = next(m for m in models if m.name == action.model)
            layer, table = model.name.split(".")
            (project.path / "models" / layer / f"{table}.sql").write_text(model.text(action.c))
            continue
        folder = project.landing.local_path(action.source)
        folder.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(dict(zip(COLUMNS[action.source], row, strict=True))) + "\n" for row in action.rows]
        # files named in arrival order; a step's files are one batch
        (folder / f"{number:02d}-{index}.jsonl").write_text("".join(lines))


def _compare(project: Project, scratch: Path, scenario: Scenario, *, number: int, strategies: dict[str, str],
             engine: str) -> None:
    shutil.copytree(project.path, scratch)
    try:
        with Project(scratch, engine=engine) as refresh:
            before = {m.name: refresh.catalog.version(m.name) for m in scenario.models}
            try:
                refresh.run(full_refresh=True)
            except LakeforgeError as exc:
                raise _mismatch("full refresh failed", f"the full refresh after step {number} failed: {exc}\n"
                                f"{scenario.describe(upto=number)}") from exc
            # the oracle must have recomputed: a refresh that commits nothing would compare the tables with
            # themselves (Spark's idempotent writes skip an overwrite whose transaction version was seen)
            stale = [n for n, v in before.items() if v >= 0 and refresh.catalog.version(n) <= v]
            if stale:
                raise _mismatch("full refresh committed nothing", f"the full refresh after step {number} left "
                                f"{', '.join(stale)} at the version it had\n{scenario.describe(upto=number)}")
            differing = [(m, problem) for m in scenario.models
                         if (problem := difference(_snapshot(project, m.name), _snapshot(refresh, m.name)))]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not differing:
        return
    model, problem = differing[0]
    strategy = strategies.get(model.name, "not run")
    others = ", ".join(m.name for m, _ in differing[1:]) or "none"
    family = "not rerun" if strategy == "skipped" else f"{_form(scenario, model.name)} / {strategy}"
    raise _mismatch(family + _after(scenario, number),
                    f"{model.name} differs from a full refresh after the run of step {number} (its strategy in that "
                    f"run: {strategy}; other models that differ: {others})\n{problem}\n"
                    f"{model.name} now:\n{_indent(_current(scenario, model, number))}\n"
                    f"scenario:\n{_indent(scenario.describe(upto=number))}")


def _form(scenario: Scenario, name: str) -> str:
    shape = next((SHAPE.get(m.shape) for m in scenario.models if m.name == name), None)
    return shape.form if shape is not None else name


def _after(scenario: Scenario, number: int) -> str:
    step = scenario.steps[number]
    if any(isinstance(a, Edit) for a in step):
        return ", after an edit"
    if number and any(isinstance(a, Land) and a.source == "machines" for a in step):
        return ", after a dimension file"
    return ""


def _current(scenario: Scenario, model: Model, number: int) -> str:
    edits = [a.c for step in scenario.steps[: number + 1] for a in step
             if isinstance(a, Edit) and a.model == model.name]
    return model.text(edits[-1] if edits else None)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


# -- comparing tables ----------------------------------------------------------------------------------------------
Snapshot = tuple[list[tuple[str, str]], list[tuple[Any, ...]]]


def _snapshot(project: Project, name: str) -> Snapshot | None:
    if not project.catalog.exists(name):
        return None
    table = project.table(name)
    plain = {pa.string_view(): pa.string(), pa.large_string(): pa.string()}
    schema = [(f.name, str(plain.get(f.type, f.type))) for f in table.schema]
    return schema, [tuple(row.values()) for row in table.to_pylist()]


def difference(incremental: Snapshot | None, full: Snapshot | None, *, shown: int = 5) -> str | None:
    """None when both tables hold the same columns and rows (multisets; floats within REL_TOL / ABS_TOL), else
    what differs: the columns, or up to ``shown`` rows only in each."""
    if incremental is None or full is None:
        return None if incremental is full else (
            f"table exists: incremental {incremental is not None}, full refresh {full is not None}")
    if incremental[0] != full[0]:
        return f"columns differ:\n    incremental:  {incremental[0]}\n    full refresh: {full[0]}"
    only_incremental, only_full = _unmatched(incremental[1], full[1])
    if not only_incremental and not only_full:
        return None
    columns = ", ".join(name for name, _ in incremental[0])
    return (f"columns: {columns}\n"
            f"rows: incremental {len(incremental[1])}, full refresh {len(full[1])}\n"
            f"rows only in the incremental table ({len(only_incremental)}):{_rows(only_incremental, shown)}\n"
            f"rows only in the full refresh ({len(only_full)}):{_rows(only_full, shown)}")


def _unmatched(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]) -> tuple[list[Any], list[Any]]:
    """The rows of each side without a partner on the other: exact matches first (floats rounded to 9 digits),
    then what is left is paired within the tolerance."""
    a, b = Counter(map(_rounded, left)), Counter(map(_rounded, right))
    rest_a = sorted((a - b).elements(), key=_order)
    rest_b = sorted((b - a).elements(), key=_order)
    only_a = []
    for row in rest_a:
        partner = next((i for i, other in enumerate(rest_b) if _close(row, other)), None)
        if partner is None:
            only_a.append(row)
        else:
            rest_b.pop(partner)
    return only_a, rest_b


def _rounded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(float(f"{v:.9g}") if isinstance(v, float) and math.isfinite(v) else v for v in row)


def _order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, str(v)) for v in row)


def _close(x: tuple[Any, ...], y: tuple[Any, ...]) -> bool:
    return len(x) == len(y) and all(
        math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL) if isinstance(a, float) and isinstance(b, float)
        else a == b for a, b in zip(x, y, strict=True))


def _rows(rows: list[tuple[Any, ...]], shown: int) -> str:
    listed = "".join(f"\n    {row}" for row in rows[:shown])
    return listed + (f"\n    ... and {len(rows) - shown} more" if len(rows) > shown else "")
