"""Local receivers for tests that deliver over the network: an HTTP server that records what is POSTed to it
(webhooks, OpenLineage) and an SMTP server that records the mail it is sent. Both listen on 127.0.0.1 on a free
port, run in a thread and stop at the end of the ``with`` block.

    with http_receiver() as http:
        requests.post(http.url + "/hook", json={"a": 1})
        http.fail_next(2, status=503)     # the next two requests are answered 503 (and still recorded)
        assert http.requests[0].json == {"a": 1}

    with smtp_receiver(credentials=("user", "secret")) as smtp:
        ...                               # smtp.host, smtp.port; smtp.messages: EmailMessage, with .envelope
    with smtp_receiver(starttls=True) as smtp:  # STARTTLS required; trust smtp.cafile (e.g. SSL_CERT_FILE)

As fixtures, in a test module (or a conftest):

    @pytest.fixture
    def http() -> Iterator[HttpReceiver]:
        with http_receiver() as receiver:
            yield receiver

(``http_server`` and ``smtp_server`` below are such fixtures; import them into a conftest to share them.)
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    """One request as received, and the status it was answered with."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class HttpReceiver:
    url: str  # http://127.0.0.1:<port>
    requests: list[Request] = field(default_factory=list)  # all of them, answered with an error or not
    _errors: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status`` instead of 200."""
        with self._lock:
            self._errors.extend([status] * count)

    @property
    def delivered(self) -> list[Request]:
        """The requests answered 2xx."""
        with self._lock:
            return [r for r in self.requests if r.ok]

    def bodies(self, path: str | None = None) -> list[Any]:
        """The JSON bodies of the delivered requests (to ``path`` only, when given)."""
        return [r.json for r in self.delivered if path is None or r.path == path]

    def wait_for(self, count: int, *, timeout: float = 5.0) -> list[Request]:
        """Wait until ``count`` requests were received (any status); returns all of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}")

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._errors.clear()

    def _answer(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_status(self) -> int:
        with self._lock:
            return self._errors.pop(0) if self._errors else 200


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    """An HTTP server on 127.0.0.1 (free port) that answers every request 200 ``{"ok": true}`` (or the status
    set by :meth:`HttpReceiver.fail_next`) and records it."""
    holder: dict[str, HttpReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            receiver = holder["receiver"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status = receiver._next_status()
            receiver._answer(Request(method=self.command, path=self.path,
                                     headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                                     status=status))
            payload = json.dumps({"ok": 200 <= status < 300}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    holder["receiver"] = HttpReceiver(url=f"http://{HOST}:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="http-receiver",
                              daemon=True)
    thread.start()
    try:
        yield holder["receiver"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class SmtpReceiver:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)  # each with .envelope: (mail_from, rcpt_tos)
    logins: list[str] = field(default_factory=list)  # user names that authenticated
    cafile: str | None = None  # with starttls: the self-signed certificate to trust (e.g. as SSL_CERT_FILE)

    def wait_for(self, count: int, *, timeout: float = 5.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return list(self.messages)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} messages, got {len(self.messages)}")


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def self_signed(folder: Path, host: str = HOST) -> tuple[Path, Path]:
    """A certificate for ``host`` (an IP address or a name) and its key, as PEM files in ``folder``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextmanager
def smtp_receiver(*, credentials: tuple[str, str] | None = None, starttls: bool = False) -> Iterator[SmtpReceiver]:
    """An SMTP server (aiosmtpd) on 127.0.0.1 (free port) that records every message. With ``credentials``,
    it offers AUTH PLAIN/LOGIN and accepts only that user and password (without TLS unless ``starttls``). With
    ``starttls``, it requires STARTTLS with a self-signed certificate (``receiver.cafile``: trust it, e.g. by
    pointing ``SSL_CERT_FILE`` at it)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    receiver = SmtpReceiver(host=HOST, port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            message.envelope = (envelope.mail_from, list(envelope.rcpt_tos))  # type: ignore[attr-defined]
            receiver.messages.append(message)
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if credentials is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        if (user, password) == credentials:
            receiver.logins.append(user)
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    options: dict[str, Any] = {}
    if credentials is not None:
        options = {"authenticator": authenticator, "auth_require_tls": starttls}
    with tempfile.TemporaryDirectory(prefix="smtp-receiver-") as folder:
        if starttls:
            cert, key = self_signed(Path(folder))
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            options.update(tls_context=context, require_starttls=True)
            receiver.cafile = str(cert)
        controller = Controller(Handler(), hostname=HOST, port=receiver.port, **options)
        controller.start()
        try:
            yield receiver
        finally:
            controller.stop()


@pytest.fixture
def http_server() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_server() -> Iterator[SmtpReceiver]:
    with smtp_receiver() as receiver:
        yield receiver
