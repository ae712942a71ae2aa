"""Compute engines behind one boundary. ``duckdb`` is the embedded default."""

from lakeforge.engines.base import Engine, EngineCapabilities, ModelOutput, create_engine

__all__ = ["Engine", "EngineCapabilities", "ModelOutput", "create_engine"]
