"""ASGI middleware: the web app's text answers (pages, JSON, CSV, plain text) with secrets masked
(:mod:`lakeforge.redaction`): an error from the warehouse or an alert channel shown on a page names no password,
token or URL credentials. Text bodies are buffered (they are bounded: pages, the explorer's capped answers)."""

from __future__ import annotations

from typing import Any

from lakeforge.redaction import redact

_TEXT = (b"text/", b"application/json")


class RedactingMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                kind = dict(message.get("headers", [])).get(b"content-type", b"")
                if not kind.startswith(_TEXT):
                    await send(message)
                    return
                start.update(message)
                return
            if not start or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = redact(b"".join(chunks).decode("utf-8", errors="surrogateescape")).encode(
                "utf-8", errors="surrogateescape")
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, sending)
