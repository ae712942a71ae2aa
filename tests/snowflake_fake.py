"""Snowflake on the laptop: fakesnow (Snowflake SQL run by DuckDB behind the real connector's API), with the
compatibility patches lakeforge's loads need. Patched here, in the test harness, never in ``src``.

fakesnow 0.12.1 gaps, measured:

1. MERGE: fakesnow rewrites it into temp-table steps, which fail inside an explicit transaction ("a single
   transaction can only write to a single attached database"). DuckDB 2.0 runs MERGE natively, so the rewrite
   is switched off (``fakesnow.transforms.merge``, what ``fakesnow.cursor`` calls). The statement then returns
   DuckDB's single count column (Snowflake: one per action); lakeforge does not read it.
2. ``COPY INTO ... FROM @internal_stage/path FILES = (...)`` fails with "invalid URL prefix": fakesnow's
   ``copy_into._source_urls`` wants a URL scheme, but an internal stage is a local folder. Schemeless sources
   are joined with the file names. Load history works: a file copied before is ``LOAD_SKIPPED``.
3. ``ALTER SESSION SET QUERY_TAG`` and ``ALTER DYNAMIC TABLE ... REFRESH`` are not implemented: they run as
   no-ops (fakesnow's ``nop_regexes``). The tag still reaches the fake as a session parameter.
4. The cursor has no ``fetch_arrow_all``: one is added, returning the DuckDB result as Arrow.
5. Internal stages live in one temporary folder per process (``transforms.stage.LOCAL_BUCKET_PATH``) while
   databases live in ``db_path``: the stage is moved under the test's folder so tests do not see each other's
   files.

Also (not patched): ``CLUSTER BY`` and ``TRANSIENT`` are accepted and ignored; a dynamic table is created once
from its query (never refreshed) and a materialized view is a view, so tests run reports as views and check
the dynamic table DDL through the golden SQL. ``information_schema.tables`` lists no views (nor their comments)
and dates every table 1970-01-01, so an unchanged materialized view is made again by each session where
Snowflake keeps it, and the "a table is newer than the report" check always says no.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlparse

import fakesnow
import fakesnow.copy_into
import fakesnow.transforms
import fakesnow.transforms.stage
import pyarrow as pa
from fakesnow.cursor import FakeSnowflakeCursor

NOP_REGEXES = [r"^\s*ALTER\s+SESSION\s+SET\s+QUERY_TAG\b", r"^\s*ALTER\s+DYNAMIC\s+TABLE\s+.*\bREFRESH\s*$"]
_original_source_urls = fakesnow.copy_into._source_urls


def _source_urls(source: str, files: list[str]) -> list[str]:
    """Patch 2: an internal stage's folder joined with the named files (URLs as before)."""
    if urlparse(source).scheme:
        return _original_source_urls(source, files)
    return [os.path.join(source, name) for name in files] or [source]


def _fetch_arrow_all(self: FakeSnowflakeCursor, force_return_table: bool = False,
                     force_microsecond_precision: bool = False) -> pa.Table | None:
    """Patch 4: the connector's ``SnowflakeCursor.fetch_arrow_all``."""
    table: pa.Table | None = self._arrow_table
    if table is None:
        raise TypeError("No open result set")
    start = self._arrow_table_fetch_index or 0
    self._arrow_table_fetch_index = table.num_rows
    table = table.slice(start)
    if force_microsecond_precision:
        table = table.cast(pa.schema([
            f.with_type(pa.timestamp("us", f.type.tz)) if pa.types.is_timestamp(f.type) else f
            for f in table.schema]))
    return table if table.num_rows or force_return_table else None


@contextmanager
def fake_snowflake(path: Path) -> Iterator[Path]:
    """Every ``snowflake.connector.connect`` inside goes to one fake Snowflake whose databases are files in
    ``path`` (created) and whose internal stages are under ``path / "stages"``. Yields ``path``."""
    stages = path / "stages"
    stages.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(fakesnow.transforms, "merge", lambda expression: [expression]))
        stack.enter_context(mock.patch.object(fakesnow.copy_into, "_source_urls", _source_urls))
        stack.enter_context(mock.patch.object(fakesnow.transforms.stage, "LOCAL_BUCKET_PATH", str(stages)))
        stack.enter_context(mock.patch.object(FakeSnowflakeCursor, "fetch_arrow_all", _fetch_arrow_all,
                                              create=True))
        stack.enter_context(warnings.catch_warnings())
        # DuckDB's note on fakesnow's DB-API-to-Arrow copies: noise in every statement
        warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
        stack.enter_context(fakesnow.patch(db_path=path, create_database_on_connect=False,
                                           create_schema_on_connect=False, nop_regexes=NOP_REGEXES))
        yield path


def snowflake_config(**overrides: Any) -> dict[str, Any]:
    """``warehouse:`` of a project loading into the fake (reports as views: see the module's notes)."""
    return {"type": "snowflake", "account": "fake", "user": "fake", "password": "fake", "database": "LF",
            "schema": "GOLD", "reports": "view", **overrides}
