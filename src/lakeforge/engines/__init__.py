"""Compute engines behind one boundary. ``duckdb`` is the embedded default."""

from lakeforge.engines.base import Engine, EngineCapabilities, FileRead, ModelOutput, create_engine

__all__ = ["Engine", "EngineCapabilities", "FileRead", "ModelOutput", "create_engine"]
