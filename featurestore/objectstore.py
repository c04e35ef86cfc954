"""Where a store's side files live: beside the tables, on local disk or in an S3 bucket.

Locks, ingest rejects and model runs (`model.onnx`, manifest, metrics, report)
belong to the store, so any machine with the credentials sees them. A local
store keeps them under `<store>/_chromatic/` as before; an `s3://` store keeps
them under `s3://bucket/prefix/_chromatic/`, read and written with boto3 (the
client the S3 writer lease needs anyway, so one mapping of storage options
serves both). Storage options come from the `AWS_*` environment and from
`--storage-option key=value`, in Lance's own key names, which both Lance and
boto3 are given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from featurestore.errors import StoreError

SIDE_DIR = "_chromatic"
# Lance's option names -> the environment variable that gives them when no option does.
_ENV_OPTIONS = {
    "aws_endpoint": ("AWS_ENDPOINT_URL", "AWS_ENDPOINT"),
    "aws_region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "aws_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "aws_session_token": ("AWS_SESSION_TOKEN",),
    "allow_http": ("AWS_ALLOW_HTTP",),
}
_ALIASES = {"endpoint": "aws_endpoint", "endpoint_url": "aws_endpoint", "aws_endpoint_url": "aws_endpoint",
            "region": "aws_region", "access_key_id": "aws_access_key_id",
            "secret_access_key": "aws_secret_access_key", "session_token": "aws_session_token",
            "aws_allow_http": "allow_http"}
DEFAULT_LEASE_TTL_S = 60.0


# Folders under a store's side files: model runs (fusion/runs.py), writer locks and leases (store.py).
RUNS_DIR, LOCKS_DIR = "models", "locks"


@dataclass(frozen=True)
class StoreOptions:
    """How to reach a store: object-store options (Lance key names) and the writer lease's expiry.

    Built at the edge (`from_cli`); library code only reads it.
    """

    storage: tuple[tuple[str, str], ...] = ()
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S

    def __post_init__(self):
        if isinstance(self.storage, dict):
            object.__setattr__(self, "storage", tuple(sorted(self.storage.items())))
        canonical = {_ALIASES.get(k.lower(), k.lower()): str(v) for k, v in self.storage}
        object.__setattr__(self, "storage", tuple(sorted(canonical.items())))
        if not self.lease_ttl_s > 0:
            raise StoreError(f"lease_ttl_s must be > 0 seconds, got {self.lease_ttl_s}")

    @classmethod
    def from_cli(cls, pairs: list[str] | tuple[str, ...] = (), **kwargs) -> "StoreOptions":
        """`key=value` strings, as given to `--storage-option`."""
        parsed = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise StoreError(f"--storage-option takes key=value (e.g. aws_endpoint=http://host:9000), got {pair!r}")
            parsed[key.strip()] = value.strip()
        return cls(tuple(parsed.items()), **kwargs)

    def resolved(self) -> dict[str, str]:
        """The given options over those the `AWS_*` environment supplies."""
        out = {}
        for key, names in _ENV_OPTIONS.items():
            value = next((os.environ[n] for n in names if os.environ.get(n)), None)
            if value is not None:
                out[key] = value
        out.update(dict(self.storage))
        if out.get("aws_endpoint", "").startswith("http://"):
            out.setdefault("allow_http", "true")
        return out


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://")).expanduser().resolve()


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> (`bucket`, `a/b`)."""
    if not uri.startswith("s3://"):
        scheme = uri.split("://", 1)[0]
        raise StoreError(
            f"side files (locks, rejects, model runs) of a {scheme}:// store are not supported yet; "
            "use a local path or an s3:// store (any S3-compatible service: give --storage-option aws_endpoint=…)"
        )
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key.strip("/")


def s3_client(options: StoreOptions):
    import boto3
    from botocore.config import Config

    opts = options.resolved()
    return boto3.client(
        "s3",
        endpoint_url=opts.get("aws_endpoint"),
        region_name=opts.get("aws_region") or "us-east-1",
        aws_access_key_id=opts.get("aws_access_key_id"),
        aws_secret_access_key=opts.get("aws_secret_access_key"),
        aws_session_token=opts.get("aws_session_token"),
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


class LocalFiles:
    """Files under a local directory."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def uri(self, *parts: str) -> str:
        return str(self.root.joinpath(*parts))

    def exists(self, *parts: str) -> bool:
        return self.root.joinpath(*parts).is_file()

    def read_bytes(self, *parts: str) -> bytes:
        return self.root.joinpath(*parts).read_bytes()

    def write_bytes(self, data: bytes, *parts: str) -> None:
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def upload(self, local: Path, *parts: str) -> str:
        """Copy a local file or directory here (nothing to do when it already is here)."""
        target = self.root.joinpath(*parts)
        if Path(local).resolve() != target.resolve():
            import shutil

            copy = shutil.copytree if Path(local).is_dir() else shutil.copy2
            target.parent.mkdir(parents=True, exist_ok=True)
            copy(local, target, **({"dirs_exist_ok": True} if Path(local).is_dir() else {}))
        return str(target)

    def download(self, dest: Path, *parts: str) -> Path:
        """Already local: the directory itself, nothing copied."""
        return self.root.joinpath(*parts)

    def children(self, *parts: str) -> list[str]:
        """Names directly under `parts` (files and directories), sorted; [] when there is nothing."""
        folder = self.root.joinpath(*parts)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def remove(self, *parts: str) -> None:
        """Delete a file, or a directory with everything under it."""
        import shutil

        path = self.root.joinpath(*parts)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class S3Files:
    """Files under an `s3://bucket/prefix`."""

    def __init__(self, root_uri: str, options: StoreOptions):
        self.bucket, self.prefix = split_s3(root_uri)
        self.client = s3_client(options)

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p)

    def uri(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"

    def exists(self, *parts: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(*parts))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _s3_error(exc, self.uri(*parts)) from exc

    def read_bytes(self, *parts: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(*parts))["Body"].read()
        except ClientError as exc:
            raise _s3_error(exc, self.uri(*parts)) from exc

    def write_bytes(self, data: bytes, *parts: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(*parts), Body=data)

    def upload(self, local: Path, *parts: str) -> str:
        local = Path(local)
        files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else [local]
        for path in files:
            relative = path.relative_to(local).as_posix() if local.is_dir() else ""
            self.client.upload_file(str(path), self.bucket, self.key(*parts, relative))
        return self.uri(*parts)

    def download(self, dest: Path, *parts: str) -> Path:
        """Every object under `parts` into directory `dest` (kept as a cache; re-fetched each call)."""
        prefix = self.key(*parts) + "/"
        found = False
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                target = Path(dest) / obj["Key"][len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, obj["Key"], str(target))
                found = True
        if not found:
            raise StoreError(f"nothing at {self.uri(*parts)}/")
        return Path(dest)

    def children(self, *parts: str) -> list[str]:
        """Names directly under `parts`: objects, and the "directories" their keys imply; sorted."""
        prefix = self.key(*parts) + "/"
        names: set[str] = set()
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            names.update(p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", []))
            names.update(obj["Key"][len(prefix):] for obj in page.get("Contents", []))
        return sorted(names - {""})

    def remove(self, *parts: str) -> None:
        """Delete the object at `parts` and every object under `parts/`."""
        keys = [self.key(*parts)]
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                            Prefix=self.key(*parts) + "/"):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


def _s3_error(exc, uri: str) -> StoreError:
    code = exc.response.get("Error", {}).get("Code", "?")
    if code in ("404", "NoSuchKey", "NotFound"):
        return StoreError(f"{uri} does not exist")
    return StoreError(f"cannot read {uri}: {code}; check the credentials and --storage-option settings")


def files_at(uri: str | os.PathLike, options: StoreOptions | None = None) -> LocalFiles | S3Files:
    """The files under a local directory or an object-store URI."""
    uri = str(uri)
    if is_local(uri):
        return LocalFiles(local_path(uri))
    return S3Files(uri, options or StoreOptions())
