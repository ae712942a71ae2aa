"""Ingestion: landing files into bronze Delta tables, each file exactly once."""

from lakeforge.ingest.loader import Ingestor

__all__ = ["Ingestor"]
