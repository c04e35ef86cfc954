"""One writer per table across machines: a lease object in the store's bucket.

Two writers on one Lance table can both insert the same key with merge_insert,
so each table has one writer at a time. On an `s3://` store the writer holds
`_chromatic/locks/<table>.lease`, created with a conditional write
(`If-None-Match: *`, put-if-absent: the primitive Lance's own commits rely on).
A heartbeat thread renews it (`If-Match` on the lease's ETag) every third of its
time to live; a writer killed with `kill -9` stops renewing, and once the lease
is older than its TTL (by the server's clock: `LastModified` against the
response's `Date`, so client clocks do not matter) the next writer takes it over,
again with `If-Match`, so two contenders cannot both win. A writer whose
lease was lost (a pause longer than the TTL) refuses its next commit.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from featurestore.errors import WriterLockedError

_POLL_S = 0.5


class S3Lease:
    """Hold `key` in `bucket` for one table; a context manager (see the module docstring)."""

    def __init__(self, client, bucket: str, key: str, table: str, ttl_s: float, timeout_s: float = 0.0):
        self.client, self.bucket, self.key, self.table = client, bucket, key, table
        self.ttl_s, self.timeout_s = ttl_s, timeout_s
        self.holder = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
                       "since": datetime.now(timezone.utc).isoformat(timespec="seconds"), "ttl_s": ttl_s}
        self.etag: str | None = None
        self.lost: str | None = None
        self._renewed_at = 0.0  # monotonic time of the last write that kept the lease ours
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "S3Lease":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- taking ---------------------------------------------------------------
    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            if self._put(IfNoneMatch="*"):
                break
            current = self._current()
            if current is None:
                continue  # released between our put and our read: try again at once
            body, etag, age_s = current
            if age_s > float(body.get("ttl_s", self.ttl_s)) and self._put(IfMatch=etag):
                break  # an expired holder (killed, or cut off): taken over atomically
            if time.monotonic() >= deadline:
                raise WriterLockedError(_held_message(self.table, body, age_s))
            time.sleep(_POLL_S)
        self._thread = threading.Thread(target=self._heartbeat, name=f"lease-{self.table}", daemon=True)
        self._thread.start()

    def _put(self, **condition) -> bool:
        """A conditional write of our lease body; False if the condition failed."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=json.dumps(self.holder).encode(),
                                              ContentType="application/json", **condition)
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "NoSuchKey", "404"):
                return False
            raise
        self.etag = response["ETag"]
        self._renewed_at = time.monotonic()
        return True

    def _current(self) -> tuple[dict, str, float] | None:
        """(holder body, ETag, age in seconds by the server's clock), or None if there is no lease."""
        return read_lease(self.client, self.bucket, self.key)

    # -- holding --------------------------------------------------------------
    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                renewed = self._put(IfMatch=self.etag)
            except Exception:  # noqa: BLE001 - a network blip: the next beat tries again
                continue
            if not renewed:
                self.lost = "another writer took the lease over after it expired (this process paused too long)"
                return

    def check(self) -> None:
        """Raise if the lease was lost, or may have expired unseen (this process was paused or cut off
        past its TTL): committing now could duplicate keys with a new holder."""
        if self.lost is None and time.monotonic() - self._renewed_at > self.ttl_s:
            self.lost = f"it was last renewed more than its {self.ttl_s:g}s TTL ago, so another writer may hold it"
        if self.lost is not None:
            raise WriterLockedError(
                f"lost the writer lease of table {self.table!r}: {self.lost}. Nothing more is written; "
                "re-run the job when the other writer is done: it resumes where this one stopped"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost is None and self.etag is not None:
            from botocore.exceptions import ClientError

            try:  # only our own lease: a taken-over one has another ETag
                self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
            except ClientError:
                pass  # already gone or taken over; it expires either way


def read_lease(client, bucket: str, key: str) -> tuple[dict, str, float] | None:
    """A lease's (holder body, ETag, age in seconds by the server's clock), or None if there is none.

    The body names host, pid, since and ttl_s; the age is LastModified (the last heartbeat) against the
    response's Date, so the reader's clock does not matter."""
    from botocore.exceptions import ClientError

    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _code(exc) in ("NoSuchKey", "404"):
            return None
        raise
    try:
        body = json.loads(response["Body"].read() or b"{}")
    except ValueError:  # not written by S3Lease (or cut short): no holder to name, it expires by its age
        body = {}
    if not isinstance(body, dict):
        body = {}
    server_now = parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"])
    return body, response["ETag"], (server_now - response["LastModified"]).total_seconds()


def _code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _held_message(table: str, body: dict, age_s: float) -> str:
    ttl = float(body.get("ttl_s", 0))
    return (
        f"table {table!r} is being written by another process: host {body.get('host', '?')}, pid "
        f"{body.get('pid', '?')}, since {body.get('since', '?')} (lease renewed {age_s:.0f}s ago, expires "
        f"{ttl:.0f}s after its last renewal). Wait for it to finish; if that process is dead, re-run after "
        f"{max(0.0, ttl - age_s):.0f}s, when its lease expires: the job resumes where it stopped"
    )
