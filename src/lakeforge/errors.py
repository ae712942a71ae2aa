"""One root exception and a few subclasses users can act on.

Every message says what was tried and how to fix it; the CLI prints one red line
(``--debug`` shows the traceback).
"""

from __future__ import annotations


class LakeforgeError(Exception):
    """Root of every error lakeforge raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  fix: {hint}")


class ConfigError(LakeforgeError):
    """lakeforge.yml (or a model header) is invalid."""


class SourceError(LakeforgeError):
    """A landing file or source could not be read."""


class ModelError(LakeforgeError):
    """A model's SQL failed, or the model graph is invalid (cycle, unknown table)."""


class ExpectationFailed(LakeforgeError):
    """An expectation with action ``fail`` was violated; nothing was committed."""


class LimitExceeded(LakeforgeError):
    """A stage would quarantine or drop more of a batch than its limit (``max_quarantined``, ``max_dropped``)
    allows; nothing of that batch was committed."""


class WarehouseError(LakeforgeError):
    """Loading or querying the warehouse failed."""


class StorageError(LakeforgeError):
    """A file or folder lakeforge must write or read is not available (read-only, no permission, disk full)."""


class RunLocked(LakeforgeError):
    """Another run of the same lakehouse holds the run lock: nothing was done."""


class NotFound(LakeforgeError):
    """What was asked for (a machine, a table, a champion model) does not exist yet."""


class MissingDependency(LakeforgeError):
    """An optional driver is not installed; the message names the pip extra."""


class Transient(Exception):
    """Marker mixin: the operation may succeed if retried (network, lock contention)."""
