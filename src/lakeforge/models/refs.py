"""dbt's ``{{ ref('x') }}`` and ``{{ source('s', 't') }}`` in a model's SQL, read as the tables they name: a thin
compatibility layer for SQL brought from dbt, not Jinja. Any other template syntax is an error that says so and what
to write instead (a model is plain SQL; its settings are ``-- key: value`` header lines)."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from lakeforge.errors import ModelError

_CALL = re.compile(r"\{\{\s*(ref|source)\s*\(([^{}()]*)\)\s*\}\}")
_TEMPLATE = re.compile(r"\{\{|\{%|\{#")
_ARG = re.compile(r"""^\s*(?:'([^']*)'|"([^"]*)")\s*$""")
PLAIN_SQL = ("lakeforge models are plain SQL: name a table as layer.table (gold.machine_day), or with "
             "{{ ref('machine_day') }} / {{ source('telemetry') }}; settings go in `-- key: value` header lines "
             "(not config()); there are no macros, variables or control blocks")


def _line(text: str, at: int) -> int:
    return text.count("\n", 0, at) + 1


def _args(raw: str, *, path: Path, line: int, call: str) -> list[str]:
    found = [_ARG.match(part) for part in raw.split(",")] if raw.strip() else []
    if not found or not all(found):
        raise ModelError(f"{path} line {line}: {call}({raw}) takes quoted names, e.g. {call}('machine_day')",
                         hint=PLAIN_SQL)
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in found if m]


def _ref(name: str, *, models: Collection[str], path: Path, line: int) -> str:
    if name in models:
        return name
    matches = sorted(m for m in models if m.split(".", 1)[-1] == name)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ModelError(f"{path} line {line}: ref('{name}') is ambiguous: {', '.join(matches)}",
                         hint=f"name the layer: ref('{matches[0]}')")
    raise ModelError(f"{path} line {line}: ref('{name}') names no model",
                     hint=f"models: {', '.join(sorted(models))}; a source's table is {{{{ source('<source>') }}}}")


def resolve(text: str, *, path: Path, models: Collection[str]) -> str:
    """``text`` with each ``{{ ref(...) }}`` and ``{{ source(...) }}`` replaced by the table it names: ``ref('x')``
    is the model ``x`` (``silver.x`` or ``gold.x``, when only one exists) or ``layer.x``; ``source('s')`` and
    ``source('s', 't')`` are the bronze table of source ``s`` (dbt's two-argument form: of ``t``)."""
    if "{" not in text:
        return text

    def table(match: re.Match[str]) -> str:
        call, line = match.group(1), _line(text, match.start())
        args = _args(match.group(2), path=path, line=line, call=call)
        if call == "ref":
            if len(args) > 2:
                raise ModelError(f"{path} line {line}: ref() takes a model's name", hint=PLAIN_SQL)
            return _ref(args[-1], models=models, path=path, line=line)
        if len(args) > 2:
            raise ModelError(f"{path} line {line}: source() takes a source's name", hint=PLAIN_SQL)
        return f"bronze.{args[-1]}"

    out = _CALL.sub(table, text)
    left = _TEMPLATE.search(out)
    if left:
        snippet = out[left.start():left.start() + 40].split("\n", 1)[0]
        raise ModelError(f"{path} line {_line(out, left.start())}: Jinja is not supported: {snippet!r}",
                         hint=PLAIN_SQL)
    return out
