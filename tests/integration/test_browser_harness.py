"""The browser harness itself (tests/browser.py): Debian's Chromium under Playwright clicks a button on a page
served from 127.0.0.1 and the DOM changes; a page reaching for a CDN gets those requests blocked and reported
(and a test that did not expect them fails); screenshots are full-page PNGs at 1280 px; a missing Chromium
names `make browser`."""

from __future__ import annotations

import http.server
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser import OffsiteRequests, is_local, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytest_plugins = ["pytester", "tests.browser"]  # tests.browser: the root conftest registers it for every module too
pytestmark = [pytest.mark.browser, pytest.mark.slow]

COUNTER = """<!doctype html>
<html><head><meta charset="utf-8"><title>counter</title></head>
<body>
  <button id="go" type="button">Add one</button>
  <p id="count">0</p>
  <script>
    document.getElementById("go").addEventListener("click", () => {
      const out = document.getElementById("count");
      out.textContent = String(Number(out.textContent) + 1);
      out.classList.add("clicked");
    });
  </script>
</body></html>"""

# a page as a careless template might write it: a script and a stylesheet from CDNs, a font, a WebSocket
CDN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cdn</title>
  <link rel="stylesheet" href="https://cdn.example.com/theme.css">
  <script>window.cdnFailed = false;</script>
  <script src="https://cdn.example.com/chart.min.js" onerror="window.cdnFailed = true"></script>
</head>
<body>
  <p id="state">local content</p>
  <script src="/app.js"></script>
</body></html>"""

APP_JS = """document.getElementById("state").dataset.chart = typeof window.Chart;
new WebSocket("wss://push.example.com/live");"""

TALL = """<!doctype html><html><head><meta charset="utf-8"><style>body{margin:0}</style></head>
<body><div style="height:2000px;background:linear-gradient(#fff,#36c)">tall</div></body></html>"""


class _Site(http.server.ThreadingHTTPServer):
    pages: dict[str, tuple[str, str]]
    requested: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Site

    def do_GET(self) -> None:
        self.server.requested.append(self.path)
        found = self.server.pages.get(self.path)
        if found is None:
            self.send_error(404)
            return
        content_type, body = found
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def site() -> Iterator[_Site]:
    """A small static site on 127.0.0.1 and a free port (``site.pages[path] = (content type, body)``)."""
    server = _Site(("127.0.0.1", 0), _Handler)
    server.pages, server.requested = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def url(site: _Site, path: str = "/") -> str:
    return f"http://127.0.0.1:{site.server_address[1]}{path}"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR comes first
    return int(width), int(height)


def test_local_urls() -> None:
    assert is_local("http://127.0.0.1:8765/machines?site=1")
    assert is_local("http://localhost/")
    assert is_local("ws://[::1]:9000/live")
    assert is_local("data:text/plain,x")
    assert not is_local("https://cdn.jsdelivr.net/npm/chart.js")
    assert not is_local("http://127.0.0.1.example.com/")
    assert not is_local("https://fonts.googleapis.com/css2?family=Inter")


def test_click_changes_the_dom(page: Page, site: _Site, offsite_requests: OffsiteRequests) -> None:
    site.pages["/"] = ("text/html; charset=utf-8", COUNTER)
    response = page.goto(url(site))
    assert response is not None and response.status == 200
    assert page.title() == "counter"
    assert page.locator("#count").text_content() == "0"

    page.get_by_role("button", name="Add one").click()
    page.get_by_role("button", name="Add one").click()

    assert page.locator("#count").text_content() == "2"
    assert page.locator("#count").get_attribute("class") == "clicked"
    assert page.viewport_size == {"width": 1280, "height": 800}
    assert site.requested[0] == "/"
    assert offsite_requests.urls == []


def test_offsite_requests_are_blocked_and_reported(page: Page, site: _Site,
                                                    offsite_requests: OffsiteRequests) -> None:
    offsite_requests.expect()  # this test checks them itself
    site.pages["/"] = ("text/html; charset=utf-8", CDN_PAGE)
    site.pages["/app.js"] = ("text/javascript", APP_JS)

    page.goto(url(site))
    page.wait_for_function("document.getElementById('state').dataset.chart !== undefined")
    for _ in range(100):  # the WebSocket is opened last; Playwright reports it while it waits
        if len(offsite_requests.urls) >= 3:
            break
        page.wait_for_timeout(20)

    # the local page and script loaded; the CDN's script never ran: it failed in the browser
    assert site.requested == ["/", "/app.js"]
    assert page.locator("#state").text_content() == "local content"
    assert page.evaluate("window.cdnFailed") is True
    assert page.locator("#state").get_attribute("data-chart") == "undefined"
    assert set(offsite_requests.urls) == {"https://cdn.example.com/theme.css",
                                          "https://cdn.example.com/chart.min.js",
                                          "wss://push.example.com/live"}
    message = OffsiteRequests(urls=list(offsite_requests.urls)).failure()
    assert message is not None and "https://cdn.example.com/chart.min.js" in message


def test_screenshot_is_the_full_page_at_1280(page: Page, site: _Site, tmp_path: Path) -> None:
    site.pages["/tall"] = ("text/html; charset=utf-8", TALL)
    page.goto(url(site, "/tall"))

    path = screenshot(page, "tall-page", folder=tmp_path)

    assert path == tmp_path / "tall-page.png"
    assert png_size(path) == (1280, 2000)
    with pytest.raises(ValueError, match="lower-case"):
        screenshot(page, "../escape", folder=tmp_path)


def test_a_test_whose_page_reaches_a_cdn_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="""
        def test_page(page):
            page.set_content('<script src="https://cdn.example.com/lib.js"></script><p>hi</p>')
            assert page.text_content("p") == "hi"
    """)
    result = pytester.runpytest("-p", "tests.browser", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tried to reach 1 address(es) off this machine*",
                                 "*https://cdn.example.com/lib.js*"])


def test_missing_chromium_names_make_browser(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEFORGE_CHROMIUM", str(pytester.path / "no-such-chromium"))
    pytester.makepyfile(test_inner="""
        def test_page(page):
            raise AssertionError("must not get here")
    """)
    result = pytester.runpytest("-p", "tests.browser", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no Chromium at*no-such-chromium*run `make browser`*"])
