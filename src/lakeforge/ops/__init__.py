"""Services over a project: the scheduler (:mod:`.scheduler`), alerts and their channels (:mod:`.alerts`,
:mod:`.channels`), metrics (:mod:`.metrics`), lineage (:mod:`.lineage`), service-level objectives (:mod:`.slo`)
and ``lakeforge serve`` (:mod:`.serve`). They receive the opened :class:`~lakeforge.pipeline.workspace.Workspace`
(or the settings they need), never the ``Project``."""
