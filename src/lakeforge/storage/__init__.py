"""Where files live: one ``Location`` for local folders (S3-compatible stores come with ingestion)."""

from lakeforge.storage.location import FileInfo, Location

__all__ = ["FileInfo", "Location"]
