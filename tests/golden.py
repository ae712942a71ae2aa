"""Golden files: what lakeforge writes (SQL per dialect) compared with reviewed files under tests/golden/.

``LAKEFORGE_UPDATE_GOLDEN=1`` rewrites them; review the diff before committing.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent / "golden"


# A small deterministic project whose loads the per-dialect golden SQL records: one keyed table of readings
GOLDEN_CONFIG: dict[str, object] = {
    "name": "golden",
    "dialect": "duckdb",
    "sources": {"readings": {"format": "csv", "schema_hints": {
        "id": "bigint", "site": "string", "value": "double", "ts": "timestamp"}}},
}
GOLDEN_MODELS = {
    "gold.readings": """
        -- kind: incremental
        -- unique_key: [id]
        SELECT id, site, value, ts FROM bronze.readings
    """,
}
REPORT_SQL = "SELECT site, count(*) AS readings, avg(value) AS value_avg FROM readings GROUP BY site"


# what differs from one run to the next: a run's id, a Delta table's id (a UUID made when the table is created)
VOLATILE = [
    (re.compile(r"'(run-[0-9]+|[0-9]{8}T[0-9]{6,}-[0-9a-f]{6})'"), "'<run_id>'"),
    (re.compile(r"'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'"), "'<table_id>'"),
]


def stable(statement: str) -> str:
    """``statement`` with its run id and Delta table ids replaced by placeholders."""
    for pattern, replacement in VOLATILE:
        statement = pattern.sub(replacement, statement)
    return statement


def check(path: Path, text: str) -> None:
    """``text`` equals the golden file ``path`` (written instead when LAKEFORGE_UPDATE_GOLDEN=1)."""
    if os.environ.get("LAKEFORGE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} is missing: run the test with LAKEFORGE_UPDATE_GOLDEN=1 to write it"
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), f"{path} (golden)",
                                            "(written now)"))
        pytest.fail(f"{path} differs (LAKEFORGE_UPDATE_GOLDEN=1 rewrites it):\n{diff}", pytrace=False)


def land(project: object, name: str, lines: list[str]) -> None:
    """A CSV file of the golden projects' ``readings`` source (id, site, value, ts)."""
    folder = project.landing.local_path("readings")  # type: ignore[attr-defined]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("id,site,value,ts\n" + "".join(line + "\n" for line in lines))
