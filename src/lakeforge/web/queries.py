"""Each dashboard's queries: named, parametrized SQL, run exactly as the pages (and ``bench/dashboards.py``) run them.

A query reads the ``snapshot`` of the warehouse or the ``events`` log (:mod:`.store`, :mod:`.eventlog`). Every
query takes the same filters (:class:`Filters`: site, machine model, from/to dates, both included) as DuckDB
parameters; a query whose tables are missing (the ML tables before the first scoring run, a warehouse not loaded
yet) gives "no data yet" instead of failing the page.

Parameters: ``$site`` (site_id or NULL), ``$model`` (or NULL), ``$start`` and ``$end`` (DATE, included),
``$start_ts``/``$end_ts`` (TIMESTAMPTZ: ``$end_ts`` is the day after ``$end``, excluded), ``$start_naive``/
``$end_naive`` (the same as UTC TIMESTAMP, for the ML tables), ``$bucket`` (``hour``, ``day`` or ``week``: the
trends' period), ``$now`` (TIMESTAMPTZ), ``$machine`` (the equipment page's machine).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

from lakeforge.errors import LakeforgeError
from lakeforge.web.store import SNAPSHOT, Snapshot, Store

Target = Literal["snapshot", "events"]
HOURLY_MAX_DAYS = 21  # the equipment page shows hourly values up to this span, daily ones beyond
RISK_THRESHOLD = 0.5  # a machine is "at risk" from this probability of failure within 24 h
GOOD_RUNS = "('succeeded', 'nothing_to_do')"


class BadFilter(LakeforgeError):
    """A filter value in the URL that cannot be used."""


@dataclass(frozen=True)
class Filters:
    """The filters every page takes, kept in the URL: ``site``, ``model``, ``from``, ``to`` (YYYY-MM-DD)."""

    site: int | None = None
    model: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Filters:
        def day(key: str) -> dt.date | None:
            text = (params.get(key) or "").strip()
            if not text:
                return None
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                raise BadFilter(f"{key}={text!r} is not a date", hint="use YYYY-MM-DD, e.g. 2024-01-31") from None

        site_text = (params.get("site") or "").strip()
        try:
            site = int(site_text) if site_text else None
        except ValueError:
            raise BadFilter(f"site={site_text!r} is not a site id", hint="pick a site in the list") from None
        found = cls(site=site, model=(params.get("model") or "").strip() or None, start=day("from"), end=day("to"))
        if found.start and found.end and found.end < found.start:
            raise BadFilter(f"to ({found.end}) is before from ({found.start})", hint="swap the two dates")
        return found

    def query_string(self, **changes: Any) -> str:
        """The filters as a URL query string (``changes`` override: ``site=None`` drops the site)."""
        values = {"site": self.site, "model": self.model, "from": self.start, "to": self.end}
        values.update({("from" if k == "start" else "to" if k == "end" else k): v for k, v in changes.items()})
        return urlencode({k: str(v) for k, v in values.items() if v not in (None, "")})


@dataclass(frozen=True)
class Range:
    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def bucket(self, *, hourly_until: int = 0) -> str:
        if self.days <= hourly_until:
            return "hour"
        return "day" if self.days <= 120 else "week"


@dataclass(frozen=True)
class Query:
    name: str
    target: Target
    sql: str
    needs: tuple[str, ...] = ()  # the snapshot tables it reads (a missing one: "no data yet")
    when: Callable[[Range], bool] | None = None  # run only for such ranges
    description: str = ""


@dataclass
class Result:
    rows: list[dict[str, Any]] = field(default_factory=list)
    missing: str | None = None  # "no data yet" and why
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.missing is None and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "missing": self.missing, "error": self.error, "seconds": round(self.seconds, 4)}


@dataclass
class Dashboard:
    name: str
    filters: Filters
    range: Range
    results: dict[str, Result]
    snapshot_at: dt.datetime | None
    notice: str | None  # the data is stale or absent, and why
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def rows(self, name: str) -> list[dict[str, Any]]:
        result = self.results.get(name)
        return result.rows if result is not None else []

    def first(self, name: str) -> dict[str, Any]:
        rows = self.rows(name)
        return rows[0] if rows else {}

    def to_dict(self) -> dict[str, Any]:
        return {"dashboard": self.name, "filters": {"site": self.filters.site, "model": self.filters.model,
                                                   "from": self.range.start, "to": self.range.end},
                "snapshot_at": self.snapshot_at, "notice": self.notice, "seconds": round(self.seconds, 4),
                "results": {k: v.to_dict() for k, v in self.results.items()}, **self.extra}


# -- SQL ---------------------------------------------------------------------------------------------------------

FILTER = "($site IS NULL OR site_id = $site) AND ($model IS NULL OR model = $model)"
IN_RANGE = "date BETWEEN $start AND $end"
MACHINES = f"SELECT * FROM machines WHERE {FILTER}"
# per day of the range: the filtered fleet's hours up (reporting, minus repair time), as fleet_availability counts
DAILY = f"""fleet AS (SELECT count(*) AS machines FROM machines WHERE {FILTER}),
up AS (SELECT date, sum(reporting_hours) AS reporting_hours FROM fleet_day WHERE {FILTER} AND {IN_RANGE}
       GROUP BY date),
rep AS (SELECT date, sum(repair_hours) AS repair_hours, sum(repaired) AS repaired FROM repair_day
        WHERE {FILTER} AND {IN_RANGE} GROUP BY date),
daily AS (SELECT up.date, up.reporting_hours, coalesce(rep.repair_hours, 0) AS repair_hours,
                 coalesce(rep.repaired, 0) AS repaired, fleet.machines * 24 AS fleet_hours,
                 greatest(up.reporting_hours - coalesce(rep.repair_hours, 0), 0) AS up_hours
          FROM up CROSS JOIN fleet LEFT JOIN rep ON rep.date = up.date)"""
IN_RUNS = "run_at >= $start_ts AND run_at < $end_ts"
RUN_FIGURES = """count(*) FILTER (WHERE good) AS good, count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'crashed') AS crashed,
               sum(rows_out) FILTER (WHERE rows_out > 0) / nullif(sum(seconds) FILTER (WHERE rows_out > 0), 0)
                 AS rows_per_second,
               sum(cost) AS cost, sum(cost) / nullif(sum(bytes_in) / 1e9, 0) AS cost_per_gb"""

EXECUTIVE: tuple[Query, ...] = (
    Query("trend", "snapshot", f"""
        WITH {DAILY},
        avail AS (SELECT CAST(date_trunc($bucket, date) AS DATE) AS period, sum(up_hours) AS up_hours,
                         sum(fleet_hours) AS fleet_hours, sum(repair_hours) AS downtime_hours,
                         sum(reporting_hours) AS operating_hours, sum(repaired) AS repaired
                  FROM daily GROUP BY ALL),
        fails AS (SELECT CAST(date_trunc($bucket, date) AS DATE) AS period, sum(failures) AS failures
                  FROM failure_day WHERE {FILTER} AND {IN_RANGE} GROUP BY ALL)
        SELECT coalesce(a.period, f.period) AS period, (SELECT machines FROM fleet) AS machines,
               a.up_hours / nullif(a.fleet_hours, 0) AS availability, coalesce(a.up_hours, 0) AS up_hours,
               coalesce(a.fleet_hours, 0) AS fleet_hours, coalesce(a.downtime_hours, 0) AS downtime_hours,
               coalesce(a.operating_hours, 0) AS operating_hours, coalesce(a.repaired, 0) AS repaired,
               coalesce(f.failures, 0) AS failures
        FROM avail AS a FULL JOIN fails AS f ON f.period = a.period
        ORDER BY 1""", needs=("machines", "fleet_day", "repair_day", "failure_day"),
          description="availability, failures and downtime per day (per week beyond 120 days); the KPIs add it up"),
    Query("components", "snapshot", f"""
        SELECT f.component, count(*) AS failures, count(DISTINCT f.machine_id) AS machines
        FROM failures AS f JOIN ({MACHINES}) AS m USING (machine_id) WHERE f.{IN_RANGE}
        GROUP BY f.component ORDER BY failures DESC, f.component""",
          needs=("machines", "failures"), description="failures by component"),
    Query("sites", "snapshot", f"""
        WITH fleet AS (SELECT site_id, count(*) AS machines FROM machines WHERE {FILTER} GROUP BY site_id),
        up AS (SELECT site_id, date, sum(reporting_hours) AS reporting_hours FROM fleet_day
               WHERE {FILTER} AND {IN_RANGE} GROUP BY ALL),
        rep AS (SELECT site_id, date, sum(repair_hours) AS repair_hours FROM repair_day
                WHERE {FILTER} AND {IN_RANGE} GROUP BY ALL),
        avail AS (SELECT up.site_id, sum(greatest(up.reporting_hours - coalesce(rep.repair_hours, 0), 0)) AS up_hours,
                         sum(fleet.machines * 24) AS fleet_hours, sum(coalesce(rep.repair_hours, 0)) AS downtime_hours
                  FROM up JOIN fleet USING (site_id) LEFT JOIN rep USING (site_id, date) GROUP BY up.site_id),
        fails AS (SELECT site_id, sum(failures) AS failures FROM failure_day WHERE {FILTER} AND {IN_RANGE}
                  GROUP BY site_id)
        SELECT fleet.site_id, s.site_name, s.region, fleet.machines,
               avail.up_hours / nullif(avail.fleet_hours, 0) AS availability,
               coalesce(avail.downtime_hours, 0) AS downtime_hours, coalesce(fails.failures, 0) AS failures
        FROM fleet LEFT JOIN sites AS s USING (site_id) LEFT JOIN avail USING (site_id) LEFT JOIN fails USING (site_id)
        ORDER BY availability NULLS LAST, fleet.site_id""", needs=("machines", "sites", "fleet_day", "repair_day",
                                                                   "failure_day"),
          description="availability, downtime and failures per site"),
    Query("risk_summary", "snapshot", f"""
        SELECT count(*) AS scored, count(*) FILTER (WHERE r.p_failure_24h >= {RISK_THRESHOLD}) AS at_risk,
               max(r.hour) AS newest_hour
        FROM risk_latest AS r JOIN ({MACHINES}) AS m USING (machine_id)""", needs=("machines", "risk_latest"),
          description="machines scored and at risk (latest score of each)"),
    Query("at_risk", "snapshot", f"""
        SELECT r.machine_id, m.site_id, m.site_name, m.model, r.p_failure_24h, r.predicted_component, r.hour,
               r.model_name, r.model_version
        FROM risk_latest AS r JOIN ({MACHINES}) AS m USING (machine_id)
        ORDER BY r.p_failure_24h DESC, r.machine_id LIMIT 20""", needs=("machines", "risk_latest"),
          description="machines at risk: each machine's latest hour, highest probability of failure first"),
    Query("anomalies_by_machine", "snapshot", f"""
        SELECT a.machine_id, sum(a.anomalies) AS anomalies, max(a.max_score) AS max_score
        FROM anomaly_day AS a JOIN ({MACHINES}) AS m USING (machine_id) WHERE a.{IN_RANGE}
        GROUP BY a.machine_id""", needs=("machines", "anomaly_day"),
          description="anomalies flagged per machine in the range"),
)

OPS: tuple[Query, ...] = (
    Query("runs_summary", "events", f"""
        SELECT count(*) AS runs, {RUN_FIGURES},
               count(*) FILTER (WHERE good) / nullif(count(*), 0) AS success_rate,
               sum(rows_out) AS rows_written, sum(bytes_in) AS bytes_in,
               sum(bytes_in) FILTER (WHERE bytes_in > 0) / 1e6
                 / nullif(sum(seconds) FILTER (WHERE bytes_in > 0), 0) AS mb_per_second,
               quantile_cont(seconds, 0.95) AS p95_seconds
        FROM runs WHERE {IN_RUNS}""", description="runs, success rate, rows and bytes, cost per GB, throughput"),
    Query("last_run", "events", """
        SELECT run_id, status, started_at, ended_at, seconds, rows_out, error
        FROM runs WHERE run_at < $end_ts ORDER BY run_at DESC LIMIT 1""", description="the last run"),
    Query("runs_trend", "events", f"""
        SELECT date_trunc($bucket, run_at) AS period, {RUN_FIGURES}, avg(seconds) AS seconds
        FROM runs WHERE {IN_RUNS} GROUP BY ALL ORDER BY period""",
          description="runs by status, duration, throughput and cost per period"),
    Query("recent_runs", "events", f"""
        SELECT run_id, status, run_at AS started_at, seconds, rows_out AS rows_written, bytes_in, cost, error
        FROM runs WHERE {IN_RUNS} ORDER BY run_at DESC LIMIT 15""", description="the latest runs of the range"),
    Query("stages", "events", """
        SELECT name, kind, count(*) AS runs, avg(seconds) AS avg_seconds, max(seconds) AS max_seconds,
               sum(coalesce(attempts, 1) - 1) AS retries, count(*) FILTER (WHERE status = 'failed') AS failed
        FROM stages WHERE started_at >= $start_ts AND started_at < $end_ts
        GROUP BY name, kind ORDER BY avg_seconds DESC LIMIT 12""", description="the slowest stages, retries"),
    Query("freshness", "events", """
        SELECT name AS table_name, kind AS layer,
               (arg_max(freshness_seconds, ended_at) + epoch(least($now, $end_ts)) - epoch(max(ended_at))) / 60
                 AS minutes_now,
               quantile_cont(freshness_seconds, 0.95) / 60 AS p95_minutes, max(ended_at) AS observed_at
        FROM observations WHERE kind <> 'quarantine' AND ended_at >= $start_ts AND ended_at < $end_ts
        GROUP BY name, kind ORDER BY minutes_now DESC, table_name""",
          description="each lakehouse table's age now (or at the range's end) and its p95 over the range "
                      "(quarantine left out)"),
    Query("dq_rules", "events", """
        SELECT name AS rule, arg_max(kind, started_at) AS action,
               arg_max(passed / (passed + failed), started_at) AS last_pass_rate,
               sum(passed) / sum(passed + failed) AS range_pass_rate,
               arg_max(failed, started_at) AS last_failed, max(started_at) AS checked_at
        FROM checks WHERE started_at >= $start_ts AND started_at < $end_ts
        GROUP BY name ORDER BY last_pass_rate, rule""",
          description="each expectation's pass rate in its last check of the range and over the range"),
    Query("dq_trend", "events", """
        SELECT date_trunc($bucket, started_at) AS period, sum(passed) / nullif(sum(passed + failed), 0) AS pass_rate
        FROM checks WHERE started_at >= $start_ts AND started_at < $end_ts
        GROUP BY ALL ORDER BY period""", description="DQ pass rate per period"),
    Query("site_freshness", "snapshot", f"""
        WITH newest AS (SELECT max(last_hour) AS newest FROM machine_last)
        SELECT m.site_id, m.site_name, count(*) AS machines, max(l.last_hour) AS newest_reading,
               count(*) FILTER (WHERE l.last_hour <= n.newest - INTERVAL 6 HOURS) AS silent_machines,
               (epoch($now) - epoch(max(l.last_hour))) / 60 AS minutes_since_newest
        FROM machine_last AS l JOIN ({MACHINES}) AS m USING (machine_id) CROSS JOIN newest AS n
        GROUP BY m.site_id, m.site_name ORDER BY minutes_since_newest DESC, m.site_id""",
          needs=("machines", "machine_last"),
          description="per site: the newest reading in the warehouse, machines silent for 6 hours"),
    Query("loads", "snapshot", """
        SELECT table_name, source_version, row_count, loaded_at, (epoch($now) - epoch(loaded_at)) / 60 AS minutes_ago
        FROM loads ORDER BY loaded_at DESC, table_name""", needs=("loads",),
          description="the warehouse's last load of each gold table"),
)

_HOURLY = lambda r: r.days <= HOURLY_MAX_DAYS  # noqa: E731
_DAILY = lambda r: r.days > HOURLY_MAX_DAYS  # noqa: E731

EQUIPMENT: tuple[Query, ...] = (
    Query("machine", "snapshot", """
        SELECT m.*, l.last_hour FROM machines AS m LEFT JOIN machine_last AS l USING (machine_id)
        WHERE m.machine_id = $machine""", needs=("machines", "machine_last"),
          description="the machine, its site and its last reading"),
    Query("machine_kpis", "snapshot", """
        WITH days AS (SELECT count(DISTINCT date) AS days FROM fleet_day WHERE date BETWEEN $start AND $end),
        mine AS (SELECT d.date, d.hours_reporting, coalesce(r.repair_hours, 0) AS repair_hours
                 FROM machine_day AS d
                 LEFT JOIN (SELECT date, sum(repair_hours) AS repair_hours FROM repairs WHERE machine_id = $machine
                            GROUP BY date) AS r USING (date)
                 WHERE d.machine_id = $machine AND d.date BETWEEN $start AND $end)
        SELECT sum(greatest(hours_reporting - repair_hours, 0)) / nullif((SELECT days FROM days) * 24, 0)
                 AS availability,
               coalesce(sum(hours_reporting), 0) AS operating_hours, coalesce(sum(repair_hours), 0) AS downtime_hours,
               (SELECT count(*) FROM failures WHERE machine_id = $machine AND date BETWEEN $start AND $end) AS failures,
               (SELECT count(*) FROM maintenance WHERE machine_id = $machine AND date BETWEEN $start AND $end)
                 AS maintenance
        FROM mine""", needs=("machine_day", "fleet_day", "repairs", "failures", "maintenance"),
          description="the machine's availability, downtime, failures and maintenance over the range"),
    Query("sensors_daily", "snapshot", """
        SELECT CAST(date AS TIMESTAMP) AS t, COLUMNS('^(.*)_avg$') AS '\\1', hours_reporting
        FROM machine_day WHERE machine_id = $machine AND date BETWEEN $start AND $end ORDER BY date""",
          needs=("machine_day",), when=_DAILY, description="daily sensor averages (ranges over 21 days)"),
    Query("sensors_hourly", "snapshot", """
        SELECT CAST(hour AS TIMESTAMP) AS t, * EXCLUDE (machine_id, hour)
        FROM hourly WHERE machine_id = $machine AND hour >= $start_ts AND hour < $end_ts ORDER BY hour""",
          needs=("hourly",), when=_HOURLY, description="hourly sensor averages (ranges up to 21 days)"),
    Query("anomalies", "snapshot", """
        SELECT sensor, ts, value, score, reason, detector FROM (
          SELECT * FROM anomalies WHERE machine_id = $machine AND ts >= $start_naive AND ts < $end_naive
          ORDER BY score DESC, ts LIMIT 500)
        ORDER BY ts DESC""", needs=("anomalies",),
          description="the machine's anomalies in the range (the 500 highest scores)"),
    Query("risk", "snapshot", """
        SELECT CAST(date_trunc($bucket, hour) AS TIMESTAMP) AS t, max(p_failure_24h) AS p_failure_24h,
               arg_max(predicted_component, p_failure_24h) AS predicted_component
        FROM risk_hourly WHERE machine_id = $machine AND hour >= $start_naive AND hour < $end_naive
        GROUP BY ALL ORDER BY t""", needs=("risk_hourly",),
          description="the machine's failure risk in the range (the highest of each period)"),
    Query("risk_now", "snapshot", "SELECT * FROM risk_latest WHERE machine_id = $machine", needs=("risk_latest",),
          description="the machine's latest risk score"),
    Query("maintenance", "snapshot", """
        SELECT ts, component, reason FROM maintenance WHERE machine_id = $machine AND date BETWEEN $start AND $end
        ORDER BY ts DESC""", needs=("maintenance",), description="the machine's maintenance in the range"),
    Query("last_maintenance", "snapshot", """
        SELECT component, max(ts) AS last_ts, count(*) AS actions FROM maintenance
        WHERE machine_id = $machine AND date <= $end GROUP BY component ORDER BY component""",
          needs=("maintenance",), description="each component's last maintenance"),
    Query("failures", "snapshot", """
        SELECT f.ts, f.component, r.repaired_at, r.repair_hours
        FROM failures AS f LEFT JOIN repairs AS r ON r.machine_id = f.machine_id AND r.ts = f.ts
        WHERE f.machine_id = $machine AND f.date BETWEEN $start AND $end ORDER BY f.ts DESC""",
          needs=("failures", "repairs"), description="the machine's failures and when they were repaired"),
    Query("errors", "snapshot", """
        SELECT error_id, count(*) AS errors, max(ts) AS last_ts FROM errors
        WHERE machine_id = $machine AND date BETWEEN $start AND $end GROUP BY error_id ORDER BY error_id""",
          needs=("errors",), description="the machine's errors in the range"),
    Query("machine_list", "snapshot", f"""
        SELECT machine_id, site_name, model FROM ({MACHINES}) ORDER BY machine_id""", needs=("machines",),
          description="the machines of the site and model filters (the machine picker)"),
)

FLEET: tuple[Query, ...] = (
    Query("machine_index", "snapshot", f"""
        WITH m AS ({MACHINES}),
        days AS (SELECT count(DISTINCT date) AS days FROM fleet_day WHERE date BETWEEN $start AND $end),
        up AS (SELECT d.machine_id, sum(d.hours_reporting) AS hours, max(d.last_hour) AS last_hour
               FROM machine_day AS d JOIN m USING (machine_id) WHERE d.date BETWEEN $start AND $end
               GROUP BY d.machine_id),
        rep AS (SELECT r.machine_id, sum(r.repair_hours) AS repair_hours FROM repairs AS r JOIN m USING (machine_id)
                WHERE r.date BETWEEN $start AND $end GROUP BY r.machine_id),
        fails AS (SELECT f.machine_id, count(*) AS failures FROM failures AS f JOIN m USING (machine_id)
                  WHERE f.date BETWEEN $start AND $end GROUP BY f.machine_id)
        SELECT m.machine_id, m.site_id, m.site_name, m.model,
               greatest(coalesce(up.hours, 0) - coalesce(rep.repair_hours, 0), 0)
                 / nullif((SELECT days FROM days) * 24, 0) AS availability,
               coalesce(fails.failures, 0) AS failures, up.last_hour
        FROM m LEFT JOIN up USING (machine_id) LEFT JOIN rep USING (machine_id) LEFT JOIN fails USING (machine_id)
        ORDER BY m.machine_id""", needs=("machines", "machine_day", "fleet_day", "repairs", "failures"),
          description="the machines of the filters: availability, failures, last reading"),
    Query("fleet_risk", "snapshot", f"""
        WITH m AS ({MACHINES})
        SELECT r.machine_id, r.p_failure_24h, r.predicted_component FROM risk_latest AS r JOIN m USING (machine_id)""",
          needs=("machines", "risk_latest"), description="each machine's latest risk score"),
    next(q for q in EXECUTIVE if q.name == "anomalies_by_machine"),
)

DASHBOARDS: dict[str, tuple[Query, ...]] = {"executive": EXECUTIVE, "ops": OPS, "fleet": FLEET, "equipment": EQUIPMENT}
OPTIONS = Query("options", "snapshot", """
    SELECT 'site' AS kind, CAST(site_id AS VARCHAR) AS value, site_name AS label FROM sites
    UNION ALL SELECT DISTINCT 'model', model, model FROM machines
    ORDER BY kind, label""", needs=("sites", "machines"))


# -- running them ------------------------------------------------------------------------------------------------


def resolve_range(filters: Filters, snapshot: Snapshot, *, dashboard: str, now: dt.datetime,
                  ops_days: float = 7) -> Range:
    """The dates a page covers: from/to when given; else the data's first and last day (the ops page: the
    last ``ops_days`` days, the SLO window, ending today)."""
    if dashboard == "ops":
        end = filters.end or now.date()
        start = filters.start or min(end, (now - dt.timedelta(days=ops_days)).date())
    else:
        last = snapshot.last_date or now.date()
        end = filters.end or last
        start = filters.start or min(end, snapshot.first_date or end)
    return Range(start=start, end=end)


def parameters(filters: Filters, span: Range, *, now: dt.datetime, bucket: str,
               machine: int | None = None) -> dict[str, Any]:
    start_ts = dt.datetime.combine(span.start, dt.time(), dt.UTC)
    end_ts = dt.datetime.combine(span.end + dt.timedelta(days=1), dt.time(), dt.UTC)
    return {"site": filters.site, "model": filters.model, "start": span.start, "end": span.end,
            "start_ts": start_ts, "end_ts": end_ts, "start_naive": start_ts.replace(tzinfo=None),
            "end_naive": end_ts.replace(tzinfo=None), "bucket": bucket, "now": now, "machine": machine}


_PARAM = re.compile(r"\$([A-Za-z_]\w*)")


def used(sql: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters ``sql`` names (``$name``): DuckDB refuses a statement given parameters it does not use."""
    names = set(_PARAM.findall(sql))
    return {k: v for k, v in (params or {}).items() if k in names}


def clean(value: Any) -> Any:
    """A value JSON and the pages can show: sums of integers as int, NaN and infinities as None."""
    if isinstance(value, Decimal):  # sum() of integers
        return int(value) if value == value.to_integral_value() else float(value)
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _rows(table: Any) -> list[dict[str, Any]]:
    return [{k: clean(v) for k, v in row.items()} for row in table.to_pylist()]


def _missing(query: Query, snapshot: Snapshot) -> str | None:
    """Why ``query`` has nothing to show: the warehouse tables its snapshot tables come from are missing."""
    if snapshot.problem:
        return f"no data yet: {snapshot.problem}"
    lacking = [t for t in query.needs if t not in snapshot.tables]
    if not lacking:
        return None
    sources = sorted({n for t in lacking for n in source_tables(t)} - snapshot.warehouse_tables)
    return f"no data yet: the warehouse has no {', '.join(sources or lacking)} table"


def run_dashboard(store: Store, name: str, filters: Filters, *, machine: int | None = None,
                  now: dt.datetime | None = None) -> Dashboard:
    """Every query of dashboard ``name`` with the filters: what its page shows (and ``bench/dashboards.py``
    times)."""
    started = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC)
    queries = DASHBOARDS[name]
    targets = {q.target for q in queries}
    results: dict[str, Result] = {}
    with store.snapshot_cursor() as (snapshot, cursor):
        span = resolve_range(filters, snapshot, dashboard=name, now=now,
                             ops_days=store.workspace.config.monitoring.slo.window_days)
        bucket = span.bucket(hourly_until=3 if name == "ops" else HOURLY_MAX_DAYS if name == "equipment" else 0)
        params = parameters(filters, span, now=now, bucket=bucket, machine=machine)
        wanted = [q for q in queries if q.when is None or q.when(span)]
        for query in wanted:
            if query.target == "snapshot":
                results[query.name] = _run(query, params, lambda sql, p: cursor.sql(sql, params=p).to_arrow_table(),
                                           missing=_missing(query, snapshot))
        if "events" in targets:
            with store.events_cursor() as events:
                for query in wanted:
                    if query.target == "events":
                        results[query.name] = _run(query, params,
                                                   lambda sql, p: events.sql(sql, params=p).to_arrow_table())
    dashboard = Dashboard(name=name, filters=filters, range=span, results={q.name: results[q.name] for q in wanted},
                          snapshot_at=snapshot.built_at if snapshot.version is not None else None,
                          notice=snapshot.problem, seconds=0.0)
    if name == "executive":
        dashboard.results["kpis"] = executive_kpis(dashboard.results["trend"])
    if name == "ops":
        dashboard.extra["backlog"] = store.backlog()
    if name == "equipment":
        dashboard.extra["sensors"] = list(snapshot.sensors.names)
    dashboard.seconds = time.perf_counter() - started
    return dashboard


def executive_kpis(trend: Result) -> Result:
    """The executive KPIs over the range, added up from the trend's periods (no second pass over the data):
    availability (hours up over fleet hours), downtime, operating hours, failures, MTBF (operating hours per
    failure) and MTTR (repair hours per repaired failure)."""
    if not trend.ok:
        return Result(missing=trend.missing, error=trend.error)
    rows = trend.rows
    total = {k: sum(r[k] or 0 for r in rows) for k in ("up_hours", "fleet_hours", "downtime_hours",
                                                        "operating_hours", "repaired", "failures")}
    return Result(rows=[{
        "machines": rows[0]["machines"] if rows else None,
        "availability": total["up_hours"] / total["fleet_hours"] if total["fleet_hours"] else None,
        "downtime_hours": total["downtime_hours"], "operating_hours": total["operating_hours"],
        "failures": total["failures"],
        "mtbf_hours": total["operating_hours"] / total["failures"] if total["failures"] else None,
        "mttr_hours": total["downtime_hours"] / total["repaired"] if total["repaired"] else None,
    }])


def _run(query: Query, params: dict[str, Any], execute: Callable[[str, dict[str, Any]], Any], *,
         missing: str | None = None) -> Result:
    if missing:
        return Result(missing=missing)
    started = time.perf_counter()
    try:
        table = execute(query.sql, used(query.sql, params))
    except Exception as exc:
        return Result(error=f"{query.name}: {str(exc).splitlines()[0]}", seconds=time.perf_counter() - started)
    return Result(rows=_rows(table), seconds=time.perf_counter() - started)


def source_tables(name: str) -> set[str]:
    """The warehouse tables a snapshot table is made of."""
    spec = SNAPSHOT.get(name)
    if spec is None:
        return {name}
    return set().union(*(source_tables(n) for n in spec.needs)) if spec.local else set(spec.needs)


def options(store: Store) -> dict[str, list[dict[str, str]]]:
    """The sites and machine models the filter controls offer."""
    with store.snapshot_cursor() as (snapshot, cursor):
        if _missing(OPTIONS, snapshot):
            return {"site": [], "model": []}
        rows = cursor.execute(OPTIONS.sql).fetchall()
    found: dict[str, list[dict[str, str]]] = {"site": [], "model": []}
    for kind, value, label in rows:
        found[str(kind)].append({"value": str(value), "label": str(label)})
    return found


def with_filters(filters: Filters, **changes: Any) -> Filters:
    return replace(filters, **changes)
