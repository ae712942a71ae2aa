"""Secrets never leave the process in what lakeforge prints or stores.

Every value the configuration took from the environment (``${VAR}``) or from ``secrets.yml``, every ``SecretStr``
setting and the web token are registered here when they are read (:func:`register`); :func:`redact` replaces
them, and every URL's credentials (``user:password@``) and query string, with ``***``. The sinks call it: the
terminal (the CLI's consoles write through :class:`RedactingStream`), ``--json`` output, run records, the event
log, the alert state, and the web app's error texts. Values shorter than :data:`MIN_LENGTH` are not registered
(``true``, a port): masking them would mangle every line that holds the same characters.

The registry is the process's, like :mod:`logging`'s configuration: a secret read once stays masked for the
life of the process, whichever project read it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import IO, Any

MASK = "***"
MIN_LENGTH = 4
_URL = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<auth>[^\s/?#@]*@)?(?P<rest>[^\s?#]*)"
                  r"(?P<query>\?[^\s#\"'<>]*)?")
_VALUES: set[str] = set()
_PATTERN: list[re.Pattern[str] | None] = [None]
_LOCK = threading.Lock()


def register(values: Iterable[str | None]) -> None:
    """Mask these values from now on (those of :data:`MIN_LENGTH` characters or more, stripped)."""
    found = {v.strip() for v in values if isinstance(v, str) and len(v.strip()) >= MIN_LENGTH}
    with _LOCK:
        if found - _VALUES:
            _VALUES.update(found)
            ordered = sorted(_VALUES, key=len, reverse=True)  # the longest first: a secret that holds another
            _PATTERN[0] = re.compile("|".join(re.escape(v) for v in ordered))


def redact(text: str) -> str:
    """``text`` with every registered secret, and every URL's credentials and query string, as ``***``."""
    pattern = _PATTERN[0]
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = _URL.sub(_url, text)
    return text


def _url(match: re.Match[str]) -> str:
    auth = f"{MASK}@" if match["auth"] else ""
    query = f"?{MASK}" if match["query"] and len(match["query"]) > 1 else (match["query"] or "")
    return f"{match['scheme']}{auth}{match['rest']}{query}"


def redact_data(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with :func:`redact` applied to every string in it,
    keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_data(k): redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


def raw(stream: IO[str]) -> IO[str]:
    """The stream under a :class:`RedactingStream` (for the one line that must show a secret: the URL with the
    generated web token that ``lakeforge serve`` prints once, for the person who started it)."""
    return stream._stream if isinstance(stream, RedactingStream) else stream


class RedactingStream:
    """A text stream that writes through another with :func:`redact` applied (the CLI's consoles use it)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
