"""What the reliability suite shares: the mode and its sizes, the project under test, a landing zone that knows
what every file must become, ``lakeforge run`` as a process whose progress is read as it goes, and the checks
of the state a run leaves.

The oracle. Every landing file is written by :class:`Landing`, which records what the file must turn into:
its good rows (each must be in bronze and silver exactly once, under that file), the rows that land in bronze
but that silver quarantines (values that do not fit their type), and the lines that must be in
``quarantine.bronze_events`` with a reason. Files mutated at random cannot be predicted line by line: for them
the rows are *conserved* (rows in bronze + rows quarantined = the file's lines) and whatever reached silver is
what the dedup rule says. Gold and the warehouse are compared with aggregates computed here from that truth.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from tests.conftest import write_project

# -- the mode ----------------------------------------------------------------------------------------------------
MODE_VARIABLE = "LAKEFORGE_RELIABILITY"
RESULTS = Path(__file__).resolve().parent / ".results"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How hard each case pushes; ``quick`` for CI (the suite in minutes), ``full`` for the report."""

    mode: str
    kills_per_stage: int  # SIGKILLs that must land in each of ingest, transform and warehouse load
    complete_every: int  # every n-th run of the kill loop is left to finish (a rerun), then checked exactly
    fuzz_mutations: int  # seeded random mutations of generated files
    concurrent_processes: int  # `lakeforge run` started at once ...
    concurrent_rounds: int  # ... this many times
    s3_rounds: int  # runs through the fault-injecting proxy
    s3_fault_rate: float
    s3_timeouts: int  # requests held past the client's timeout (each costs seconds)
    pg_runs: int  # runs whose warehouse backends are terminated
    pg_terminations_per_run: int  # at most (drawn per run); more than the retry attempts (4) fails a run
    disk_levels: tuple[int, ...]  # bytes left free on the lakehouse volume before a run
    incremental_examples: int  # generated scenarios whose incremental runs must equal a full refresh (issue 19)


SETTINGS = {
    "quick": Settings("quick", kills_per_stage=3, complete_every=4, fuzz_mutations=12, concurrent_processes=4,
                      concurrent_rounds=1, s3_rounds=2, s3_fault_rate=0.08, s3_timeouts=2, pg_runs=3,
                      pg_terminations_per_run=2, disk_levels=(0, 48 * 1024), incremental_examples=10),
    "full": Settings("full", kills_per_stage=18, complete_every=5, fuzz_mutations=80, concurrent_processes=6,
                     concurrent_rounds=3, s3_rounds=6, s3_fault_rate=0.1, s3_timeouts=8, pg_runs=12,
                     pg_terminations_per_run=5, disk_levels=(0, 4 * 1024, 48 * 1024, 160 * 1024, 512 * 1024),
                     incremental_examples=1000),
}


def seed(default: int) -> int:
    """The case's random seed: its own, or ``LAKEFORGE_RELIABILITY_SEED`` (to explore, or to replay a failure)."""
    return int(os.environ.get("LAKEFORGE_RELIABILITY_SEED", default))


def settings() -> Settings:
    mode = os.environ.get(MODE_VARIABLE, "quick")
    if mode not in SETTINGS:
        raise ValueError(f"{MODE_VARIABLE}={mode!r}: use quick or full")
    return SETTINGS[mode]


# -- the project under test --------------------------------------------------------------------------------------
SOURCE = "events"
MAX_LINE_BYTES = 256 * 1024
FAST_RETRY = {"attempts": 3, "backoff_seconds": 0.2, "backoff_max_seconds": 1}
MODELS = {
    "silver.events": """
        -- kind: incremental
        -- unique_key: [id]
        -- on_conflict: keep_first
        -- order_by: [_batch_id, _source_file]
        -- expectations:
        --   - {name: no_rescued_values, expr: _rescued_data IS NULL, action: quarantine}
        --   - {name: id_present, expr: id IS NOT NULL, action: quarantine}
        SELECT id, v, _rescued_data, _batch_id, _source_file FROM bronze.events
    """,
    "gold.totals": """
        -- kind: incremental
        -- unique_key: [bucket]
        SELECT id % 10 AS bucket, count(*) AS n, sum(v) AS total FROM silver.events GROUP BY id % 10
    """,
    "gold.files": """
        -- kind: incremental
        -- unique_key: [source_file]
        SELECT _source_file AS source_file, count(*) AS n, sum(v) AS total FROM silver.events GROUP BY _source_file
    """,
}
GOLD = {"gold.totals": ("bucket", "n", "total"), "gold.files": ("source_file", "n", "total")}
STAGE_GROUPS = ("ingest", "transform", "warehouse")


def make_project(root: Path, *, max_files_per_batch: int = 3, **config: Any) -> Path:
    """The suite's project: one JSON-lines/CSV/Parquet source (by extension) with typed ``id`` and ``v``, a
    deduplicating silver model that quarantines rows whose values did not fit, two incremental gold
    aggregates, and a DuckDB warehouse (``config`` overrides any of it)."""
    base: dict[str, Any] = {
        "name": "reliability", "dialect": "duckdb",
        "warehouse": {"type": "duckdb", "path": "warehouse.duckdb"},
        "orchestration": {"retry": FAST_RETRY},
        "sources": {SOURCE: {"format": "auto", "max_files_per_batch": max_files_per_batch,
                             "max_line_bytes": MAX_LINE_BYTES, "schema_hints": {"id": "bigint", "v": "double"}}},
    }
    return write_project(root, {**base, **config}, MODELS)


def stage_group(stage: str) -> str:
    if stage.startswith("ingest:"):
        return "ingest"
    return "warehouse" if stage == "warehouse" else "transform"


# -- storage the tests read and write directly (never through lakeforge) ----------------------------------------
class Store(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def read(self, key: str) -> bytes: ...


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{os.getpid()}-{time.monotonic_ns()}"  # hidden: never listed; appears whole
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file()) \
            if base.is_dir() else []

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


class S3Store:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def list(self, prefix: str) -> list[str]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=self._key(prefix)):
            found += [o["Key"][len(self.prefix) + 1 if self.prefix else 0:] for o in page.get("Contents", [])]
        return sorted(found)

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())


# -- the landing zone and its truth ------------------------------------------------------------------------------
@dataclasses.dataclass
class Expected:
    """What one landing file must become."""

    rows: list[tuple[int, float]] = dataclasses.field(default_factory=list)  # bronze and silver, exactly once
    rescued: int = 0  # rows in bronze that silver quarantines (a value did not fit its type, or no id)
    quarantined: int | None = 0  # lines in quarantine.bronze_events (None: the whole file, any count)
    reason: str | None = None  # a regex every quarantine reason of the file must match
    exact: bool = True  # False: mutated at random, only conservation is checked
    lines: int = 0  # inexact files: rows in bronze + rows quarantined must equal this
    hidden: bool = False  # a hidden name (leading . or _): never picked up, by design
    kind: str = "good"


def value(i: int) -> float:
    return (i % 97) * 0.5  # multiples of 0.5: float sums are exact in any order


def jsonl(rows: Iterable[tuple[int, float]]) -> bytes:
    return "".join(json.dumps({"id": i, "v": v}) + "\n" for i, v in rows).encode()


def csv_rows(rows: Iterable[tuple[int, float]]) -> bytes:
    return ("id,v\n" + "".join(f"{i},{v}\n" for i, v in rows)).encode()


def parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def text_lines(data: bytes, *, csv_header: bool = False) -> int:
    """Non-empty lines as lakeforge's line triage counts them (split on LF, CR at the end dropped)."""
    lines = [ln for ln in data.split(b"\n") if ln.rstrip(b"\r").strip()]
    return max(0, len(lines) - (1 if csv_header and lines else 0))


class Landing:
    """Writes landing files of the source and remembers what each must become. Ids are unique across files."""

    def __init__(self, store: Store, *, folder: str = SOURCE) -> None:
        self.store = store
        self.folder = folder
        self.files: dict[str, Expected] = {}  # path relative to the landing zone -> truth
        self.next_id = 0
        self.count = 0

    def ids(self, n: int) -> list[tuple[int, float]]:
        rows = [(i, value(i)) for i in range(self.next_id, self.next_id + n)]
        self.next_id += n
        return rows

    def put(self, name: str, data: bytes, expected: Expected) -> str:
        path = f"{self.folder}/{name}"
        assert path not in self.files, path
        self.store.put(path, data)
        self.files[path] = expected
        self.count += 1
        return path

    def name(self, suffix: str = ".jsonl") -> str:
        return f"part-{self.count:05d}{suffix}"

    def good(self, files: int, rows: int = 200) -> None:
        for _ in range(files):
            data = self.ids(rows)
            self.put(self.name(), jsonl(data), Expected(rows=data))

    def bad(self, kind: str) -> str:
        """A file a person would have to look at: the good part lands, the rest is quarantined with a reason."""
        if kind == "empty":
            return self.put(self.name(), b"", Expected(quarantined=0, reason=r"^empty file \(0 bytes\)$", kind=kind))
        if kind == "malformed":
            before, after = self.ids(19), self.ids(19)
            return self.put(self.name(), jsonl(before) + b'{"id": 0, "v": \n' + jsonl(after),
                            Expected(rows=before + after, quarantined=1, reason=r"^malformed JSON: ", kind=kind))
        if kind == "wrong_type":
            good = self.ids(20)
            lines = jsonl(good) + b'{"id": "not-a-number", "v": 1.5}\n'
            return self.put(self.name(), lines, Expected(rows=good, rescued=1, kind=kind))
        raise ValueError(kind)

    def visible(self) -> dict[str, Expected]:
        return {p: e for p, e in self.files.items() if not e.hidden}

    def expected_silver(self) -> list[tuple[int, float, str]]:
        return [(i, v, path) for path, e in self.files.items() if e.exact for i, v in e.rows]


# -- `lakeforge run` as a process ---------------------------------------------------------------------------------
_STAGE_LINE = re.compile(r"^lakeforge: (\S+?): .*?(?: in ([0-9.]+)s)?$")


class Run:
    """A ``lakeforge`` command in a child process; its stderr is read as it comes, so the stages it finished
    are known while it runs (the CLI prints ``lakeforge: <stage>: ... in 0.12s`` after each stage)."""

    def __init__(self, project: Path, *args: str, command: str = "run", env: dict[str, str] | None = None) -> None:
        self.started = time.monotonic()
        env = {**(env if env is not None else os.environ), "PYTHONFAULTHANDLER": "1"}  # SIGABRT: Python stacks
        self.proc = subprocess.Popen([sys.executable, "-m", "lakeforge.cli", *command.split(), "--project",
                                      str(project), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.err: list[str] = []
        self.out: list[str] = []
        self.finished: dict[str, float] = {}  # stage -> seconds, in the order they ended
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)
            if into is self.err:
                found = _STAGE_LINE.match(line.strip())
                if found:
                    self.finished[found.group(1)] = float(found.group(2) or 0.0)

    def wait_for(self, probe: Callable[[], bool], timeout: float = 120.0) -> bool:
        """Poll until ``probe()`` (True), or the process ended or the time is up (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if probe():
                return True
            time.sleep(0.002)
        return False

    def wait_stage(self, stage: str, timeout: float = 120.0) -> bool:
        """Until ``stage`` has ended (its line printed)."""
        return self.wait_for(lambda: stage in self.finished, timeout)

    def kill(self) -> bool:
        """SIGKILL, if it still runs; whether it was killed."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()
        return self.proc.returncode == -9

    def wait(self, timeout: float = 300.0) -> int:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # a hang: its Python stacks (faulthandler) into the failure
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(timeout=30)
            for reader in self._readers:
                reader.join(timeout=10)
            raise AssertionError(f"`lakeforge {' '.join(self.proc.args[3:4])}` hung for {timeout:.0f} s; its "
                                 f"stacks:\n{self.stderr[-12000:]}") from None
        for reader in self._readers:
            reader.join(timeout=30)
        self.seconds = time.monotonic() - self.started
        return self.proc.returncode

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    def json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.stdout)
        return result

    def retries(self) -> int:
        """Stage retries the run reported (``<stage>: attempt N failed (...); retrying``)."""
        return sum(1 for line in self.err if re.match(r"^\S+: attempt \d+ failed", line))


def run_ok(project: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    run = Run(project, *args, env=env)
    assert run.wait() == 0, f"lakeforge run failed (exit {run.proc.returncode}):\n{run.stderr[-4000:]}"
    return run


def assert_clear_error(run: Run, *patterns: str) -> str:
    """A run that failed as a person must see it: exit 1, one ``error:`` line and one ``fix:`` line, no Python
    traceback, no "internal error"; the error matches every pattern. Returns the error line."""
    assert run.proc.returncode == 1, f"exit {run.proc.returncode}:\n{run.stderr[-4000:]}"
    text = run.stderr
    assert "Traceback (most recent call last)" not in text, text[-4000:]
    errors = [ln for ln in run.err if ln.startswith("error: ")]
    assert len(errors) == 1, text[-4000:]
    assert "internal error" not in errors[0], errors[0]
    assert any(ln.startswith("fix: ") for ln in run.err), text[-4000:]
    for pattern in patterns:
        assert re.search(pattern, text, re.IGNORECASE | re.DOTALL), f"{pattern!r} not in:\n{text[-4000:]}"
    return errors[0].strip()


# -- reading the lakehouse and the warehouse ---------------------------------------------------------------------
class Lake:
    """The lakehouse as the checks read it: Delta tables (local or on S3) and lakeforge's own files."""

    def __init__(self, uri: str, store: Store, storage_options: dict[str, str] | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.store = store  # the lakehouse root
        self.options = storage_options

    def delta(self, name: str, version: int | None = None) -> DeltaTable | None:
        uri = f"{self.uri}/{name.replace('.', '/')}"
        if not DeltaTable.is_deltatable(uri, storage_options=self.options):
            return None
        return DeltaTable(uri, version=version, storage_options=self.options)

    def table(self, name: str, version: int | None = None) -> pa.Table | None:
        found = self.delta(name, version)
        if found is None:
            return None
        data = found.to_pyarrow_table()
        return data.cast(pa.schema([f.with_type(pa.string()) if f.type == pa.string_view() else f
                                    for f in data.schema]))

    def manifests(self) -> list[dict[str, Any]]:
        keys = self.store.list(f"_lakeforge/checkpoints/{SOURCE}")
        return [json.loads(self.store.read(k)) for k in keys if k.rsplit("/", 1)[-1].startswith("batch-")]

    def markers(self) -> set[str]:
        return {k.rsplit("/", 1)[-1].removesuffix(".started") for k in self.store.list("_lakeforge/runs")
                if k.endswith(".started")}

    def events(self) -> list[dict[str, Any]]:
        log = self.delta("_lakeforge.event_log")
        return [] if log is None else log.to_pyarrow_table().to_pylist()


class Warehouse(Protocol):
    def rows(self, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]: ...

    def ledger(self) -> dict[str, int]: ...


class DuckDBWarehouse:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return []
        con = duckdb.connect(str(self.path), read_only=True)
        try:
            return con.execute(sql).fetchall()
        except duckdb.CatalogException:
            return []
        finally:
            con.close()

    def rows(self, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
        return sorted(self._query(f"SELECT {', '.join(columns)} FROM {table.split('.')[-1]}"))

    def ledger(self) -> dict[str, int]:
        return {str(t): int(v) for t, v in self._query("SELECT source_table, source_version FROM _lakeforge_loads")}


def sort_rows(table: pa.Table | None, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    if table is None:
        return []
    return sorted(tuple(r[c] for c in columns) for r in table.select(list(columns)).to_pylist())


# -- the checks --------------------------------------------------------------------------------------------------
def assert_consistent_now(lake: Lake, warehouse: Warehouse) -> None:
    """What must hold at any instant, even right after a SIGKILL: every table readable, no id twice in bronze or
    silver, no quarantine entry twice, and the warehouse equal to the gold version its ledger says it loaded."""
    for name in ("bronze.events", "silver.events"):
        data = lake.table(name)
        if data is not None:
            ids = [i for i in data["id"].to_pylist() if i is not None]
            doubled = [i for i, n in Counter(ids).items() if n > 1]
            assert not doubled, f"{name} holds ids more than once: {doubled[:10]}"
    quarantine = lake.table("quarantine.bronze_events")
    if quarantine is not None:
        entries = Counter(zip(quarantine["_source_file"].to_pylist(), quarantine["_line"].to_pylist(), strict=True))
        assert max(entries.values()) == 1, [e for e, n in entries.items() if n > 1][:10]
    ledger = warehouse.ledger()
    for table, columns in GOLD.items():
        if table in ledger:
            want = sort_rows(lake.table(table, ledger[table]), columns)
            assert warehouse.rows(table, columns) == want, f"the warehouse's {table} differs from gold " \
                                                           f"v{ledger[table]}, which its ledger says it loaded"


REASONS = re.compile(  # what lakeforge says of a bad file or line: each names what is wrong
    r"^(empty file \(0 bytes\)|unknown file type '.*'; set the source's format|malformed JSON: .+ at column \d+"
    r"|expected a JSON object, found \w+|not UTF-8: .+ at byte \d+|line of [\d,]+ bytes is over the limit of [\d,]+"
    r"|expected \d+ columns, found \d+|no line could be read; line \d+: .+|cannot decompress the \.\w+ file .+"
    r"|a line is over max_line_bytes .+|duplicate key .+ in a JSON object|JSON nested too deeply to read"
    r"|a field with an empty name in a JSON object|unreadable CSV: .+|the CSV header \(line \d+\) cannot be read: .+"
    r"|no rows: the file holds only blank lines( or a header)?|(Invalid Input|IO|Conversion) Error: .+)", re.DOTALL)


def assert_exact(lake: Lake, landing: Landing, warehouse: Warehouse) -> dict[str, int]:
    """The state after a run that finished: every landing row in bronze (and silver) or quarantine with a reason,
    exactly once; gold and the warehouse equal to what the landing files imply. Returns counts."""
    files = landing.visible()
    # discovery: every visible file in exactly one batch; hidden ones in none
    named = Counter(f["path"] for m in lake.manifests() for f in m["files"])
    odd = sorted(p for p, n in named.items() if n > 1 or p not in files)
    assert named == Counter(list(files)), f"in no batch: {sorted(set(files) - set(named))[:5]}; in several: {odd[:5]}"
    bronze, silver = lake.table("bronze.events"), lake.table("silver.events")
    assert bronze is not None and silver is not None
    bq = lake.table("quarantine.bronze_events")
    sq = lake.table("quarantine.silver_events")
    con = duckdb.connect()
    con.register("bronze", bronze.select(["id", "v", "_rescued_data", "_source_file", "_batch_id"]))
    con.register("silver", silver.select(["id", "v", "_source_file", "_batch_id"]))
    by_file = {p: (n, fails) for p, n, fails in con.execute(
        "SELECT _source_file, count(*), count(*) FILTER (WHERE _rescued_data IS NOT NULL OR id IS NULL) "
        "FROM bronze GROUP BY 1").fetchall()}
    assert set(by_file) <= set(files), f"bronze rows of unknown files: {sorted(set(by_file) - set(files))[:5]}"
    quarantined: dict[str, int] = Counter()
    reasons: dict[str, list[str]] = {}
    if bq is not None:
        for row in bq.select(["_source_file", "_reason", "_rows", "_line", "_content"]).to_pylist():
            quarantined[row["_source_file"]] += row["_rows"]
            reasons.setdefault(row["_source_file"], []).append(row["_reason"])
            assert row["_source_file"] in files, row
            assert REASONS.match(row["_reason"] or ""), f"unclear quarantine reason: {row}"
            if row["_line"] is not None:  # a line: its number and what it held
                assert row["_line"] >= 1 and row["_content"] is not None and row["_rows"] == 1, row
    bronze_rows = {}
    for path, e in files.items():
        n, fails = by_file.get(path, (0, 0))
        for reason in reasons.get(path, []):
            assert e.reason is None or re.search(e.reason, reason), (path, reason, e.reason)
        if not e.exact:
            if e.lines >= 0:
                assert n + quarantined[path] == e.lines, (f"{path} ({e.kind}): {n} rows in bronze + "
                                                          f"{quarantined[path]} quarantined != {e.lines} lines")
            continue
        if e.quarantined is None:
            assert n == 0 and reasons.get(path), f"{path} ({e.kind}) must be quarantined whole"
        else:
            assert quarantined[path] == e.quarantined, (path, e.kind, quarantined[path], e.quarantined)
        assert n == len(e.rows) + e.rescued and fails == e.rescued, (path, e.kind, n, fails, len(e.rows), e.rescued)
        bronze_rows[path] = n
    # bronze: the good rows of exact files, as they are in the files
    con.register("truth", pa.table({
        "id": pa.array([r[0] for r in landing.expected_silver()], pa.int64()),
        "v": pa.array([r[1] for r in landing.expected_silver()], pa.float64()),
        "_source_file": pa.array([r[2] for r in landing.expected_silver()], pa.string())}))
    exact = pa.table({"path": pa.array([p for p, e in files.items() if e.exact], pa.string())})
    con.register("exact", exact)
    differ = con.execute("""
        SELECT count(*) FROM (
            (SELECT id, v, _source_file FROM bronze WHERE _rescued_data IS NULL AND id IS NOT NULL
               AND _source_file IN (SELECT path FROM exact) EXCEPT ALL SELECT * FROM truth)
            UNION ALL (SELECT * FROM truth EXCEPT ALL SELECT id, v, _source_file FROM bronze))""").fetchall()[0][0]
    assert differ == 0, f"{differ} rows of exact files lost, changed or duplicated in bronze"
    # silver: one row per id, a first one by (_batch_id, _source_file) among the bronze rows that pass the rules
    assert con.execute("SELECT count(*) - count(DISTINCT id) FROM silver").fetchall()[0][0] == 0
    con.execute("""CREATE TEMP TABLE firsts AS SELECT * FROM bronze WHERE _rescued_data IS NULL AND id IS NOT NULL
                   QUALIFY rank() OVER (PARTITION BY id ORDER BY _batch_id, _source_file) = 1""")
    wrong = con.execute("""SELECT count(*) FROM silver s WHERE NOT EXISTS (SELECT 1 FROM firsts f WHERE f.id = s.id
                           AND f.v IS NOT DISTINCT FROM s.v AND f._source_file = s._source_file
                           AND f._batch_id = s._batch_id)""").fetchall()[0][0]
    assert wrong == 0, f"{wrong} rows of silver are not the first passing bronze row of their id"
    absent = con.execute("SELECT count(DISTINCT id) FROM firsts WHERE id NOT IN (SELECT id FROM silver)").fetchall()
    assert absent[0][0] == 0, f"{absent[0][0]} ids that pass the rules are not in silver"
    missing = con.execute("SELECT * FROM truth EXCEPT ALL SELECT id, v, _source_file FROM silver").fetchall()
    assert not missing, f"{len(missing)} good rows of exact files are not in silver: {missing[:5]}"
    # rows failing a rule: quarantined, unless another row has their id (then dropped as duplicate_key)
    failing, alone = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE id IS NULL OR id NOT IN (
            SELECT id FROM bronze WHERE id IS NOT NULL GROUP BY id HAVING count(*) > 1))
        FROM bronze WHERE _rescued_data IS NOT NULL OR id IS NULL""").fetchall()[0]
    if sq is not None:
        assert all(rules for rules in sq["_failed_rules"].to_pylist()), "a silver quarantine row names no rule"
        for path, e in files.items():
            if e.exact and e.rescued:
                got = sq.filter(pc.equal(sq["_source_file"], path)).num_rows
                assert got == e.rescued, (path, got, e.rescued)
    held = sq.num_rows if sq is not None else 0
    assert alone <= held <= failing, f"{held} rows in silver's quarantine, {failing} fail its rules ({alone} alone)"
    # gold and the warehouse: the aggregates of what silver must hold
    want = {
        "gold.totals": con.execute("SELECT id % 10, count(*), sum(v) FROM silver GROUP BY 1").fetchall(),
        "gold.files": con.execute("SELECT _source_file, count(*), sum(v) FROM silver GROUP BY 1").fetchall(),
    }
    truth_totals = con.execute("SELECT id % 10, count(*), sum(v) FROM truth GROUP BY 1").fetchall()
    if all(e.exact for e in files.values()):  # then silver must be the truth, aggregate for aggregate
        assert sorted(want["gold.totals"]) == sorted(truth_totals)
    con.close()
    ledger = warehouse.ledger()
    for table, columns in GOLD.items():
        gold = lake.table(table)
        assert sort_rows(gold, columns) == sorted(want[table]), f"{table} differs from the landing files"
        assert warehouse.rows(table, columns) == sorted(want[table]), f"the warehouse's {table} differs from gold"
        gold_version = lake.delta(table)
        assert gold_version is not None and ledger.get(table) == gold_version.version(), (table, ledger)
    return {"files": len(files), "bronze_rows": bronze.num_rows, "silver_rows": silver.num_rows,
            "quarantined_lines": sum(quarantined.values()),
            "silver_quarantined": sq.num_rows if sq is not None else 0}


def assert_crashes_logged(lake: Lake, killed_run_ids: set[str]) -> int:
    """Every run killed after it left its marker is in the event log as ``crashed``, once; no other crashed run."""
    crashed = [r["run_id"] for r in lake.events() if r["event"] == "run" and r["status"] == "crashed"]
    assert len(crashed) == len(set(crashed)), f"a crashed run logged twice: {Counter(crashed).most_common(3)}"
    assert set(crashed) == killed_run_ids, (sorted(set(crashed) - killed_run_ids)[:5],
                                            sorted(killed_run_ids - set(crashed))[:5])
    return len(crashed)


def deltas_readable(lake: Lake, names: Iterable[str]) -> None:
    """Every table opens and reads whole, and every commit file of its log is complete JSON (no corruption)."""
    for name in names:
        table = lake.delta(name)
        if table is None:
            continue
        table.to_pyarrow_table()
        log = f"{name.replace('.', '/')}/_delta_log/"
        for key in lake.store.list(log):
            if key.endswith(".json"):
                for line in lake.store.read(key).decode().splitlines():
                    json.loads(line)
