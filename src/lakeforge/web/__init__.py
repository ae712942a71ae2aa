"""The web app of ``lakeforge serve``: executive, operations and equipment dashboards and a read-only SQL
explorer over the warehouse, behind an access token (docs/dashboards.md).

:mod:`.app` (routes, ``data-testid`` list), :mod:`.auth` (the token), :mod:`.queries` (each dashboard's SQL),
:mod:`.store` (the snapshot, the event log, read-only warehouse connections), :mod:`.explorer` (the SQL guard),
:mod:`.pages` and :mod:`.charts` (HTML and inline SVG). Only :mod:`.app` and :mod:`.auth` need FastAPI.
"""
