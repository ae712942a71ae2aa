from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from lakeforge.project import Project

pytest_plugins = ["tests.moto_server", "tests.postgres_server", "tests.browser"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def write_project(root: Path, config: dict[str, object], models: dict[str, str]) -> Path:
    """A project folder with ``lakeforge.yml`` and ``models/<layer>/<name>.sql`` files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lakeforge.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for name, sql in models.items():
        layer, table = name.split(".")
        path = root / "models" / layer / f"{table}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(sql).lstrip())
    return root


# The engine suite (ibis-style): a test that takes ``engine`` runs once per engine, each with its marker;
# parametrize it with ``@pytest.mark.parametrize("engine", ENGINES, indirect=True)``.
ENGINES = [pytest.param("duckdb", marks=pytest.mark.duckdb),
           pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow])]


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """The engine under test: ``duckdb`` unless the test is parametrized over ``ENGINES``."""
    return str(getattr(request, "param", "duckdb"))


@pytest.fixture
def make_project(tmp_path: Path, engine: str) -> Iterator[Callable[..., Project]]:
    opened: list[Project] = []

    def make(config: dict[str, object], models: dict[str, str], *, folder: str = "proj") -> Project:
        config = {"name": "test", **config}
        project = Project(write_project(tmp_path / folder, config, models), engine=engine)
        opened.append(project)
        return project

    yield make
    for project in opened:
        project.close()


@pytest.fixture
def example(tmp_path: Path, engine: str) -> Iterator[Project]:
    """The example telemetry project with a small generated landing zone (run by ``engine``)."""
    Project.init(tmp_path / "demo").generate(machines=12, days=3, seed=7, files=6)
    project = Project(tmp_path / "demo", engine=engine)
    yield project
    project.close()


def landing_lines(folder: Path, *, header: bool = False) -> int:
    total = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.startswith((".", "_")):
            lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()]
            total += len(lines) - (1 if header and lines else 0)
    return total
