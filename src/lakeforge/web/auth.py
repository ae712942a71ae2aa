"""The access token of ``lakeforge serve``: every request but ``/health`` must carry it.

The token is ``LAKEFORGE_TOKEN`` when set (at least 16 characters), else a random one made at start
(``secrets.token_urlsafe(32)``) that ``lakeforge serve`` prints once, in the URL to open
(``http://127.0.0.1:8642/?token=...``, as Jupyter does). A request may carry it

- as ``Authorization: Bearer <token>`` (scripts, Prometheus' ``authorization`` setting);
- as ``?token=<token>`` in the URL: a browser is then given an HttpOnly, SameSite=Strict cookie holding a value
  derived from the token (an HMAC, not the token) and sent on to the same URL without it (a same-origin
  ``<meta refresh>``, so the token leaves the address bar and the history's last entry, and a Strict cookie is
  sent even when the link was opened from another site); other clients are simply served;
- in that cookie (the browser's next requests). The cookie's name carries the port, so two servers on one host
  do not overwrite each other's.

Tokens are compared with :func:`secrets.compare_digest`. A refused request gets 401 with one line saying what is
missing or wrong (HTML for a browser, with a field to paste the token; JSON otherwise) and a
``WWW-Authenticate: Bearer`` header. Refusals are logged with the method, path and client, never a token.
Every response also gets headers that keep pages out of frames and caches and forbid anything not served here
(``Content-Security-Policy: default-src 'self'``): the pages fetch nothing from the internet.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import os
import secrets
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lakeforge import redaction
from lakeforge.errors import ConfigError

log = logging.getLogger("lakeforge.serve")

TOKEN_ENV = "LAKEFORGE_TOKEN"
MIN_LENGTH = 16
OPEN_PATHS = frozenset({"/health"})
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                  b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
)


def resolve_token(token: str | None = None) -> tuple[str, str]:
    """The token and where it came from: ``given`` (``token``), ``env`` (``LAKEFORGE_TOKEN``) or ``generated``."""
    if token is not None:
        source, value = "given", token
    elif os.environ.get(TOKEN_ENV):
        source, value = "env", os.environ[TOKEN_ENV]
    else:
        generated = secrets.token_urlsafe(32)
        redaction.register([generated, session_value(generated)])
        return generated, "generated"
    value = value.strip()
    redaction.register([value, session_value(value)])
    if len(value) < MIN_LENGTH:
        raise ConfigError(f"the access token ({TOKEN_ENV if source == 'env' else 'token'}) is too short: "
                          f"{len(value)} characters, at least {MIN_LENGTH} are needed",
                          hint=f"e.g. {TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
                               f"or unset {TOKEN_ENV} to get a random one")
    return value, source


def session_value(token: str) -> str:
    """What the browser's cookie holds: derived from the token, so the cookie is not the token itself."""
    return hmac.new(token.encode(), b"lakeforge-web-session-v1", hashlib.sha256).hexdigest()


def cookie_name(scope: Scope) -> str:
    server = scope.get("server")
    return f"lakeforge_token_{server[1]}" if server and server[1] else "lakeforge_token"


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(header: str) -> dict[str, str]:
    found = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            found[name] = value
    return found


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def presented(scope: Scope, token: str) -> bool:
    """Whether a request carries ``token`` (the bearer header, ``?token=`` or the session cookie): for the open
    paths, which answer anyone but tell more to those who have it."""
    headers = _headers(scope)
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return _same(value.strip(), token)
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    given = [v for k, v in query if k == "token"]
    if given:
        return _same(given[-1], token)
    cookie = _cookies(headers.get("cookie", "")).get(cookie_name(scope))
    return cookie is not None and _same(cookie, session_value(token))


class TokenMiddleware:
    """ASGI middleware: refuses every HTTP request without the token, except ``open_paths``."""

    def __init__(self, app: ASGIApp, *, token: str, open_paths: Iterable[str] = OPEN_PATHS) -> None:
        self.app = app
        self.token = token
        self.session = session_value(token)
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        if scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in query if k == "token"]
        authorization = headers.get("authorization")
        browser = "text/html" in headers.get("accept", "")
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                await self._refuse(scope, send, "the Authorization header is not `Bearer <token>`", browser=False)
            elif not _same(value.strip(), self.token):
                await self._refuse(scope, send, "the access token is wrong", browser=False, invalid=True)
            else:
                await self.app(scope, receive, send)
            return
        if given:
            if not _same(given[-1], self.token):
                await self._refuse(scope, send, "the access token in the URL is wrong", browser=browser,
                                   invalid=True)
            elif browser and scope["method"] in ("GET", "HEAD"):
                await self._sign_in(scope, send, [(k, v) for k, v in query if k != "token"])
            else:
                await self.app(scope, receive, send)
            return
        cookie = _cookies(headers.get("cookie", "")).get(cookie_name(scope))
        if cookie is None:
            await self._refuse(scope, send, "this server needs its access token", browser=browser)
        elif not _same(cookie, self.session):
            await self._refuse(scope, send, "the session cookie is not valid for this server (it was restarted "
                                            "with another token)", browser=browser, invalid=True)
        else:
            await self.app(scope, receive, send)

    async def _sign_in(self, scope: Scope, send: Send, rest: list[tuple[str, str]]) -> None:
        """The cookie, then on to the same URL without the token (same-origin, so the Strict cookie goes)."""
        target = scope["path"] + (f"?{urlencode(rest)}" if rest else "")
        escaped = html.escape(target, quote=True)
        body = (f'<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url='
                f'{escaped}"><title>lakeforge</title></head><body><p>Signed in. <a href="{escaped}">Continue</a>'
                "</p></body></html>").encode()
        cookie = f"{cookie_name(scope)}={self.session}; Path=/; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store"),
            (b"set-cookie", cookie.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _refuse(self, scope: Scope, send: Send, reason: str, *, browser: bool, invalid: bool = False) -> None:
        client = scope.get("client")
        log.warning("refused %s %s from %s: %s", scope["method"], scope["path"], client[0] if client else "?", reason)
        hint = ("open the URL that `lakeforge serve` printed (it ends in ?token=...), or send the header "
                f"`Authorization: Bearer <token>`; the token is {TOKEN_ENV} when it is set")
        if browser:
            body = _refusal_page(reason, hint).encode()
            kind = b"text/html; charset=utf-8"
        else:
            body = json.dumps({"error": f"unauthorized: {reason}", "hint": hint}).encode()
            kind = b"application/json"
        challenge = 'Bearer realm="lakeforge"' + (', error="invalid_token"' if invalid else "")
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", kind), (b"www-authenticate", challenge.encode()), (b"cache-control", b"no-store"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            if b"cache-control" not in present:
                extra.append((b"cache-control", b"no-store"))
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


def _refusal_page(reason: str, hint: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lakeforge: access token needed</title>
</head>
<body><main>
<h1>lakeforge</h1>
<p class="error" data-testid="auth-error">Unauthorized: {html.escape(reason)}.</p>
<p>{html.escape(hint)}.</p>
<form method="get" action="">
<label>Access token <input type="password" name="token" autocomplete="off" data-testid="token-input"></label>
<button type="submit" data-testid="token-submit">Open</button>
</form>
</main></body></html>"""
