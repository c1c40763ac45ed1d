"""The artifact store: datasets and adapters as files under the data home, or in S3.

Keys are ``/``-separated paths relative to the store's root. Writes are atomic per object (a local
file is renamed into place), and publishers write a version's data before the pointer that names it,
so a reader never sees half a version.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

from llm_twin_assets.errors import ConfigError, TwinError


class ArtifactError(TwinError):
    pass


class ArtifactStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def uri(self, key: str) -> str: ...
    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix``, sorted (temporary files of unfinished writes excluded)."""
        ...

    def delete(self, key: str) -> None: ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ArtifactError(f"artifact key {key!r} is not a plain relative path")
    return key


def _free_space(folder: Path) -> str:
    """How much room the file system holding ``folder`` (or its nearest existing parent) has left."""
    for candidate in (folder, *folder.parents):
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(candidate).free
            return f"{free / 2**20:.1f} MiB" if free < 2**30 else f"{free / 2**30:.1f} GiB"
    return "unknown space"


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` atomically: a temporary file beside it, flushed to disk, renamed into
        place. On any failure (a full disk, say) the temporary file is removed and an earlier version
        at ``key`` is left as it was."""
        path = self._path(key)
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                # Some file systems report a full disk only here (NFS, quotas, delayed allocation), and
                # without it a crash soon after the rename could leave an empty file under the key.
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ArtifactError(
                    f"cannot write artifact {path}: no space left on the disk holding {self.root} "
                    f"({_free_space(self.root)} free); nothing was written and an earlier version of "
                    f"{key} is unchanged. Fix: free space on that disk (or point LLM_TWIN_ARTIFACTS_URL "
                    "at a store with room), then run it again"
                ) from exc
            raise ArtifactError(f"cannot write artifact {path}: {exc}") from exc
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"artifact {path} does not exist") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def list_keys(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        found = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in found if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith("."))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3ArtifactStore:
    """A bucket and prefix, through a boto3 S3 client (dagster-aws's ``S3Resource.get_client()``)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:  # botocore raises ClientError, EndpointConnectionError, ...
            raise ArtifactError(f"cannot write artifact {self.uri(key)}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except Exception as exc:
            raise ArtifactError(f"cannot read artifact {self.uri(key)}: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise ArtifactError(f"cannot reach artifact {self.uri(key)}: {exc}") from exc
        return True

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def list_keys(self, prefix: str = "") -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + prefix
            )
            for page in pages:
                found += [item["Key"][len(base) :] for item in page.get("Contents", [])]
        except Exception as exc:
            raise ArtifactError(f"cannot list s3://{self.bucket}/{base}{prefix}: {exc}") from exc
        return sorted(found)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise ArtifactError(f"cannot delete artifact {self.uri(key)}: {exc}") from exc


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not url.startswith("s3://") or not bucket:
        raise ConfigError(
            "LLM_TWIN_ARTIFACTS_URL",
            f"{url!r} is not s3://bucket[/prefix]",
            "use s3://bucket/prefix or unset it",
        )
    return bucket, prefix


def local_store(home_artifacts: Path, url: str | None) -> LocalArtifactStore:
    if url and not url.startswith("s3://"):
        return LocalArtifactStore(Path(url.removeprefix("file://")).expanduser().absolute())
    return LocalArtifactStore(home_artifacts)


def open_store(url: str | None, home_artifacts: Path, s3_client: Any = None) -> ArtifactStore:
    """The store a URL names: ``s3://bucket/prefix`` (the given boto3 client, else a default one), a
    folder, or ``home_artifacts`` when the URL is unset."""
    if url and url.startswith("s3://"):
        bucket, prefix = parse_s3_url(url)
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        return S3ArtifactStore(s3_client, bucket, prefix)
    return local_store(home_artifacts, url)


def write_json(store: ArtifactStore, key: str, value: Any) -> None:
    store.put(key, json.dumps(value, indent=2, ensure_ascii=False, default=str).encode())


def read_json(store: ArtifactStore, key: str, missing: str) -> Any:
    """The JSON object at ``key``; ``missing`` (with the object's URI appended) when there is none."""
    if not store.exists(key):
        raise ArtifactError(f"{missing} ({store.uri(key)})")
    return json.loads(store.get(key))
