"""The encoder contract.

An encoder turns one modality of a segment into a fixed-shape array. It knows
nothing of the store: the encode job (encoders/job.py) feeds it `EncoderInput`s
and writes what comes back. Work is split in two so the job can overlap them:

* `prepare(item)`: CPU-side decoding/resampling/tokenising of one item; runs in
  worker processes (spawned, never forked). Raises `BadInput` for bad data.
* `encode_batch(prepared)`: the model forward over a batch, in the main process.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np


class BadInput(Exception):
    """One item cannot be encoded; the message becomes its `status` ("error: …")."""


@dataclass(frozen=True)
class EncoderInput:
    """What a segment offers to an encoder; absent modalities are None."""

    segment_id: str
    audio: np.ndarray | None = None  # float32 mono samples
    sample_rate: int | None = None
    midi: bytes | None = None
    text: str | None = None


@dataclass(frozen=True)
class EncoderConfig:
    """Base of every encoder config. Subclasses add their own frozen fields."""

    # Fields a config gained after its encoder's tables were first written: left out of the params JSON at
    # their defaults, so those tables keep their fingerprint and the runs trained on them stay scoreable.
    added_fields: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> str:
        params = asdict(self)
        for spec in fields(self):
            if spec.name in self.added_fields and params[spec.name] == spec.default:
                del params[spec.name]
        return json.dumps(params, sort_keys=True)


class Encoder(ABC):
    """Base class; concrete encoders register with `@register("name")`."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[EncoderConfig]] = EncoderConfig
    # Modalities this encoder can read, e.g. ("audio",) or ("lyrics", "concept").
    modalities: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "vector"  # vector | tensor
    dtype: ClassVar[str] = "float32"
    # Bump when a code change alters the output for the same config and weights.
    code_version: ClassVar[str] = "1"

    def __init__(self, config: EncoderConfig, device: str = "cpu"):
        self.config = config
        self.device = device

    # -- identity ---------------------------------------------------------------
    @property
    @abstractmethod
    def shape(self) -> tuple[int, ...]:
        """Output shape of one item, known without running the model."""

    @property
    def model_id(self) -> str | None:
        """Hub id or local directory of the weights; None for weight-free encoders."""
        return None

    def weights_fingerprint(self) -> str | None:
        """Identity of the weights (content hash); None for weight-free encoders."""
        return None

    def fingerprint(self) -> str:
        """Hash of name + config + weights identity + implementation version."""
        ident = {
            "name": self.name,
            "params": json.loads(self.config.to_json()),
            "weights": self.weights_fingerprint(),
            "code_version": self.code_version,
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

    # -- work -------------------------------------------------------------------
    def prepare(self, item: EncoderInput, modality: str) -> Any:
        """CPU-side work for one item (picklable result). Raise BadInput for bad data."""
        return item

    @abstractmethod
    def encode_batch(self, prepared: list[Any]) -> np.ndarray:
        """Encode prepared items -> array [len(prepared), *shape]."""

    def encode(self, items: list[EncoderInput], modality: str) -> list[np.ndarray | BadInput]:
        """Convenience for scorers and tests: prepare + encode, per-item errors kept."""
        prepared, slots = [], []
        results: list[np.ndarray | BadInput] = [BadInput("not encoded")] * len(items)
        for i, item in enumerate(items):
            try:
                prepared.append(self.prepare(item, modality))
                slots.append(i)
            except BadInput as exc:
                results[i] = exc
        if prepared:
            out = self.encode_batch(prepared)
            for i, row in zip(slots, out):
                results[i] = np.asarray(row)
        return results
