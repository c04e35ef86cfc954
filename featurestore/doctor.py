"""`chromatic doctor`: check a store and say, for each problem, the command that fixes it.

Checks, in order: every table opens and its key column reads end to end (a
truncated data file or manifest fails here, naming the table); the encoders
registry against the tables (missing or unregistered tables, counts, a
`complete` state with segments lacking a row); stale feature rows (computed
from inputs that have changed since, featurestore/lineage.py); model runs
against their directories and the tags they pinned; writer-lock files left by
processes that are gone (a writer lock is an flock, released by the kernel when
its holder dies, so a lock only strays when held by a process this machine
cannot see, e.g. over a network file system) and writers at work right now. On
an object store (`s3://`) runs and writer leases are checked in the bucket, where
they live, not in the local cache.

`fix_store` applies only the fixes that lose nothing: removing partial or
unregistered run directories and tags of runs that no longer exist. Damaged
tables need a decision (re-encode, re-ingest), so doctor only says how.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from featurestore.feature_table import is_feature_table
from featurestore.errors import StoreDamagedError
from featurestore.lease import read_lease
from featurestore.objectstore import LOCKS_DIR, RUNS_DIR
from featurestore.registry import PARTIAL_RUN_PREFIX, EncoderRecord, list_encoder_records, list_model_records
from featurestore.lineage import stale_counts
from featurestore.schemas import ENCODERS, KEY, MEDIA, MODELS, SEGMENTS, SYSTEM_KEYS
from featurestore.store import Store

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning
    check: str  # tables | registry | lineage | runs | locks
    subject: str  # a table, a run, a path
    problem: str
    fix: str  # a command, or what to do
    fixable: bool = False  # `chromatic doctor --fix` does it
    tag: str | None = None  # the orphaned tag, for tag findings
    side_path: str | None = None  # a run directory to remove, relative to the store's side files


@dataclass
class DoctorReport:
    store: str
    tables_checked: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(f.severity == ERROR for f in self.findings)

    @property
    def healthy(self) -> bool:
        return self.errors == 0

    def to_dict(self) -> dict:
        return {"store": self.store, "tables_checked": self.tables_checked, "healthy": self.healthy,
                "errors": self.errors, "findings": [asdict(f) for f in self.findings]}


def diagnose(store: Store) -> DoctorReport:
    report = DoctorReport(store.uri)
    names = store.table_names()
    readable = _check_tables(store, names, report)
    records = list_encoder_records(store) if ENCODERS in readable else []
    _check_registry(store, names, readable, records, report)
    if SEGMENTS in readable:
        _check_lineage(store, readable, records, report)
    _check_runs(store, readable, report)
    _check_locks(store, report)
    return report


def _check_tables(store: Store, names: list[str], report: DoctorReport) -> set[str]:
    """Open every table and read its key column in full; -> the tables that read."""
    damaged = unreadable_tables(store, names)
    report.tables_checked += len(names)
    for name, cause in damaged.items():
        report.findings.append(Finding(ERROR, "tables", name, cause, _damaged_fix(store, name)))
    return set(names) - set(damaged)


def unreadable_tables(store: Store, names: list[str] | None = None) -> dict[str, str]:
    """{table: why} for each table that does not open or whose key column does not read in full."""
    damaged = {}
    for name in store.table_names() if names is None else names:
        try:
            rows = store.read(name, [SYSTEM_KEYS.get(name, KEY)]).num_rows
            if rows != store.count(name):
                raise StoreDamagedError(name, f"{rows} keys read but {store.count(name)} rows counted")
        except StoreDamagedError as exc:
            damaged[name] = exc.cause
    return damaged


def name_damaged_tables(error: StoreDamagedError, store_uri: str | None) -> StoreDamagedError:
    """`error` naming the damaged table(s), found by a quick read of each table, when it names none."""
    if error.table is not None:
        return error
    try:
        found = unreadable_tables(Store.open(store_uri, create=False))
    except Exception:  # noqa: BLE001 - naming the table is a courtesy; the error stands without it
        return error
    return StoreDamagedError(", ".join(sorted(found)), error.cause) if found else error


def _damaged_fix(store: Store, name: str) -> str:
    path = f"{store.uri}/{name}.lance"
    if name in (SEGMENTS, MEDIA):
        return f"move {path} aside and re-ingest your inputs (`chromatic ingest FILES`), then `chromatic doctor`"
    if is_feature_table(name):
        return f"move {path} aside, then re-encode it: {_encode_command_of(name, store)}"
    return f"move {path} aside; it is re-created empty (runs or registry rows in it are lost)"


def _encode_command_of(table: str, store: Store) -> str:
    record = next((r for r in list_encoder_records(store) if r.table_name == table), None)
    return encode_command(record) if record else f"`chromatic encode` the encoder of {table}"


def encode_command(record: EncoderRecord) -> str:
    """The `chromatic encode` command that resumes (or rebuilds) a registered feature table."""
    params = " ".join(f"--param {k}={v}" for k, v in sorted(json.loads(record.params).items())
                      if k != "model" and v is not None)
    model = f" --model {record.model_id}" if record.model_id else ""
    extra = f" {params}" if params else ""
    return (f"chromatic encode --encoder {record.encoder} --version {record.version} "
            f"--modality {record.modality}{model}{extra}")


def _check_registry(store, names, readable, records, report: DoctorReport) -> None:
    registered = {r.table_name for r in records}
    for name in sorted(n for n in names if is_feature_table(n) and n not in registered and not n.startswith("fused.")):
        report.findings.append(Finding(WARNING, "registry", name, "feature table has no registry row: its "
                                       "encoder and shape are unknown, so it cannot be joined",
                                       f"move {store.uri}/{name}.lance aside, or re-create it with `chromatic encode`"))
    segment_ids = store.keys(SEGMENTS) if SEGMENTS in readable else None
    for record in records:
        name = record.table_name
        if name not in names:
            report.findings.append(Finding(ERROR, "registry", name, "registered, but the table is missing",
                                           encode_command(record)))
            continue
        if name not in readable:
            continue
        rows = store.count(name)
        if rows != record.rows:
            report.findings.append(Finding(WARNING, "registry", name, f"registry says {record.rows} rows, "
                                           f"the table holds {rows}", encode_command(record)))
        missing = len(segment_ids - store.keys(name)) if segment_ids is not None else 0
        if missing and record.state == "complete":
            report.findings.append(Finding(ERROR, "registry", name, f"marked complete but {missing} segment(s) "
                                           "have no row", encode_command(record)))
        elif missing:
            report.findings.append(Finding(WARNING, "registry", name, f"{missing} segment(s) not encoded yet",
                                           encode_command(record)))


def _check_lineage(store: Store, readable: set[str], records: list[EncoderRecord], report: DoctorReport) -> None:
    """Feature rows computed from inputs that have changed since (see featurestore/lineage.py)."""
    for record in records:
        if record.table_name not in readable:
            continue
        counts = stale_counts(store, record.table_name, record.modality)
        if counts.stale:
            report.findings.append(Finding(ERROR, "lineage", record.table_name, f"{counts.stale} row(s) were "
                                           "computed from inputs that changed since; the join masks them",
                                           encode_command(record)))
        if counts.unrecorded:
            report.findings.append(Finding(WARNING, "lineage", record.table_name, f"{counts.unrecorded} row(s) "
                                           "were written before lineage was recorded; they cannot be checked",
                                           encode_command(record) + "  (re-encodes them and records lineage)"))
        if counts.unknown:
            report.findings.append(Finding(WARNING, "lineage", record.table_name, f"{counts.unknown} row(s) "
                                           "belong to segments ingested before content digests",
                                           "re-ingest your inputs (`chromatic ingest FILES`): it records them"))


def _check_runs(store: Store, readable: set[str], report: DoctorReport) -> None:
    """Run directories against the `models` registry, at the store's URI (a bucket too, not a local cache)."""
    runs = {r.run_id: r for r in list_model_records(store)} if MODELS in readable else {}
    files = store.files
    stored = set(files.children(RUNS_DIR))  # one listing (one LIST request on a bucket) serves both checks
    for name in sorted(stored):
        where = files.uri(RUNS_DIR, name)
        if name.startswith(PARTIAL_RUN_PREFIX):
            report.findings.append(Finding(WARNING, "runs", where, "a run that was interrupted while being "
                                           "saved", f"chromatic doctor --fix  (or delete {where})", fixable=True,
                                           side_path=f"{RUNS_DIR}/{name}"))
        elif name not in runs:
            report.findings.append(Finding(WARNING, "runs", where, "run directory with no row in `models`",
                                           f"chromatic doctor --fix  (or delete {where})", fixable=True,
                                           side_path=f"{RUNS_DIR}/{name}"))
    for run in runs.values():
        if run.run_id not in stored:
            report.findings.append(Finding(ERROR, "runs", run.run_id, f"registered, but {run.artifact_path} "
                                           "is missing", "train it again; the registry row cannot be used"))
    for table in sorted(readable):
        for tag in sorted(set(store.tags(table)) - set(runs)):
            report.findings.append(Finding(WARNING, "runs", table, f"tag {tag!r} pins a version for a run that "
                                           "does not exist; cleanup cannot reclaim it", "chromatic doctor --fix",
                                           fixable=True, tag=tag))


def _check_locks(store: Store, report: DoctorReport) -> None:
    if not store.is_local:
        _check_leases(store, report)
        return
    locks = store.side_dir / LOCKS_DIR
    for path in sorted(locks.glob("*.lock")) if locks.is_dir() else []:
        if _lock_is_free(path):
            continue  # a free lock file is how a finished writer leaves it
        table, pid = path.name.removesuffix(".lock"), path.read_text().strip()
        if pid.isdigit() and _pid_alive(int(pid)):
            report.findings.append(Finding(WARNING, "locks", table, f"being written now by pid {pid}",
                                           f"wait for it, or stop it (kill {pid}); its job resumes when re-run"))
        else:
            report.findings.append(Finding(ERROR, "locks", table, f"lock held, but its writer (pid {pid or '?'}) "
                                           "is not a process on this machine", "find the writer on the other "
                                           "machine and stop it; the lock is released when it exits"))


def _check_leases(store: Store, report: DoctorReport) -> None:
    """Writer leases in the bucket (featurestore/lease.py): who writes now, and leases whose writer stopped."""
    files = store.files
    for name in (n for n in files.children(LOCKS_DIR) if n.endswith(".lease")):
        current = read_lease(files.client, files.bucket, files.key(LOCKS_DIR, name))
        if current is None:
            continue  # released while we looked
        body, _, age_s = current
        table, ttl = name.removesuffix(".lease"), float(body.get("ttl_s", store.options.lease_ttl_s))
        holder = f"{body.get('host', '?')} pid {body.get('pid', '?')} (since {body.get('since', '?')})"
        if age_s <= ttl:
            report.findings.append(Finding(WARNING, "locks", table, f"being written now by {holder}; lease "
                                           f"renewed {age_s:.0f}s ago", f"wait for it, or stop pid "
                                           f"{body.get('pid', '?')} on {body.get('host', '?')}; its job resumes "
                                           "when re-run"))
        else:
            report.findings.append(Finding(WARNING, "locks", table, f"lease of {holder} expired {age_s - ttl:.0f}s "
                                           f"ago (TTL {ttl:g}s): that writer stopped without releasing it",
                                           "nothing to do: the next writer of this table takes it over"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # releases the probe's lock too


def fix_store(store: Store, report: DoctorReport) -> list[Finding]:
    """Apply the fixes that lose nothing (see the module doc); -> the findings fixed."""
    fixed = []
    for finding in (f for f in report.findings if f.fixable):
        if finding.check == "runs" and finding.side_path:
            store.files.remove(*finding.side_path.split("/"))
        elif finding.check == "runs" and finding.tag:
            store.delete_tag(finding.subject, finding.tag)
        else:
            continue
        fixed.append(finding)
    return fixed
