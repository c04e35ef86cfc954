"""`mert`: MERT-v1 style self-supervised music features, mean-pooled.

A segment is resampled once to the feature extractor's rate (24 kHz for
MERT-v1), cut into deterministic windows (see `encoders.hf.window_starts`),
and each window runs through the model with all hidden states returned. The
chosen `layers` (indices into hidden_states: 0 is the convolutional
front-end's output, -1 the last transformer layer) are each mean-pooled over
time and then averaged, so the output is (hidden_size,) whatever the number
of layers; window vectors are averaged per segment. Vectors are not
normalised: MERT features are used raw by probes.

The real MERT-v1 checkpoints ship their own model code (model_type
"mert_model", loaded with trust_remote_code); HuBERT-architecture checkpoints
load natively through the same path.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from encoders.base import BadInput, EncoderConfig, EncoderInput
from encoders.errors import EncoderError
from encoders.hf import HFEncoder, check_window_params, cut_windows, to_numpy
from encoders.media import check_audio, check_modality, resample
from encoders.registry import register

# Windows per forward pass; the conv front-end's activations dominate memory.
WINDOWS_PER_FORWARD = 8
# HuBERT/wav2vec2 front-end defaults, used when a config does not list its own.
_DEFAULT_CONV_KERNEL = (10, 3, 3, 3, 3, 2, 2)
_DEFAULT_CONV_STRIDE = (5, 2, 2, 2, 2, 2, 2)


@dataclass(frozen=True)
class MertEncoderConfig(EncoderConfig):
    model: str = "m-a-p/MERT-v1-95M"  # hub id (from the local cache) or a local directory
    layers: tuple[int, ...] = (-1,)  # hidden_states indices, averaged
    window_s: float = 10.0
    hop_s: float | None = None  # None: equal to the window (no overlap)
    max_windows: int = 6
    # Only consulted when the checkpoint ships its own code (MERT-v1 does).
    trust_remote_code: bool = True

    def __post_init__(self):
        check_window_params(self.window_s, self.hop_s, self.max_windows)
        object.__setattr__(self, "layers", tuple(self.layers))  # a list from JSON/Python stays hashable
        if not self.layers or not all(isinstance(i, int) for i in self.layers):
            raise EncoderError(f"mert layers must be one or more integers, e.g. -1 or 6,12; got {self.layers!r}")


@register("mert")
class MertEncoder(HFEncoder):
    config_cls = MertEncoderConfig
    modalities = ("audio",)
    kind = "vector"
    dtype = "float32"
    code_version = "1"

    @property
    def shape(self) -> tuple[int, ...]:
        self.layer_positions()
        return (int(self.hf_config().hidden_size),)

    def layer_positions(self) -> list[int]:
        """Configured layers as non-negative indices into hidden_states (validated)."""
        n_states = int(self.hf_config().num_hidden_layers) + 1
        bad = [i for i in self.config.layers if not -n_states <= i < n_states]
        if bad:
            raise EncoderError(
                f"mert layers {bad} out of range: {self.model_id} has {n_states} hidden states; "
                f"choose indices in {-n_states}..{n_states - 1} (0 = conv front-end, -1 = last layer)"
            )
        return [i % n_states for i in self.config.layers]

    def min_samples(self) -> int:
        """Shortest input that yields one frame from the convolutional front-end."""
        cfg = self.hf_config()
        kernels = getattr(cfg, "conv_kernel", _DEFAULT_CONV_KERNEL)
        strides = getattr(cfg, "conv_stride", _DEFAULT_CONV_STRIDE)
        needed = 1
        for kernel, stride in reversed(list(zip(kernels, strides))):
            needed = (needed - 1) * stride + kernel
        return needed

    def prepare(self, item: EncoderInput, modality: str) -> list[np.ndarray]:
        """Audio -> normalised input values of each window."""
        check_modality(self, modality)
        fe = self.feature_extractor()
        sr = int(fe.sampling_rate)
        wave = resample(check_audio(item.audio, item.sample_rate), item.sample_rate, sr)
        if len(wave) < self.min_samples():
            raise BadInput(
                f"audio too short for mert: {len(wave)} samples at {sr} Hz, needs at least {self.min_samples()}"
            )
        window = round(self.config.window_s * sr)
        hop = window if self.config.hop_s is None else max(1, round(self.config.hop_s * sr))
        return [
            np.asarray(fe(w, sampling_rate=sr, return_tensors="np")["input_values"][0], dtype=np.float32)
            for w in cut_windows(wave, window, hop, self.config.max_windows)
        ]

    def encode_batch(self, prepared: list[list[np.ndarray]]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, *self.shape), dtype=np.float32)
        windows = [w for item in prepared for w in item]
        owners = np.repeat(np.arange(len(prepared)), [len(item) for item in prepared])
        window_vecs = self._embed_windows(windows)
        return np.stack([window_vecs[owners == i].mean(axis=0) for i in range(len(prepared))]).astype(np.float32)

    def _embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        # Only equal-length windows share a forward pass: padding would leak
        # into the front-end's group norm and into the time mean.
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, w in enumerate(windows):
            by_length[len(w)].append(i)
        out = np.zeros((len(windows), self.shape[0]), dtype=np.float32)
        for length in sorted(by_length):
            idx = by_length[length]
            for start in range(0, len(idx), WINDOWS_PER_FORWARD):
                chunk = idx[start : start + WINDOWS_PER_FORWARD]
                out[chunk] = self._forward(np.stack([windows[i] for i in chunk]))
        return out

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        model, positions = self.model(), self.layer_positions()
        with torch.inference_mode():
            values = torch.from_numpy(batch).to(self.device)
            hidden = model(input_values=values, output_hidden_states=True).hidden_states
            per_layer = torch.stack([hidden[p].mean(dim=1) for p in positions])  # [layers, batch, hidden]
            return to_numpy(per_layer.mean(dim=0))
