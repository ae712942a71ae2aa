"""``lakeforge status``: what the lakehouse holds, what waits in the landing zone, and the last run."""

from __future__ import annotations

from typing import Any

from lakeforge.pipeline.runner import last_run
from lakeforge.workspace import Workspace


def status(workspace: Workspace) -> dict[str, Any]:
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
    backlog = {}
    for name in workspace.config.sources:
        ingestor = workspace.ingestor(name)
        found = ingestor.discover()
        files = found.backlog()
        changed = [] if ingestor.source.allow_overwrites else found.changed
        backlog[name] = {"files": len(files), "bytes": sum(f.size for f in files),
                         "changed_after_ingest": len(changed)}
    return {"project": workspace.config.name, "tables": tables, "quarantine_rows": quarantine,
            "backlog": backlog, "last_run": last_run(workspace)}

