"""Where files live: one ``Location`` API over local folders and S3-compatible object stores."""

from lakeforge.storage.base import FileInfo, Location
from lakeforge.storage.factory import open_location

__all__ = ["FileInfo", "Location", "open_location"]
