"""``init --from``'s profiles (lakeforge.ingest.profile): the Azure predictive-maintenance files as published (four
without a header), and generated CSV files of every shape the sniffer must tell apart (hypothesis, seeded)."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakeforge.ingest.profile import SourceProfile, group_files, name_columns, profile_location
from lakeforge.storage import FileInfo
from lakeforge.storage.local import LocalLocation

AZURE = Path(__file__).resolve().parents[4] / "shared" / "data" / "azure-pdm"


def _profiles(folder: Path) -> dict[str, SourceProfile]:
    sources = profile_location(LocalLocation(folder))
    name_columns(sources)
    return {s.name: s for s in sources}


def test_the_azure_files_are_read_as_they_are() -> None:
    """Four files have no header and one has: every line of the four is data, the names come from the one with a
    header (its timestamp and machine id) and from the values (``comp1`` -> ``comp``); types and keys as the data
    say (README of ../shared/data: 3,919 / 761 / 100 / 3,286 / 43,200 rows)."""
    assert AZURE.is_dir(), f"{AZURE} is missing: the shared data folder must sit beside the repository"
    got = _profiles(AZURE)
    assert sorted(got) == ["errors", "failures", "machines", "maint", "telemetry"]
    assert {n: (s.header, s.rows) for n, s in got.items()} == {
        "errors": (False, 3919), "failures": (False, 761), "machines": (False, 100), "maint": (False, 3286),
        "telemetry": (True, 43200)}
    assert [(c.name, c.type) for c in got["telemetry"].columns] == [
        ("datetime", "timestamp"), ("machineID", "bigint"), ("volt", "double"), ("rotate", "double"),
        ("pressure", "double"), ("vibration", "double")]
    assert [(c.name, c.type) for c in got["failures"].columns] == [
        ("datetime", "timestamp"), ("machineID", "bigint"), ("comp", "string")]
    assert [(c.name, c.type) for c in got["machines"].columns] == [
        ("machineID", "bigint"), ("model", "string"), ("column_3", "bigint")]
    assert got["telemetry"].key == ["datetime", "machineID"] and got["machines"].key == ["machineID"]
    assert got["telemetry"].pattern == "PdM_telemetry_machines*" and got["errors"].pattern == "PdM_errors*"
    assert all(s.folder == "." and s.format == "csv" and s.delimiter == "," for s in got.values())
    assert any("no header" in why for why in got["failures"].why)
    assert any("read as UTC" in why for why in got["failures"].why)


def test_compressed_files_and_sub_folders(tmp_path: Path) -> None:
    """One source per sub-folder; a .csv.gz is read through its compression."""
    (tmp_path / "readings").mkdir()
    with (AZURE / "PdM_machines.csv").open("rb") as raw, gzip.open(tmp_path / "readings" / "m.csv.gz", "wb") as out:
        shutil.copyfileobj(raw, out)
    (tmp_path / "events").mkdir()
    shutil.copy(AZURE / "PdM_failures.csv", tmp_path / "events" / "f.csv")
    got = _profiles(tmp_path)
    assert sorted(got) == ["events", "readings"]
    assert (got["readings"].compression, got["readings"].rows, got["readings"].folder) == ("gz", 100, "readings")
    assert got["events"].pattern == "*" and got["events"].rows == 761


def test_files_are_grouped_by_name_without_digits() -> None:
    files = [FileInfo(p, 1, 0) for p in ("plant_telemetry_2024-01.csv", "plant_telemetry_2024-02.csv",
                                         "plant_failures.csv", "plant_notes.txt.zst", "README.md")]
    groups = {name: (folder, pattern, [f.path for f in members]) for name, folder, pattern, members in
              group_files(files)}
    assert groups == {"telemetry": (".", "plant_telemetry*", ["plant_telemetry_2024-01.csv",
                                                              "plant_telemetry_2024-02.csv"]),
                      "failures": (".", "plant_failures*", ["plant_failures.csv"]),
                      "notes": (".", "plant_notes*", ["plant_notes.txt.zst"])}


_NAMES = st.lists(st.from_regex(r"[a-z][a-z_]{2,8}", fullmatch=True), min_size=2, max_size=5, unique=True)


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(names=_NAMES, delimiter=st.sampled_from([",", ";", "\t", "|"]), header=st.booleans(),
       rows=st.integers(min_value=5, max_value=60), seed=st.integers(min_value=0, max_value=10_000))
def test_generated_csv_files_are_sniffed_right(tmp_path_factory: pytest.TempPathFactory, names: list[str],
                                              delimiter: str, header: bool, rows: int, seed: int) -> None:
    """A file of a timestamp, an integer id and doubles (any delimiter, with a header or not): the profile finds
    the delimiter, the header, every row, the types, and the header's names."""
    import random

    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1)
    folder = tmp_path_factory.mktemp("csv")
    lines = [delimiter.join(names)] if header else []
    for i in range(rows):
        values = [(start + dt.timedelta(minutes=7 * i)).isoformat(sep=" "), str(rng.randint(1, 9))]
        values += [f"{rng.uniform(-50, 500):.4f}" for _ in names[2:]]
        lines.append(delimiter.join(values))
    (folder / "readings.csv").write_text("\n".join(lines) + "\n")
    (profile,) = _profiles(folder).values()
    assert (profile.delimiter, profile.header, profile.rows) == (delimiter, header, rows)
    assert [c.type for c in profile.columns] == ["timestamp", "bigint"] + ["double"] * (len(names) - 2)
    assert [c.name for c in profile.columns] == (names if header else [f"column_{i + 1}" for i in range(len(names))])
    table = [line.split(delimiter) for line in lines[1 if header else 0:]]
    positions = profile.key_columns
    assert positions and len({tuple(row[i] for i in positions) for row in table}) == rows  # a key, truly
    ids = [row[1] for row in table]
    assert positions == ([1] if len(set(ids)) == rows else [0])  # the id when it never repeats, else the time
