"""``lakeforge status``: what the lakehouse holds, what waits in the landing zone, and the last run."""

from __future__ import annotations

from typing import TypedDict

from lakeforge.lakehouse.catalog import TableInfoDict
from lakeforge.pipeline.runner import last_run
from lakeforge.results import RunDict
from lakeforge.workspace import Workspace


class SourceBacklog(TypedDict):
    """The files waiting for one source."""

    files: int
    bytes: int
    changed_after_ingest: int  # files changed since they were ingested (their new content is not)


class StatusReport(TypedDict):
    """``lakeforge status``."""

    project: str
    tables: list[TableInfoDict]
    quarantine_rows: int
    backlog: dict[str, SourceBacklog]
    last_run: RunDict | None  # the last run's record


def status(workspace: Workspace) -> StatusReport:
    """The tables, the rows in quarantine, the files waiting per source and the last run (``lakeforge status``)."""
    import pyarrow.compute as pc

    tables = [workspace.catalog.info(name).to_dict() for name in workspace.catalog.names()]
    quarantine = 0
    for table in tables:
        if table["layer"] == "quarantine":
            if table["name"].startswith("quarantine.bronze_"):
                ds = workspace.catalog.dataset(table["name"])
                quarantine += int(pc.sum(ds.to_table(columns=["_rows"])["_rows"]).as_py() or 0)
            else:
                quarantine += int(table["rows"])
    backlog: dict[str, SourceBacklog] = {}
    for name in workspace.config.sources:
        ingestor = workspace.ingestor(name)
        found = ingestor.discover()
        files = found.backlog()
        changed = [] if ingestor.source.allow_overwrites else found.changed
        backlog[name] = {"files": len(files), "bytes": sum(f.size for f in files),
                         "changed_after_ingest": len(changed)}
    return {"project": workspace.config.name, "tables": tables, "quarantine_rows": quarantine,
            "backlog": backlog, "last_run": last_run(workspace)}
