"""The web app of ``lakeforge serve``: dashboards and a SQL explorer over the warehouse (docs/dashboards.md).

Mounted by :func:`lakeforge.ops.serve.create_app` behind the access token (:mod:`.auth`). Pages are rendered on
the server (:mod:`.pages`, charts as inline SVG), read what :mod:`.queries` defines, from the snapshot, the event
log or the warehouse (:mod:`.store`); ``/static/app.css`` and ``/static/app.js`` ship in the package.

Routes: ``/`` executive dashboard, ``/ops`` operations, ``/machines`` the machines (``?machine=ID`` goes to one),
``/machines/{id}`` one machine, ``/explore`` the SQL explorer, ``/explore/csv`` its CSV export; JSON:
``/api/options``, ``/api/executive``, ``/api/ops``, ``/api/machines``, ``/api/machines/{id}``, ``/api/explore``
(GET, or POST ``{"sql": ..., "limit": ...}``). Every page takes the filters ``site``, ``model``, ``from``, ``to``
in the query string; ``/explore`` also ``sql``, ``limit``, ``chart`` (auto, line, bar, none).

Stable ``data-testid`` attributes, for browser tests:

=====================  ==========================================================================================
every page             ``project``, ``nav-executive``, ``nav-fleet``, ``nav-ops``, ``nav-explore``, ``filters``
                       (the form), ``filter-site``, ``filter-model``, ``filter-from``, ``filter-to``,
                       ``filter-apply``, ``filter-reset``, ``filter-range`` (the dates shown), ``notice`` (stale or
                       missing data), ``no-data`` (a panel without data yet; ``data-query`` names the query),
                       ``error``, ``footer``, ``chart`` (every chart: ``<figure data-chart="<key>">``),
                       ``machine-link`` (a link to a machine's page), ``site-link`` (sets the site filter)
``/``                  ``kpi-availability``, ``kpi-machines``, ``kpi-failures``, ``kpi-downtime``, ``kpi-mtbf``,
                       ``kpi-mttr``, ``kpi-at-risk``; charts ``availability``, ``failures``, ``downtime``,
                       ``components``; ``risk-panel``, ``risk-table``, ``site-table``
``/ops``               ``kpi-last-run``, ``kpi-success-rate``, ``kpi-freshness``, ``kpi-dq-pass-rate``,
                       ``kpi-throughput``, ``kpi-backlog``, ``kpi-cost-per-gb``; charts ``runs``, ``duration``,
                       ``throughput``, ``cost-per-gb``, ``dq``; ``runs-table``, ``freshness-table``,
                       ``site-freshness-table``, ``dq-table``, ``backlog-table``, ``stages-table``, ``loads-table``
``/machines``          ``machine-table``
``/machines/{id}``     ``machine-info``, ``machine-select``, ``kpi-availability``, ``kpi-operating-hours``,
                       ``kpi-downtime``, ``kpi-failures``, ``kpi-maintenance``, ``kpi-risk``; charts ``volt``,
                       ``rotate``, ``pressure``, ``vibration``, ``temperature``, ``risk``; ``anomaly-marker`` (in the
                       charts), ``anomaly-table``, ``maintenance-table``, ``last-maintenance-table``,
                       ``failure-table``, ``error-table``
``/explore``           ``sql-form``, ``sql-input``, ``sql-run``, ``row-limit``, ``chart-type``, ``table-list``,
                       ``table-name``, ``result-summary``, ``result-table``, ``csv-export``, ``sql-error``; chart
                       ``result``
401 page               ``auth-error``, ``token-input``, ``token-submit``
=====================  ==========================================================================================

A table without rows shows ``<testid>-empty`` instead (e.g. ``maintenance-table-empty``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from lakeforge.errors import LakeforgeError
from lakeforge.web import explorer, pages, queries
from lakeforge.web.queries import BadFilter, Filters
from lakeforge.web.store import Store, Unavailable

if TYPE_CHECKING:
    from fastapi import FastAPI

    from lakeforge.workspace import Workspace

STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
LIMITS = (100, 1000, 10_000, 100_000)


@dataclass(frozen=True)
class WebSettings:
    """The explorer's row limit (default and most), byte limit and timeout; the web app's DuckDB memory limit
    (default: the engine's ``memory_limit`` of lakeforge.yml, else 2GB: :func:`.readonly.web_settings`); whether a
    stale snapshot is rebuilt in the background (the previous one shown meanwhile) or before answering."""

    row_limit: int = explorer.DEFAULT_LIMIT
    max_rows: int = explorer.MAX_LIMIT
    timeout_seconds: float = explorer.DEFAULT_TIMEOUT
    max_bytes: int = explorer.MAX_BYTES
    memory_limit: str | None = None
    background_refresh: bool = True


def mount(app: FastAPI, workspace: Workspace, *, settings: WebSettings | None = None,
          busy: Callable[[], bool] | None = None) -> Store:
    """Add the pages to ``app``; returns the store (close it at shutdown)."""
    settings = settings or WebSettings()
    store = Store(workspace, busy=busy, memory_limit=settings.memory_limit, background=settings.background_refresh)
    app.include_router(router(workspace, store, settings))
    return store


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status)


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(data), status_code=status)


def _problem(exc: LakeforgeError) -> dict[str, Any]:
    return {"error": exc.message, "hint": exc.hint}


def _status(exc: LakeforgeError) -> int:
    return 503 if isinstance(exc, Unavailable) else 400


def router(workspace: Workspace, store: Store, settings: WebSettings) -> APIRouter:
    api = APIRouter()
    name = workspace.config.name

    def context(request: Request, filters: Filters) -> pages.Context:
        try:
            options = queries.options(store)
        except LakeforgeError:
            options = {"site": [], "model": []}
        return pages.Context(project=name, path=request.url.path, filters=filters, options=options)

    def page(request: Request, render: Callable[[Filters], str]) -> HTMLResponse:
        try:
            filters = Filters.parse(request.query_params)
        except BadFilter as exc:
            ctx = context(request, Filters())
            body = f'<p class="error" data-testid="error">{pages.esc(exc.message)} ({pages.esc(exc.hint)})</p>'
            return _html(pages.layout(ctx, title="Bad filter", active="", body=body), 400)
        return _html(render(filters))

    def filters_or_error(request: Request) -> Filters:
        return Filters.parse(request.query_params)

    def targets() -> dict[str, float]:
        slo = workspace.config.monitoring.slo
        return {"success_rate": slo.success_rate, "freshness_minutes": slo.freshness_minutes,
                "dq_accuracy": slo.dq_accuracy, "cost_per_gb": slo.cost_per_gb}

    def sla(table: str) -> float:
        for rule in workspace.config.alerts.rules:
            if rule.type == "freshness" and rule.table == table and rule.max_age_minutes:
                return float(rule.max_age_minutes)
        return float(workspace.config.monitoring.slo.freshness_minutes)

    @api.get("/", response_class=HTMLResponse)
    def executive(request: Request) -> HTMLResponse:
        return page(request, lambda f: pages.executive(queries.run_dashboard(store, "executive", f),
                                                       context(request, f)))

    @api.get("/ops", response_class=HTMLResponse)
    def operations(request: Request) -> HTMLResponse:
        return page(request, lambda f: pages.operations(queries.run_dashboard(store, "ops", f), context(request, f),
                                                        targets=targets(), sla=sla))

    @api.get("/machines", response_class=HTMLResponse)
    def machines(request: Request, machine: str = "") -> Response:
        if machine.strip():
            if not machine.strip().isdigit():
                return _html(pages.layout(context(request, Filters()), title="Machines", active="fleet",
                                          body=f'<p class="error" data-testid="error">machine={pages.esc(machine)} '
                                               "is not a machine id</p>"), 400)
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "machine"])
            return RedirectResponse(f"/machines/{int(machine)}" + (f"?{rest}" if rest else ""), status_code=303)
        return page(request, lambda f: pages.fleet(queries.run_dashboard(store, "fleet", f), context(request, f)))

    @api.get("/machines/{machine_id}", response_class=HTMLResponse)
    def machine_page(request: Request, machine_id: int) -> HTMLResponse:
        def render(f: Filters) -> str:
            return pages.equipment(queries.run_dashboard(store, "equipment", f, machine=machine_id),
                                   context(request, f), machine_id)

        return page(request, render)

    def explore_params(filters: Filters) -> dict[str, Any]:
        return {"site": filters.site, "model": filters.model, "start": filters.start, "end": filters.end}

    def limit_of(value: str | int | None) -> int:
        limit = explorer.clamp_limit(value if value not in (None, "") else settings.row_limit)
        if limit > settings.max_rows:
            raise explorer.Refused(f"the row limit of this server is {settings.max_rows:,} rows")
        return limit

    @api.get("/explore", response_class=HTMLResponse)
    def explore(request: Request, sql: str = "", limit: str = "", chart: str = "auto") -> HTMLResponse:
        status = 200
        answer: dict[str, Any] | None = None
        error: tuple[str, str | None] | None = None
        csv_href = None
        try:
            filters = filters_or_error(request)
        except BadFilter as exc:
            filters, error, status = Filters(), (exc.message, exc.hint), 400
        chosen = settings.row_limit
        if error is None and sql.strip():
            try:
                chosen = limit_of(limit)
                result = explorer.run(store, sql, limit=chosen, timeout=settings.timeout_seconds,
                                      max_bytes=settings.max_bytes,
                                      params=explore_params(filters))
                answer = result.to_dict(rows=pages.SHOWN_ROWS)
                query = [("sql", sql), ("limit", str(chosen))] + [(k, v) for k, v in request.query_params.multi_items()
                                                                  if k in ("site", "model", "from", "to")]
                csv_href = f"/explore/csv?{urlencode(query)}"
            except LakeforgeError as exc:
                error, status = (exc.message, exc.hint), _status(exc)
        try:
            catalog = explorer.catalog(store)
        except LakeforgeError:
            catalog = []
        ctx = context(request, filters)
        limits = sorted({n for n in (*LIMITS, settings.row_limit) if n <= settings.max_rows})
        return _html(pages.explorer(ctx, sql=sql, limit=chosen, chart=chart if chart in ("auto", "line", "bar", "none")
                                    else "auto", answer=answer, error=error, catalog=catalog, csv_href=csv_href,
                                    limits=limits), status)

    @api.get("/explore/csv")
    def explore_csv(request: Request, sql: str = "", limit: str = "") -> Response:
        try:
            filters = filters_or_error(request)
            result = explorer.run(store, sql, limit=limit_of(limit), timeout=settings.timeout_seconds,
                                  max_bytes=settings.max_bytes,
                                  params=explore_params(filters))
        except LakeforgeError as exc:
            text = f"{exc.message}\n" + (f"fix: {exc.hint}\n" if exc.hint else "")
            return Response(text, status_code=_status(exc), media_type="text/plain; charset=utf-8")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        return Response(explorer.to_csv(result.table), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="lakeforge-query-{stamp}.csv"',
                                 "x-lakeforge-truncated": "true" if result.truncated else "false"})

    # JSON
    def api_dashboard(request: Request, which: str, machine: int | None = None) -> JSONResponse:
        try:
            filters = filters_or_error(request)
            return _json(queries.run_dashboard(store, which, filters, machine=machine).to_dict())
        except LakeforgeError as exc:
            return _json(_problem(exc), _status(exc))

    @api.get("/api/options")
    def api_options() -> JSONResponse:
        return _json(queries.options(store))

    @api.get("/api/executive")
    def api_executive(request: Request) -> JSONResponse:
        return api_dashboard(request, "executive")

    @api.get("/api/ops")
    def api_ops(request: Request) -> JSONResponse:
        return api_dashboard(request, "ops")

    @api.get("/api/machines")
    def api_machines(request: Request) -> JSONResponse:
        return api_dashboard(request, "fleet")

    @api.get("/api/machines/{machine_id}")
    def api_machine(request: Request, machine_id: int) -> JSONResponse:
        return api_dashboard(request, "equipment", machine_id)

    def api_run(request: Request, sql: str, limit: Any) -> JSONResponse:
        try:
            filters = filters_or_error(request)
            result = explorer.run(store, sql, limit=limit_of(limit), timeout=settings.timeout_seconds,
                                  max_bytes=settings.max_bytes,
                                  params=explore_params(filters))
        except LakeforgeError as exc:
            return _json(_problem(exc), _status(exc))
        return _json(result.to_dict())

    @api.get("/api/explore")
    def api_explore(request: Request, sql: str = "", limit: str = "") -> JSONResponse:
        return api_run(request, sql, limit)

    @api.post("/api/explore")
    def api_explore_post(request: Request, body: dict[str, Any] = Body(...)) -> JSONResponse:  # noqa: B008
        return api_run(request, str(body.get("sql") or ""), body.get("limit"))

    @api.get("/static/{file}")
    def static(file: str) -> Response:
        if file not in STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        content = (resources.files("lakeforge.web") / "static" / file).read_bytes()
        return Response(content, media_type=STATIC[file], headers={"cache-control": "private, max-age=300"})

    @api.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    return api
