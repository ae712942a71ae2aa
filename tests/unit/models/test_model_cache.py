"""The models' analysis cache (lakeforge/models/analysis.py): an unchanged project is not parsed again; any edit
of a model file (a view's too) is seen; and the event log's rows are built without pandas, as pyarrow builds them."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pyarrow as pa

from lakeforge.models import analysis
from lakeforge.models.model import load_models
from lakeforge.pipeline import events
from lakeforge.storage.local import LocalLocation

MODELS = {
    "silver/readings.sql": """
        -- kind: incremental
        -- unique_key: [machine_id, ts]
        SELECT machine_id, ts, volt FROM bronze.telemetry
        """,
    "silver/recent.sql": """
        -- kind: view
        SELECT machine_id, ts, volt FROM silver.readings WHERE volt > 0
        """,
    "gold/hourly.sql": """
        -- kind: incremental
        -- unique_key: [machine_id, hour]
        SELECT machine_id, date_trunc('HOUR', ts) AS hour, avg(volt) AS volt
        FROM silver.recent GROUP BY 1, 2
        """,
}


def _project(tmp_path: Path) -> tuple[Path, LocalLocation]:
    for name, sql in MODELS.items():
        path = tmp_path / "models" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(sql).lstrip())
    (tmp_path / "lakehouse" / "_lakeforge").mkdir(parents=True)  # as a run leaves it
    return tmp_path / "models", LocalLocation(tmp_path / "lakehouse")


def _facts(models: list) -> dict[str, tuple[list[str], dict[str, str]]]:  # type: ignore[type-arg]
    return {m.name: (m.upstream(), m.fingerprint()) for m in models}


def test_an_unchanged_project_is_not_parsed_again(tmp_path: Path) -> None:
    folder, lakehouse = _project(tmp_path)
    parsed = load_models(folder, dialect="databricks")  # no cache: parsed as always
    first = load_models(folder, dialect="databricks", cache=lakehouse)
    assert lakehouse.exists(analysis.CACHE)
    again = load_models(folder, dialect="databricks", cache=lakehouse)
    assert all(m._tree is None for m in again)  # from the cache
    assert _facts(again) == _facts(first) == _facts(parsed)
    assert [m.config for m in again] == [m.config for m in parsed]
    assert [(m.sql, m.line_offset) for m in again] == [(m.sql, m.line_offset) for m in parsed]
    hourly = next(m for m in again if m.name == "gold.hourly")
    assert hourly.upstream() == ["silver.readings"]  # the view inlined
    # a query needed after all: every model parsed then, views inlined, the same as a load without the cache
    assert hourly.duckdb_sql() == next(m for m in parsed if m.name == "gold.hourly").duckdb_sql()
    assert all(m._tree is not None for m in again)
    assert _facts(again) == _facts(parsed)


def test_an_edit_is_seen(tmp_path: Path) -> None:
    folder, lakehouse = _project(tmp_path)
    before = _facts(load_models(folder, dialect="databricks", cache=lakehouse))
    view = folder / "silver" / "recent.sql"
    view.write_text(view.read_text().replace("volt > 0", "volt > 1"))  # another file than the reader's
    edited = load_models(folder, dialect="databricks", cache=lakehouse)
    assert all(m._tree is not None for m in edited)  # parsed: the files changed
    assert _facts(edited) == _facts(load_models(folder, dialect="databricks"))
    assert _facts(edited)["gold.hourly"][1]["sql"] != before["gold.hourly"][1]["sql"]
    assert _facts(edited)["silver.readings"] == before["silver.readings"]
    header = folder / "silver" / "readings.sql"
    header.write_text(header.read_text().replace("-- kind: incremental\n", "-- kind: incremental\n-- order_by: [ts]\n"))
    reloaded = load_models(folder, dialect="databricks", cache=lakehouse)
    assert next(m for m in reloaded if m.name == "silver.readings").config.order_by == ["ts"]
    assert _facts(reloaded) == _facts(load_models(folder, dialect="databricks"))
    (folder / "gold" / "hourly.sql").unlink()  # a file removed
    assert [m.name for m in load_models(folder, dialect="databricks", cache=lakehouse)] == [
        "silver.readings", "silver.recent"]


def test_no_cache_before_a_run_or_of_another_key(tmp_path: Path) -> None:
    folder, lakehouse = _project(tmp_path)
    (tmp_path / "lakehouse" / "_lakeforge").rmdir()
    load_models(folder, dialect="databricks", cache=lakehouse)
    assert not (tmp_path / "lakehouse" / "_lakeforge").exists()  # nothing written into a lakehouse no run wrote
    (tmp_path / "lakehouse" / "_lakeforge").mkdir()
    load_models(folder, dialect="databricks", cache=lakehouse)
    assert all(m._tree is not None for m in load_models(folder, dialect="duckdb", cache=lakehouse))  # another key
    lakehouse.write_json_atomic(analysis.CACHE, {"key": "x", "models": []})  # not ours: ignored
    assert all(m._tree is not None for m in load_models(folder, dialect="databricks", cache=lakehouse))


def test_event_rows_are_the_table_pyarrow_makes() -> None:
    now = dt.datetime(2026, 12, 7, 6, 50, 49, 123456, tzinfo=dt.UTC)
    rows = [{"run_id": "r1", "event": "run", "name": "p", "started_at": now, "ended_at": now.replace(tzinfo=None),
             "seconds": 0, "rows_in": 3, "attempts": 2, "cost": 1.5, "error": "é\nx"},
            {"run_id": "r1", "event": "table", "freshness_seconds": 12.25, "bytes_out": 2**40,
             "started_at": dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
            {}]
    expected = pa.table({f.name: [r.get(f.name) for r in rows] for f in events.SCHEMA}, schema=events.SCHEMA)
    assert pa.table(events.table_of(rows)).equals(expected)
    assert pa.table(events.table_of([])).equals(events.SCHEMA.empty_table())
