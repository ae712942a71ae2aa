"""S3 and S3-compatible object stores (MinIO, Ceph, moto ...), through pyarrow's S3 file system.

Credentials come from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``),
from a named profile, or from the usual AWS chain; they are never logged or printed (``repr`` shows only the
URI).
"""

from __future__ import annotations

import configparser
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pyarrow import fs as pafs

from lakeforge.config.models import StorageConfig
from lakeforge.storage.base import FileInfo, Location, visible
from lakeforge.storage.errors import storage_error
from lakeforge.storage.local import LocalLocation

T = TypeVar("T")


def _credentials(settings: StorageConfig) -> tuple[str | None, str | None, str | None]:
    key, secret, token = (os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY"),
                          os.environ.get("AWS_SESSION_TOKEN"))
    profile = settings.profile or os.environ.get("AWS_PROFILE")
    if profile and not (key and secret):
        path = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")).expanduser()
        parser = configparser.ConfigParser()
        parser.read(path)
        if profile in parser:
            section = parser[profile]
            key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
            token = section.get("aws_session_token")
    return key, secret, token


class S3Location(Location):
    is_local = False

    def __init__(self, uri: str, *, settings: StorageConfig) -> None:
        self.uri = uri.rstrip("/")
        bucket_path = self.uri.removeprefix("s3://")
        self.bucket, _, self.prefix = bucket_path.partition("/")
        self.settings = settings
        key, secret, token = _credentials(settings)
        endpoint = settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        scheme = "https"
        host = endpoint
        if endpoint and "://" in endpoint:
            scheme, host = endpoint.split("://", 1)
        self._options: dict[str, str] = {"AWS_REGION": settings.region}
        if endpoint:
            self._options["AWS_ENDPOINT_URL"] = endpoint
            if scheme == "http":
                self._options["AWS_ALLOW_HTTP"] = "true"
        if key and secret:
            self._options["AWS_ACCESS_KEY_ID"] = key
            self._options["AWS_SECRET_ACCESS_KEY"] = secret
            if token:
                self._options["AWS_SESSION_TOKEN"] = token
        self._options.update(settings.delta_options)
        self.fs = pafs.S3FileSystem(
            access_key=key, secret_key=secret, session_token=token, region=settings.region,
            endpoint_override=host, scheme=scheme, allow_bucket_creation=False,
        )

    @property
    def storage_options(self) -> dict[str, str]:
        return dict(self._options)

    def _path(self, rel: str = "") -> str:
        parts = [self.bucket, self.prefix, rel.strip("/")]
        return "/".join(p for p in parts if p)

    def _rel(self, path: str) -> str:
        root = self._path()
        return path[len(root):].lstrip("/")

    def list_files(self, prefix: str, *, pattern: str = "*") -> list[FileInfo]:
        selector = pafs.FileSelector(self._path(prefix), recursive=True, allow_not_found=True)
        found = []
        for info in self._call(lambda: self.fs.get_file_info(selector), what=f"list {self.join(prefix)}"):
            if info.type != pafs.FileType.File:
                continue
            rel = self._rel(info.path)
            below = rel[len(prefix.strip("/")):].lstrip("/").split("/")
            if any(part.startswith((".", "_")) for part in below[:-1]) or not visible(below[-1], pattern):
                continue
            mtime = int(info.mtime.timestamp() * 1000) if info.mtime else 0
            found.append(FileInfo(rel, int(info.size or 0), mtime))
        return sorted(found)

    def list_dirs(self, prefix: str) -> list[str]:
        selector = pafs.FileSelector(self._path(prefix), recursive=False, allow_not_found=True)
        infos = self._call(lambda: self.fs.get_file_info(selector), what=f"list {self.join(prefix)}")
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def exists(self, rel: str) -> bool:
        info = self._call(lambda: self.fs.get_file_info(self._path(rel)), what=f"stat {self.join(rel)}")
        return bool(info.type != pafs.FileType.NotFound)

    def stat(self, rel: str) -> FileInfo | None:
        info = self._call(lambda: self.fs.get_file_info(self._path(rel)), what=f"stat {self.join(rel)}")
        if info.type != pafs.FileType.File:
            return None
        return FileInfo(rel, int(info.size or 0), int(info.mtime.timestamp() * 1000) if info.mtime else 0)

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        def read() -> bytes:
            with self.fs.open_input_file(self._path(rel)) as handle:
                size = handle.size()
                return bytes(handle.read_at(max(min(end, size) - start, 0), start)) if start < size else b""
        return self._call(read, what=f"read {self.join(rel)}")

    def read_bytes(self, rel: str) -> bytes:
        def read() -> bytes:
            with self.fs.open_input_stream(self._path(rel)) as stream:
                return bytes(stream.read())
        return self._call(read, what=f"read {self.join(rel)}")

    def write_bytes_atomic(self, rel: str, data: bytes) -> None:
        # a single PUT: S3 makes the object visible whole or not at all
        def write() -> None:
            with self.fs.open_output_stream(self._path(rel)) as stream:
                stream.write(data)
        self._call(write, what=f"write {self.join(rel)}")

    def move(self, src: str, dst: str) -> None:
        self._call(lambda: self.fs.copy_file(self._path(src), self._path(dst)), what=f"copy {self.join(src)}")
        self.delete(src)

    def delete(self, rel: str) -> None:
        self._call(lambda: self.fs.delete_file(self._path(rel)), what=f"delete {self.join(rel)}")

    @contextmanager
    def local_copies(self, files: list[FileInfo]) -> Iterator[Location]:
        with tempfile.TemporaryDirectory(prefix="lakeforge-s3-") as tmp:
            root = Path(tmp)
            for info in files:
                target = root / info.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.read_bytes(info.path))
            yield LocalLocation(root)

    def _call(self, fn: Callable[[], T], *, what: str) -> T:
        """``fn()``, its pyarrow errors mapped to a StorageError (transient or not, :mod:`lakeforge.storage.errors`)."""
        try:
            return fn()
        except OSError as exc:
            raise storage_error(exc, what=what) from None
