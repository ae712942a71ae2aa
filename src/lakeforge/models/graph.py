"""The model graph, read from the SQL: dependencies, unknown tables and cycles are errors before any run."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from graphlib import CycleError, TopologicalSorter

from lakeforge.errors import ModelError
from lakeforge.models.model import Model


class ModelGraph:
    def __init__(self, models: list[Model], *, sources: list[str]) -> None:
        self.models = {m.name: m for m in models}
        self.sources = [f"bronze.{s}" for s in sources]
        known = set(self.models) | set(self.sources)
        sorter: TopologicalSorter[str] = TopologicalSorter()
        for model in models:
            deps = model.upstream()
            for dep in deps:
                if dep not in known:
                    raise ModelError(
                        f"model {model.name} ({model.path}) reads {dep}, which is neither a source's bronze "
                        "table nor a model",
                        hint=f"known tables: {', '.join(sorted(known))}",
                    )
                if dep == model.name:
                    raise ModelError(f"model {model.name} reads itself", hint="remove the self-reference")
            sorter.add(model.name, *[d for d in deps if d in self.models])
        try:
            self.order = [n for n in sorter.static_order() if n in self.models]
        except CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise ModelError(f"the models form a cycle: {cycle}", hint="break the cycle; data flows one way") from None

    def ordered(self) -> list[Model]:
        return [self.models[n] for n in self.order]

    def select(self, patterns: list[str] | None, *, modified: Callable[[], set[str]] | None = None) -> list[Model]:
        """Models matching ``patterns`` in run order: ``name`` (``gold.x``, or ``x`` when one layer has it; globs
        allowed, e.g. ``gold.*``), ``tag:<tag>`` (``-- tags: [...]`` in the header), ``name+`` with everything
        downstream, ``+name`` with everything upstream, ``state:modified`` the models whose SQL or
        output-changing settings differ from what their tables were built with (``modified`` says which; as in
        dbt). None selects every model."""
        if not patterns:
            return self.ordered()
        chosen: set[str] = set()
        for raw in (p for pattern in patterns for p in pattern.replace(",", " ").split()):
            up, down = raw.startswith("+"), raw.endswith("+")
            base = raw.strip("+")
            if base == "state:modified":
                if modified is None:
                    raise ModelError("--select state:modified needs the lakehouse to compare with",
                                     hint="select by name here")
                matched = [n for n in self.order if n in modified()]
            elif base.startswith("tag:"):
                matched = [n for n in self.order if base[4:] in self.models[n].config.tags]
            else:
                matched = self._named(base)
            if not matched and base.startswith(("state:", "tag:")):
                if base.startswith("tag:"):
                    tags = sorted({t for m in self.models.values() for t in m.config.tags})
                    raise ModelError(f"--select {raw!r}: no model has the tag {base[4:]!r}",
                                     hint=f"tags: {', '.join(tags)}" if tags else
                                     "tag models in their header: `-- tags: [daily]`")
                if base != "state:modified":
                    raise ModelError(f"--select {raw!r}: the only state selector is state:modified",
                                     hint="use state:modified or state:modified+")
                continue  # nothing is modified: selects nothing
            if not matched:
                raise ModelError(f"--select {raw!r} matches no model",
                                 hint=f"models: {', '.join(self.order)}; use name, name+, +name, globs like gold.*, "
                                      "tag:<tag> or state:modified")
            for name in matched:
                chosen.add(name)
                if down:
                    chosen.update(self.downstream_of(name))
                if up:
                    chosen.update(self.upstream_of(name))
        return [self.models[n] for n in self.order if n in chosen]

    def _named(self, pattern: str) -> list[str]:
        """The models a name or glob selects: ``layer.table``, or a bare ``table`` when one layer has it."""
        if "." in pattern:
            return [n for n in self.order if fnmatch.fnmatch(n, pattern)]
        matched = [n for n in self.order if fnmatch.fnmatch(n.split(".", 1)[1], pattern)]
        if len(matched) > 1 and not any(c in pattern for c in "*?["):
            raise ModelError(f"--select {pattern!r} is ambiguous: {', '.join(matched)}",
                             hint=f"name the layer, e.g. --select {matched[0]}")
        return matched

    def upstream_of(self, name: str) -> list[str]:
        found: list[str] = []
        stack = [name]
        while stack:
            for dep in self.models[stack.pop()].upstream():
                if dep in self.models and dep not in found:
                    found.append(dep)
                    stack.append(dep)
        return found

    def downstream_of(self, name: str) -> list[str]:
        out = []
        for model in self.ordered():
            if name in model.upstream() or any(u in out for u in model.upstream()):
                out.append(model.name)
        return out
