"""What watches each run, as configured: OpenLineage events (``monitoring.lineage``), alert rules (``alerts``)."""

from __future__ import annotations

from lakeforge.pipeline.hooks import Observer
from lakeforge.workspace import Workspace


def configured(workspace: Workspace) -> list[Observer]:
    """The observers ``lakeforge.yml`` asks for (their modules, and OpenLineage's client, only when it does)."""
    found: list[Observer] = []
    if workspace.config.monitoring.lineage.transport != "none":
        from lakeforge.ops.lineage import LineageObserver

        found.append(LineageObserver(workspace))
    if workspace.config.alerts.rules:
        from lakeforge.ops.alerts import AlertObserver

        found.append(AlertObserver(workspace))
    return found
