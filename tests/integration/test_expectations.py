"""Built-in expectation types compile to SQL and run in the model's pass."""

from __future__ import annotations

import json

import pytest

from lakeforge.errors import ConfigError, ExpectationFailed
from lakeforge.project import Project
from tests.conftest import ENGINES

ROWS = [
    {"id": 1, "machine": 1, "v": 5.0, "status": "ok", "code": "M001", "ts": "2024-01-01 00:00:00"},
    {"id": 2, "machine": 2, "v": 500.0, "status": "ok", "code": "M002", "ts": "2024-01-01 01:00:00"},
    {"id": 3, "machine": 9, "v": None, "status": "weird", "code": "X3", "ts": "2024-01-01 02:00:00"},
    {"id": 3, "machine": 1, "v": 7.0, "status": "ok", "code": "M004", "ts": None},
]
HINTS = {"id": "bigint", "machine": "bigint", "v": "double", "ts": "timestamp"}


def project_with(make_project, rules: str) -> Project:  # type: ignore[no-untyped-def]
    project = make_project({"sources": {"events": {"format": "jsonl", "schema_hints": HINTS},
                                        "machines": {"format": "jsonl", "schema_hints": {"machine": "bigint"}}}}, {
        "silver.machines": "SELECT machine FROM bronze.machines\n",
        "silver.events": "-- expectations:\n" + rules + "SELECT id, machine, v, status, code, ts FROM bronze.events\n",
    })
    for name, rows in (("events", ROWS), ("machines", [{"machine": 1}, {"machine": 2}])):
        folder = project.landing.local_path(name)
        folder.mkdir(parents=True)
        (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return project


def counts(project: Project) -> dict[str, tuple[int, int]]:
    result = project.run()
    stage = next(s for s in result.stages if s.name == "silver.events")
    return {r.rule: (r.passed, r.failed) for r in stage.rules}


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_built_in_types_count_what_they_should(make_project) -> None:  # type: ignore[no-untyped-def]
    project = project_with(make_project, "\n".join([
        "--   - {name: ts_present, not_null: ts}",
        "--   - {name: v_range, in_range: {column: v, min: 0, max: 100}}",
        "--   - {name: status_known, in_set: {column: status, values: [ok, warn]}}",
        "--   - {name: code_format, matches: {column: code, pattern: 'M[0-9]{3}'}}",
        "--   - {name: id_unique, unique: id}",
        "--   - {name: enough_rows, row_count: {min: 3, max: 10}}",
        "--   - {name: too_many_rows, row_count: {max: 2}}",
        "--   - {name: machine_known, references: {column: machine, table: silver.machines, key: machine}}",
        "--   - {name: fresh, freshness: {column: ts, max_age_hours: 1}}",
        "--   - {name: sql_rule, expr: id > 1}",
    ]) + "\n")
    assert counts(project) == {
        "ts_present": (3, 1), "v_range": (3, 1), "status_known": (3, 1), "code_format": (3, 1),
        "id_unique": (2, 2), "enough_rows": (4, 0), "too_many_rows": (0, 4), "machine_known": (3, 1),
        "fresh": (0, 4), "sql_rule": (3, 1),
    }
    assert "silver.machines" in project.graph().models["silver.events"].upstream()


def test_a_built_in_with_fail_names_the_rule(make_project) -> None:  # type: ignore[no-untyped-def]
    project = project_with(make_project, "--   - {name: id_unique, unique: id, action: fail}\n")
    with pytest.raises(ExpectationFailed, match=r"id_unique.*unique: id.*2 of 4 rows"):
        project.run()


def test_an_expectation_needs_exactly_one_kind(make_project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="exactly one of expr"):
        project_with(make_project, "--   - {name: two, not_null: id, expr: id > 0}\n").graph()


CONTRACT = """
    -- contract: {id: bigint, v: double, status: string}
    SELECT id, v, status FROM bronze.events
"""


def test_a_contract_holds_and_drift_is_an_error_that_shows_the_difference(make_project) -> None:  # type: ignore[no-untyped-def]
    from lakeforge.errors import ModelError

    project = project_with(make_project, "")
    (project.path / "models" / "silver" / "events.sql").write_text(CONTRACT.replace("\n    ", "\n").lstrip())
    assert project.run().status == "succeeded"
    (project.path / "models" / "silver" / "events.sql").write_text(
        "-- contract: {id: bigint, v: double, status: string}\n"
        "SELECT id, CAST(v AS VARCHAR) AS v, code FROM bronze.events\n")
    with pytest.raises(ModelError) as info:
        project.run(full_refresh=True)
    text = str(info.value)
    assert "missing column status (string)" in text
    assert "column v is string, the contract says double" in text
    assert "column code (string) is not in the contract" in text
    assert project.table("silver.events").column_names == ["id", "v", "status"]  # the old table stands
