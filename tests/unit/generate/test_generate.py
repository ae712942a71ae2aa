"""Behaviour of the synthetic telemetry generator (lakeforge.generate)."""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from lakeforge.generate import Dirt, GenerateError, GenerateResult, describe_dirt, generate, run_tag
from lakeforge.generate import telemetry as tm

SOURCES = ("machines", "sites", "telemetry", "errors", "maintenance", "failures")
BASE_COLS = ["ts", "machine_id", "volt", "rotate", "pressure", "vibration", "temperature"]
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
SMALL: dict[str, Any] = {"machines": 12, "days": 2, "files": 5}


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def telemetry_files(root: Path) -> list[Path]:
    return sorted((root / "telemetry").iterdir())


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def query(sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect() as con:
        return con.execute(sql).fetchall()


def columns(path: Path) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in query(f"DESCRIBE SELECT * FROM '{path}'")]


def slice_start(start: str, rph: int, step: int) -> str:
    return f"{datetime.fromisoformat(start) + timedelta(seconds=step * 3600 // rph):%Y-%m-%d %H:%M:%S}"


# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_same_arguments_give_identical_bytes(tmp_path: Path, fmt: str) -> None:
    generate(tmp_path / "a", fmt=fmt, **SMALL)  # type: ignore[arg-type]
    generate(tmp_path / "b", fmt=fmt, **SMALL)  # type: ignore[arg-type]
    a, b = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert a == b
    assert len(a) == SMALL["files"] + 5


def test_other_seed_or_later_start_adds_files_without_overwriting(tmp_path: Path) -> None:
    first = generate(tmp_path, **SMALL)
    before = all_files(tmp_path)
    generate(tmp_path, seed=7, **SMALL)
    generate(tmp_path, start="2024-02-01", **SMALL)
    after = all_files(tmp_path)
    assert len(after) == 3 * len(before)
    assert all(after[name] == data for name, data in before.items())
    assert first.files == len(before)
    assert run_tag(42, "2024-01-01") == "20240101s42"
    assert run_tag(42, "2024-01-01 06:00") != run_tag(42, "2024-01-01")


def test_layout_and_result(tmp_path: Path) -> None:
    res = generate(tmp_path, **SMALL)
    assert isinstance(res, GenerateResult)
    assert res.to_dict() == {"files": SMALL["files"] + 5, "rows": res.rows, "path": str(tmp_path)}
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    tag = run_tag(42, "2024-01-01")
    expected = [f"{s}/{s}-{tag}.jsonl" for s in SOURCES if s != "telemetry"]
    expected += [f"telemetry/telemetry-{tag}-{i:05d}.jsonl" for i in range(SMALL["files"])]
    assert names == sorted(expected)
    assert res.rows == sum(len(p.read_text().splitlines()) for p in tmp_path.rglob("*.jsonl"))
    # Atomic writes leave no temporary files behind.
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith((".", "_"))]


def test_row_counts_and_exact_duplicates(tmp_path: Path) -> None:
    generate(tmp_path)  # 50 machines x 7 days x 24 h x 6 readings
    base = 50 * 7 * 24 * 6
    lines = [ln for p in telemetry_files(tmp_path) for ln in p.read_bytes().splitlines()]
    dups = sum(c - 1 for c in Counter(lines).values())
    assert len(lines) == base + dups
    assert 0.5 * 0.005 * base < dups < 1.5 * 0.005 * base
    # Nothing lost: every (ts, machine) reading is present (late rows are moved, not dropped).
    keys = {(r["ts"], int(r["machine_id"])) for ln in lines for r in [json.loads(ln)]}
    assert len(keys) == base


def test_duplicates_go_to_same_or_next_file(tmp_path: Path) -> None:
    dirt = Dirt(duplicates=0.05, late=0.0, new_field_from=None, type_change_from=None)
    generate(tmp_path, dirt=dirt, **SMALL)
    where: dict[bytes, list[int]] = defaultdict(list)
    for i, p in enumerate(telemetry_files(tmp_path)):
        for ln in p.read_bytes().splitlines():
            where[ln].append(i)
    placements = Counter(
        "same" if len(set(f)) == 1 else "next" for f in where.values() if len(f) > 1
    )  # fmt: skip
    assert all(len(f) <= 2 for f in where.values())
    assert all(f[1] - f[0] in (0, 1) for f in where.values() if len(f) == 2)
    assert placements["same"] > 0 and placements["next"] > 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_every_format_is_readable_by_duckdb(tmp_path: Path, fmt: str) -> None:
    res = generate(tmp_path, fmt=fmt, machines=20, days=2, files=5)  # type: ignore[arg-type]
    expected = {
        "machines": ["machine_id", "model", "age", "site_id", "install_date"],
        "sites": ["site_id", "site_name", "region", "timezone"],
        "errors": ["ts", "machine_id", "error_id"],
        "maintenance": ["ts", "machine_id", "component", "reason"],
        "failures": ["ts", "machine_id", "component"],
    }
    total = 0
    for source, cols in expected.items():
        (path,) = (tmp_path / source).iterdir()
        assert path.suffix == f".{fmt}"
        assert [c for c, _ in columns(path)] == cols
        total += query(f"SELECT count(*) FROM '{path}'")[0][0]
    files = telemetry_files(tmp_path)
    assert [c for c, _ in columns(files[0])] == BASE_COLS
    assert [c for c, _ in columns(files[-1])] == [*BASE_COLS, "humidity"]
    total += sum(query(f"SELECT count(*) FROM '{p}'")[0][0] for p in files)
    assert total == res.rows
    machines = next((tmp_path / "machines").iterdir())
    stats = query(f"SELECT count(*), min(machine_id), max(machine_id), max(age) FROM '{machines}'")[0]
    assert stats[:3] == (20, 1, 20) and stats[3] <= 20
    # Timestamps are 'YYYY-MM-DD HH:MM:SS' strings in the file itself.
    if fmt == "parquet":
        ts = pq.read_table(files[0], columns=["ts"])["ts"].to_pylist()
    elif fmt == "csv":
        with files[0].open(newline="") as fh:
            ts = [row["ts"] for row in csv.DictReader(fh)]
    else:
        ts = [r["ts"] for r in jsonl(files[0])]
    assert ts and all(TS_RE.match(t) for t in ts)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_humidity_only_from_new_field_from(tmp_path: Path, fmt: str) -> None:
    generate(tmp_path, fmt=fmt, machines=5, days=2, files=10, dirt=Dirt(type_change_from=None))  # type: ignore[arg-type]
    for i, path in enumerate(telemetry_files(tmp_path)):
        if fmt == "csv":
            header = path.read_text().splitlines()[0].replace('"', "").split(",")
        elif fmt == "parquet":
            header = pq.read_schema(path).names
        else:
            keys = {tuple(r) for r in jsonl(path)}
            assert len(keys) == 1
            header = list(keys.pop())
        assert ("humidity" in header) == (i >= 6), (i, header)


def test_type_change_and_garbage_in_late_files(tmp_path: Path) -> None:
    generate(tmp_path, machines=10, days=2, files=10, dirt=Dirt(garbage=0.02))
    for i, path in enumerate(telemetry_files(tmp_path)):
        stringy = i >= 8
        types = dict(columns(path))
        assert types["machine_id"] == ("VARCHAR" if stringy else "BIGINT")
        rows = jsonl(path)
        assert all(isinstance(r["machine_id"], str if stringy else int) for r in rows)
        values = [r[c] for r in rows for c in BASE_COLS[2:] if r[c] is not None]
        garbage = [v for v in values if isinstance(v, str) and v in tm.GARBAGE]
        if stringy:
            assert all(isinstance(v, str) for v in values)
            assert garbage
            numeric = [v for v in values if v not in tm.GARBAGE]
            assert all(float(v) == float(v) for v in numeric)  # every other value parses as a number
        else:
            assert all(isinstance(v, int | float) for v in values)


def test_late_rows_land_in_last_file(tmp_path: Path) -> None:
    dirt = Dirt(late=0.05, duplicates=0.0, new_field_from=None, type_change_from=None)
    files, rph = 8, 6
    generate(tmp_path, files=files, dirt=dirt)
    bounds = tm.slice_bounds(days=7, readings_per_hour=rph, files=files)
    paths = telemetry_files(tmp_path)
    for i, path in enumerate(paths[:-1]):  # time-ordered, inside their slice
        keys = [(r["ts"], r["machine_id"]) for r in jsonl(path)]
        assert keys == sorted(keys)
        lo, hi = slice_start("2024-01-01", rph, bounds[i]), slice_start("2024-01-01", rph, bounds[i + 1])
        assert lo <= keys[0][0] and keys[-1][0] < hi
    last = jsonl(paths[-1])
    cut = slice_start("2024-01-01", rph, bounds[-2])
    late = [r for r in last if r["ts"] < cut]
    earlier_rows = 50 * bounds[-2]
    assert 0.5 * 0.05 * earlier_rows < len(late) < 1.5 * 0.05 * earlier_rows
    assert last[-len(late) :] == late  # appended after the file's own slice


def test_failures_followed_by_failure_maintenance(tmp_path: Path) -> None:
    generate(tmp_path)  # the defaults: a 7-day demo must show failures
    failures = jsonl(next((tmp_path / "failures").iterdir()))
    maintenance = jsonl(next((tmp_path / "maintenance").iterdir()))
    assert len(failures) >= 3
    fixed = sorted((m["machine_id"], m["component"], m["ts"]) for m in maintenance if m["reason"] == "failure")
    assert len(fixed) == len(failures)
    for f in failures:  # each failure is repaired: a failure maintenance of its component, hours later
        after = [ts for mid, comp, ts in fixed if (mid, comp) == (f["machine_id"], f["component"]) and ts > f["ts"]]
        assert after, f
        hours = (datetime.fromisoformat(min(after)) - datetime.fromisoformat(f["ts"])).total_seconds() / 3600
        assert 1 <= hours <= 72, (f, min(after))
    assert {m["reason"] for m in maintenance} == {"failure", "scheduled"}
    assert {m["component"] for m in maintenance} <= set(tm.COMPONENTS)
    errors = jsonl(next((tmp_path / "errors").iterdir()))
    assert errors and {e["error_id"] for e in errors} <= set(tm.ERROR_IDS)
    assert all(TS_RE.match(e["ts"]) and e["ts"].endswith(":00:00") for e in errors)


def test_wear_drifts_sensors_and_errors_before_failures(tmp_path: Path) -> None:
    generate(tmp_path, days=14, dirt=Dirt.none())
    t, f, e = (f"read_json('{tmp_path}/{s}/*.jsonl')" for s in ("telemetry", "failures", "errors"))
    vib, temp, rot, err_before = query(f"""
        WITH m AS (
          SELECT machine_id, avg(vibration) v, avg(temperature) te, avg(rotate) r FROM {t} GROUP BY 1
        ),
        f AS (SELECT ts::TIMESTAMP fts, machine_id FROM {f})
        SELECT avg(t.vibration - m.v), avg(t.temperature - m.te), avg(t.rotate - m.r),
               (SELECT count(*) FROM {e} e JOIN f ON e.machine_id = f.machine_id
                  AND e.ts::TIMESTAMP BETWEEN f.fts - INTERVAL 48 HOUR AND f.fts)
               / (SELECT count(*) * 48 FROM f)
        FROM f JOIN {t} t ON t.machine_id = f.machine_id
          AND t.ts::TIMESTAMP >= f.fts - INTERVAL 12 HOUR AND t.ts::TIMESTAMP < f.fts
        JOIN m ON m.machine_id = f.machine_id""")[0]
    assert vib > 1.0 and temp > 0.5 and rot < -5.0
    base_rate = query(f"SELECT count(*) / (50 * 14 * 24) FROM {e}")[0][0]
    assert err_before > 2 * base_rate
    means = query(f"SELECT {', '.join(f'avg({c})' for c in tm.SENSORS)} FROM {t}")[0]
    for got, want in zip(means, (170, 450, 100, 40, 70), strict=True):
        assert abs(got - want) < 0.1 * want


def test_dirt_none_gives_clean_data(tmp_path: Path) -> None:
    generate(tmp_path, **SMALL, dirt=Dirt.none())
    rows = [r for p in telemetry_files(tmp_path) for r in jsonl(p)]
    assert len(rows) == 12 * 2 * 24 * 6
    assert len({(r["ts"], r["machine_id"]) for r in rows}) == len(rows)
    assert all(list(r) == BASE_COLS for r in rows)
    assert all(isinstance(r["machine_id"], int) for r in rows)
    assert all(v is not None for r in rows for v in r.values())
    for c, lo, hi in [("volt", 100, 250), ("rotate", 200, 700), ("pressure", 50, 160), ("vibration", 20, 70)]:
        assert all(lo < r[c] < hi for r in rows), c
    assert all(40 < r["temperature"] < 100 for r in rows)


def test_default_dirt_has_nulls_and_impossible_values(tmp_path: Path) -> None:
    generate(tmp_path, dirt=Dirt(type_change_from=None))
    rows = [r for p in telemetry_files(tmp_path) for r in jsonl(p)]
    nulls = sum(r[c] is None for r in rows for c in BASE_COLS[2:])
    assert 0.5 * 0.005 * 5 * len(rows) < nulls < 1.5 * 0.005 * 5 * len(rows)
    impossible = dict(zip(tm.SENSORS, tm.OUT_OF_RANGE, strict=True))
    assert {c for r in rows for c, v in impossible.items() if r[c] == v} == set(tm.SENSORS)


def test_wear_matches_a_naive_simulation() -> None:
    world = tm._build_world(7, 3 * 144, 144, 3, datetime(2024, 1, 1))
    full = tm._wear(world, 0, 3 * 144)
    assert full.min() >= 0.0 and full.max() < 1.0
    events = world.events.to_pylist()
    for k in range(full.shape[1]):
        resets = [e["t"] for e in events if e["k"] == k]
        drops = [t for t in range(1, full.shape[0]) if full[t, k] < full[t - 1, k]]
        assert drops == resets
    pieces = np.vstack([tm._wear(world, a, b) for a, b in [(0, 100), (100, 101), (101, 3 * 144)]])
    np.testing.assert_allclose(pieces, full)


def test_validation_errors(tmp_path: Path) -> None:
    bad: list[dict[str, Any]] = [
        {"fmt": "xml"},
        {"files": 0},
        {"machines": 0},
        {"days": 0},
        {"readings_per_hour": 7},
        {"start": "yesterday"},
        {"files": 10_000, "days": 1},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            generate(tmp_path, **kwargs)
    with pytest.raises(GenerateError):
        Dirt(nulls=1.5)
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(table: object, where: object, **kwargs: object) -> None:
        Path(str(where)).write_text("partial")
        raise OSError("disk full")

    monkeypatch.setattr(tm.pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        generate(tmp_path, fmt="parquet", **SMALL)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_describe_dirt() -> None:
    assert describe_dirt(Dirt()) == {
        "nulls": 0.005,
        "out_of_range": 0.002,
        "duplicates": 0.005,
        "late": 0.01,
        "garbage": 0.0005,
        "new_field_from": 0.6,
        "type_change_from": 0.8,
    }
    clean = describe_dirt(Dirt.none())
    assert clean["new_field_from"] is None and clean["type_change_from"] is None
    assert all(v == 0.0 for k, v in clean.items() if not k.endswith("_from"))


def test_throughput_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.perf_counter()
    res = generate(tmp_path, machines=200, days=7, files=8)
    elapsed = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n[generate] {res.rows:,} rows in {elapsed:.2f}s = {res.rows / elapsed:,.0f} rows/s (jsonl)")
    assert res.rows > 200 * 7 * 24 * 6


def test_a_short_run_without_any_events_still_writes_every_source(tmp_path: Path) -> None:
    # 2 machines for 1 day: usually no failures at all; the generator must not trip on empty arrays
    result = generate(tmp_path, machines=2, days=1, seed=8, files=2)
    assert result.rows >= 2 * 24 * 6
    assert {p.name for p in tmp_path.iterdir()} == {"telemetry", "machines", "sites", "errors", "maintenance",
                                                     "failures"}
