"""Ingestion options: schema evolution modes, type widening, batches, compression, source lifecycle."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

from lakeforge.errors import SourceError
from lakeforge.project import Project


def put(project: Project, name: str, rows: list[dict[str, object]], *, folder: str = "events") -> Path:
    path = project.landing.local_path(f"{folder}/{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    if name.endswith(".gz"):
        data = gzip.compress(data)
    elif name.endswith(".zst"):
        data = pa.compress(data, codec="zstd", asbytes=True)
    path.write_bytes(data)
    return path


def bronze(project: Project, source: str = "events") -> list[dict[str, object]]:
    rows = project.table(f"bronze.{source}").to_pylist()
    return sorted(rows, key=lambda r: (str(r["_source_file"]), str(r.get("id"))))


def ingest(project: Project):  # type: ignore[no-untyped-def]
    result = project.run()
    return next(s for s in result.stages if s.name == "ingest:events")


def events(make_project, **source: object) -> Project:  # type: ignore[no-untyped-def]
    return make_project({"sources": {"events": {"format": "jsonl", **source}}}, {})


def test_add_new_columns_evolves_the_table_without_a_restart(make_project) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project)
    put(project, "a.jsonl", [{"id": 1, "v": 1.5}])
    ingest(project)
    put(project, "b.jsonl", [{"id": 2, "v": 2.5, "site": "north"}])
    stage = ingest(project)
    assert stage.rows_out == 1
    rows = bronze(project)
    assert [r["site"] for r in rows] == [None, "north"]
    schema = json.loads(project.lakehouse.read_bytes("_lakeforge/schemas/events.json"))
    assert set(schema["columns"]) == {"id", "v", "site"}


def test_rescue_keeps_unknown_fields_and_misfit_values_in_rescued_data(make_project) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project, schema_evolution="rescue", schema_hints={"id": "bigint", "v": "double"})
    put(project, "a.jsonl", [{"id": 1, "v": 1.5}])
    ingest(project)
    put(project, "b.jsonl", [{"id": 2, "v": "n/a", "site": "north"}, {"id": 3, "v": 3.0}])
    ingest(project)
    rows = {r["id"]: r for r in bronze(project)}
    assert "site" not in rows[2]
    assert json.loads(rows[2]["_rescued_data"]) == {"v": "n/a", "site": "north"}  # type: ignore[arg-type]
    assert rows[2]["v"] is None and rows[3]["_rescued_data"] is None and rows[3]["v"] == 3.0


def test_fail_on_new_columns_names_the_file_and_commits_nothing(make_project) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project, schema_evolution="failOnNewColumns")
    put(project, "a.jsonl", [{"id": 1}])
    ingest(project)
    put(project, "b.jsonl", [{"id": 2, "extra": True}])
    with pytest.raises(SourceError, match=r"new column\(s\) extra in events/b\.jsonl.*failOnNewColumns"):
        project.run()
    assert len(bronze(project)) == 1
    with pytest.raises(SourceError):  # the same batch is retried, and fails the same way, until fixed
        project.run()


def test_none_ignores_new_columns(make_project) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project, schema_evolution="none")
    put(project, "a.jsonl", [{"id": 1}])
    ingest(project)
    put(project, "b.jsonl", [{"id": 2, "extra": "x"}])
    ingest(project)
    assert all("extra" not in r for r in bronze(project))


def test_inferred_types_widen_from_bigint_to_double(make_project) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project, infer_column_types=True)
    put(project, "a.jsonl", [{"id": 1, "v": 10}])
    ingest(project)
    assert project.catalog.dataset("bronze.events").schema.field("v").type == pa.int64()
    put(project, "b.jsonl", [{"id": 2, "v": 2.5}])
    ingest(project)
    rows = {r["id"]: r for r in bronze(project)}
    assert rows[1]["v"] == 10.0 and rows[2]["v"] == 2.5 and isinstance(rows[1]["v"], float)
    assert project.run().status == "nothing_to_do"


def test_batches_respect_file_and_byte_limits_and_one_commit_per_batch(make_project) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project, max_files_per_batch=4, max_bytes_per_batch=10_000)
    paths = [put(project, f"f{i:02d}.jsonl", [{"id": i, "pad": "x" * 100}]) for i in range(10)]
    paths.append(put(project, "big.jsonl", [{"id": 100 + i, "pad": "y" * 100} for i in range(200)]))
    for second, path in enumerate(paths):  # files are taken in order of arrival
        os.utime(path, (1_700_000_000 + second, 1_700_000_000 + second))
    before = project.catalog.version("bronze.events")
    stage = ingest(project)
    assert stage.rows_out == 210
    batches = sorted({r["_batch_id"] for r in bronze(project)})
    # 10 small files in batches of 4 (3 batches) + the big file alone = 4 batches, 4 commits
    assert len(batches) == 4
    assert project.catalog.version("bronze.events") - before == 4


def test_progress_counts_the_files_of_a_backlog_of_several_batches(make_project) -> None:  # type: ignore[no-untyped-def]
    """A backlog of 5 files in batches of 2: the progress hears 2, 4 and 5 of 5 files with the rows so far; a single
    batch says nothing (the stage's own line is enough)."""
    project = events(make_project, max_files_per_batch=2)
    for i in range(5):
        put(project, f"f{i}.jsonl", [{"id": i}, {"id": 10 + i}])
    heard: list[tuple[str, int, int]] = []
    stage = project.workspace.ingestor("events", engine=project.workspace.engine).run(
        progress=lambda what, done, total: heard.append((what, done, total)))
    assert stage.rows_out == 10
    assert heard == [("ingest:events: files (4 rows)", 2, 5), ("ingest:events: files (8 rows)", 4, 5),
                     ("ingest:events: files (10 rows)", 5, 5)]
    put(project, "g.jsonl", [{"id": 99}])
    heard.clear()
    project.workspace.ingestor("events", engine=project.workspace.engine).run(
        progress=lambda what, done, total: heard.append((what, done, total)))
    assert heard == []


def test_gzip_and_zstd_files_are_read(make_project) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project, format="auto")
    put(project, "a.jsonl.gz", [{"id": 1}, {"id": 2}])
    put(project, "b.jsonl.zst", [{"id": 3}])
    stage = ingest(project)
    assert stage.rows_out == 3 and stage.rows_quarantined == 0


@pytest.mark.parametrize("mode", ["move", "delete"])
def test_clean_source_after_commit(make_project, mode: str) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project, clean_source=mode, move_to="processed")
    put(project, "a.jsonl", [{"id": 1}])
    ingest(project)
    assert not project.landing.local_path("events/a.jsonl").exists()
    moved = project.landing.local_path("processed/events/a.jsonl")
    assert moved.exists() == (mode == "move")
    put(project, "a2.jsonl", [{"id": 2}])
    assert ingest(project).rows_out == 1 and len(bronze(project)) == 2


def test_retention_keeps_files_until_it_passes(make_project) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project, clean_source="delete", retention_hours=1)
    put(project, "a.jsonl", [{"id": 1}])
    ingest(project)
    assert project.landing.local_path("events/a.jsonl").exists()
    manifest = project.lakehouse.local_path("_lakeforge/checkpoints/events/batch-00000000.json")
    data = json.loads(manifest.read_text())
    data["created_at"] -= 7200
    manifest.write_text(json.dumps(data))
    project.run()
    assert not project.landing.local_path("events/a.jsonl").exists()


def test_move_destination_inside_the_source_folder_is_refused(make_project) -> None:  # type: ignore[no-untyped-def]
    from lakeforge.errors import ConfigError

    with pytest.raises(ConfigError, match="inside the source folder"):
        events(make_project, clean_source="move", move_to="events/done")


def test_allow_overwrites_reingests_a_changed_file(make_project) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project, allow_overwrites=True)
    path = put(project, "a.jsonl", [{"id": 1}])
    ingest(project)
    put(project, "a.jsonl", [{"id": 1}, {"id": 2}])
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))
    assert ingest(project).rows_out == 2
    assert project.run().status == "nothing_to_do"


def test_without_allow_overwrites_a_changed_file_is_not_reingested(make_project) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project)
    path = put(project, "a.jsonl", [{"id": 1}])
    ingest(project)
    put(project, "a.jsonl", [{"id": 1}, {"id": 2}])
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))
    assert project.run().status == "nothing_to_do"


BAD_KINDS = {
    "truncated": (b'{"id": 1, "v": 1}\n{"id": 2, "v": 2}\n{"id": 3, "v"', 2, 1),
    "garbage_line": (b'{"id": 1}\n\x00\x01\x02\xff\xfe binary\n{"id": 2}\n', 2, 1),
    "wrong_encoding": ('{"id": 1, "name": "Müller"}\n'.encode("latin-1") + b'{"id": 2, "name": "ok"}\n', 1, 1),
    "not_an_object": (b'{"id": 1}\n[1, 2, 3]\n{"id": 2}\n', 2, 1),
    "long_line": (b'{"id": 1}\n{"id": 2, "pad": "' + b"x" * 5000 + b'"}\n{"id": 3}\n', 2, 1),
}


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_bad_lines_are_quarantined_with_the_reason_and_the_rest_is_ingested(make_project, kind: str) -> None:  # type: ignore[no-untyped-def]
    content, good, bad = BAD_KINDS[kind]
    project = events(make_project, max_line_bytes=1024)
    put(project, "ok.jsonl", [{"id": 10}, {"id": 11}])
    project.landing.local_path("events/bad.jsonl").write_bytes(content)
    stage = ingest(project)
    assert (stage.rows_out, stage.rows_quarantined) == (2 + good, bad)
    assert stage.rows_in == stage.rows_out + stage.rows_quarantined
    quarantined = project.table("quarantine.bronze_events").to_pylist()
    assert len(quarantined) == bad
    assert all(q["_source_file"] == "events/bad.jsonl" and q["_line"] and q["_reason"] for q in quarantined)
    assert {r["_source_file"] for r in bronze(project)} == {"events/ok.jsonl", "events/bad.jsonl"}
    assert project.run().status == "nothing_to_do"


def test_binary_file_is_quarantined_whole(make_project) -> None:  # type: ignore[no-untyped-def]
    project = events(make_project)
    put(project, "ok.jsonl", [{"id": 1}])
    project.landing.local_path("events/blob.jsonl").write_bytes(bytes(range(256)) * 4)
    stage = ingest(project)
    assert stage.rows_out == 1 and stage.rows_quarantined >= 1 and stage.balanced()
    [row] = project.table("quarantine.bronze_events").to_pylist()
    assert row["_line"] is None and "no line could be read" in row["_reason"]


def test_csv_row_with_the_wrong_number_of_columns(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project({"sources": {"events": {"format": "csv"}}}, {})
    path = project.landing.local_path("events/a.csv")
    path.parent.mkdir(parents=True)
    path.write_text("id,v\n1,1.5\n2\n3,3.5,extra\n4,4.5\n")
    stage = next(s for s in project.run().stages if s.name == "ingest:events")
    assert (stage.rows_out, stage.rows_quarantined) == (2, 2)
    reasons = sorted(q["_reason"] for q in project.table("quarantine.bronze_events").to_pylist())
    assert reasons == ["expected 2 columns, found 1", "expected 2 columns, found 3"]


def test_a_crash_after_triage_redoes_the_batch_with_the_same_split(make_project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from lakeforge.lakehouse.catalog import Catalog

    project = events(make_project)
    project.landing.local_path("events").mkdir(parents=True)
    project.landing.local_path("events/bad.jsonl").write_bytes(b'{"id": 1}\n{"id": \n{"id": 2}\n')
    real = Catalog.write

    def crash(self: Catalog, name: str, *args: object, **kwargs: object) -> None:
        if name == "bronze.events":
            raise RuntimeError("crash before the bronze commit")
        real(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Catalog, "write", crash)
    with pytest.raises(Exception, match="crash before"):
        project.run()
    monkeypatch.setattr(Catalog, "write", real)
    stage = ingest(project)
    assert (stage.rows_out, stage.rows_quarantined) == (2, 1)
    assert len(project.table("quarantine.bronze_events").to_pylist()) == 1


def test_watch_picks_up_files_as_they_land(make_project) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    project = make_project({"sources": {"events": {"format": "jsonl", "schema_hints": {"id": "bigint"}}}}, {
        "gold.counts": """
            -- kind: incremental
            -- unique_key: [k]
            SELECT id % 2 AS k, count(*) AS n FROM bronze.events GROUP BY id % 2
        """,
    })
    put(project, "a.jsonl", [{"id": 1}])
    outcomes: list[object] = []
    landed: list[float] = []

    def land_later() -> None:
        time.sleep(0.5)
        put(project, "b.jsonl", [{"id": 2}, {"id": 3}])
        landed.append(time.monotonic())

    writer = threading.Thread(target=land_later)
    writer.start()
    runs = project.watch(interval=0.1, idle_timeout=1.5, on_run=outcomes.append)
    writer.join()
    assert runs == 2 and [o.status for o in outcomes] == ["succeeded", "succeeded"]  # type: ignore[attr-defined]
    assert sorted(r["n"] for r in project.table("gold.counts").to_pylist()) == [1, 2]
    assert project.query("SELECT sum(n) AS n FROM counts").to_pylist()[0]["n"] == 3


def test_a_misfit_beyond_the_sample_falls_back_to_text_and_is_rescued(make_project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # the first 30,000 values look numeric, so the reader parses `v` as double directly; the last does not fit
    from lakeforge.engines.duckdb.engine import DuckDBEngine

    calls = {"typed": 0, "text": 0}
    typed, text = DuckDBEngine._typed_scan, DuckDBEngine._planned_select

    def spy_typed(self, *a, **k):  # type: ignore[no-untyped-def]
        calls["typed"] += 1
        return typed(self, *a, **k)

    def spy_text(self, *a, **k):  # type: ignore[no-untyped-def]
        calls["text"] += 1
        return text(self, *a, **k)

    monkeypatch.setattr(DuckDBEngine, "_typed_scan", spy_typed)
    monkeypatch.setattr(DuckDBEngine, "_planned_select", spy_text)
    project = events(make_project, schema_hints={"id": "bigint", "v": "double", "ts": "timestamp"})
    rows: list[dict[str, object]] = [{"id": i, "v": i / 2, "ts": "2024-01-01 00:00:00"} for i in range(30_000)]
    rows.append({"id": 30_000, "v": "n/a", "ts": "2024-01-01 00:00:00"})
    put(project, "a.jsonl", rows)
    stage = ingest(project)
    assert stage.rows_out == 30_001 and stage.rows_quarantined == 0
    table = project.table("bronze.events")
    assert table.schema.field("v").type == pa.float64()
    rescued = [r for r in table.to_pylist() if r["_rescued_data"] is not None]
    assert [(r["id"], json.loads(r["_rescued_data"])) for r in rescued] == [(30_000, {"v": "n/a"})]
    assert calls == {"typed": 1, "text": 1}


def test_typed_and_text_reads_give_the_same_table(make_project) -> None:  # type: ignore[no-untyped-def]
    hints = {"id": "bigint", "v": "double", "ts": "timestamp", "name": "string", "extra": "double"}
    rows = [{"id": i, "v": i * 1.5, "ts": f"2024-01-0{1 + i % 5} 0{i % 10}:00:00", "name": f"m{i}"}
            for i in range(50)]
    fast = events(make_project, schema_hints=hints)
    put(fast, "a.jsonl", rows)
    ingest(fast)
    slow = make_project({"sources": {"events": {"format": "jsonl", "schema_hints": hints}}}, {}, folder="slow")
    put(slow, "a.jsonl", [*rows, {"id": 99, "v": "bad", "ts": "2024-01-01 00:00:00", "name": "x"}])
    ingest(slow)
    meta = ["_ingested_at", "_file_modification_time", "_file_size"]
    a = fast.table("bronze.events").drop_columns(meta).sort_by("id")
    b = slow.table("bronze.events").drop_columns(meta).sort_by("id").slice(0, 50)
    assert a.schema == b.schema
    assert a.to_pylist() == b.to_pylist()


def test_csv_options_delimiter_quote_and_no_header(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project({"sources": {
        "semi": {"format": "csv", "delimiter": ";", "quote": "'"},
        "bare": {"format": "csv", "header": False, "columns": ["id", "note"], "schema_hints": {"id": "bigint"}},
    }}, {})
    semi = project.landing.local_path("semi/a.csv")
    semi.parent.mkdir(parents=True)
    semi.write_text("id;note\n1;'a;b'\n2;'c'\n")
    bare = project.landing.local_path("bare/b.csv.gz")
    bare.parent.mkdir(parents=True)
    bare.write_bytes(gzip.compress(b'7,"x, y"\n8,z\n'))
    project.run()
    assert [(r["id"], r["note"]) for r in bronze(project, "semi")] == [("1", "a;b"), ("2", "c")]
    assert sorted((r["id"], r["note"]) for r in bronze(project, "bare")) == [(7, "x, y"), (8, "z")]
