"""What loading the models learned, kept between runs (as dbt's partial parsing does): each model's header, the
tables it reads and its fingerprint. A run whose model files did not change reuses them and parses no SQL
(sqlglot: ~0.1 s to import, and the parsing and normalising of every model each run); a model whose query is
needed after all (it runs, or its header demands a strategy to check) is parsed then, with the others.

The cache is one entry for the whole set of model files: a view is inlined into the models that read it, so one
file's edit can change another model's tables and fingerprint. Its key hashes every model file (name and text),
the dialect and the versions of lakeforge, sqlglot (the normalised SQL of fingerprints) and pydantic (the header
settings as they are dumped): any edit, added or removed file, or upgrade is a new key, and the next load parses
everything and writes the entry again. Kept in the lakehouse's ``_lakeforge/`` state when the lakehouse is a local
folder that a run has already written to; best effort both ways (a cache that cannot be read is not used)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakeforge import __version__
from lakeforge.errors import LakeforgeError
from lakeforge.libraries import version_of

if TYPE_CHECKING:
    from lakeforge.models.model import Model
    from lakeforge.storage import Location

CACHE = "_lakeforge/models.json"
FORMAT = 1


@dataclass(frozen=True)
class Facts:
    """What a model's parsed query says, for a run that does not parse it."""

    upstream: tuple[str, ...]
    fingerprint: dict[str, str]


def key(texts: dict[str, str], *, dialect: str) -> str:
    """The cache key of a project's model files (name -> text)."""
    versions = [FORMAT, __version__, version_of("sqlglot"), version_of("pydantic")]
    return hashlib.sha256(json.dumps({"versions": versions, "dialect": dialect, "files": sorted(texts.items())},
                                     ensure_ascii=False).encode()).hexdigest()


def read(location: Location, cache_key: str) -> dict[str, tuple[dict[str, Any], Facts]] | None:
    """Model name -> (header, facts) as the cache holds them for ``cache_key``; None when it holds another key."""
    if not location.is_local:
        return None
    try:
        data = location.read_json(CACHE)
    except (OSError, ValueError, LakeforgeError):  # none yet, or cut short
        return None
    if not isinstance(data, dict) or data.get("key") != cache_key:
        return None
    try:
        return {name: (dict(entry["header"]), Facts(tuple(entry["upstream"]), dict(entry["fingerprint"])))
                for name, entry in data["models"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):  # not what write() wrote
        return None


def write(location: Location, cache_key: str, models: list[Model], *, headers: dict[str, dict[str, Any]]) -> None:
    """Keep what ``models`` (just parsed, views inlined) say under ``cache_key``; not when a header does not
    survive JSON as it is (a YAML date, say) or the lakehouse has no state folder yet (no run has written)."""
    if not location.is_local or not location.local_path("_lakeforge").is_dir():
        return
    entries = {m.name: {"header": headers[m.name], "upstream": m.upstream(), "fingerprint": m.fingerprint()}
               for m in models}
    try:
        if json.loads(json.dumps(entries)) != entries:
            return
    except (TypeError, ValueError):
        return
    data = {"key": cache_key, "models": entries}
    with contextlib.suppress(OSError, LakeforgeError):
        location.write_json_atomic(CACHE, data)
