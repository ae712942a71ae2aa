"""A location from a URI: a local folder or ``s3://bucket/prefix``."""

from __future__ import annotations

from pathlib import Path

from lakeforge.config.models import StorageConfig
from lakeforge.errors import ConfigError
from lakeforge.storage.base import Location
from lakeforge.storage.local import LocalLocation


def open_location(uri: str, *, base_dir: Path, settings: StorageConfig | None = None) -> Location:
    settings = settings or StorageConfig()
    if uri.startswith(("s3://", "s3a://")):
        from lakeforge.storage.s3 import S3Location

        return S3Location("s3://" + uri.split("://", 1)[1], settings=settings)
    if "://" in uri and not uri.startswith("file://"):
        scheme = uri.split("://", 1)[0]
        raise ConfigError(f"location {uri!r}: the {scheme}:// scheme is not supported",
                          hint="use a local folder or s3://bucket/prefix (any S3-compatible endpoint)")
    path = Path(uri.removeprefix("file://"))
    return LocalLocation(path if path.is_absolute() else base_dir / path)
