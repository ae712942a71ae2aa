"""The pages' HTML, rendered on the server from a :class:`.queries.Dashboard` (every value escaped).

No template engine: small functions that return strings. The page shell loads ``/static/app.css`` and
``/static/app.js`` (served by the app itself); charts are inline SVG (:mod:`.charts`). The ``data-testid``
attributes are listed in :mod:`.app`.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lakeforge.web import charts
from lakeforge.web.charts import Chart, Marker, Series
from lakeforge.web.queries import RISK_THRESHOLD, Dashboard, Filters, Result


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


# -- formatting --------------------------------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value: Any, kind: str = "text") -> str:
    """A value for a cell or a KPI: ``pct``, ``num``, ``int``, ``hours``, ``minutes``, ``seconds``, ``usd``,
    ``bytes``, ``ts`` (UTC), ``date``, ``text``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if kind == "pct" and _finite(value):
        return f"{value:.1%}"
    if kind == "int" and _finite(value):
        return f"{round(value):,}"
    if kind == "num" and _finite(value):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}" if abs(value) < 1 else f"{value:,.1f}"
    if kind == "hours" and _finite(value):
        return f"{value:,.1f} h"
    if kind == "minutes" and _finite(value):
        return _age(value * 60)
    if kind == "seconds" and _finite(value):
        return f"{value:,.2f} s" if value < 100 else _age(value)
    if kind == "usd" and _finite(value):
        return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"
    if kind == "bytes" and _finite(value):
        for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if abs(value) >= size:
                return f"{value / size:,.1f} {unit}"
        return f"{value:,.0f} B"
    if kind == "ts" and isinstance(value, dt.datetime):
        moment = value.astimezone(dt.UTC) if value.tzinfo else value
        return moment.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


# -- building blocks ---------------------------------------------------------------------------------------------


@dataclass
class Context:
    """What every page needs besides its data."""

    project: str
    path: str  # the page's path (the filter form submits to it)
    filters: Filters
    options: dict[str, list[dict[str, str]]]

    @property
    def qs(self) -> str:
        query = self.filters.query_string()
        return f"?{query}" if query else ""


Column = tuple[str, str, str]  # header, key, kind


def table(testid: str, columns: Sequence[Column], rows: Sequence[dict[str, Any]], *,
          cell: Callable[[str, dict[str, Any]], str | None] | None = None, empty: str = "no rows") -> str:
    """A sortable table; ``cell(key, row)`` may return the HTML of a cell (links), else the formatted value."""
    if not rows:
        return f'<p class="empty" data-testid="{esc(testid)}-empty">{esc(empty)}</p>'
    head = "".join(f'<th data-kind="{esc(kind)}">{esc(header)}</th>' for header, _, kind in columns)
    body = []
    for row in rows:
        cells = []
        for _, key, kind in columns:
            custom = cell(key, row) if cell else None
            numeric = kind not in ("text", "long", "ts", "date")
            css = " class=num" if numeric else " class=wrap" if kind == "long" else ""
            cells.append(f'<td{css}>'
                         f"{custom if custom is not None else esc(fmt(row.get(key), kind))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="data sortable" data-testid="{esc(testid)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def kpi(testid: str, label: str, value: str, *, sub: str | None = None, state: str | None = None) -> str:
    classes = "kpi" + (f" {state}" if state else "")
    extra = f'<span class="sub">{esc(sub)}</span>' if sub else ""
    return (f'<div class="{classes}" data-testid="{esc(testid)}"><span class="label">{esc(label)}</span>'
            f'<span class="value">{esc(value)}</span>{extra}</div>')


def section(title: str, content: str, *, testid: str | None = None) -> str:
    attribute = f' data-testid="{esc(testid)}"' if testid else ""
    return f'<section class="panel"{attribute}><h2>{esc(title)}</h2>{content}</section>'


def state_of(result: Result | None, name: str) -> str | None:
    """The "no data yet" or error line of a query, or None when it has rows to show."""
    if result is None:
        return None
    if result.missing:
        return f'<p class="empty" data-testid="no-data" data-query="{esc(name)}">{esc(result.missing)}</p>'
    if result.error:
        return f'<p class="error" data-testid="error">{esc(result.error)}</p>'
    return None


def machine_link(machine_id: Any, ctx: Context) -> str:
    return (f'<a href="/machines/{esc(machine_id)}{esc(ctx.qs)}" data-testid="machine-link">'
            f"{esc(machine_id)}</a>")


def site_link(row: dict[str, Any], ctx: Context, path: str = "/") -> str:
    query = ctx.filters.query_string(site=row.get("site_id"))
    return (f'<a href="{esc(path)}?{esc(query)}" data-testid="site-link">'
            f"{esc(row.get('site_name') or row.get('site_id'))}</a>")


def filters_form(ctx: Context, shown: tuple[dt.date, dt.date] | None) -> str:
    def select(name: str, label: str, everything: str, current: Any) -> str:
        opts = [f'<option value="">{esc(everything)}</option>']
        for option in ctx.options.get(name, []):
            chosen = " selected" if str(current) == option["value"] else ""
            opts.append(f'<option value="{esc(option["value"])}"{chosen}>{esc(option["label"])}</option>')
        return (f'<label>{esc(label)} <select name="{name}" data-testid="filter-{name}">{"".join(opts)}'
                "</select></label>")

    f = ctx.filters
    span = f'<span class="range" data-testid="filter-range">showing {esc(shown[0])} to {esc(shown[1])}</span>' \
        if shown else ""
    return (f'<form class="filters" method="get" action="{esc(ctx.path)}" data-testid="filters">'
            + select("site", "Site", "all sites", f.site) + select("model", "Model", "all models", f.model)
            + f'<label>From <input type="date" name="from" value="{esc(f.start or "")}" data-testid="filter-from">'
            + f'</label><label>To <input type="date" name="to" value="{esc(f.end or "")}" data-testid="filter-to">'
            + '</label><button type="submit" data-testid="filter-apply">Apply</button>'
            + f'<a class="reset" href="{esc(ctx.path)}" data-testid="filter-reset">Reset</a>{span}</form>')


NAV = (("executive", "/", "Executive"), ("fleet", "/machines", "Machines"), ("ops", "/ops", "Operations"),
       ("explore", "/explore", "SQL explorer"))


def layout(ctx: Context, *, title: str, active: str, body: str, shown: tuple[dt.date, dt.date] | None = None,
           notice: str | None = None, footer: str = "") -> str:
    nav = "".join(f'<a href="{path}{esc(ctx.qs)}" data-testid="nav-{key}"'
                  f'{" class=active" if key == active else ""}>{esc(label)}</a>' for key, path, label in NAV)
    banner = f'<p class="notice" data-testid="notice">{esc(notice)}</p>' if notice else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · lakeforge</title><link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script></head>
<body data-page="{esc(active)}">
<header class="top"><a class="brand" href="/{esc(ctx.qs)}">lakeforge</a>
<span class="project" data-testid="project">{esc(ctx.project)}</span><nav>{nav}</nav></header>
<main><h1>{esc(title)}</h1>{filters_form(ctx, shown)}{banner}{body}</main>
<footer data-testid="footer">{esc(footer)}</footer>
</body></html>"""


def _footer(d: Dashboard) -> str:
    at = f"warehouse snapshot of {fmt(d.snapshot_at, 'ts')} UTC · " if d.snapshot_at else ""
    return f"{at}{len(d.results)} queries in {d.seconds * 1000:.0f} ms"


def _shown(d: Dashboard) -> tuple[dt.date, dt.date]:
    return (d.range.start, d.range.end)


# -- executive ---------------------------------------------------------------------------------------------------


def executive(d: Dashboard, ctx: Context) -> str:
    k = d.first("kpis")
    risk = d.first("risk_summary")
    at_risk = fmt(risk.get("at_risk"), "int") if d.results["risk_summary"].ok else "no data yet"
    kpis = "".join((
        kpi("kpi-availability", "Fleet availability", fmt(k.get("availability"), "pct"),
            sub="hours up / fleet hours"),
        kpi("kpi-machines", "Machines", fmt(k.get("machines"), "int")),
        kpi("kpi-failures", "Failures", fmt(k.get("failures"), "int")),
        kpi("kpi-downtime", "Downtime", fmt(k.get("downtime_hours"), "hours"), sub="failure to repair"),
        kpi("kpi-mtbf", "MTBF", fmt(k.get("mtbf_hours"), "hours"), sub="operating hours per failure"),
        kpi("kpi-mttr", "MTTR", fmt(k.get("mttr_hours"), "hours")),
        kpi("kpi-at-risk", "Machines at risk", at_risk, sub=f"p(failure in 24 h) ≥ {RISK_THRESHOLD:.0%}",
            state="warn" if risk.get("at_risk") else None),
    ))
    trend = d.rows("trend")
    period = "week" if d.range.days > 120 else "day"
    blocked = state_of(d.results["trend"], "trend")
    trends = blocked or "".join((
        charts.render(Chart("availability", f"Availability per {period}",
                            [Series("availability", [(r["period"], r["availability"]) for r in trend])],
                            y_format=charts.percent, y_max=1.0)),
        charts.render(Chart("failures", f"Failures per {period}",
                            [Series("failures", [(r["period"], r["failures"]) for r in trend], kind="bar")])),
        charts.render(Chart("downtime", f"Downtime hours per {period}",
                            [Series("downtime hours", [(r["period"], r["downtime_hours"]) for r in trend],
                                    kind="bar", color=charts.PALETTE[3])])),
    ))
    components = state_of(d.results["components"], "components") or charts.categories(
        "components", "Failures by component", [r["component"] for r in d.rows("components")],
        [r["failures"] for r in d.rows("components")])
    anomalies = {r["machine_id"]: r["anomalies"] for r in d.rows("anomalies_by_machine")}
    risk_rows = [{**r, "anomalies": anomalies.get(r["machine_id"], 0 if anomalies else None)}
                 for r in d.rows("at_risk")]
    risk_table = state_of(d.results["at_risk"], "at_risk") or table(
        "risk-table", [("machine", "machine_id", "text"), ("site", "site_name", "text"), ("model", "model", "text"),
                       ("p(failure in 24 h)", "p_failure_24h", "pct"), ("component", "predicted_component", "text"),
                       ("scored hour (UTC)", "hour", "ts"), ("anomalies in range", "anomalies", "int"),
                       ("model version", "model_version", "text")],
        risk_rows, cell=lambda key, row: machine_link(row["machine_id"], ctx) if key == "machine_id" else None,
        empty="no machine is scored for this selection")
    sites = state_of(d.results["sites"], "sites") or table(
        "site-table", [("site", "site_name", "text"), ("region", "region", "text"), ("machines", "machines", "int"),
                       ("availability", "availability", "pct"), ("downtime", "downtime_hours", "hours"),
                       ("failures", "failures", "int")],
        d.rows("sites"), cell=lambda key, row: site_link(row, ctx) if key == "site_name" else None)
    blocked_kpis = state_of(d.results["kpis"], "kpis")
    body = (f'<div class="kpis">{kpis}</div>{blocked_kpis or ""}'
            + section("Trends", f'<div class="charts">{trends}</div>')
            + section("Machines at risk", risk_table, testid="risk-panel")
            + f'<div class="two">{section("Failures by component", components)}{section("Sites", sites)}</div>')
    return layout(ctx, title="Executive dashboard", active="executive", body=body, shown=_shown(d),
                  notice=d.notice, footer=_footer(d))


# -- operations --------------------------------------------------------------------------------------------------


def operations(d: Dashboard, ctx: Context, *, targets: dict[str, float], sla: Callable[[str], float]) -> str:
    runs = d.first("runs_summary")
    last = d.first("last_run")
    fresh = d.rows("freshness")
    for row in fresh:
        row["sla_minutes"] = sla(row["table_name"])
        row["status"] = "ok" if (row["minutes_now"] or 0) <= row["sla_minutes"] else "late"
    late = [r for r in fresh if r["status"] == "late"]
    worst = max((r["p95_minutes"] for r in fresh if r["p95_minutes"] is not None), default=None)
    dq = d.rows("dq_rules")
    passed = [r["range_pass_rate"] for r in dq if r["range_pass_rate"] is not None]
    backlog = d.extra.get("backlog", [])
    waiting = sum(b["files"] for b in backlog)
    success = runs.get("success_rate")
    kpis = "".join((
        kpi("kpi-last-run", "Last run", last.get("status") or "no run yet",
            sub=f"{fmt(last.get('started_at'), 'ts')} UTC · {fmt(last.get('seconds'), 'seconds')}" if last else None,
            state="bad" if last.get("status") in ("failed", "crashed") else None),
        kpi("kpi-success-rate", "Run success rate", fmt(success, "pct"),
            sub=f"{fmt(runs.get('runs'), 'int')} runs · target {targets['success_rate']:.1%}",
            state="bad" if success is not None and success < targets["success_rate"] else None),
        kpi("kpi-freshness", "p95 freshness (worst table)", fmt(worst, "minutes"),
            sub=f"{len(late)} of {len(fresh)} tables late now · SLA {fmt(targets['freshness_minutes'], 'minutes')}",
            state="bad" if late else None),
        kpi("kpi-dq-pass-rate", "DQ pass rate", fmt(min(passed) if passed else None, "pct"),
            sub=f"worst rule over the range · target {targets['dq_accuracy']:.1%}",
            state="bad" if passed and min(passed) < targets["dq_accuracy"] else None),
        kpi("kpi-throughput", "Throughput", f"{fmt(runs.get('rows_per_second'), 'int')} rows/s",
            sub=f"{fmt(runs.get('mb_per_second'), 'num')} MB/s ingested"),
        kpi("kpi-backlog", "Backlog", f"{waiting:,} files", sub=fmt(sum(b["bytes"] for b in backlog), "bytes"),
            state="warn" if waiting else None),
        kpi("kpi-cost-per-gb", "Cost per GB", fmt(runs.get("cost_per_gb"), "usd"),
            sub=f"{fmt(runs.get('cost'), 'usd')} in all · target {fmt(targets['cost_per_gb'], 'usd')}",
            state="bad" if (runs.get("cost_per_gb") or 0) > targets["cost_per_gb"] else None),
    ))
    trend = d.rows("runs_trend")
    period = {"hour": "hour", "day": "day", "week": "week"}[d.range.bucket(hourly_until=3)]
    run_charts = state_of(d.results["runs_trend"], "runs_trend") or "".join((
        charts.render(Chart("runs", f"Runs per {period}", [
            Series("good", [(r["period"], r["good"]) for r in trend], kind="bar", color=charts.PALETTE[2]),
            Series("failed", [(r["period"], r["failed"]) for r in trend], kind="bar", color=charts.PALETTE[1]),
            Series("crashed", [(r["period"], r["crashed"]) for r in trend], kind="bar", color=charts.PALETTE[3])])),
        charts.render(Chart("duration", "Run duration (s)", [Series("mean seconds", [(r["period"], r["seconds"])
                                                                                      for r in trend])])),
        charts.render(Chart("throughput", "Throughput (rows written per second)",
                            [Series("rows/s", [(r["period"], r["rows_per_second"]) for r in trend])])),
        charts.render(Chart("cost-per-gb", "Cost per GB ingested (USD)",
                            [Series("USD/GB", [(r["period"], r["cost_per_gb"]) for r in trend])])),
        charts.render(Chart("dq", "DQ pass rate", [Series("pass rate", [(r["period"], r["pass_rate"])
                                                                          for r in d.rows("dq_trend")])],
                            y_format=charts.percent, y_max=1.0)),
    ))
    runs_table = table("runs-table", [("run", "run_id", "text"), ("status", "status", "text"),
                                      ("started (UTC)", "started_at", "ts"), ("seconds", "seconds", "num"),
                                      ("rows written", "rows_written", "int"), ("ingested", "bytes_in", "bytes"),
                                      ("cost", "cost", "usd"), ("error", "error", "long")],
                       d.rows("recent_runs"), empty="no run in this range")
    fresh_table = table("freshness-table", [("table", "table_name", "text"), ("layer", "layer", "text"),
                                            ("age", "minutes_now", "minutes"),
                                            ("p95 in range", "p95_minutes", "minutes"),
                                            ("SLA", "sla_minutes", "minutes"), ("status", "status", "text")],
                        fresh, empty="no table observed yet")
    site_fresh = state_of(d.results["site_freshness"], "site_freshness") or table(
        "site-freshness-table", [("site", "site_name", "text"), ("machines", "machines", "int"),
                                 ("newest reading (UTC)", "newest_reading", "ts"),
                                 ("age", "minutes_since_newest", "minutes"),
                                 ("silent machines (6 h)", "silent_machines", "int")],
        d.rows("site_freshness"), cell=lambda key, row: site_link(row, ctx, "/ops") if key == "site_name" else None)
    dq_table = table("dq-table", [("model:rule", "rule", "text"), ("action", "action", "text"),
                                  ("last pass rate", "last_pass_rate", "pct"),
                                  ("pass rate in range", "range_pass_rate", "pct"),
                                  ("rows failed (last)", "last_failed", "int"), ("checked (UTC)", "checked_at", "ts")],
                     dq, empty="no expectation has checked rows yet")
    backlog_table = table("backlog-table", [("source", "source", "text"), ("files waiting", "files", "int"),
                                            ("bytes", "bytes", "bytes")], backlog)
    stages = table("stages-table", [("stage", "name", "text"), ("kind", "kind", "text"), ("runs", "runs", "int"),
                                    ("mean", "avg_seconds", "seconds"), ("max", "max_seconds", "seconds"),
                                    ("retries", "retries", "int"), ("failed", "failed", "int")], d.rows("stages"),
                   empty="no stage in this range")
    loads = state_of(d.results["loads"], "loads") or table(
        "loads-table", [("warehouse table", "table_name", "text"), ("gold version", "source_version", "int"),
                        ("rows", "row_count", "int"), ("loaded (UTC)", "loaded_at", "ts"),
                        ("age", "minutes_ago", "minutes")], d.rows("loads"))
    body = (f'<div class="kpis">{kpis}</div>'
            + section("Pipeline runs", f'<div class="charts">{run_charts}</div>{runs_table}')
            + f'<div class="two">{section("Freshness against the SLA", fresh_table)}'
            + f'{section("Warehouse data by site", site_fresh)}</div>'
            + section("Data quality", dq_table)
            + f'<div class="two">{section("Backlog", backlog_table)}{section("Slowest stages", stages)}</div>'
            + section("Warehouse loads", loads))
    return layout(ctx, title="Operations", active="ops", body=body, shown=_shown(d), notice=d.notice,
                  footer=_footer(d))


# -- machines ----------------------------------------------------------------------------------------------------


def fleet(d: Dashboard, ctx: Context) -> str:
    risk = {r["machine_id"]: r for r in d.rows("fleet_risk")}
    anomalies = {r["machine_id"]: r["anomalies"] for r in d.rows("anomalies_by_machine")}
    rows = [{**r, "p_failure_24h": risk.get(r["machine_id"], {}).get("p_failure_24h"),
             "anomalies": anomalies.get(r["machine_id"], 0 if anomalies else None)} for r in d.rows("machine_index")]
    listing = state_of(d.results["machine_index"], "machine_index") or table(
        "machine-table", [("machine", "machine_id", "text"), ("site", "site_name", "text"), ("model", "model", "text"),
                          ("availability", "availability", "pct"), ("failures", "failures", "int"),
                          ("p(failure in 24 h)", "p_failure_24h", "pct"), ("anomalies", "anomalies", "int"),
                          ("last reading (UTC)", "last_hour", "ts")],
        rows, cell=lambda key, row: machine_link(row["machine_id"], ctx) if key == "machine_id"
        else site_link(row, ctx, "/machines") if key == "site_name" else None, empty="no machine matches")
    body = section(f"{len(rows):,} machines", listing)
    return layout(ctx, title="Machines", active="fleet", body=body, shown=_shown(d), notice=d.notice,
                  footer=_footer(d))


def sensor_of(name: str | None, sensors: list[str]) -> str | None:
    """The chart an anomaly belongs on: its sensor (``vibration`` or ``vibration_avg``), or None for one over
    several sensors (``multivariate``), marked on every chart's top edge."""
    base = (name or "").lower().removesuffix("_avg")
    return base if base in sensors else None


def equipment(d: Dashboard, ctx: Context, machine_id: int) -> str:
    m = d.first("machine")
    if not m:
        why = state_of(d.results["machine"], "machine") or (
            f'<p class="empty" data-testid="no-data">no machine {esc(machine_id)} in the warehouse</p>')
        return layout(ctx, title=f"Machine {machine_id}", active="fleet", body=why, notice=d.notice,
                      shown=_shown(d), footer=_footer(d))
    k = d.first("machine_kpis")
    now = d.first("risk_now")
    picker = "".join(f'<option value="{esc(r["machine_id"])}"{" selected" if r["machine_id"] == machine_id else ""}>'
                     f'{esc(r["machine_id"])} · {esc(r["site_name"])} · {esc(r["model"])}</option>'
                     for r in d.rows("machine_list"))
    hidden = "".join(f'<input type="hidden" name="{k_}" value="{esc(v)}">'
                     for k_, v in (("site", ctx.filters.site), ("model", ctx.filters.model),
                                   ("from", ctx.filters.start), ("to", ctx.filters.end)) if v is not None)
    info = (f'<div class="machine-info" data-testid="machine-info"><span>model <b>{esc(m["model"])}</b></span>'
            f'<span>site {site_link(m, ctx, "/machines")} ({esc(m.get("region"))})</span>'
            f'<span>age <b>{esc(m.get("age"))}</b> years</span><span>installed {esc(fmt(m.get("install_date")))}</span>'
            f'<span>last reading <b>{esc(fmt(m.get("last_hour"), "ts"))}</b> UTC</span>'
            f'<form method="get" action="/machines" class="picker"><label>Machine <select name="machine" '
            f'data-testid="machine-select">{picker}</select></label>{hidden}'
            '<button type="submit">Go</button></form></div>')
    risk_value = fmt(now.get("p_failure_24h"), "pct") if d.results["risk_now"].ok and now else "no data yet"
    kpis = "".join((
        kpi("kpi-availability", "Availability", fmt(k.get("availability"), "pct")),
        kpi("kpi-operating-hours", "Operating hours", fmt(k.get("operating_hours"), "int")),
        kpi("kpi-downtime", "Downtime", fmt(k.get("downtime_hours"), "hours")),
        kpi("kpi-failures", "Failures", fmt(k.get("failures"), "int")),
        kpi("kpi-maintenance", "Maintenance actions", fmt(k.get("maintenance"), "int")),
        kpi("kpi-risk", "p(failure in 24 h)", risk_value,
            sub=f"{now.get('predicted_component')} · scored {fmt(now.get('hour'), 'ts')}" if now else None,
            state="warn" if (now.get("p_failure_24h") or 0) >= RISK_THRESHOLD else None),
    ))
    hourly = "sensors_hourly" in d.results
    name = "sensors_hourly" if hourly else "sensors_daily"
    series_rows = d.rows(name)
    sensors = list(d.extra.get("sensors", []))
    anomalies = d.rows("anomalies")
    events = ([(r["ts"], f"maintenance {r['component']} ({r['reason']})") for r in d.rows("maintenance")]
              + [(r["ts"], f"failure {r['component']}") for r in d.rows("failures")])
    sensor_charts = state_of(d.results[name], name) or "".join(
        charts.render(Chart(sensor, f"{sensor} ({'hourly' if hourly else 'daily'} mean)",
                            [Series(sensor, [(r["t"], r[sensor]) for r in series_rows])],
                            markers=[Marker(a["ts"], a["value"] if sensor_of(a["sensor"], sensors) == sensor else None,
                                            f"{a['sensor']} anomaly {fmt(a['ts'], 'ts')}: {a['reason']} "
                                            f"(score {fmt(a['score'], 'num')})")
                                     for a in anomalies if sensor_of(a["sensor"], sensors) in (sensor, None)],
                            vlines=events))
        for sensor in sensors)
    risk_chart = state_of(d.results["risk"], "risk") or charts.render(Chart(
        "risk", "Probability of failure within 24 h" + ("" if hourly else f" (highest per {d.range.bucket()})"),
        [Series("p(failure)", [(r["t"], r["p_failure_24h"]) for r in d.rows("risk")], color=charts.PALETTE[1])],
        y_format=charts.percent, y_min=0.0, y_max=1.0, vlines=events))
    anomaly_table = state_of(d.results["anomalies"], "anomalies") or table(
        "anomaly-table", [("time (UTC)", "ts", "ts"), ("sensor", "sensor", "text"), ("value", "value", "num"),
                          ("score", "score", "num"), ("reason", "reason", "long"), ("detector", "detector", "text")],
        anomalies, empty="no anomaly in this range")
    maintenance = state_of(d.results["maintenance"], "maintenance") or table(
        "maintenance-table", [("time (UTC)", "ts", "ts"), ("component", "component", "text"),
                              ("reason", "reason", "text")], d.rows("maintenance"),
        empty="no maintenance in this range")
    last_maintenance = table("last-maintenance-table", [("component", "component", "text"),
                                                        ("last maintenance (UTC)", "last_ts", "ts"),
                                                        ("actions", "actions", "int")], d.rows("last_maintenance"))
    failures = state_of(d.results["failures"], "failures") or table(
        "failure-table", [("failure (UTC)", "ts", "ts"), ("component", "component", "text"),
                          ("repaired (UTC)", "repaired_at", "ts"), ("repair", "repair_hours", "hours")],
        d.rows("failures"), empty="no failure in this range")
    errors = table("error-table", [("error", "error_id", "text"), ("count", "errors", "int"),
                                   ("last (UTC)", "last_ts", "ts")], d.rows("errors"), empty="no error in this range")
    body = (info + f'<div class="kpis">{kpis}</div>'
            + section("Sensors", f'<div class="charts">{sensor_charts}</div>')
            + section("Failure risk", f'<div class="charts">{risk_chart}</div>')
            + section("Anomalies", anomaly_table)
            + f'<div class="two">{section("Maintenance history", maintenance)}'
            + f'{section("Last maintenance per component", last_maintenance)}</div>'
            + f'<div class="two">{section("Failures", failures)}{section("Errors", errors)}</div>')
    return layout(ctx, title=f"Machine {machine_id}", active="fleet", body=body, shown=_shown(d), notice=d.notice,
                  footer=_footer(d))


# -- explorer ----------------------------------------------------------------------------------------------------

EXAMPLE_SQL = """SELECT m.site_name, count(*) AS failures
FROM fact_failures AS f JOIN dim_machine AS m USING (machine_id)
GROUP BY ALL ORDER BY failures DESC"""
SHOWN_ROWS = 1000  # rows rendered in the page (the CSV has them all)


def explorer(ctx: Context, *, sql: str, limit: int, chart: str, answer: dict[str, Any] | None,
             error: tuple[str, str | None] | None, catalog: list[dict[str, Any]], csv_href: str | None,
             limits: Sequence[int]) -> str:
    options = "".join(f'<option value="{n}"{" selected" if n == limit else ""}>{n:,} rows</option>' for n in limits)
    chart_options = "".join(f'<option value="{c}"{" selected" if c == chart else ""}>{c}</option>'
                            for c in ("auto", "line", "bar", "none"))
    hidden = "".join(f'<input type="hidden" name="{k}" value="{esc(v)}">'
                     for k, v in (("site", ctx.filters.site), ("model", ctx.filters.model),
                                  ("from", ctx.filters.start), ("to", ctx.filters.end)) if v is not None)
    form = (f'<form method="get" action="/explore" class="explorer" data-testid="sql-form">'
            f'<textarea name="sql" rows="8" spellcheck="false" data-testid="sql-input" '
            f'placeholder="{esc(EXAMPLE_SQL)}">{esc(sql)}</textarea>'
            f'<div class="controls"><button type="submit" data-testid="sql-run">Run</button>'
            f'<label>Limit <select name="limit" data-testid="row-limit">{options}</select></label>'
            f'<label>Chart <select name="chart" data-testid="chart-type">{chart_options}</select></label>'
            f'{hidden}<span class="help">Ctrl+Enter runs. Read-only; $site, $model, $start, $end are the filters.'
            "</span></div></form>")
    tables = "".join(f'<li><a href="#" data-table="{esc(t["name"])}" data-testid="table-name">{esc(t["name"])}</a>'
                     f'<span class="kind">{esc(t["kind"])}</span><small>{esc(", ".join(t["columns"]))}</small></li>'
                     for t in catalog)
    side = f'<aside class="catalog"><h2>Tables</h2><ul data-testid="table-list">{tables}</ul></aside>'
    result = ""
    if error is not None:
        message, hint = error
        result = (f'<p class="error" data-testid="sql-error">{esc(message)}</p>'
                  + (f'<p class="hint">{esc(hint)}</p>' if hint else ""))
    elif answer is not None:
        count = answer["row_count"]
        more = (f" (the first {count:,}: the query has more rows; raise the limit)" if answer["truncated_by"] == "rows"
                else f" (the first {count:,}: the result is larger than the explorer's {answer['max_bytes'] >> 20} MB; "
                "select fewer or shorter columns)" if answer["truncated_by"] == "bytes" else "")
        shown = answer["rows"][:SHOWN_ROWS]
        note = f"; {len(shown):,} shown here, all in the CSV" if count > len(shown) else ""
        summary = (f'<p class="summary" data-testid="result-summary">{count:,} rows{more} in '
                   f'{answer["seconds"] * 1000:.0f} ms{note}. '
                   f'<a href="{esc(csv_href)}" data-testid="csv-export" download>Download CSV</a></p>')
        head = "".join(f"<th>{esc(c)}</th>" for c in answer["columns"])
        body = "".join("<tr>" + "".join(f'<td{" class=num" if _finite(v) else ""}>{esc(_cell(v))}</td>'
                                        for v in row) + "</tr>" for row in shown)
        result = (summary + result_chart(answer, chart)
                  + f'<div class="scroll"><table class="data sortable" data-testid="result-table"><thead><tr>{head}'
                    f"</tr></thead><tbody>{body}</tbody></table></div>")
    body = f'<div class="explore">{side}<div class="work">{form}{result}</div></div>'
    return layout(ctx, title="SQL explorer", active="explore", body=body, footer="read-only, "
                  "row limit and timeout apply; the warehouse's tables and views, in DuckDB's SQL")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return fmt(value)


def result_chart(answer: dict[str, Any], kind: str) -> str:
    """A chart of the result: the first column along x, up to four numeric columns as series."""
    columns: list[str] = answer["columns"]
    rows: list[list[Any]] = answer["rows"]
    if kind == "none" or len(columns) < 2 or not rows:
        return ""
    numeric = [i for i in range(1, len(columns)) if all(v is None or _finite(v) for v in (r[i] for r in rows))
               and any(_finite(r[i]) for r in rows)][:4]
    if not numeric:
        return ""
    xs = [r[0] for r in rows]
    ordered = all(isinstance(x, dt.date | dt.datetime) for x in xs) or all(_finite(x) for x in xs)
    if kind == "auto":
        kind = "line" if ordered and len(rows) > 1 else "bar" if len(rows) <= 40 else ""
    if kind == "line" and ordered:
        return charts.render(Chart("result", "Result", [Series(columns[i], [(r[0], r[i]) for r in rows])
                                                        for i in numeric]))
    if kind in ("bar", "line"):
        return charts.categories("result", f"Result: {columns[numeric[0]]}", [fmt(x) for x in xs],
                                 [r[numeric[0]] for r in rows])
    return ""
