"""A fault-injecting HTTP proxy for S3 tests: it sits on 127.0.0.1 in front of the moto server (which has no
fault injection of its own) and, for a fraction of the requests, answers as a struggling S3 does.

Faults (``FAULTS``):

- ``slowdown``: ``503 SlowDown`` ("Please reduce your request rate"), the request never reaches the server;
- ``internal``: ``500 InternalError``, the request never reaches the server;
- ``throttle``: ``429 TooManyRequests`` (what S3-compatible stores and gateways send when they throttle);
- ``lost_reply``: the request *is* served (an object written, a commit made), then the client gets ``500``:
  the reply was lost, so a retry repeats a request that already took effect (for a Delta commit, a conditional
  PUT of a log file that now exists);
- ``timeout``: the request is held for ``timeout_delay`` seconds, longer than the client's timeout, then the
  connection is closed without a reply.

Which request gets which fault is decided by the seed, not by the order in which threads happen to send them:
the n-th time a given ``(method, path?query)`` is seen draws from ``random.Random(f"{seed}|{method}|{path}|{n}")``,
the path without what differs between sessions (bucket names, uuids, upload and run ids). At most
``max_consecutive`` tries of one request in a row are faulted, so a client that
retries gets through; ``outage()`` answers every request with 503 until it is ended (then clients must give up
with an error, and a rerun must finish the work). Every injected fault is counted by kind, and a request seen
again after a fault is counted as a client retry.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import sys
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

FAULTS = ("slowdown", "internal", "throttle", "lost_reply", "timeout")
_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
    "throttle": (429, "TooManyRequests", "Too many requests, please slow down."),
    "lost_reply": (500, "InternalError", "We encountered an internal error. Please try again."),
    "outage": (503, "ServiceUnavailable", "Service is unable to handle request."),
}
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
               "expect", "content-length", "host"}


class FaultProxy:
    """The proxy: ``url`` is what a project's ``storage.endpoint_url`` points at."""

    def __init__(self, upstream: str, *, seed: int, rate: float, faults: tuple[str, ...] = FAULTS,
                 timeout_delay: float = 8.0, max_consecutive: int = 2, max_timeouts: int | None = None) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        assert parsed.hostname == "127.0.0.1", "the proxy forwards to a local server only"
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.seed, self.rate, self.faults = seed, rate, faults
        self.timeout_delay, self.max_consecutive, self.max_timeouts = timeout_delay, max_consecutive, max_timeouts
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self.client_retries = 0  # requests seen again after a fault on them
        self.enabled = True
        self._outage = False
        self._seen: Counter[tuple[str, str]] = Counter()
        self._streak: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        handler = type("Handler", (_Handler,), {"proxy": self})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # held "timeout" requests end now
        self.server.shutdown()
        self.server.server_close()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Every request answered ``503 ServiceUnavailable`` while inside."""
        self._outage = True
        try:
            yield
        finally:
            self._outage = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No faults while inside (set-up and checks go through the proxy untouched)."""
        self.enabled = False
        try:
            yield
        finally:
            self.enabled = True

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "faults": dict(sorted(self.injected.items())),
                    "faults_total": sum(self.injected.values()), "client_retries": self.client_retries}

    def decide(self, method: str, target: str) -> str | None:
        """The fault for this try of ``method target`` (None: forward it untouched)."""
        key = (method, _shape(target))
        with self._lock:
            self.requests += 1
            if self._streak[key]:
                self.client_retries += 1
            n = self._seen[key]
            self._seen[key] += 1
            if self._outage:
                self.injected["outage"] += 1
                return "outage"
            if not self.enabled or self._streak[key] >= self.max_consecutive:
                self._streak[key] = 0
                return None
            rng = random.Random(f"{self.seed}|{method}|{key[1]}|{n}")
            if rng.random() >= self.rate:
                self._streak[key] = 0
                return None
            choices = [f for f in self.faults if f != "lost_reply" or method in ("PUT", "POST", "DELETE")]
            if self.max_timeouts is not None and self.injected["timeout"] >= self.max_timeouts:
                choices = [f for f in choices if f != "timeout"]
            if not choices:
                self._streak[key] = 0
                return None
            fault = rng.choice(choices)
            self._streak[key] += 1
            self.injected[fault] += 1
            return fault


_NOISE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|uploadId=[^&]+|\d{8}T\d{6,}[-\w]*")


def _shape(target: str) -> str:
    """A request's path without what differs between sessions: the bucket (random names), uuids (data file names),
    multipart upload ids, run ids. The n-th request of a shape then draws the same fault in every session that
    sends the same requests in the same order."""
    path = target.lstrip("/")
    path = path.split("/", 1)[1] if "/" in path.split("?", 1)[0] else path.partition("?")[1] + path.partition("?")[2]
    return _NOISE.sub("*", path)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (its timeout) closed the connection before the reply: nothing to report."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    proxy: ClassVar[FaultProxy]
    protocol_version = "HTTP/1.1"  # keep-alive, and ``Expect: 100-continue`` answered by the base class

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _error(self, status: int, code: str, message: str) -> None:
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>lakeforge-fault-proxy</RequestId></Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", "lakeforge-fault-proxy")
        if status == 503 and code == "SlowDown":
            self.send_header("Retry-After", "0")
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.proxy.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Host"] = f"{self.proxy.upstream[0]}:{self.proxy.upstream[1]}"
            headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            connection.close()

    def _handle(self) -> None:
        body = self._body()
        fault = self.proxy.decide(self.command, self.path)
        if fault == "timeout":
            self.proxy._stop.wait(self.proxy.timeout_delay)  # the client gives up first
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault in ("slowdown", "internal", "throttle", "outage"):
            self._error(*_ERRORS[fault])
            return
        status, reason, headers, data = self._forward(body)
        if fault == "lost_reply":  # it happened on the server; the client is told it failed
            self._error(*_ERRORS[fault])
            return
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD":
            length = next((v for k, v in headers if k.lower() == "content-length"), "0")
            self.send_header("Content-Length", length)
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

