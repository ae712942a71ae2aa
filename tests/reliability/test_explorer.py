"""The SQL explorer keeps the server's memory and time bounded (issue 20, point 5): a query that builds huge values
runs in a child process with a memory limit, killed at the timeout; answers are cut by bytes as well as rows."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lakeforge.ops.serve import create_app
from lakeforge.project import Project
from lakeforge.web.app import WebSettings
from tests.integration.test_web import BEARER, TOKEN, get

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("explorer") / "plant"
    Project.init(root).generate(machines=2, days=1, seed=7, files=1)
    with Project(root) as project:
        assert project.run().status == "succeeded"
    return root


def _rss() -> int:
    """This process's resident memory now, in bytes (the test client's server runs in it)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_the_explorer_keeps_the_servers_memory_and_time_bounded(built: Path, record: dict[str, Any]) -> None:
    """Queries that build huge values: the server's memory stays where it was, each answer comes within the
    timeout, the byte limit cuts what is sent, and the server keeps serving."""
    settings = WebSettings(timeout_seconds=10.0, background_refresh=False, max_bytes=4 * 2**20)
    with TestClient(create_app(Project(built), scheduler=False, token=TOKEN, web=settings),
                    headers=BEARER) as client:
        assert client.get("/api/explore", params={"sql": "SELECT 1"}).json()["rows"] == [[1]]
        before = _rss()
        started = time.perf_counter()
        wide = client.get("/api/explore", params={"sql": "SELECT repeat('x', 2000000) AS s FROM range(500)"})
        assert time.perf_counter() - started < 10
        answer = wide.json()
        assert wide.status_code == 200 and answer["truncated"] is True and answer["truncated_by"] == "bytes"
        assert 0 < answer["row_count"] <= 2 and answer["max_bytes"] == 4 * 2**20
        page = get(client, "/explore", params={"sql": "SELECT repeat('x', 1000000) AS s FROM range(500)"})
        assert "larger than the explorer's 4 MB" in page.one("result-summary").text
        csv_export = client.get(page.one("csv-export").attrs["href"])
        assert csv_export.headers["x-lakeforge-truncated"] == "true" and len(csv_export.content) < 5 * 2**20
        for sql in ("SELECT string_agg(repeat('x', 1000), ',') FROM range(3000000)",
                    "SELECT list(range) FROM range(400000000)"):
            started = time.perf_counter()
            refused = client.get("/api/explore", params={"sql": sql})
            assert time.perf_counter() - started < 10, sql
            assert refused.status_code == 400, sql
            assert refused.json()["error"].startswith("the query needed more memory than the explorer allows"), sql
        grown = _rss() - before
        assert grown < 200 * 2**20  # the values were built and dropped in the query's own process
        assert client.get("/api/explore", params={"sql": "SELECT 42"}).json()["rows"] == [[42]]
    record.update(queries=5, server_growth_mb=round(grown / 2**20, 1), bytes_cap_mb=4)
