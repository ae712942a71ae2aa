"""One root exception and a few subclasses users can act on.

Every message says what was tried and how to fix it; the CLI prints one red line
(``--debug`` shows the traceback).

Transient or permanent is a matter of type, decided once where a driver is called: each backend (object storage,
the Delta log, PostgreSQL, Snowflake, DuckDB, Spark) maps its driver's exceptions to ``StorageError``,
``WarehouseError`` or ``EngineError`` -- or to their transient forms (``TransientStorageError``, ...), which carry
the :class:`Transient` mixin -- and the retry policy (:mod:`lakeforge.retry`) reads nothing but the type.
Every other lakeforge error is permanent: a bad configuration, SQL or data does not fix itself.
"""

from __future__ import annotations

from typing import Self, cast


class LakeforgeError(Exception):
    """Root of every error lakeforge raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  fix: {hint}")

    @classmethod
    def typed(cls, message: str, *, hint: str | None = None, transient: bool) -> Self:
        """This error, or its transient form when a boundary's mapper decided ``transient`` (``StorageError`` ->
        ``TransientStorageError``, ``WarehouseError`` -> ``TransientWarehouseError``, ``EngineError`` ->
        ``TransientEngineError``)."""
        if not transient or issubclass(cls, Transient):
            return cls(message, hint=hint)
        form = _TRANSIENT_FORMS.get(cls)
        if form is None:
            raise TypeError(f"{cls.__name__} has no transient form")
        return cast(Self, form(message, hint=hint))


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


class Transient(Exception):
    """Mixin: the same work may succeed if tried again (the store throttling or failing with 5xx, a timeout, a
    connection lost or refused, a lock another process holds, a commit that lost a race). Only the boundary that
    called the driver puts it on an error; :func:`lakeforge.retry.is_transient` reads it."""


class WarehouseError(LakeforgeError):
    """Loading or querying the warehouse failed, and trying again will not help (SQL, permissions, credentials)."""


class TransientWarehouseError(WarehouseError, Transient):
    """The warehouse could not be reached or dropped the work for now (connection lost or refused, server
    shutting down, serialization failure, a lock held by another process): retried."""


class StorageError(LakeforgeError):
    """A file, folder or object lakeforge must write or read is not available, and trying again will not help
    (read-only, no permission, access denied, no such bucket, disk full)."""


class TransientStorageError(StorageError, Transient):
    """The object store or the Delta log failed for now (throttling, 5xx, a timeout, a connection lost or
    refused, a commit that lost a race to another): retried."""


class EngineError(LakeforgeError):
    """The compute engine could not run the work, through no fault of the model's SQL (out of memory, the Spark
    driver gone)."""


class TransientEngineError(EngineError, Transient):
    """The compute engine failed for now (a Spark job lost its connection to the store or to Spark Connect):
    retried."""


class RunLocked(LakeforgeError):
    """Another run of the same lakehouse holds the run lock: nothing was done."""


class NotFound(LakeforgeError):
    """What was asked for (a machine, a table, a champion model) does not exist yet."""


class MissingDependency(LakeforgeError):
    """An optional driver is not installed; the message names the pip extra."""



_TRANSIENT_FORMS: dict[type[LakeforgeError], type[LakeforgeError]] = {
    StorageError: TransientStorageError, WarehouseError: TransientWarehouseError, EngineError: TransientEngineError,
}
