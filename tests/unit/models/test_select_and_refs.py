"""dbt habits: ``--select`` by a bare name, ``tag:``; ``{{ ref() }}`` and ``{{ source() }}`` as the tables they name,
and any other Jinja refused with what to write instead (issue 23)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeforge.errors import ModelError
from lakeforge.models import ModelGraph, load_models
from tests.unit.models.test_models import model_file


def _graph(tmp_path: Path) -> ModelGraph:
    model_file(tmp_path, "silver.readings", "-- tags: [hourly]\nSELECT * FROM {{ source('telemetry') }}\n")
    model_file(tmp_path, "silver.failures", "SELECT * FROM {{ source('landing', 'failures') }}\n")
    model_file(tmp_path, "gold.pdm_daily", "-- tags: [daily, pdm]\nSELECT * FROM {{ ref('silver.readings') }}\n"
                                           "JOIN {{ref(\"failures\")}} USING (machine_id)\n")
    model_file(tmp_path, "gold.readings", "-- tags: [daily]\nSELECT * FROM {{ ref('silver.readings') }}\n")
    return ModelGraph(load_models(tmp_path / "models", dialect="databricks"), sources=["telemetry", "failures"])


def _names(graph: ModelGraph, *patterns: str) -> list[str]:
    return [m.name for m in graph.select(list(patterns))]


def test_ref_and_source_are_the_tables_they_name(tmp_path: Path) -> None:
    graph = _graph(tmp_path)
    assert sorted(graph.models["gold.pdm_daily"].upstream()) == ["silver.failures", "silver.readings"]
    assert graph.models["silver.readings"].upstream() == ["bronze.telemetry"]
    assert graph.models["silver.failures"].upstream() == ["bronze.failures"]
    assert graph.order.index("silver.readings") < graph.order.index("gold.pdm_daily")


def test_select_by_bare_name_tag_and_graph_operators(tmp_path: Path) -> None:
    graph = _graph(tmp_path)
    assert _names(graph, "pdm_daily") == ["gold.pdm_daily"]
    assert sorted(_names(graph, "tag:daily")) == ["gold.pdm_daily", "gold.readings"]
    assert _names(graph, "tag:pdm", "failures") == ["silver.failures", "gold.pdm_daily"]
    assert set(_names(graph, "+pdm_daily")) == {"silver.readings", "silver.failures", "gold.pdm_daily"}
    assert _names(graph, "failures+") == ["silver.failures", "gold.pdm_daily"]
    assert _names(graph, "pdm_*") == ["gold.pdm_daily"]
    with pytest.raises(ModelError, match=r"'readings' is ambiguous: silver\.readings, gold\.readings") as caught:
        graph.select(["readings"])
    assert "--select silver.readings" in (caught.value.hint or "")
    with pytest.raises(ModelError, match="no model has the tag 'weekly'") as caught:
        graph.select(["tag:weekly"])
    assert "daily, hourly, pdm" in (caught.value.hint or "")


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT * FROM {{ ref('nope') }}", r"line 1: ref\('nope'\) names no model"),
    ("SELECT * FROM {{ ref('x') }}", r"line 1: ref\('x'\) is ambiguous: gold\.x, silver\.x"),
    ("SELECT 1 AS a\n{% if is_incremental() %} WHERE 1 = 1 {% endif %}", r"line 2: Jinja is not supported: '\{% if"),
    ("SELECT {{ var('day') }} AS d FROM silver.x", r"line 1: Jinja is not supported: \"\{\{ var"),
    ("{{ config(materialized='table') }}\nSELECT 1 AS a", r"line 1: Jinja is not supported"),
    ("SELECT * FROM {{ ref(x) }}", r"ref\(x\) takes quoted names"),
])
def test_other_jinja_is_an_error_that_says_what_to_write(tmp_path: Path, sql: str, message: str) -> None:
    model_file(tmp_path, "silver.x", "SELECT 1 AS a\n")
    model_file(tmp_path, "gold.x", "SELECT 1 AS a\n")
    model_file(tmp_path, "gold.bad", sql + "\n")
    with pytest.raises(ModelError, match=message) as caught:
        load_models(tmp_path / "models", dialect="databricks")
    assert "gold" in str(caught.value) and "bad.sql" in str(caught.value)
    assert "plain SQL" in (caught.value.hint or "") or "gold.x" in (caught.value.hint or "")
