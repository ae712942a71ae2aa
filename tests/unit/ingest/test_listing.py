"""The listing against the manifests (issue 20): ranges of growing files, files waiting to settle, changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lakeforge.config.models import SourceConfig
from lakeforge.errors import SourceError
from lakeforge.ingest import listing
from lakeforge.storage import FileInfo
from lakeforge.storage.local import LocalLocation


def landing(tmp_path: Path, files: dict[str, bytes]) -> LocalLocation:
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    return LocalLocation(tmp_path)


def test_complete_end_stops_at_the_last_newline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loc = landing(tmp_path, {"a.jsonl": b"1\n22\n333"})
    assert listing.complete_end(loc, "a.jsonl", start=0, size=9) == 5
    assert listing.complete_end(loc, "a.jsonl", start=5, size=9) == 5  # only a partial line: nothing
    monkeypatch.setattr(listing, "CHUNK", 2)  # the newline found across chunk boundaries
    assert listing.complete_end(loc, "a.jsonl", start=0, size=9) == 5


def test_a_csv_first_range_needs_a_row_beyond_its_header(tmp_path: Path) -> None:
    loc = landing(tmp_path, {"a.csv": b"id,v\n1,2\n3,"})
    assert listing.complete_end(loc, "a.csv", start=0, size=5, header=True) == 0
    assert listing.complete_end(loc, "a.csv", start=0, size=11, header=True) == 9
    source = SourceConfig(growing=True)
    assert listing.range_bytes(loc, FileInfo("a.csv", 9, 0), start=5, source=source) == b"id,v\n1,2\n"


def test_discover_takes_new_ranges_reports_changes_and_lets_unsettled_files_wait(tmp_path: Path) -> None:
    loc = landing(tmp_path, {"g/a.jsonl": b"1\n2\n3", "i/b.jsonl": b"1\n", "i/c.jsonl": b"1\n2\n"})
    grow = listing.discover(name="g", source=SourceConfig(growing=True), landing=loc,
                            listing=loc.list_files("g"), recorded={"g/a.jsonl": FileInfo("g/a.jsonl", 2, 0)},
                            unsettled={})
    assert [(f.path, f.size) for f in grow.new] == [("g/a.jsonl", 4)] and grow.starts == {"g/a.jsonl": 2}
    assert [(f.path, f.size) for f in grow.backlog()] == [("g/a.jsonl", 2)]
    listed = loc.list_files("i")
    b, c = listed
    found = listing.discover(name="i", source=SourceConfig(settle_seconds=60), landing=loc, listing=listed,
                             recorded={c.path: FileInfo(c.path, 2, c.mtime_ms)}, unsettled={b.path: 0},
                             at=b.mtime_ms / 1000 + 1)
    assert found.new == [] and found.waiting == [b]  # seen changing a second ago: waits
    assert [ch.current for ch in found.changed] == [c]
    later = listing.discover(name="i", source=SourceConfig(settle_seconds=60), landing=loc, listing=listed,
                             recorded={}, unsettled={b.path: 0}, at=b.mtime_ms / 1000 + 61)
    assert later.new == listed


def test_growing_refuses_compressed_and_parquet_files_and_clean_source() -> None:
    with pytest.raises(SourceError, match=r"s: x/a\.jsonl\.gz is compressed") as caught:
        listing.refuse_growing(name="s", source=SourceConfig(growing=True), path="x/a.jsonl.gz")
    assert "uncompressed" in (caught.value.hint or "")
    with pytest.raises(SourceError, match="a Parquet file"):
        listing.refuse_growing(name="s", source=SourceConfig(growing=True), path="x/a.parquet")
    with pytest.raises(ValidationError, match="Parquet"):
        SourceConfig(growing=True, format="parquet")
    with pytest.raises(ValidationError, match="clean_source"):
        SourceConfig(growing=True, clean_source="move")
