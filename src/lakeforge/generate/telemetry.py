"""Deterministic synthetic equipment telemetry written into a landing-zone folder.

One call writes six sources, each in its own folder under ``landing``::

    machines/machines-<tag>.<ext>        machine_id, model, age, site_id, install_date
    sites/sites-<tag>.<ext>              site_id, site_name, region, timezone
    telemetry/telemetry-<tag>-<i>.<ext>  ts, machine_id, volt, rotate, pressure, vibration, temperature,
                                         [humidity]
    errors/errors-<tag>.<ext>            ts, machine_id, error_id
    maintenance/maintenance-<tag>.<ext>  ts, machine_id, component, reason
    failures/failures-<tag>.<ext>        ts, machine_id, component

Everything is vectorised with numpy and generated one telemetry time slice at a time, so memory stays
bounded; a single background thread writes file *i* while slice *i + 1* is generated. Every random
stream is derived from ``seed`` (no clock, no global state), so the same arguments give byte-identical
files. Files are written under a hidden temporary name and renamed into place.

Component wear is piecewise linear: each component of each machine has a lifetime and a scheduled
maintenance interval (15-30 days) that are re-drawn at every reset. If the wear reaches 1 before the
scheduled maintenance, the component fails and is replaced (a failure, and a ``failure`` maintenance
record when the repair is done, ~8 hours later); otherwise the scheduled maintenance resets it. Wear drifts the sensors
(cubically, so mostly just before a failure) and raises the error rates.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Literal, TypedDict

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lakeforge.duckdb_connect import DEFAULTS, DuckDBSettings, Settings, connect
from lakeforge.errors import LakeforgeError
from lakeforge.sql import DUCKDB

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet")
SENSORS: tuple[str, ...] = ("volt", "rotate", "pressure", "vibration", "temperature")
COMPONENTS: tuple[str, ...] = ("comp1", "comp2", "comp3", "comp4")
MODELS: tuple[str, ...] = ("model1", "model2", "model3", "model4")
ERROR_IDS: tuple[str, ...] = ("error1", "error2", "error3", "error4", "error5")
GARBAGE: tuple[str, ...] = ("n/a", "ERR", "--", "#VALUE!", "err:timeout")
# One impossible value per sensor, in SENSORS order.
OUT_OF_RANGE: tuple[float, ...] = (9999.0, -100.0, -10.0, -5.0, 999.0)
_REGIONS: tuple[tuple[str, str], ...] = (
    ("us-east", "America/New_York"), ("us-central", "America/Chicago"), ("us-west", "America/Los_Angeles"),
    ("eu-west", "Europe/London"), ("eu-central", "Europe/Berlin"), ("apac", "Asia/Singapore"),
    ("japan", "Asia/Tokyo"), ("oceania", "Australia/Sydney"),
)  # fmt: skip
_SITE_NAMES: tuple[str, ...] = (
    "Riverside", "Hillcrest", "Lakeview", "Northgate", "Southport", "Eastwood", "Westfield", "Oakridge",
    "Pinehurst", "Stonebridge", "Fairview", "Ironworks", "Harbor", "Millbrook", "Redwood", "Summit",
)  # fmt: skip
# Per-model sensor offsets (rows: model1..model4, columns: SENSORS) and lifetime factors.
_MODEL_OFFSET = np.array([[0, 0, 0, 0, 0], [2, -10, 3, 1, 1.5], [-1.5, 8, -2, -0.5, -1], [3, -5, 5, 2, 2.5]])
_MODEL_LIFE = np.array([1.0, 0.92, 1.08, 0.85])
_BIG = np.int64(1) << np.int64(40)  # "never" on the step axis


class GenerateError(LakeforgeError, ValueError):
    """Invalid arguments to :func:`generate`."""


@dataclass(frozen=True)
class Dirt:
    """How dirty the telemetry is; fractions are of telemetry rows (``nulls``: of sensor values).

    ``new_field_from`` / ``type_change_from`` are fractions of the telemetry files (``None`` disables):
    from that file on, rows gain ``humidity`` / are written with ``machine_id`` and sensors as strings.
    """

    nulls: float = 0.005
    out_of_range: float = 0.002
    duplicates: float = 0.005
    late: float = 0.01
    garbage: float = 0.0005
    new_field_from: float | None = 0.6
    type_change_from: float | None = 0.8

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in ("new_field_from", "type_change_from"):
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise GenerateError(
                    f"Dirt.{f.name}={value!r} is not a fraction", hint="use a number between 0 and 1"
                )

    @classmethod
    def none(cls) -> Dirt:
        """Perfectly clean data: no dirt, no schema drift."""
        zero = dict.fromkeys(("nulls", "out_of_range", "duplicates", "late", "garbage"), 0.0)
        return cls(**zero, new_field_from=None, type_change_from=None)


def describe_dirt(d: Dirt) -> dict[str, float | None]:
    """The dirt settings as a plain dict (field name -> fraction or ``None``)."""
    return {k: (None if v is None else float(v)) for k, v in asdict(d).items()}


class GenerateSummary(TypedDict):
    """``lakeforge generate``: the files and rows written, and where (:meth:`GenerateResult.to_dict`)."""

    files: int
    rows: int
    path: str


@dataclass(frozen=True)
class GenerateResult:
    files: int
    rows: int  # across every file written, all sources
    path: str  # the landing root

    def to_dict(self) -> GenerateSummary:
        return {"files": self.files, "rows": self.rows, "path": self.path}


def run_tag(seed: int, start: str) -> str:
    """Short, sortable run tag used in file names, e.g. ``20240101s42``."""
    dt = _parse_start(start)
    stamp = f"{dt:%Y%m%d}" if dt.time() == datetime.min.time() else f"{dt:%Y%m%dT%H%M%S}"
    return f"{stamp}s{seed}"


def first_file_with(frac: float | None, files: int) -> int | None:
    """Index of the first telemetry file that has a feature enabled from fraction ``frac`` on."""
    if frac is None:
        return None
    first = math.ceil(frac * files - 1e-9)
    return min(first, files - 1) if frac < 1.0 else files


def slice_bounds(*, days: int, readings_per_hour: int, files: int) -> list[int]:
    """Step indices delimiting the telemetry files: file *i* covers steps ``[b[i], b[i + 1])``."""
    steps = days * 24 * readings_per_hour
    return [steps * i // files for i in range(files + 1)]


def _parse_start(start: str) -> datetime:
    try:
        return datetime.fromisoformat(start)
    except (TypeError, ValueError) as exc:
        raise GenerateError(f"start={start!r} is not a date", hint="use YYYY-MM-DD") from exc


def _validate(machines: int, days: int, seed: int, fmt: str, files: int, rph: int) -> None:
    checks = [
        (machines >= 1, f"machines={machines}", "use at least 1 machine"),
        (days >= 1, f"days={days}", "use at least 1 day"),
        (seed >= 0, f"seed={seed}", "use a non-negative seed"),
        (fmt in FORMATS, f"fmt={fmt!r}", f"use one of {', '.join(FORMATS)}"),
        (1 <= rph <= 3600 and 3600 % rph == 0, f"readings_per_hour={rph}", "use a divisor of 3600, e.g. 6"),
    ]
    for ok, what, hint in checks:
        if not ok:
            raise GenerateError(f"cannot generate with {what}", hint=hint)
    steps = days * 24 * rph
    if not 1 <= files <= steps:
        raise GenerateError(f"cannot split {steps} time steps into files={files}", hint=f"use 1..{steps}")


def _ts_strings(start: np.datetime64, steps: np.ndarray, step_s: int) -> np.ndarray:
    """'YYYY-MM-DD HH:MM:SS' strings for step indices."""
    if steps.size == 0:
        return np.array([], dtype="<U19")
    t = start + steps.astype(np.int64) * np.timedelta64(step_s, "s")
    return np.char.replace(np.datetime_as_string(t, unit="s"), "T", " ")


# ---------------------------------------------------------------------------------------------------------
# The world: machines, sites, component wear and maintenance/failure events
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _World:
    machines: pa.Table
    sites: pa.Table
    age: np.ndarray  # (M,)
    offsets: np.ndarray  # (M, 6): SENSORS + humidity
    reset_t: np.ndarray  # (R, K) step of each wear reset (row 0 virtual, before the start); _BIG = never
    life: np.ndarray  # (R, K) steps from that reset until wear reaches 1
    events: pa.Table  # t (step), k (machine * 4 + component), failure, repair (steps); sorted by t, then k


def _build_world(machines: int, steps: int, spd: int, seed: int, start: datetime) -> _World:
    rng = np.random.default_rng([seed, 0])
    m = machines
    model = rng.integers(0, len(MODELS), m)
    age = rng.integers(0, 21, m)
    n_sites = max(1, round(m / 10))
    site_id = rng.integers(1, n_sites + 1, m)
    install_days = age * 365 + rng.integers(0, 365, m)
    install = np.datetime64(start.date(), "D") - install_days.astype("timedelta64[D]")
    machines_tbl = pa.table(
        {
            "machine_id": pa.array(np.arange(1, m + 1, dtype=np.int64)),
            "model": pa.array(np.array(MODELS)[model], type=pa.string()),
            "age": pa.array(age.astype(np.int64)),
            "site_id": pa.array(site_id.astype(np.int64)),
            "install_date": pa.array(np.datetime_as_string(install, unit="D"), type=pa.string()),
        }
    )
    region = rng.integers(0, len(_REGIONS), n_sites)
    sites_tbl = pa.table(
        {
            "site_id": pa.array(np.arange(1, n_sites + 1, dtype=np.int64)),
            "site_name": pa.array(
                [f"{_SITE_NAMES[i % len(_SITE_NAMES)]} {i // len(_SITE_NAMES) + 1}" for i in range(n_sites)]
            ),
            "region": pa.array([_REGIONS[r][0] for r in region]),
            "timezone": pa.array([_REGIONS[r][1] for r in region]),
        }
    )
    offsets = np.zeros((m, 6))
    offsets[:, :5] = _MODEL_OFFSET[model] + rng.normal(0.0, 1.0, (m, 5)) * [1.5, 6.0, 1.5, 1.0, 0.8]
    offsets[:, 5] = rng.normal(0.0, 3.0, m)

    # Component lifetimes (steps) shrink with age; scheduled maintenance every 15-30 days.
    k = m * len(COMPONENTS)
    life_factor = np.repeat(_MODEL_LIFE[model] * (1.0 - 0.015 * age), len(COMPONENTS))
    base_life = np.exp(rng.normal(math.log(45.0), 0.45, k)) * life_factor * spd
    base_interval = rng.uniform(15.0, 30.0, k) * spd

    def draw() -> tuple[np.ndarray, np.ndarray]:
        life = base_life * np.exp(rng.normal(0.0, 0.12, k))
        interval = np.maximum(np.rint(base_interval * np.exp(rng.normal(0.0, 0.05, k))), 1).astype(np.int64)
        return np.maximum(life, 1.0), interval

    life, interval = draw()
    cycle = np.minimum(np.ceil(life).astype(np.int64), interval)
    cur = -np.floor(rng.random(k) * cycle).astype(np.int64)  # virtual reset before the start
    resets, lives = [cur], [life]
    ev_t: list[np.ndarray] = []
    ev_k: list[np.ndarray] = []
    ev_fail: list[np.ndarray] = []
    while True:
        to_fail = np.ceil(life).astype(np.int64)
        fails = to_fail <= interval
        nxt = cur + np.minimum(to_fail, interval)
        active = nxt < steps
        if not active.any():
            break
        idx = np.nonzero(active)[0]
        ev_t.append(nxt[idx])
        ev_k.append(idx)
        ev_fail.append(fails[idx])
        cur = np.where(active, nxt, _BIG)
        life, interval = draw()
        resets.append(cur)
        lives.append(life)
    if ev_t:
        t_all, k_all, f_all = np.concatenate(ev_t), np.concatenate(ev_k), np.concatenate(ev_fail)
    else:
        t_all = k_all = np.zeros(0, np.int64)
        f_all = np.zeros(0, bool)
    order = np.lexsort((k_all, t_all))
    # A failed component is back after a repair of ~8 h (lognormal, at least one step): drawn last, so the
    # draws above (and every other table) are unchanged by it.
    repair = np.maximum(np.rint(np.exp(rng.normal(math.log(8.0), 0.6, len(t_all))) * spd / 24.0), 1).astype(np.int64)
    events = pa.table({"t": t_all[order], "k": k_all[order], "failure": f_all[order],
                       "repair": np.where(f_all[order], repair, 0)})
    return _World(machines_tbl, sites_tbl, age, offsets, np.vstack(resets), np.vstack(lives), events)


def _event_tables(world: _World, base: np.datetime64, step_s: int) -> tuple[pa.Table, pa.Table]:
    t = world.events["t"].to_numpy()
    k = world.events["k"].to_numpy()
    failure = world.events["failure"].to_numpy(zero_copy_only=False)
    ts = _ts_strings(base, t, step_s)
    done = _ts_strings(base, t + world.events["repair"].to_numpy(), step_s)  # repair finished: the record
    machine = (k // len(COMPONENTS) + 1).astype(np.int64)
    comp = np.array(COMPONENTS)[k % len(COMPONENTS)]
    failures = pa.table({"ts": pa.array(ts, type=pa.string()), "machine_id": pa.array(machine),
                         "component": pa.array(comp, type=pa.string())}).filter(pa.array(failure, type=pa.bool_()))
    maintenance = pa.table(
        {
            "ts": pa.array(done, type=pa.string()),
            "machine_id": pa.array(machine),
            "component": pa.array(comp, type=pa.string()),
            "reason": pa.array(np.where(failure, "failure", "scheduled"), type=pa.string()),
        }
    )
    return maintenance, failures


def _wear(world: _World, t0: int, t1: int) -> np.ndarray:
    """Wear in [0, 1) of every component at steps [t0, t1): shape (t1 - t0, K)."""
    reset_t, life = world.reset_t, world.life
    cols = np.arange(reset_t.shape[1])
    r0 = (reset_t <= t0).sum(axis=0) - 1
    steps = np.arange(t0, t1, dtype=np.float64)
    wear = (steps[:, None] - reset_t[r0, cols]) / life[r0, cols]
    # Resets inside the slice (row-major nonzero: for each component in time order) restart the ramp.
    for r, k in zip(*np.nonzero((reset_t > t0) & (reset_t < t1)), strict=True):
        at = int(reset_t[r, k]) - t0
        wear[at:, k] = (steps[at:] - reset_t[r, k]) / life[r, k]
    return wear


# ---------------------------------------------------------------------------------------------------------
# Telemetry slices
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slice:
    table: pa.Table  # clean-ordered telemetry for the slice, all dirt except late/duplicates applied
    errors: pa.Table


def _sensor_values(
    world: _World, wear: np.ndarray, hours: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Sensor readings, flattened ts-major / machine-minor and rounded to 2 decimals."""
    n_s, m = len(hours), len(world.age)
    cube = wear * wear
    cube *= wear  # wear drift, mostly just before a failure
    d = [cube.reshape(n_s, m, len(COMPONENTS))[..., c] for c in range(len(COMPONENTS))]
    daily = np.sin(2.0 * np.pi * (hours - 9.0) / 24.0)[:, None]
    noise = rng.standard_normal((6, n_s, m), dtype=np.float32)
    off, age = world.offsets, world.age.astype(np.float64)
    tmp = np.empty((n_s, m))

    def sensor(base: np.ndarray, terms: list[tuple[float, np.ndarray]]) -> np.ndarray:
        out = np.empty((n_s, m))
        out[...] = base
        for coef, arr in terms:
            np.multiply(arr, coef, out=tmp)
            out += tmp
        return np.round(out, 2, out=out).ravel()

    # Healthy baselines sit a little below the nominal means (~170 V, 450 rpm, 100 psi, 40, 70 C),
    # which the fleet reaches on average once age and wear are added.
    noisy = [(float(s), noise[i]) for i, s in enumerate((4.5, 18.0, 4.0, 2.5, 1.2, 4.0))]
    cols = {
        "volt": sensor(168.0 + off[:, 0], [(3.0, daily), (12.0, d[0]), noisy[0]]),
        "rotate": sensor(
            473.0 + off[:, 1] - 1.2 * age, [(5.0, daily), (-70.0, d[1]), (-30.0, d[3]), noisy[1]]
        ),
        "pressure": sensor(96.7 + off[:, 2], [(1.5, daily), (18.0, d[2]), noisy[2]]),
        "vibration": sensor(
            35.2 + off[:, 3] + 0.2 * age, [(3.0, d[0]), (7.0, d[1]), (2.0, d[2]), (12.0, d[3]), noisy[3]]
        ),
        "temperature": sensor(
            66.7 + off[:, 4] + 0.1 * age,
            [(4.0, daily), (5.0, d[0]), (3.0, d[1]), (6.0, d[2]), (2.0, d[3]), noisy[4]],
        ),
        "humidity": sensor(45.0 + off[:, 5], [(-12.0, daily), noisy[5]]),
    }
    np.clip(cols["humidity"], 5.0, 100.0, out=cols["humidity"])
    return cols


def _errors(
    world: _World, wear: np.ndarray, steps: np.ndarray, ts: np.ndarray, rph: int, rng: np.random.Generator
) -> pa.Table:
    """Hourly error draws; error1..error4 follow the wear of comp1..comp4, error5 is background."""
    hourly = np.nonzero(steps % rph == 0)[0]
    m = len(world.age)
    w = wear.reshape(len(steps), m, len(COMPONENTS))[hourly]
    p = np.empty((len(hourly), m, len(ERROR_IDS)))
    p[..., :4] = 0.0003 + 0.03 * w**10  # ~0.1-0.2 errors per machine-day, most just before failures
    p[..., 4] = 0.0005
    h, mi, e = np.nonzero(rng.random(p.shape) < p)
    return pa.table(
        {
            "ts": pa.array(ts[hourly[h]], type=pa.string()),
            "machine_id": pa.array((mi + 1).astype(np.int64)),
            "error_id": pa.array(np.array(ERROR_IDS)[e], type=pa.string()),
        }
    )


def _make_slice(
    world: _World,
    t0: int,
    t1: int,
    *,
    base: np.datetime64,
    step_s: int,
    rph: int,
    dirt: Dirt,
    humidity: bool,
    stringy: bool,
    rng: np.random.Generator,
) -> _Slice:
    m = len(world.age)
    n_s = t1 - t0
    n = n_s * m
    steps = np.arange(t0, t1, dtype=np.int64)
    wear = _wear(world, t0, t1)
    ts = _ts_strings(base, steps, step_s)
    start_s = (base - base.astype("datetime64[D]")).astype(np.int64)
    hours = ((start_s + steps * step_s) % 86400) / 3600.0
    values = _sensor_values(world, wear, hours, rng)
    errors = _errors(world, wear, steps, ts, rph, rng)

    names = [*SENSORS, "humidity"]
    masks = {}
    for name in names:  # always draw, so enabling a column does not shift the other random streams
        mask = np.zeros(n, dtype=bool)
        mask[rng.integers(0, n, rng.binomial(n, dirt.nulls))] = True
        masks[name] = mask
    k = rng.binomial(n, dirt.out_of_range)
    rows, col = rng.integers(0, n, k), rng.integers(0, len(SENSORS), k)
    for c, name in enumerate(SENSORS):
        values[name][rows[col == c]] = OUT_OF_RANGE[c]

    ts_idx = np.repeat(np.arange(n_s, dtype=np.int32), m)
    columns: dict[str, pa.Array] = {
        "ts": pa.array(ts, type=pa.string()).take(pa.array(ts_idx)),
        "machine_id": pa.array(np.tile(np.arange(1, m + 1, dtype=np.int64), n_s)),
    }
    for name in names if humidity else SENSORS:
        columns[name] = pa.array(values[name], mask=masks[name])
    table = pa.table(columns)
    if stringy:
        table = _stringify(table)
        k = rng.binomial(n, dirt.garbage)
        rows, col = rng.integers(0, n, k), rng.integers(0, len(SENSORS), k)
        for c, name in enumerate(SENSORS):
            where = np.unique(rows[col == c])
            if len(where) == 0:
                continue
            mask = np.zeros(n, dtype=bool)
            mask[where] = True
            garbage = pa.array(np.array(GARBAGE)[rng.integers(0, len(GARBAGE), len(where))], type=pa.string())
            table = table.set_column(
                table.schema.get_field_index(name), name, pc.replace_with_mask(table[name], mask, garbage)
            )
    return _Slice(table, errors)


def _stringify(table: pa.Table) -> pa.Table:
    """machine_id and sensor columns as strings (the 'type change')."""
    for i, field in enumerate(table.schema):
        if field.name != "ts" and field.type != pa.string():
            table = table.set_column(i, field.name, pc.cast(table[field.name], pa.string()))
    return table


def _conform(table: pa.Table, *, humidity: bool, stringy: bool) -> pa.Table:
    """Late rows from earlier files in the schema of the last file (humidity is null if it did not exist)."""
    if stringy:
        table = _stringify(table)
    if humidity and "humidity" not in table.column_names:
        kind = pa.string() if stringy else pa.float64()
        table = table.append_column("humidity", pa.nulls(len(table), kind))
    return table


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------


class _Writer:
    """Writes tables atomically on one background thread, at most one write in flight."""

    def __init__(self, fmt: str, *, settings: DuckDBSettings) -> None:
        self.fmt = fmt
        self.settings = settings  # of the DuckDB connection that writes JSON lines
        self.files = 0
        self.rows = 0
        self._con: duckdb.DuckDBPyConnection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lakeforge-generate")
        self._pending: Future[None] | None = None

    def submit(self, table: pa.Table, path: Path) -> None:
        self.wait()
        self.files += 1
        self.rows += table.num_rows
        self._pending = self._pool.submit(self._write, table, path)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)
            if self._con is not None:
                self._con.close()

    def _write(self, table: pa.Table, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # hidden from readers listing the folder
        try:
            if self.fmt == "parquet":
                pq.write_table(table, tmp)
            elif self.fmt == "csv":
                pacsv.write_csv(table, tmp)
            else:
                if self._con is None:
                    # One writer thread: the other core generates the next slice meanwhile.
                    self._con = connect(settings=Settings.of(self.settings, threads=1))
                target = DUCKDB.literal(str(tmp))
                self._con.register("lakeforge_generate_src", table)
                try:
                    self._con.execute(  # USE_TMP_FILE false: no visible 'tmp_' file from DuckDB itself
                        f"COPY (SELECT * FROM lakeforge_generate_src) TO {target} "
                        "(FORMAT json, USE_TMP_FILE false)"
                    )
                finally:
                    self._con.unregister("lakeforge_generate_src")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


@contextmanager
def _writer(fmt: str, *, settings: DuckDBSettings) -> Iterator[_Writer]:
    w = _Writer(fmt, settings=settings)
    try:
        yield w
    finally:
        w.close()  # waits for the last write even when generation failed


# ---------------------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------------------


def generate(
    landing: str | Path,
    *,
    machines: int = 50,
    days: int = 7,
    seed: int = 42,
    fmt: Format = "jsonl",
    files: int = 8,
    readings_per_hour: int = 6,
    start: str = "2024-01-01",
    dirt: Dirt | None = None,
    duckdb_settings: DuckDBSettings = DEFAULTS,
) -> GenerateResult:
    """Write machines, sites, telemetry (``files`` time slices), errors, maintenance and failures.
    ``duckdb_settings``: a project's DuckDB settings (memory limit, temporary directory) for the JSON writer.

    Same arguments -> byte-identical files. File names carry :func:`run_tag` (from ``seed`` and
    ``start``), so runs with another seed or start add files next to earlier runs instead of overwriting.
    """
    _validate(machines, days, seed, fmt, files, readings_per_hour)
    dirt = Dirt() if dirt is None else dirt
    start_dt = _parse_start(start)
    tag = run_tag(seed, start)
    root, ext = Path(landing), fmt
    step_s = 3600 // readings_per_hour
    spd = 24 * readings_per_hour  # steps per day
    bounds = slice_bounds(days=days, readings_per_hour=readings_per_hour, files=files)
    base = np.datetime64(start_dt.replace(tzinfo=None), "s")
    world = _build_world(machines, bounds[-1], spd, seed, start_dt)
    hum_from = first_file_with(dirt.new_field_from, files)
    str_from = first_file_with(dirt.type_change_from, files)

    def schema(i: int) -> tuple[bool, bool]:
        return (hum_from is not None and i >= hum_from, str_from is not None and i >= str_from)

    error_parts: list[pa.Table] = []
    late_parts: list[pa.Table] = []
    carry: pa.Table | None = None  # duplicates of slice i-1 re-delivered in file i
    with _writer(fmt, settings=duckdb_settings) as writer:
        writer.submit(world.machines, root / "machines" / f"machines-{tag}.{ext}")
        writer.submit(world.sites, root / "sites" / f"sites-{tag}.{ext}")
        for i in range(files):
            humidity, stringy = schema(i)
            rng = np.random.default_rng([seed, 1, i])
            sl = _make_slice(
                world, bounds[i], bounds[i + 1], base=base, step_s=step_s, rph=readings_per_hour,
                dirt=dirt, humidity=humidity, stringy=stringy, rng=rng,
            )  # fmt: skip
            error_parts.append(sl.errors)
            table, n = sl.table, sl.table.num_rows
            last = i == files - 1
            n_late = 0 if last else int(rng.binomial(n, dirt.late))
            n_dup = int(rng.binomial(n, dirt.duplicates))
            chosen = rng.choice(n, min(n, n_late + n_dup), replace=False)
            late_idx, dup_idx = np.sort(chosen[:n_late]), np.sort(chosen[n_late:])
            to_next = rng.random(len(dup_idx)) < 0.5
            if last or schema(i + 1) != schema(i):
                to_next[:] = False
            counts = np.ones(n, dtype=np.int64)
            counts[late_idx] = 0
            counts[dup_idx[~to_next]] += 1  # the duplicate lands right after its original
            parts = [] if carry is None else [carry]
            parts.append(table.take(pa.array(np.repeat(np.arange(n, dtype=np.int64), counts))))
            carry = table.take(pa.array(dup_idx[to_next])) if to_next.any() else None
            if n_late:
                late_parts.append(table.take(pa.array(late_idx)))
            if last:
                parts += [_conform(t, humidity=humidity, stringy=stringy) for t in late_parts]
            out = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            writer.submit(out, root / "telemetry" / f"telemetry-{tag}-{i:05d}.{ext}")
        maintenance, failures = _event_tables(world, base, step_s)
        writer.submit(pa.concat_tables(error_parts), root / "errors" / f"errors-{tag}.{ext}")
        writer.submit(maintenance, root / "maintenance" / f"maintenance-{tag}.{ext}")
        writer.submit(failures, root / "failures" / f"failures-{tag}.{ext}")
    return GenerateResult(files=writer.files, rows=writer.rows, path=str(root))
