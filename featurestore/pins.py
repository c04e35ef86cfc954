"""Model runs pin the exact table versions they read.

A run tags every version it trained on with its run id (a Lance tag), so
cleanup (`chromatic optimize`) never removes them, and records each table's
identity (store.py `identity`), so a table deleted and re-created under the
same name is told apart from the one the run read: the new table's version N
is other data. `check_pins` says precisely why a run's data can no longer be read.
"""

from __future__ import annotations

from dataclasses import dataclass

from featurestore.store import Store


@dataclass(frozen=True)
class Pin:
    table: str
    version: int
    identity: str | None  # None: recorded by a run from before identities

    def to_dict(self) -> dict:
        return {"version": self.version, "identity": self.identity}


def pin_versions(store: Store, run_id: str, versions: dict[str, int]) -> dict[str, Pin]:
    """Tag every table version with `run_id`; -> {table: Pin}."""
    pins = {}
    for table, version in versions.items():
        store.tag_version(table, run_id, version)
        pins[table] = Pin(table, int(version), store.identity(table, assign=True))
    return pins


def unpin(store: Store, run_id: str, tables) -> None:
    """Remove a run's tags (a failed or deleted run), so cleanup may reclaim those versions."""
    for table in tables:
        if store.has_table(table):
            store.delete_tag(table, run_id)


def check_pins(store: Store, run_id: str, pins: dict[str, Pin]) -> list[str]:
    """Why each pinned version can no longer be read as it was (empty: all readable)."""
    problems = []
    for table, pin in pins.items():
        if not store.has_table(table):
            problems.append(f"table {table} no longer exists (run {run_id} read version {pin.version} of it)")
            continue
        current = store.identity(table)
        if pin.identity is not None and current != pin.identity:
            problems.append(
                f"table {table} was deleted and re-created after run {run_id} was trained (table id "
                f"{pin.identity} then, {current} now): its version {pin.version} is other data"
            )
        elif run_id not in store.tags(table) and pin.identity is not None:
            problems.append(f"{table}: the tag of run {run_id} on version {pin.version} is gone")
    return problems


def pins_from_manifest(versions: dict[str, int], identities: dict[str, str | None]) -> dict[str, Pin]:
    return {t: Pin(t, int(v), identities.get(t)) for t, v in versions.items()}
