"""Where alert notifications go: a generic JSON webhook, a Slack-compatible incoming webhook (Slack, Mattermost,
Rocket.Chat, Teams workflows ...), or e-mail over SMTP. :func:`send` delivers one notification to one channel
and raises :class:`ChannelError` when it could not (an HTTP error status, a refused connection, SMTP down)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import requests

from lakeforge.config.loader import require_set
from lakeforge.config.operations import ChannelConfig

STATES = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}


class ChannelError(Exception):
    """A notification was not delivered (it stays pending and is tried again at the next evaluation)."""


@dataclass(frozen=True)
class Notification:
    alert: str  # the rule's name
    state: str  # firing | repeat | resolved
    severity: str  # warning | critical
    message: str
    project: str
    subject: str  # what fired: a table, a source, model:rule, run ...
    value: Any  # the measured value (None when there is none, e.g. a failed run)
    threshold: Any
    at: str  # ISO 8601, UTC

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def title(self) -> str:
        """``[lakeforge] FIRING critical: stale_gold on plant`` (and the subject when it is not the whole run)."""
        about = f" ({self.subject})" if self.subject and self.subject != "run" else ""
        return f"[lakeforge] {STATES.get(self.state, self.state.upper())} {self.severity}: {self.alert}{about} " \
               f"on {self.project}"


def send(channel: ChannelConfig, note: Notification) -> None:
    """Deliver ``note`` to ``channel``; :class:`ChannelError` when it was not delivered."""
    require_set(channel, at="alerts.channels", use=f"the {channel.type} alert channel")
    if channel.type == "email":
        _email(channel, note)
    elif channel.type == "slack":
        _post(channel, {"text": slack_text(note)}, headers={})
    else:
        _post(channel, note.to_dict(), headers=channel.headers)


def slack_text(note: Notification) -> str:
    mark = {"firing": ":red_circle:", "repeat": ":red_circle:", "resolved": ":large_green_circle:"}.get(note.state, "")
    if note.severity == "warning" and note.state != "resolved":
        mark = ":large_orange_circle:"
    return f"{mark} *{note.title.removeprefix('[lakeforge] ')}*\n{note.message}"


def _post(channel: ChannelConfig, payload: dict[str, Any], *, headers: dict[str, str]) -> None:
    url = channel.url or ""
    try:
        response = requests.post(url, json=payload, headers=headers, timeout=channel.timeout_seconds)
    except requests.RequestException as exc:
        raise ChannelError(_redact(f"{type(exc).__name__}: {exc}", url)) from None
    if not response.ok:
        raise ChannelError(f"{_where(url)} answered HTTP {response.status_code} {response.reason or ''}".rstrip())


def _where(url: str) -> str:
    """The host of a URL, never its path (a Slack webhook's path is its secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the webhook"


def _redact(text: str, url: str) -> str:
    path = urlsplit(url).path
    if path and path != "/":
        text = text.replace(url, _where(url) + "/...").replace(path, "/...")
    return text


def _email(channel: ChannelConfig, note: Notification) -> None:
    message = EmailMessage()
    message["Subject"] = note.title
    message["From"] = channel.sender or ""
    message["To"] = ", ".join(channel.to)
    details = [f"alert:     {note.alert} ({note.severity})", f"state:     {note.state}",
               f"project:   {note.project}", f"subject:   {note.subject}"]
    if note.value is not None:
        details.append(f"value:     {note.value}")
    if note.threshold is not None:
        details.append(f"threshold: {note.threshold}")
    details.append(f"at:        {note.at}")
    message.set_content(note.message + "\n\n" + "\n".join(details) + "\n\n-- lakeforge\n")
    host, port = channel.smtp_host or "localhost", channel.smtp_port
    try:
        with smtplib.SMTP(host, port, timeout=channel.timeout_seconds) as smtp:
            if channel.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if channel.username:
                password = channel.password.get_secret_value() if channel.password else ""
                smtp.login(channel.username, password)
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        error = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise ChannelError(f"SMTP {host}:{port} answered {exc.smtp_code} {error}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise ChannelError(f"SMTP {host}:{port}: {type(exc).__name__}: {exc}") from None
