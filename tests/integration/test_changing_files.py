"""Landing files that change while or after they are read (issue 20, point 1).

Immutable by default: a batch reads exactly the bytes its manifest records; a file that is not as listed when it
is read waits until it settles; a file changed after its commit is reported (warning, ``status``, event log) and
taken again only with ``allow_overwrites``. ``growing: true``: each run takes the complete lines appended since
the last batch, exactly once.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lakeforge.engines.duckdb.engine import DuckDBEngine
from lakeforge.errors import LakeforgeError
from lakeforge.ingest.loader import Ingestor
from lakeforge.project import Project


def lines(ids: range) -> bytes:
    return "".join(json.dumps({"id": i, "v": i / 2}) + "\n" for i in ids).encode()


def source(make_project: Any, **options: object) -> Project:
    project: Project = make_project({"sources": {"events": {"format": "auto", "schema_hints": {"id": "bigint"},
                                                            **options}}}, {})
    return project


def landing(project: Project, name: str) -> Path:
    path = project.landing.local_path(f"events/{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


def settle(path: Path) -> None:
    """The file has not changed for two hours (past any settle time)."""
    old = time.time() - 7200
    os.utime(path, (old, old))


def bronze_ids(project: Project, name: str | None = None) -> Counter[int]:
    if not project.catalog.exists("bronze.events"):
        return Counter()
    rows = project.table("bronze.events").to_pylist()
    return Counter(int(r["id"]) for r in rows if name is None or r["_source_file"] == f"events/{name}")


def recorded(project: Project) -> dict[str, int]:
    """Path -> the end of the last range a manifest recorded for it."""
    found: dict[str, int] = {}
    folder = project.lakehouse.local_path("_lakeforge/checkpoints/events")
    for manifest in sorted(folder.glob("batch-*.json")):
        found.update({f["path"]: f["size"] for f in json.loads(manifest.read_text())["files"]})
    return found


def assert_exact_bytes(project: Project, name: str) -> None:
    """Every batch read exactly the bytes its manifest records: the rows of the file in bronze are the lines
    within the recorded size."""
    size = recorded(project).get(f"events/{name}", 0)
    data = landing(project, name).read_bytes()[:size]
    assert sum(bronze_ids(project, name).values()) == data.count(b"\n"), (size, bronze_ids(project, name))


# -- immutable files -----------------------------------------------------------------------------------------------
def test_a_file_that_grows_between_its_listing_and_its_read_is_left_for_a_later_batch(
        make_project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    project = source(make_project)
    landing(project, "a.jsonl").write_bytes(lines(range(0, 50)))
    landing(project, "b.jsonl").write_bytes(lines(range(100, 110)))
    save = Ingestor._save
    grown = []

    def save_then_grow(self: Ingestor, manifest: Any) -> None:
        save(self, manifest)
        if not grown:  # the batch's manifest is written: the gateway appends before the batch reads
            append(landing(project, "a.jsonl"), lines(range(50, 80)))
            grown.append(True)

    monkeypatch.setattr(Ingestor, "_save", save_then_grow)
    project.run()
    assert_exact_bytes(project, "a.jsonl")
    assert bronze_ids(project, "b.jsonl") == Counter(range(100, 110))
    assert project.status()["backlog"]["events"]["files"] == 1  # a.jsonl waits: not ignored
    settle(landing(project, "a.jsonl"))
    project.run()  # it has settled: taken whole, once
    assert bronze_ids(project) == Counter([*range(0, 80), *range(100, 110)])
    assert_exact_bytes(project, "a.jsonl")


def test_a_file_that_grows_while_the_batch_reads_it_is_not_half_read(
        make_project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    project = source(make_project)
    landing(project, "a.jsonl").write_bytes(lines(range(0, 50)))
    scan = DuckDBEngine.scan_files
    grown = []

    def scan_then_grow(self: DuckDBEngine, files: Any, **kwargs: Any) -> Any:
        reader = scan(self, files, **kwargs)
        if not grown:  # appended while the rows stream into the commit
            append(landing(project, "a.jsonl"), lines(range(50, 60)))
            grown.append(True)
        return reader

    monkeypatch.setattr(DuckDBEngine, "scan_files", scan_then_grow)
    project.run()
    assert_exact_bytes(project, "a.jsonl")
    settle(landing(project, "a.jsonl"))
    project.run()
    assert bronze_ids(project) == Counter(range(0, 60))
    assert_exact_bytes(project, "a.jsonl")


def test_a_file_seen_changing_waits_for_the_settle_time(make_project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    project = source(make_project, settle_seconds=3600)
    path = landing(project, "a.jsonl")
    path.write_bytes(lines(range(0, 5)))
    save = Ingestor._save

    def save_then_grow(self: Ingestor, manifest: Any) -> None:
        save(self, manifest)
        append(path, lines(range(5, 6)))

    monkeypatch.setattr(Ingestor, "_save", save_then_grow)
    assert project.run().status == "nothing_to_do"
    monkeypatch.setattr(Ingestor, "_save", save)
    assert project.run().status == "nothing_to_do"  # modified a moment ago: still waits
    assert project.status()["backlog"]["events"]["files"] == 1
    settle(path)
    project.run()
    assert bronze_ids(project) == Counter(range(0, 6))


def test_a_file_changed_after_its_commit_is_reported_not_ignored_in_silence(
        make_project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project = source(make_project)
    path = landing(project, "a.jsonl")
    path.write_bytes(lines(range(0, 3)))
    project.run()
    append(path, lines(range(3, 5)))
    assert project.run().status == "nothing_to_do"
    assert "events/a.jsonl changed after it was ingested" in capsys.readouterr().err
    backlog = project.status()["backlog"]["events"]
    assert backlog["changed_after_ingest"] == 1 and backlog["files"] == 0
    logged = project.query("SELECT name, kind, status, detail FROM _lakeforge.event_log WHERE event = 'file'")
    assert logged.to_pylist() == [{"name": "events/a.jsonl", "kind": "changed_after_ingest", "status": "ignored",
                                   "detail": logged.to_pylist()[0]["detail"]}]
    assert "allow_overwrites" in logged.to_pylist()[0]["detail"]
    assert bronze_ids(project) == Counter(range(0, 3))


def test_with_allow_overwrites_a_file_changed_after_its_commit_is_taken_again_and_logged(
        make_project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project = source(make_project, allow_overwrites=True)
    path = landing(project, "a.jsonl")
    path.write_bytes(lines(range(0, 3)))
    project.run()
    append(path, lines(range(3, 5)))
    project.run()
    assert "ingested again" in capsys.readouterr().err
    assert bronze_ids(project) == Counter([*range(0, 3), *range(0, 5)])  # the whole file again, as documented
    assert project.status()["backlog"]["events"]["changed_after_ingest"] == 0
    logged = project.query("SELECT status FROM _lakeforge.event_log WHERE event = 'file'")
    assert logged.column("status").to_pylist() == ["ingested again"]


# -- growing files -------------------------------------------------------------------------------------------------
def test_growing_takes_each_appended_complete_line_exactly_once(make_project: Any) -> None:
    project = source(make_project, growing=True)
    path = landing(project, "day.jsonl")
    path.write_bytes(lines(range(0, 3)) + b'{"id": 3, "v"')  # the gateway is writing line 3
    project.run()
    assert bronze_ids(project) == Counter(range(0, 3))
    assert project.status()["backlog"]["events"]["files"] == 0  # a partial line is not a backlog
    assert project.run().status == "nothing_to_do"
    append(path, b': 1.5}\n' + lines(range(4, 9)))
    project.run()
    append(path, lines(range(9, 10)) + b'{"id"')
    project.run()
    assert bronze_ids(project) == Counter(range(0, 10))
    assert project.status()["backlog"]["events"] == {"files": 0, "bytes": 0, "changed_after_ingest": 0}
    manifests = sorted(project.lakehouse.local_path("_lakeforge/checkpoints/events").glob("batch-*.json"))
    starts = [json.loads(m.read_text()).get("starts", {}).get("events/day.jsonl") for m in manifests]
    assert starts == [0, len(lines(range(0, 3))), len(lines(range(0, 9)))]


def test_growing_csv_reads_the_header_from_the_first_range(make_project: Any) -> None:
    project = source(make_project, growing=True, schema_hints={"id": "bigint", "v": "double"})
    path = landing(project, "day.csv")
    path.write_bytes(b"id,v\n")  # a header alone: nothing to take yet
    assert project.run().status == "nothing_to_do"
    append(path, b"1,0.5\n2,1.0\n")
    project.run()
    append(path, b"3,1.5\n4,2")
    project.run()
    append(path, b".0\n")
    project.run()
    rows = sorted((r["id"], r["v"]) for r in project.table("bronze.events").to_pylist())
    assert rows == [(1, 0.5), (2, 1.0), (3, 1.5), (4, 2.0)]


def test_growing_refuses_a_compressed_file_naming_it_and_the_fix(make_project: Any) -> None:
    project = source(make_project, growing=True)
    landing(project, "day.jsonl.gz").write_bytes(gzip.compress(lines(range(0, 3))))
    with pytest.raises(LakeforgeError, match=r"events/day\.jsonl\.gz is compressed") as caught:
        project.run()
    assert "uncompressed" in (caught.value.hint or "")


def test_growing_redo_after_a_crash_reads_the_recorded_range(make_project: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between the manifest and the commit, while the gateway appends: the redo takes the same range, and
    the lines appended since come in the next batch, once."""
    project = source(make_project, growing=True)
    path = landing(project, "day.jsonl")
    path.write_bytes(lines(range(0, 4)))
    write = project.catalog.write

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # the process dies before the commit

    monkeypatch.setattr(project.catalog, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        project.ingestor("events", engine=project.engine).run()
    monkeypatch.setattr(project.catalog, "write", write)
    append(path, lines(range(4, 7)))
    project.run()
    assert bronze_ids(project) == Counter(range(0, 7))
    batches = {r["_batch_id"]: 0 for r in project.table("bronze.events").to_pylist()}
    assert len(batches) == 2  # the redone range, then the appended lines
