"""`chromatic optimize`: compact fragments and remove old table versions, never a pinned one.

Every commit (each upsert batch of ingest and encode) adds a Lance version, and a
version keeps the files it references. Removing versions older than the
retention period frees what no recent reader can still be using; versions a
model run tagged (featurestore/pins.py) stay, so `chromatic eval RUN` keeps
working. Ingest and encode already tidy the tables they wrote at their end;
this command does every table, e.g. after deleting runs or with a shorter retention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from featurestore.errors import StoreError, WriterLockedError
from featurestore.schemas import MEDIA
from featurestore.store import DEFAULT_RETENTION, OptimizeStats, Store

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """'7d', '12h', '30m', '0s', '2w' -> timedelta."""
    match = _DURATION.match(text or "")
    if not match:
        raise StoreError(f"bad duration {text!r}; use a number and a unit s, m, h, d or w, e.g. 7d or 12h")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


@dataclass(frozen=True)
class OptimizeConfig:
    older_than: timedelta = DEFAULT_RETENTION
    tables: tuple[str, ...] = ()  # empty: every table
    compact_media: bool = True  # rewrites small media fragments (blobs) into ~256 MB ones


@dataclass
class OptimizeReport:
    tables: list[OptimizeStats]
    busy: list[str]  # tables another process was writing: left alone

    @property
    def bytes_removed(self) -> int:
        return sum(t.bytes_removed for t in self.tables)

    def to_dict(self) -> dict:
        return {"tables": [t.to_dict() for t in self.tables], "busy": self.busy, "bytes_removed": self.bytes_removed}


def optimize_store(store: Store, config: OptimizeConfig = OptimizeConfig()) -> OptimizeReport:
    """Optimize each table under its writer lock; a table being written is skipped and listed."""
    names = store.table_names()
    unknown = [t for t in config.tables if t not in names]
    if unknown:
        raise StoreError(f"no table(s) {', '.join(unknown)} in this store; tables: {', '.join(names) or '(none)'}")
    report = OptimizeReport([], [])
    for name in config.tables or names:
        try:
            with store.writer(name):
                compact = config.compact_media or name != MEDIA
                report.tables.append(store.optimize(name, config.older_than, compact=compact))
        except WriterLockedError:
            report.busy.append(name)
    return report
