"""The reliability suite's mode (``LAKEFORGE_RELIABILITY=quick|full``, default quick), its marker, and the results
file: each case records what it tried and what came out, and the session writes them all to
``tests/reliability/.results/<mode>.json`` (the figures docs/reliability.md quotes).

Under pytest-xdist every worker writes its cases to ``.results/<mode>/<session>/``; the controller merges them
when the session ends.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import MODE_VARIABLE, RESULTS, Settings, settings

SESSION_VARIABLE = "LAKEFORGE_RELIABILITY_SESSION"
_OUTCOME = pytest.StashKey[pytest.TestReport]()
_STARTED = pytest.StashKey[float]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: the reliability suite (tests/reliability; "
                                       "LAKEFORGE_RELIABILITY=quick|full)")
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist): workers inherit it
        os.environ[SESSION_VARIABLE] = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        config.stash[_STARTED] = time.time()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        item.stash[_OUTCOME] = report
    return report


@pytest.fixture(scope="session")
def mode() -> Settings:
    return settings()


@pytest.fixture(autouse=True)
def record(request: pytest.FixtureRequest, mode: Settings) -> Iterator[dict[str, Any]]:
    """A dict the case fills with what it tried and saw; written with the outcome when the case ends (every case
    of the suite has its entry, those that record nothing with their outcome and time)."""
    data: dict[str, Any] = {}
    started = time.monotonic()
    yield data
    report = request.node.stash.get(_OUTCOME, None)
    entry = {"case": request.node.name, "module": request.node.module.__name__.rsplit(".", 1)[-1],
             "outcome": report.outcome if report is not None else "unknown",
             "seconds": round(time.monotonic() - started, 1), **data}
    if report is not None and report.outcome == "failed":
        entry["failure"] = str(report.longrepr)[-1500:]
    folder = RESULTS / mode.mode / os.environ.get(SESSION_VARIABLE, "local")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{request.node.name}.json").write_text(json.dumps(entry, indent=1, default=str))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return
    mode = os.environ.get(MODE_VARIABLE, "quick")
    folder = RESULTS / mode / os.environ.get(SESSION_VARIABLE, "local")
    if not folder.is_dir():
        return  # no reliability case ran
    cases = sorted((json.loads(p.read_text()) for p in folder.glob("*.json")), key=lambda c: (c["module"], c["case"]))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    started = session.config.stash.get(_STARTED, time.time())
    summary = {"mode": mode, "date": dt.date.today().isoformat(), "commit": commit,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "seconds": round(time.time() - started, 1),
               "passed": sum(c["outcome"] == "passed" for c in cases), "cases": cases}
    (RESULTS / f"{mode}.json").write_text(json.dumps(summary, indent=1, default=str))
    shutil.rmtree(folder, ignore_errors=True)
    if not any((RESULTS / mode).iterdir()):
        (RESULTS / mode).rmdir()
