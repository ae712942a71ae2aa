"""The web app's DuckDB connections keep to the engine's memory limit of lakeforge.yml (issue 21, point 4):
the warehouse connection, the event log, the snapshot, and the explorer's sandbox, whose process limit is sized
by the same limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from lakeforge.project import Project
from lakeforge.web import sandbox
from lakeforge.web.store import Store

LIMIT = "SELECT current_setting('memory_limit')"


def _project(root: Path, engine: dict[str, object]) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "lakeforge.yml").write_text(yaml.safe_dump({"name": "plant", "engine": engine}))
    project = Project(root)
    project.warehouse().close()  # an empty warehouse file
    return project


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    project = _project(tmp_path / "p", {"memory_limit": "300MB", "threads": 1})
    store = Store(project, background=False)
    yield store
    store.close()
    project.close()


def test_the_web_connections_report_the_configured_memory_limit(store: Store) -> None:
    assert store.source.settings.memory_limit == "300MB"
    with store.warehouse() as con:
        assert con.execute(LIMIT).fetchall()[0][0] == "286.1 MiB"
    with store.events_cursor() as cursor:
        assert cursor.execute(LIMIT).fetchall()[0][0] == "286.1 MiB"
    with store.snapshot_cursor() as (_, cursor):
        assert cursor.execute(LIMIT).fetchall()[0][0] == "286.1 MiB"


def test_the_explorers_sandbox_runs_with_it(store: Store) -> None:
    request = sandbox.Request(path=str(store.source.duckdb_path), sql=f"{LIMIT} AS m", params={}, rows=2,
                              max_bytes=1 << 20, settings=store.source.settings)
    outcome = sandbox.run(request, timeout=60)
    assert outcome.ok, outcome.message
    assert pa.ipc.open_stream(outcome.ipc).read_all().column("m").to_pylist() == ["286.1 MiB"]


def test_without_a_configured_limit_the_web_keeps_to_2gb(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", {"threads": 1})
    stores = [Store(project, background=False), Store(project, background=False, memory_limit="1GB")]
    try:
        assert [s.source.settings.memory_limit for s in stores] == ["2GB", "1GB"]  # 1GB: WebSettings' own
        with stores[0].warehouse() as con:
            assert con.execute(LIMIT).fetchall()[0][0] == "1.8 GiB"
    finally:
        for each in stores:
            each.close()
        project.close()
