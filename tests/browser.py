"""Headless Chromium for end-to-end tests: Debian's ``/usr/bin/chromium`` driven by Playwright for Python.

Fixtures (this module is a pytest plugin, listed in ``pytest_plugins`` of the root conftest):

- ``browser``: a Playwright ``Browser``, Chromium launched headless from ``/usr/bin/chromium``
  (``executable_path``: Playwright never downloads a browser of its own) with the flags this machine needs
  (no background networking, no component updates, no sync, no QUIC, no sandbox as root, a fresh profile).
  One Chromium serves every browser test that runs back to back; it is stopped as soon as the next test of
  the process needs no browser (see ``pytest_runtest_teardown``), and started again by a later browser test.
- ``page``: a ``Page`` in a fresh browser context (no cookies or storage from another test), viewport
  1280x800. Every request to a host other than 127.0.0.1 / localhost / [::1] is aborted in the browser and
  recorded, and the test FAILS naming the URLs (a page must not load scripts, fonts or styles from a CDN).
- ``offsite_requests``: what was blocked; a test that blocks on purpose calls ``offsite_requests.expect()``
  and then checks ``offsite_requests.urls`` itself.

``screenshot(page, name)`` writes ``docs/img/<name>.png``: the full page at a fixed 1280x800 viewport.

Mark browser tests ``@pytest.mark.browser`` and ``@pytest.mark.slow``. Without Chromium the fixtures fail and
name ``make browser`` (which installs Debian's chromium with apt).

Why not a session-scoped fixture: Playwright's sync API keeps its asyncio loop marked as running in the main
thread while it is started, so any later test in the same process calling ``asyncio.run()`` would fail
("cannot be called from a running event loop", measured). Stopping Playwright when the browser tests of a
run of consecutive tests are done keeps one Chromium for all of them without touching other tests.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, ViewportSize, WebSocketRoute

REPO = Path(__file__).resolve().parents[1]
DOCS_IMG = REPO / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"  # Debian's package; LAKEFORGE_CHROMIUM overrides (the harness's own tests)
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Chromium must not call home: these and a fresh --user-data-dir (Playwright makes one per launch) keep it
# from reaching Google's hosts; the resolver rule makes any other host name unresolvable inside Chromium,
# a second barrier under the request routing below (which is what records and reports)
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-domain-reliability",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
LAUNCH_TIMEOUT_MS = 60_000
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_OFFSITE = pytest.StashKey["OffsiteRequests"]()


def chromium_path() -> str:
    return os.environ.get("LAKEFORGE_CHROMIUM", CHROMIUM)


def is_local(url: str) -> bool:
    """True for a URL that stays on this machine: loopback hosts, or no network at all (data:, blob:,
    about:)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "javascript"):
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


@dataclasses.dataclass
class OffsiteRequests:
    """Requests the browser was stopped from sending off this machine, in order."""

    urls: list[str] = dataclasses.field(default_factory=list)
    expected: bool = False
    reported: int = 0  # how many of ``urls`` a failure has named already

    def expect(self) -> OffsiteRequests:
        """The test blocks requests on purpose and checks ``urls`` itself: no failure for them."""
        self.expected = True
        return self

    def unreported(self) -> list[str]:
        return [] if self.expected else self.urls[self.reported:]

    def failure(self) -> str | None:
        new = self.unreported()
        if not new:
            return None
        self.reported = len(self.urls)
        listed = "\n".join(f"  {url}" for url in new)
        return (f"the page tried to reach {len(new)} address(es) off this machine (blocked; pages must load "
                f"everything from the lakeforge server itself):\n{listed}")


class _Chromium:
    """Playwright and one Chromium, started on first use, stopped between groups of browser tests."""

    def __init__(self) -> None:
        self.playwright: Playwright | None = None
        self.browser: Browser | None = None

    def get(self) -> Browser:
        if self.browser is not None and self.browser.is_connected():
            return self.browser
        self.stop()
        path = chromium_path()
        if not os.access(path, os.X_OK):
            pytest.fail(f"no Chromium at {path}: run `make browser` (installs Debian's chromium with apt)",
                        pytrace=False)
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            pytest.fail("Playwright for Python is not installed: run `make install` (the test extra pins it)",
                        pytrace=False)
        self.playwright = sync_playwright().start()
        try:
            self.browser = self.playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS,
                                                           timeout=LAUNCH_TIMEOUT_MS)
        except Exception as exc:
            self.stop()
            pytest.fail(f"Chromium at {path} did not start under Playwright: {exc}\n(run `make browser`; "
                        "`make install` pins the Playwright version that drives it)", pytrace=False)
        return self.browser

    def stop(self) -> None:
        browser, playwright = self.browser, self.playwright
        self.browser = self.playwright = None
        try:
            if browser is not None:
                browser.close()
        finally:
            if playwright is not None:
                playwright.stop()


_chromium = _Chromium()


def _uses_browser(item: pytest.Item | None) -> bool:
    return item is not None and "browser" in getattr(item, "fixturenames", ())


@pytest.fixture
def browser() -> Browser:
    """The shared headless Chromium (see the module's notes on its lifetime)."""
    return _chromium.get()


@pytest.fixture
def offsite_requests(request: pytest.FixtureRequest) -> OffsiteRequests:
    found = OffsiteRequests()
    request.node.stash[_OFFSITE] = found
    return found


def _block_offsite(context: BrowserContext, found: OffsiteRequests) -> None:
    def abort(route: Route) -> None:
        found.urls.append(route.request.url)
        route.abort("blockedbyclient")

    def close(ws: WebSocketRoute) -> None:
        found.urls.append(ws.url)
        ws.close(code=1008, reason="blocked by the test harness: not a local address")

    context.route(lambda url: not is_local(url), abort)
    context.route_web_socket(lambda url: not is_local(url), close)


@pytest.fixture
def page(browser: Browser, offsite_requests: OffsiteRequests) -> Iterator[Page]:
    """A page in a fresh context, 1280x800, with every request off this machine blocked and reported."""
    context = browser.new_context(viewport=VIEWPORT, service_workers="block",  # routing sees every request
                                  locale="en-GB", timezone_id="UTC", color_scheme="light")
    context.set_default_timeout(15_000)
    _block_offsite(context, offsite_requests)
    try:
        yield context.new_page()
    finally:
        context.close()
    late = offsite_requests.failure()  # blocked after the test's body ended (the call hook saw the rest)
    if late:
        pytest.fail(late, pytrace=False)


def screenshot(page: Page, name: str, *, folder: Path = DOCS_IMG) -> Path:
    """``<folder>/<name>.png`` (``docs/img`` by default): the whole page at the fixed 1280x800 viewport,
    animations stopped and the caret hidden so that a page renders the same each time."""
    if not _NAME.match(name):
        raise ValueError(f"screenshot name {name!r}: lower-case letters, digits, '-' and '_' only")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    if page.viewport_size != VIEWPORT:
        page.set_viewport_size(VIEWPORT)
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    return path


# -- hooks -------------------------------------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test whose page reached for another host fails, naming the URLs (unless it expected that)."""
    result = yield
    found = item.stash.get(_OFFSITE, None)
    message = found.failure() if found is not None else None
    if message:
        pytest.fail(message, pytrace=False)
    return result


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop Chromium and Playwright when the next test of this process needs no browser."""
    if _chromium.browser is not None and not _uses_browser(nextitem):
        _chromium.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    _chromium.stop()
