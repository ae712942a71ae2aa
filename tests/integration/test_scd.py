"""Slowly changing dimensions: type 1 (latest wins) and type 2 (history with valid_from / valid_to)."""

from __future__ import annotations

import json

from lakeforge.project import Project

SCD2 = """
    -- kind: incremental
    -- unique_key: [machine_id]
    -- scd: 2
    -- updated_at: changed_at
    SELECT machine_id, site, model, changed_at FROM bronze.machines
"""


def machines(make_project) -> Project:  # type: ignore[no-untyped-def]
    return make_project({"sources": {"machines": {"format": "jsonl", "schema_hints": {
        "machine_id": "bigint", "changed_at": "timestamp"}}}}, {"silver.machines": SCD2})


def land(project: Project, name: str, rows: list[dict[str, object]]) -> None:
    folder = project.landing.local_path("machines")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def history(project: Project, machine: int) -> list[tuple[str, str, str | None, bool]]:
    rows = project.query(f"SELECT site, CAST(valid_from AS VARCHAR) AS f, CAST(valid_to AS VARCHAR) AS t, "
                         f"is_current FROM silver.machines WHERE machine_id = {machine} ORDER BY valid_from")
    return [(r["site"], r["f"][:10], r["t"][:10] if r["t"] else None, r["is_current"]) for r in rows.to_pylist()]


def test_scd2_keeps_every_version_and_closes_the_previous_one(make_project) -> None:  # type: ignore[no-untyped-def]
    project = machines(make_project)
    land(project, "a.jsonl", [
        {"machine_id": 1, "site": "north", "model": "m1", "changed_at": "2024-01-01 00:00:00"},
        {"machine_id": 2, "site": "south", "model": "m2", "changed_at": "2024-01-01 00:00:00"},
    ])
    project.run()
    land(project, "b.jsonl", [
        {"machine_id": 1, "site": "east", "model": "m1", "changed_at": "2024-02-01 00:00:00"},
        {"machine_id": 2, "site": "south", "model": "m2", "changed_at": "2024-02-01 00:00:00"},  # no change
    ])
    result = project.run()
    stage = next(s for s in result.stages if s.name == "silver.machines")
    assert stage.strategy == "scd2" and stage.rows_written == 1 and stage.dropped_by == {"unchanged_version": 1}
    assert history(project, 1) == [("north", "2024-01-01", "2024-02-01", False), ("east", "2024-02-01", None, True)]
    assert history(project, 2) == [("south", "2024-01-01", None, True)]
    # a late, older version slots in between; a re-delivered row changes nothing
    land(project, "c.jsonl", [
        {"machine_id": 1, "site": "west", "model": "m1", "changed_at": "2024-01-15 00:00:00"},
        {"machine_id": 1, "site": "east", "model": "m1", "changed_at": "2024-02-01 00:00:00"},
    ])
    project.run()
    assert history(project, 1) == [("north", "2024-01-01", "2024-01-15", False),
                                   ("west", "2024-01-15", "2024-02-01", False),
                                   ("east", "2024-02-01", None, True)]
    current = project.query("SELECT count(*) AS n FROM silver.machines WHERE is_current").to_pylist()[0]["n"]
    assert current == 2
    # a full refresh rebuilds the same history from bronze
    before = project.query("SELECT * FROM silver.machines ORDER BY machine_id, valid_from")
    project.run(full_refresh=True)
    assert project.query("SELECT * FROM silver.machines ORDER BY machine_id, valid_from").equals(before)


def test_scd2_needs_a_key_and_updated_at(make_project) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from lakeforge.errors import ConfigError

    project = make_project({"sources": {"machines": {"format": "jsonl"}}},
                           {"silver.machines": "-- scd: 2\nSELECT * FROM bronze.machines\n"})
    with pytest.raises(ConfigError, match="scd: 2 needs unique_key and updated_at"):
        project.graph()
