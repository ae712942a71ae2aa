"""The model graph, read from the SQL: dependencies, unknown tables and cycles are errors before any run."""

from __future__ import annotations

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

    def downstream_of(self, name: str) -> list[str]:
        out = []
        for model in self.ordered():
            if name in model.upstream() or any(u in out for u in model.upstream()):
                out.append(model.name)
        return out
