"""Versions of the libraries whose output lakeforge keeps (the normalised SQL of sqlglot, in fingerprints and
stamps), read without importing them: a run with nothing to do would otherwise import sqlglot (~0.1 s) just for
its version, and ``importlib.metadata`` costs ~40 ms to import."""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

_DIST_INFO = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)\.dist-info$")


@functools.cache
def version_of(package: str) -> str:
    """The installed version of ``package``: from the name of its ``.dist-info`` folder beside it, else (another
    kind of install) from the package itself, imported."""
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.origin is not None:
        found = [m["version"] for p in Path(spec.origin).parent.parent.glob(f"{package[0]}*.dist-info")
                 if (m := _DIST_INFO.match(p.name)) and m["name"].lower().replace("-", "_") == package.lower()]
        if len(found) == 1:
            return found[0]
    module = importlib.import_module(package)
    return str(module.__version__)
