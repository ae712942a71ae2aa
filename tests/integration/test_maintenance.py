"""Table maintenance: optimize (compaction, Z-order) and vacuum (dry run by default), and profiles."""

from __future__ import annotations

import json
import time

import pytest

from lakeforge.errors import ConfigError
from lakeforge.project import Project


def small_appends(make_project, n: int = 6) -> Project:  # type: ignore[no-untyped-def]
    project = make_project({"sources": {"events": {"format": "jsonl", "max_files_per_batch": 1,
                                                   "schema_hints": {"id": "bigint", "v": "double"}}}}, {
        "silver.events": """
            -- kind: incremental
            -- unique_key: [id]
            -- cluster_by: [id]
            SELECT id, v FROM bronze.events
        """,
    })
    folder = project.landing.local_path("events")
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"f{i}.jsonl").write_text("".join(json.dumps({"id": i * 10 + j, "v": j / 2}) + "\n"
                                                    for j in range(10)))
    project.run()
    return project


def test_optimize_compacts_without_changing_rows_or_confusing_incremental_runs(make_project) -> None:  # type: ignore[no-untyped-def]
    project = small_appends(make_project)
    before = len(project.catalog.table("bronze.events").file_uris())
    rows = project.table("silver.events").num_rows
    done = {d["table"]: d for d in project.optimize()}
    assert len(project.catalog.table("bronze.events").file_uris()) < before
    assert done["bronze.events"]["files_removed"] == before and done["silver.events"]["zorder"] == ["id"]
    result = project.run()  # the models see a new version with no new rows: no duplicates
    assert project.table("silver.events").num_rows == rows == 60
    assert all(s.rows_in == 0 for s in result.stages if s.did_work)


def test_vacuum_is_a_dry_run_unless_applied(make_project) -> None:  # type: ignore[no-untyped-def]
    project = small_appends(make_project)
    project.optimize(["bronze.events"])
    time.sleep(1.1)
    with pytest.raises(ConfigError, match="retention"):
        project.vacuum(retention_hours=0)
    listed = project.vacuum(["bronze.events"], retention_hours=1)
    assert listed[0]["files"] == [] and not listed[0]["deleted"]  # everything is younger than an hour
    files = project.catalog.table("bronze.events").file_uris()
    assert project.table("bronze.events").num_rows == 60 and files


def test_profile_describes_each_column(make_project) -> None:  # type: ignore[no-untyped-def]
    project = small_appends(make_project)
    profile = project.profile("silver.events")
    assert profile["rows"] == 60 and profile["version"] >= 0
    by_name = {c["name"]: c for c in profile["columns"]}
    v = by_name["v"]
    assert v["null_rate"] == 0 and v["distinct"] == 10 and v["min"] == 0 and v["max"] == 4.5
    assert v["quantiles"]["p50"] == pytest.approx(2.25, abs=0.5)
    assert sum(b["count"] for b in v["histogram"]) == 60
    first = project.profile("silver.events", version=0)
    assert first["version"] == 0
