"""Slowly changing dimensions, type 2: every change of a key's tracked columns becomes a version with
``valid_from``, ``valid_to`` (NULL while current) and ``is_current``.

A run recomputes the history of the keys its new rows touch (their stored versions plus the new rows, in
``updated_at`` order, unchanged repeats collapsed, ``valid_to`` from the next version) and merges it on
``(key, valid_from)`` in one commit: a late, older version slots in between, and a re-delivered row changes
nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakeforge.engines.base import Engine, Relation
from lakeforge.sql import DUCKDB

if TYPE_CHECKING:
    import pyarrow as pa

SCD_COLUMNS = ("valid_from", "valid_to", "is_current")


def history(engine: Engine, *, new: pa.Table, old: Relation | None, keys: list[str], updated_at: str,
            track: list[str]) -> tuple[pa.Table, int]:
    """The versions of the keys in ``new`` (to merge on key and ``valid_from``), and how many of them are
    new rows (the rest of ``new`` repeated the version before it)."""
    engine.register("__lf_scd_new", new)
    columns = [c for c in new.column_names if c not in SCD_COLUMNS]
    cols = ", ".join(DUCKDB.ident(c) for c in columns)
    key_list = ", ".join(DUCKDB.ident(k) for k in keys)
    tracked = ", ".join(DUCKDB.ident(c) for c in track) or "NULL"
    parts = [f"SELECT {cols}, CAST({DUCKDB.ident(updated_at)} AS TIMESTAMPTZ) AS valid_from, 1 AS __lf_src "
             "FROM __lf_scd_new"]
    if old is not None:
        engine.register("__lf_scd_old", old)
        parts.append(f"SELECT {cols}, valid_from, 0 AS __lf_src FROM __lf_scd_old "
                     f"WHERE ({key_list}) IN (SELECT ({key_list}) FROM __lf_scd_new)")
    sql = f"""
        WITH versions AS ({' UNION ALL BY NAME '.join(parts)}),
        latest AS (  -- one version per key and time: a re-delivery wins over what was stored
            SELECT * FROM versions
            QUALIFY row_number() OVER (PARTITION BY {key_list}, valid_from ORDER BY __lf_src DESC) = 1),
        marked AS (
            SELECT *, hash({tracked}) AS __lf_h,
                   lag(hash({tracked})) OVER (PARTITION BY {key_list} ORDER BY valid_from) AS __lf_prev
            FROM latest),
        changes AS (SELECT * FROM marked WHERE __lf_prev IS NULL OR __lf_prev <> __lf_h)
        SELECT * EXCLUDE (__lf_h, __lf_prev),
               lead(valid_from) OVER (PARTITION BY {key_list} ORDER BY valid_from) AS valid_to,
               lead(valid_from) OVER (PARTITION BY {key_list} ORDER BY valid_from) IS NULL AS is_current
        FROM changes ORDER BY {key_list}, valid_from
    """
    import pyarrow.compute as pc

    table = engine.query_arrow(sql, relations={})
    from_new = int(pc.sum(table["__lf_src"]).as_py() or 0)
    return table.drop_columns(["__lf_src"]), from_new
