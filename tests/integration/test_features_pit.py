"""gold.machine_features is point-in-time correct: no feature of an hour reads a row that comes after it.

The model's SQL runs (with lakeforge's DuckDB engine, as in a run) once over the gold inputs in full, and once
over the inputs cut at a time T (hourly rows with hour <= T, events with ts <= T): every feature row with
hour <= T must be the same in both (floats to 1e-12 relative: DuckDB's windowed aggregates combine partial sums
in a tree whose shape depends on the partition's length; a leaked row moves a value by far more). A leaky variant
of the SQL fails the same check (the test has teeth).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakeforge.config import DuckDBEngineConfig
from lakeforge.engines.duckdb import DuckDBEngine
from lakeforge.models import Model
from lakeforge.project import Project

FEATURES = "gold.machine_features"
INPUTS = {  # table -> its time column
    "gold.fact_telemetry_hourly": "hour",
    "gold.fact_errors": "ts",
    "gold.fact_maintenance": "ts",
    "gold.dim_machine": None,
}
KEY = ["machine_id", "hour"]


@pytest.fixture
def ran(example: Project) -> Iterator[Project]:
    assert example.run().status == "succeeded"
    yield example


@pytest.fixture
def duck() -> Iterator[DuckDBEngine]:
    eng = DuckDBEngine(DuckDBEngineConfig(threads=1))
    yield eng
    eng.close()


def model(project: Project) -> Model:
    return next(m for m in project.models() if m.name == FEATURES)


def compute(duck: DuckDBEngine, sql: str, inputs: dict[str, pa.Table], *, cut: dt.datetime | None = None
            ) -> dict[tuple[object, ...], dict[str, object]]:
    relations = {}
    for name, table in inputs.items():
        column = INPUTS[name]
        if cut is not None and column is not None:
            table = table.filter(pc.less_equal(table[column], pa.scalar(cut, table.schema.field(column).type)))
        relations[name] = table
    rows = duck.query_arrow(sql, relations=relations).to_pylist()
    return {tuple(r[k] for k in KEY): r for r in rows}


def same(a: dict[str, object], b: dict[str, object]) -> bool:
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float) and isinstance(y, float):
            if not (x == y or (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12)):
                return False
        elif x != y:
            return False
    return True


def leaks(full: dict[tuple[object, ...], dict[str, object]], cut: dict[tuple[object, ...], dict[str, object]],
          t: dt.datetime) -> list[tuple[object, ...]]:
    """The keys of hours <= t whose features differ between the full and the cut data (or are missing)."""
    return [k for k, row in full.items() if row["hour"] <= t and (k not in cut or not same(row, cut[k]))]  # type: ignore[operator]


def cut_times(inputs: dict[str, pa.Table]) -> list[dt.datetime]:
    """Hours with events close after them: a leak of a later error, maintenance or reading would show there."""
    hours = sorted(set(inputs["gold.fact_telemetry_hourly"]["hour"].to_pylist()))
    events = sorted(inputs["gold.fact_maintenance"]["ts"].to_pylist() + inputs["gold.fact_errors"]["ts"].to_pylist())
    inner = [h for h in hours[26:-2]]
    times = {inner[0], inner[len(inner) // 2]}
    # the hour just before an event (and the event's own truncated hour, when it is not on the hour)
    for ts in events:
        before = [h for h in inner if h < ts]
        if before:
            times.add(before[-1])
        if len(times) >= 6:
            break
    return sorted(times)


def test_features_use_no_later_row(ran: Project, duck: DuckDBEngine) -> None:
    sql = model(ran).sql_for("duckdb")
    inputs = {name: ran.table(name) for name in INPUTS}
    full = compute(duck, sql, inputs)
    stored = ran.table(FEATURES).to_pylist()
    assert len(stored) == len(full) == inputs["gold.fact_telemetry_hourly"].num_rows
    assert all(same(r, full[(r["machine_id"], r["hour"])]) for r in stored)  # what the run stored
    # the features are not trivially empty
    assert any(r["errors_24h"] for r in stored)
    assert any(r["comp1_hours_since_maint"] is not None for r in stored)
    assert any(r["volt_slope_24h"] is not None for r in stored)

    times = cut_times(inputs)
    assert len(times) >= 3
    for t in times:
        cut = compute(duck, sql, inputs, cut=t)
        assert max(k[1] for k in cut) == t  # type: ignore[type-var]
        assert not leaks(full, cut, t), (t, leaks(full, cut, t)[:3])


def test_a_leaky_variant_is_caught(ran: Project, duck: DuckDBEngine) -> None:
    """The same check on SQL that peeks one hour ahead finds the leak."""
    sql = model(ran).sql_for("duckdb")
    leaky = sql.replace("AND CURRENT ROW", "AND INTERVAL '1' HOUR FOLLOWING")
    assert leaky != sql
    inputs = {name: ran.table(name) for name in INPUTS}
    full = compute(duck, leaky, inputs)
    t = cut_times(inputs)[0]
    assert leaks(full, compute(duck, leaky, inputs, cut=t), t)

    peeks_at_events = sql.replace("<= t.hour", "<= t.hour + INTERVAL '1' HOUR")
    assert peeks_at_events != sql
    full = compute(duck, peeks_at_events, inputs)
    assert any(leaks(full, compute(duck, peeks_at_events, inputs, cut=t), t) for t in cut_times(inputs))
