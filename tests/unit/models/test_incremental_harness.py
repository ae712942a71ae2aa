"""The oracle of issue 19's property test (tests/incremental_harness.py): what counts as the same table, and what
the generated models and arrivals may hold."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings

from tests.incremental_harness import SHAPE, Land, Scenario, consistent, difference, scenarios

SCHEMA = [("machine_id", "int64"), ("day", "date32[day]"), ("v", "double")]
DAY = dt.date(2024, 1, 1)


def test_rows_compare_as_multisets_in_any_order() -> None:
    rows = [(1, DAY, 1.5), (1, DAY, 1.5), (2, DAY, None)]
    assert difference((SCHEMA, rows), (SCHEMA, list(reversed(rows)))) is None
    problem = difference((SCHEMA, rows), (SCHEMA, rows[1:]))
    assert problem is not None and "rows only in the incremental table (1):\n    (1, datetime.date(2024, 1, 1), 1.5)" \
        in problem


def test_floats_are_equal_within_a_relative_and_absolute_1e_9() -> None:
    assert difference((SCHEMA, [(1, DAY, 15.04)]), (SCHEMA, [(1, DAY, 15.040000000000001)])) is None
    assert difference((SCHEMA, [(1, DAY, 0.0)]), (SCHEMA, [(1, DAY, 1e-12)])) is None
    assert difference((SCHEMA, [(1, DAY, 15.04)]), (SCHEMA, [(1, DAY, 15.0400001)])) is not None


def test_columns_and_existence_are_compared() -> None:
    other = [("machine_id", "int64"), ("day", "date32[day]"), ("v", "float")]
    assert "columns differ" in (difference((SCHEMA, []), (other, [])) or "")
    assert difference(None, None) is None
    assert "table exists: incremental False" in (difference(None, (SCHEMA, [])) or "")


def test_rows_of_one_key_in_one_file_are_exact_copies() -> None:
    assert consistent([(1, "t", 1.0), (1, "t", 2.0), (2, "t", 3.0)], key=2) == (
        (1, "t", 1.0), (1, "t", 1.0), (2, "t", 3.0))


@settings(max_examples=200, database=None)
@given(scenarios())
def test_generated_scenarios_are_valid_for_a_correct_engine(scenario: Scenario) -> None:
    names = [m.name for m in scenario.models]
    for model in scenario.models[2:]:
        shape = SHAPE[model.shape]
        header = model.header
        if header["kind"] in ("append", "merge"):
            assert shape.rowwise, model  # append and merge headers only over row-wise SQL
        read = next(n for n in names if f"FROM {n} " in model.sql + " ")
        assert names.index(read) < names.index(model.name)  # reads only tables made before it
    for step in scenario.steps:
        for action in step:
            if isinstance(action, Land):
                width = 2 if action.source == "readings" else 1
                assert consistent(action.rows, key=width) == action.rows
