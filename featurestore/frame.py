"""`chromatic frame`: the joined training frame as one Parquet file, for users who train elsewhere.

The frame is exactly what `chromatic train` reads (`featurestore.join.join`):
every segment with its labels and, per input, a vector column and a boolean
`{input}_mask`. Where it came from (tables, Lance versions, encoder identities)
travels in the file's schema metadata under `chromatic.lineage`, so a model
trained on it can name the exact store state it saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from featurestore.errors import StoreError
from featurestore.join import join
from featurestore.store import Store

LINEAGE_KEY = b"chromatic.lineage"


@dataclass(frozen=True)
class FrameSummary:
    path: Path
    rows: int
    columns: list[str]
    present: dict[str, int]  # input -> rows whose mask is true
    lineage: dict

    def to_dict(self) -> dict:
        return {"path": str(self.path), "rows": self.rows, "columns": self.columns, "present": self.present,
                "lineage": self.lineage}


def write_frame(store: Store, inputs: dict[str, str], out: Path) -> FrameSummary:
    """Join `inputs` ({input: "encoder:version"}) onto `segments` and write it to `out` (Parquet)."""
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise StoreError(f"--out {out} should end in .parquet (the frame is written as Parquet)")
    joined = join(store, inputs)
    lineage = {"store": store.uri, "lance_versions": joined.versions,
               "inputs": {name: source.to_dict() for name, source in joined.sources.items()}}
    metadata = {**(joined.table.schema.metadata or {}), LINEAGE_KEY: json.dumps(lineage, sort_keys=True).encode()}
    table = joined.table.replace_schema_metadata(metadata)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    present = {name: source.present for name, source in joined.sources.items()}
    return FrameSummary(out, table.num_rows, table.column_names, present, lineage)


def read_lineage(path: Path) -> dict:
    """The `chromatic.lineage` metadata of a frame file."""
    metadata = pq.read_schema(path).metadata or {}
    if LINEAGE_KEY not in metadata:
        raise StoreError(f"{path} has no {LINEAGE_KEY.decode()} metadata; was it written by `chromatic frame`?")
    return json.loads(metadata[LINEAGE_KEY])
