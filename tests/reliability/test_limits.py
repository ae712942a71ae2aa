"""A run that throws most of its input away does not succeed quietly (issue 20, points 2 and 6).

- a wrong ``timestamp_format`` fails ingestion before its batch commits, naming the format found in the data; with
  the format fixed the same batch lands whole;
- a CSV without a header read with ``header: true`` fails silver (its rows have no key) and says ``header: false``;
- a row whose dedup key is NULL is quarantined (``null_key``), never dropped as a duplicate of another;
- a 50 MB JSON line is quarantined alone, with its length, and the rows around it land;
- tiny incremental batches with one bad row in two never trip the default; a count limit is exact, a fraction of
  ``1.0`` turns the limit off, ``max_dropped`` judges a model's drops.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import write_project
from tests.reliability.harness import (
    SOURCE,
    Lake,
    LocalStore,
    Run,
    assert_clear_error,
    make_project,
    run_ok,
    seed,
)

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
SEED = 2020


def _lake(project: Path) -> Lake:
    return Lake(str(project / "lakehouse"), LocalStore(project / "lakehouse"))


def _rows(lake: Lake, table: str) -> list[dict[str, Any]]:
    found = lake.table(table)
    return [] if found is None else found.to_pylist()


def _source(**extra: Any) -> dict[str, Any]:
    return {SOURCE: {"format": "auto", "schema_hints": {"id": "bigint", "v": "double"}, **extra}}


def _put(project: Path, name: str, data: bytes) -> None:
    LocalStore(project / "landing").put(f"{SOURCE}/{name}", data)


def _set_source(project: Path, **settings: Any) -> None:
    path = project / "lakeforge.yml"
    config = yaml.safe_load(path.read_text())
    config["sources"][SOURCE].update(settings)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def test_a_wrong_timestamp_format_fails_ingestion_with_the_format_found_and_commits_nothing(
        tmp_path: Path, record: dict[str, Any]) -> None:
    rng = random.Random(seed(SEED))
    project = make_project(tmp_path / "p", sources=_source(
        format="csv", schema_hints={"id": "bigint", "v": "double", "ts": "timestamp"},
        timestamp_format="%d/%m/%Y %H:%M"))
    n = rng.randint(200, 400)
    lines = [f"{i},{rng.random():.4f},2026-03-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00" for i in range(n)]
    _put(project, "readings.csv", ("id,v,ts\n" + "\n".join(lines) + "\n").encode())

    failed = Run(project)
    failed.wait()
    error = assert_clear_error(failed, rf"error: ingest:{SOURCE}: {n} of {n} rows \(100%\)",
                               r"values that do not fit their column's type", r'"ts":"2026-03-01 00:00:00"')
    fix = next(ln for ln in failed.err if ln.startswith("fix: "))
    assert "set `timestamp_format: '%Y-%m-%d %H:%M:%S'` on source events" in fix, fix
    lake = _lake(project)
    assert _rows(lake, f"bronze.{SOURCE}") == [] and lake.table("silver.events") is None  # nothing committed

    _set_source(project, timestamp_format="%Y-%m-%d %H:%M:%S")  # the fix it named: the same batch lands whole
    run_ok(project)
    bronze = _rows(lake, f"bronze.{SOURCE}")
    assert len(bronze) == n and all(r["ts"] is not None and r["_rescued_data"] is None for r in bronze)
    assert len(_rows(lake, "silver.events")) == n
    record.update({"rows": n, "error": error, "fix": fix})


def test_a_csv_without_header_read_with_one_fails_silver_and_says_header_false(
        tmp_path: Path, record: dict[str, Any]) -> None:
    rng = random.Random(seed(SEED) + 1)
    project = make_project(tmp_path / "p", sources=_source(format="csv"))
    n = 99
    _put(project, "no-header.csv", "".join(f"{i},{rng.random():.4f}\n" for i in range(1, n + 1)).encode())

    failed = Run(project)
    failed.wait()
    error = assert_clear_error(failed, rf"error: silver\.events: {n - 1} of {n - 1} rows \(100%\) quarantined",
                               r"rule null_key", r"id=NULL")
    fix = next(ln for ln in failed.err if ln.startswith("fix: "))
    assert "the CSV header looks like a row of data" in fix and "`header: false`" in fix, fix
    assert _lake(project).table("silver.events") is None  # nothing of silver committed
    record.update({"error": error, "fix": fix})


def test_a_row_whose_key_is_null_is_quarantined_with_that_reason_never_dropped_as_a_duplicate(
        tmp_path: Path, record: dict[str, Any]) -> None:
    rng = random.Random(seed(SEED) + 2)
    project = write_project(tmp_path / "p", {
        "name": "nullkeys", "dialect": "duckdb", "sources": _source(),
    }, {"silver.events": """
        -- kind: incremental
        -- unique_key: [id]
        SELECT id, v FROM bronze.events
    """})
    ids: list[int | None] = [*range(1, 41), 7, 7, *([None] * 5)]
    rng.shuffle(ids)
    _put(project, "keys.jsonl", "".join(json.dumps({"id": i, "v": rng.random()}) + "\n" for i in ids).encode())

    result = run_ok(project, "--json").json()
    silver = next(s for s in result["stages"] if s["name"] == "silver.events")
    assert (silver["rows_in"], silver["rows_out"], silver["rows_quarantined"], silver["rows_dropped"]) == \
        (47, 40, 5, 2), silver
    assert silver["dropped_by"] == {"duplicate_key": 2}  # the two extra 7s; no NULL key among the drops
    lake = _lake(project)
    quarantined = _rows(lake, "quarantine.silver_events")
    assert len(quarantined) == 5 and all(r["id"] is None and r["_failed_rules"] == ["null_key"]
                                         for r in quarantined)
    assert sorted(r["id"] for r in _rows(lake, "silver.events")) == list(range(1, 41))
    record.update({"rows": len(ids), "null_keys_quarantined": len(quarantined)})


def test_a_50_mb_line_is_quarantined_alone_with_its_length_and_the_rest_of_its_file_lands(
        tmp_path: Path, record: dict[str, Any]) -> None:
    project = make_project(tmp_path / "p", sources=_source())  # max_line_bytes not set: the reader's limit
    huge = json.dumps({"id": 2, "v": 0.5, "pad": "x" * (50 * 2**20)}).encode()
    _put(project, "long-line.jsonl", b'{"id": 1, "v": 1.5}\n' + huge + b'\n{"id": 3, "v": 2.5}\n')

    run_ok(project)
    lake = _lake(project)
    assert sorted(r["id"] for r in _rows(lake, f"bronze.{SOURCE}")) == [1, 3]
    quarantined = _rows(lake, f"quarantine.bronze_{SOURCE}")
    assert [(q["_line"], q["_rows"], q["_reason"]) for q in quarantined] == [
        (2, 1, f"line of {len(huge):,} bytes is over the limit of 16,777,216")]
    assert sorted(r["id"] for r in _rows(lake, "silver.events")) == [1, 3]
    record.update({"line_bytes": len(huge), "reason": quarantined[0]["_reason"]})


def test_tiny_batches_do_not_trip_the_default_and_counts_and_fractions_are_exact(
        tmp_path: Path, record: dict[str, Any]) -> None:
    rng = random.Random(seed(SEED) + 3)
    project = make_project(tmp_path / "p", sources=_source())
    next_id = 1
    for k in range(4):  # incremental runs of 2 rows, 1 of them bad: 50% each time, far from a verdict
        _put(project, f"tiny-{k}.jsonl", f'{{"id": {next_id}, "v": {rng.random():.3f}}}\n{{oops\n'.encode())
        next_id += 1
        run_ok(project)
    assert len(_rows(_lake(project), "silver.events")) == 4

    _set_source(project, max_quarantined=0)  # a count is exact: one bad line fails the batch
    _put(project, "one-bad.jsonl", f'{{"id": {next_id}, "v": 1.0}}\n{{oops\n'.encode())
    failed = Run(project)
    failed.wait()
    error = assert_clear_error(failed, rf"error: ingest:{SOURCE}: 1 of 2 rows \(50%\) quarantined",
                               r"max_quarantined of source events: 0 rows", r"malformed JSON")
    _set_source(project, max_quarantined=1.0)  # 1.0: the limit off; the pending batch lands
    _put(project, "all-bad.jsonl", b"{oops\n" * 30)
    run_ok(project)
    assert len(_rows(_lake(project), "silver.events")) == 5

    dups = project / "models" / "silver" / "events.sql"  # max_dropped judges the model's drops (duplicates)
    dups.write_text("-- max_dropped: 3\n" + dups.read_text())
    _put(project, "dups.jsonl", b"".join(f'{{"id": 900, "v": {i}.5}}\n'.encode() for i in range(6)))
    failed = Run(project)
    failed.wait()
    dropped = assert_clear_error(failed, r"error: silver\.events: 5 of 6 rows \(83%\) dropped",
                                 r"max_dropped in the header of silver.events: 3 rows", r"duplicate_key: 5 rows")
    record.update({"count_limit_error": error, "max_dropped_error": dropped})
