"""Small deterministic encoders for the encode-job tests, registered like real ones.

`FAKE_ENCODER_DELAY_S` (environment, not config, so it leaves the fingerprint
alone) slows `encode_batch` down for kill-midway tests.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np

from encoders.base import BadInput, Encoder, EncoderConfig, EncoderInput
from encoders.registry import register

# Texts seen by FakeText.encode_batch, which runs in the job's main process.
TEXT_CALLS: list[str] = []


def _delay() -> None:
    time.sleep(float(os.environ.get("FAKE_ENCODER_DELAY_S", "0")))


@dataclass(frozen=True)
class FakeAudioConfig(EncoderConfig):
    scale: float = 1.0


@register("fake_audio")
class FakeAudio(Encoder):
    """[mean, std, seconds] of the waveform, times `scale`."""

    config_cls = FakeAudioConfig
    modalities = ("audio",)

    @property
    def shape(self) -> tuple[int, ...]:
        return (3,)

    def prepare(self, item: EncoderInput, modality: str) -> np.ndarray:
        wave = np.asarray(item.audio, dtype=np.float64)
        if not np.all(np.isfinite(wave)):
            raise BadInput(f"audio has {int(np.sum(~np.isfinite(wave)))} NaN samples")
        return np.array([wave.mean(), wave.std(), wave.size / item.sample_rate]) * self.config.scale

    def encode_batch(self, prepared: list[np.ndarray]) -> np.ndarray:
        _delay()
        return np.stack(prepared).astype(np.float32)


@register("fake_midi")
class FakeMidi(Encoder):
    """A 2 x 4 'tensor' of byte statistics of the MIDI file."""

    modalities = ("midi",)
    kind = "tensor"

    @property
    def shape(self) -> tuple[int, ...]:
        return (2, 4)

    def prepare(self, item: EncoderInput, modality: str) -> np.ndarray:
        if not item.midi.startswith(b"MThd"):
            raise BadInput("undecodable MIDI (no MThd header)")
        data = np.frombuffer(item.midi, dtype=np.uint8).astype(np.float64)
        return np.array([data.size, data.mean(), data.std(), data.max(), data.min(), data[:8].sum(), 1, 0])

    def encode_batch(self, prepared: list[np.ndarray]) -> np.ndarray:
        return np.stack(prepared).reshape(len(prepared), 2, 4).astype(np.float32)


@dataclass(frozen=True)
class FakeTextConfig(EncoderConfig):
    model: str = "fake/text-model"


@register("fake_text")
class FakeText(Encoder):
    """A hash of the text; `model` stands in for a weights id."""

    config_cls = FakeTextConfig
    modalities = ("lyrics", "concept")

    @property
    def shape(self) -> tuple[int, ...]:
        return (4,)

    @property
    def model_id(self) -> str | None:
        return self.config.model

    def weights_fingerprint(self) -> str | None:
        return hashlib.sha256(self.config.model.encode()).hexdigest()[:12]

    def prepare(self, item: EncoderInput, modality: str) -> str:
        if not (item.text or "").strip():
            raise BadInput("empty text")
        return item.text

    def encode_batch(self, prepared: list[str]) -> np.ndarray:
        _delay()
        TEXT_CALLS.extend(prepared)
        digests = [hashlib.sha256((self.config.model + t).encode()).digest()[:4] for t in prepared]
        return np.array([[b / 255 for b in d] for d in digests], dtype=np.float32)


@register("fake_buggy")
class FakeBuggy(Encoder):
    """An encoder whose prepare() has a bug (not bad data): the job must stop, naming the segment."""

    modalities = ("audio",)

    @property
    def shape(self) -> tuple[int, ...]:
        return (1,)

    def prepare(self, item: EncoderInput, modality: str):
        raise ZeroDivisionError("division by zero")

    def encode_batch(self, prepared):
        return np.zeros((len(prepared), 1), dtype=np.float32)


@dataclass(frozen=True)
class FakeSlowAudioConfig(FakeAudioConfig):
    delay_s: float = 0.0
    pid_dir: str = ""  # each process that encodes writes `<pid>` here (so a test can kill it)


@register("fake_slow_audio")
class FakeSlowAudio(FakeAudio):
    """fake_audio that takes its time and says which processes ran it (config, so it reaches Ray actors)."""

    config_cls = FakeSlowAudioConfig

    def encode_batch(self, prepared: list[np.ndarray]) -> np.ndarray:
        if self.config.pid_dir:
            open(os.path.join(self.config.pid_dir, str(os.getpid())), "w").close()
        time.sleep(self.config.delay_s)
        return np.stack(prepared).astype(np.float32)
