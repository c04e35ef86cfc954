"""The `encoders` and `models` registries: what each feature table and model run is."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone

import pyarrow as pa

from featurestore.errors import StoreError, VersionConflictError
from featurestore.schemas import ENCODERS, ENCODERS_SCHEMA, MODELS, MODELS_SCHEMA
from featurestore.store import Store, sql_quote


# fusion/runs.py writes a run's directory under this prefix, then renames it to the run id.
PARTIAL_RUN_PREFIX = ".partial-"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class EncoderRecord:
    """One registry row: the identity and state of one feature table."""

    table_name: str
    modality: str
    encoder: str
    version: str
    kind: str  # vector | tensor
    shape: tuple[int, ...]
    dtype: str
    params: str  # canonical JSON of the encoder config
    model_id: str | None
    weights_fingerprint: str | None
    fingerprint: str
    code_version: str
    state: str = "building"
    rows: int = 0
    present: int = 0
    absent: int = 0
    failed: int = 0
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    @property
    def spec(self) -> str:
        return f"{self.encoder}:{self.version}"

    @property
    def params_dict(self) -> dict:
        return json.loads(self.params)

    def to_row(self) -> dict:
        row = asdict(self)
        row["shape"] = list(self.shape)
        return row

    @classmethod
    def from_row(cls, row: dict) -> "EncoderRecord":
        row = dict(row)
        row["shape"] = tuple(row["shape"])
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


def get_encoder_record(store: Store, table_name: str) -> EncoderRecord | None:
    if not store.has_table(ENCODERS):
        return None
    rows = store.read(ENCODERS, where=f"table_name = {sql_quote(table_name)}").to_pylist()
    return EncoderRecord.from_row(rows[0]) if rows else None


def list_encoder_records(store: Store) -> list[EncoderRecord]:
    if not store.has_table(ENCODERS):
        return []
    return sorted(
        (EncoderRecord.from_row(r) for r in store.read(ENCODERS).to_pylist()), key=lambda r: r.table_name
    )


def put_encoder_record(store: Store, record: EncoderRecord) -> None:
    store.ensure_table(ENCODERS)
    row = replace(record, updated_at=utcnow()).to_row()
    with store.writer(ENCODERS, timeout_s=30):
        store.upsert(ENCODERS, pa.Table.from_pylist([row], schema=ENCODERS_SCHEMA))


def claim_version(store: Store, record: EncoderRecord) -> EncoderRecord:
    """Register a new version, or return the stored one if its config is identical.

    Versions are immutable: another config under the same name is refused with
    a message that shows the stored config.
    """
    existing = get_encoder_record(store, record.table_name)
    if existing is None:
        put_encoder_record(store, record)
        return record
    if existing.fingerprint != record.fingerprint:
        raise VersionConflictError(
            f"{record.table_name} already exists with another config and versions are immutable.\n"
            f"  stored: params={existing.params} model={existing.model_id} "
            f"weights={existing.weights_fingerprint} code={existing.code_version}\n"
            f"  asked:  params={record.params} model={record.model_id} "
            f"weights={record.weights_fingerprint} code={record.code_version}\n"
            f"Choose a new version (e.g. --version {_next_free_version(store, record)}) "
            f"or re-run with the stored config to resume."
        )
    return existing


def _next_free_version(store: Store, record: EncoderRecord) -> str:
    """`v<n>` one past the highest numbered version of this modality and encoder."""
    taken = {r.version for r in list_encoder_records(store)
             if r.modality == record.modality and r.encoder == record.encoder}
    numbers = [int(v[1:]) for v in taken if v[:1] == "v" and v[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1}"


@dataclass(frozen=True)
class ModelRecord:
    run_id: str
    inputs: dict  # {input name: "encoder:version"}
    feature_tables: dict  # {table name: lance version}
    config: dict
    metrics: dict
    artifact_path: str
    created_at: datetime = field(default_factory=utcnow)

    def to_row(self) -> dict:
        row = asdict(self)
        for key in ("inputs", "feature_tables", "config", "metrics"):
            row[key] = json.dumps(row[key], sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: dict) -> "ModelRecord":
        row = dict(row)
        for key in ("inputs", "feature_tables", "config", "metrics"):
            row[key] = json.loads(row[key] or "{}")
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


def put_model_record(store: Store, record: ModelRecord) -> None:
    store.ensure_table(MODELS)
    with store.writer(MODELS, timeout_s=30):
        store.upsert(MODELS, pa.Table.from_pylist([record.to_row()], schema=MODELS_SCHEMA))


def list_model_records(store: Store) -> list[ModelRecord]:
    if not store.has_table(MODELS):
        return []
    rows = [ModelRecord.from_row(r) for r in store.read(MODELS).to_pylist()]
    return sorted(rows, key=lambda r: r.created_at)


def get_model_record(store: Store, run_id: str) -> ModelRecord:
    for record in list_model_records(store):
        if record.run_id == run_id:
            return record
    known = ", ".join(r.run_id for r in list_model_records(store)) or "(none)"
    raise StoreError(f"no model run {run_id!r} in {store.uri}; known runs: {known}")
