"""``lakeforge serve``: the dashboards and SQL explorer (:mod:`lakeforge.web`), Prometheus ``/metrics``,
``/health``, and the cron schedules (:mod:`.scheduler`).

One process per lakehouse is enough: it serves the web app, answers scrapes (the metrics are computed from the
event log and the lakehouse at scrape time, :mod:`.metrics`) and, in a background thread, runs the schedules and
the alert checks. Everything but ``/health`` needs the access token (:mod:`lakeforge.web.auth`).
On SIGTERM or Ctrl-C it stops accepting requests, waits for a scheduled run in progress (up to
``grace_seconds``) and exits 0; a run still going then is abandoned: its fire is claimed already (never run
again) and the next run resumes its work.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from lakeforge.errors import LakeforgeError, MissingDependency, NotFound
from lakeforge.redaction import raw
from lakeforge.workspace import Workspace

if TYPE_CHECKING:
    from fastapi import FastAPI

    from lakeforge.ops.scheduler import Scheduler
    from lakeforge.web.app import WebSettings

log = logging.getLogger("lakeforge.serve")

GRACE_SECONDS = 25.0  # under Kubernetes' default 30 s between SIGTERM and SIGKILL
BAD_STATUSES = ("failed", "crashed")
BACKLOG = 2048  # uvicorn's default


def _require() -> None:
    try:
        import croniter  # noqa: F401
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(f"lakeforge serve needs {exc.name}", hint="pip install 'lakeforge[serve]'") from None


def _iso(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return str(value) if value is not None else None


def health(workspace: Workspace, scheduler: Scheduler | None, *, wanted: bool) -> dict[str, Any]:
    """``ok``, or ``degraded`` when the last run failed or crashed, the event log is unreadable, or the
    scheduler should run and does not."""
    from lakeforge.pipeline import events

    problems: list[str] = []
    last: dict[str, Any] | None = None
    try:
        found = events.runs(workspace, limit=1)
    except Exception as exc:
        found = []
        problems.append(f"the event log could not be read: {exc}")
    if found:
        row = found[0]
        last = {"run_id": row["run_id"], "status": row["status"], "started_at": _iso(row["started_at"]),
                "ended_at": _iso(row["ended_at"]), "seconds": row["seconds"], "error": row["error"]}
        if row["status"] in BAD_STATUSES:
            problems.append(f"the last run {row['status']}")
    sched: dict[str, Any] = {"enabled": wanted, "running": False, "schedules": [], "blocked": None}
    if scheduler is not None:
        sched.update(running=scheduler.alive and scheduler.blocked is None, blocked=scheduler.blocked,
                     schedules=scheduler.describe(), run_in_progress=scheduler.running,
                     last_alert_check=_iso(scheduler.last_alert_check))
        if wanted and not scheduler.alive:
            problems.append("the scheduler thread is not running")
    return {"status": "degraded" if problems else "ok", "problems": problems, "project": workspace.config.name,
            "last_run": last, "scheduler": sched}


def create_app(workspace: Workspace, *, scheduler: bool, grace_seconds: float = GRACE_SECONDS,
               runner: Scheduler | None = None, token: str | None = None, web: WebSettings | None = None) -> FastAPI:
    """The FastAPI app: the web app (:mod:`lakeforge.web.app`), ``GET /metrics``, ``GET /health``; with
    ``scheduler`` its lifespan runs the schedules (``runner``: a ready :class:`Scheduler`, for tests). Every
    request but ``/health`` needs ``token`` (default: ``LAKEFORGE_TOKEN``, else a random one), kept in
    ``app.state.token`` with where it came from in ``app.state.token_source``."""
    _require()
    from fastapi import FastAPI, Response
    from fastapi.responses import JSONResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.routing import Route

    from lakeforge.ml.scoring import OnlineScorer
    from lakeforge.ops.metrics import registry
    from lakeforge.ops.scheduler import Scheduler
    from lakeforge.web.app import mount
    from lakeforge.web.auth import TokenMiddleware, presented, resolve_token
    from lakeforge.web.redacting import RedactingMiddleware

    secret, secret_source = resolve_token(token)

    metrics = registry(workspace)
    sched: Scheduler | None = None
    if scheduler:
        # its own workspace: the scheduler's thread never shares an engine or a cache with the requests
        sched = runner or Scheduler(Workspace(workspace.path, engine=workspace.config.engine.type))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if sched is not None:
            sched.start()
        try:
            yield
        finally:
            app.state.web_store.close()
            if sched is not None:
                import anyio.to_thread

                stopped = await anyio.to_thread.run_sync(sched.stop, grace_seconds)
                app.state.abandoned = not stopped
                if not stopped:
                    log.warning("a scheduled run (%s) is still going after %.0fs: abandoned; its fire is claimed "
                                "and the next run resumes its work", sched.running, grace_seconds)

    app = FastAPI(title="lakeforge", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.scheduler = sched
    app.state.abandoned = False
    app.state.token, app.state.token_source = secret, secret_source
    app.add_middleware(TokenMiddleware, token=secret)
    app.add_middleware(RedactingMiddleware)  # the outermost: every text answer, refusals included
    # while this process's scheduler runs the pipeline, the web app leaves the warehouse alone (one writer)
    app.state.web_store = mount(app, workspace, settings=web,
                                busy=lambda: sched is not None and sched.running is not None)

    @app.get("/metrics")
    def get_metrics() -> Response:
        return Response(content=generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    def get_health(request: Any) -> JSONResponse:  # a Starlette route: FastAPI would not see the request's type
        found = health(workspace, sched, wanted=scheduler)
        if presented(request.scope, secret):
            return JSONResponse(found)
        return JSONResponse({"status": found["status"]})  # a liveness probe's answer: the rest takes the token

    app.router.routes.append(Route("/health", get_health, methods=["GET"]))

    scorer = OnlineScorer(workspace)

    @app.get("/api/ml/predict/{machine_id}")
    def predict(machine_id: int) -> Response:
        """The champion's failure-within-24 h prediction for the machine's latest features."""
        try:
            return JSONResponse(scorer.predict(machine_id))
        except NotFound as exc:
            return JSONResponse({"error": exc.message, "fix": exc.hint}, status_code=404)
        except MissingDependency as exc:
            return JSONResponse({"error": exc.message, "fix": exc.hint}, status_code=503)

    return app


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound and listening before anything starts (a busy port is an error, not a
    half-started server)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise LakeforgeError(f"lakeforge serve cannot listen on {host}:{port}: {exc}",
                             hint="pass --host with an address of this machine (default 127.0.0.1)") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise LakeforgeError(f"lakeforge serve cannot listen on {host}:{port}: {exc.strerror or exc}",
                             hint="choose another --port, or stop what listens there") from None
    # listening now, before the URL is printed: a client that connects while the app is still starting waits in
    # the backlog for its answer instead of being refused (uvicorn listens only once its startup is done)
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def url_line(app: FastAPI, host: str, port: int, *, scheduler: bool) -> str:
    """The line ``lakeforge serve`` prints first: the URL to open, with the token when it was generated (printed
    this once; a token from LAKEFORGE_TOKEN is not repeated)."""
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}/"
    url = f"{base}?token={app.state.token}" if app.state.token_source == "generated" else base
    names = ", ".join(f"{s.name} ({s.cron})" for s in app.state.scheduler.schedules) if app.state.scheduler else ""
    how = "" if app.state.token_source == "generated" else "the token is $LAKEFORGE_TOKEN; "
    return (f"lakeforge serve: {url} - {how}dashboards, /metrics (bearer token) and /health"
            + (f"; schedules: {names or 'none'}" if scheduler else "; schedules off"))


def serve(workspace: Workspace, *, host: str = "127.0.0.1", port: int = 8642, scheduler: bool = True,
          grace_seconds: float = GRACE_SECONDS) -> None:
    """Serve until SIGTERM or Ctrl-C (then exit cleanly). Binds 127.0.0.1 unless told otherwise; every endpoint
    but /health needs the access token (LAKEFORGE_TOKEN, else a random one printed in the URL)."""
    _require()
    import uvicorn

    root = logging.getLogger("lakeforge")
    if not root.handlers:  # the scheduler's and the metrics' lines, on stderr
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root.addHandler(stream)
        root.setLevel(logging.INFO)
    app = create_app(workspace, scheduler=scheduler, grace_seconds=grace_seconds)
    sock = _listen(host, port)

    # the one place the generated token is shown (masked everywhere else): the URL for whoever started the server
    print(url_line(app, host, sock.getsockname()[1], scheduler=scheduler), flush=True, file=raw(sys.stdout))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully: with these handlers in
    # place, that is a no-op and the process exits 0 (the default handlers would kill it, or raise
    # KeyboardInterrupt)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)
        sock.close()
    if app.state.abandoned:  # a run is still going in a daemon thread: do not let interpreter shutdown race it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    print("lakeforge serve: stopped", flush=True)
