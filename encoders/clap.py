"""`clap`: LAION CLAP audio embeddings (transformers ClapModel), L2-normalised.

A segment is resampled once to the feature extractor's rate (48 kHz), cut into
deterministic windows of the model's input length (10 s), each window becomes
one model input, and the window embeddings are averaged and re-normalised.

Determinism: the feature extractor crops long inputs at random ("rand_trunc")
or fuses random crops ("fusion"), and marks a random item "longer" when none
is. Every window handed to it is at most one input long, so neither random
crop can happen, and `is_longer` is fixed to False (honest: no window is
longer than an input), which keeps fused models on their deterministic path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from encoders.base import EncoderConfig, EncoderInput
from encoders.errors import EncoderError
from encoders.hf import HFEncoder, check_window_params, cut_windows, l2_normalize, to_numpy
from encoders.media import check_audio, check_modality, resample
from encoders.registry import register

# Windows per forward pass; bounds activation memory, does not change outputs.
WINDOWS_PER_FORWARD = 32


@dataclass(frozen=True)
class ClapEncoderConfig(EncoderConfig):
    model: str = "laion/larger_clap_music"  # hub id (from the local cache) or a local directory
    window_s: float | None = None  # None: the model's input length (10 s for LAION CLAP)
    hop_s: float | None = None  # None: equal to the window (no overlap)
    max_windows: int = 6  # long segments keep this many evenly spaced windows

    def __post_init__(self):
        check_window_params(self.window_s, self.hop_s, self.max_windows)


@register("clap")
class ClapEncoder(HFEncoder):
    config_cls = ClapEncoderConfig
    modalities = ("audio",)
    kind = "vector"
    dtype = "float32"
    code_version = "1"

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.hf_config().projection_dim),)

    def _truncation(self) -> str:
        # LAION ships fused checkpoints with "fusion" features (4 mel channels)
        # and unfused ones with "rand_trunc" (1 channel, other mel filters);
        # the model config, not the extractor's default, says which one fits.
        return "fusion" if self.hf_config().audio_config.enable_fusion else "rand_trunc"

    def window_hop_samples(self) -> tuple[int, int]:
        fe = self.feature_extractor()
        sr, limit = int(fe.sampling_rate), int(fe.nb_max_samples)
        window = limit if self.config.window_s is None else round(self.config.window_s * sr)
        if window > limit:
            raise EncoderError(
                f"clap window_s={self.config.window_s} is longer than the model's input "
                f"({limit / sr:g} s); choose window_s <= {limit / sr:g} (or leave it unset)"
            )
        hop = window if self.config.hop_s is None else max(1, round(self.config.hop_s * sr))
        return window, hop

    def prepare(self, item: EncoderInput, modality: str) -> np.ndarray:
        """Audio -> log-mel features of each window, [n_windows, channels, frames, mels]."""
        check_modality(self, modality)
        fe = self.feature_extractor()
        wave = resample(check_audio(item.audio, item.sample_rate), item.sample_rate, fe.sampling_rate)
        window, hop = self.window_hop_samples()
        windows = cut_windows(wave, window, hop, self.config.max_windows)
        # In "fusion" mode the extractor draws from numpy's global RNG (for an
        # is_longer flag we override anyway); restore it so callers' seeded
        # streams are untouched.
        rng_state = np.random.get_state()
        try:
            features = fe(
                windows,
                sampling_rate=fe.sampling_rate,
                max_length=int(fe.nb_max_samples),
                truncation=self._truncation(),
                padding=fe.padding,
                return_tensors="np",
            )
        finally:
            np.random.set_state(rng_state)
        return np.asarray(features["input_features"], dtype=np.float32)

    def encode_batch(self, prepared: list[np.ndarray]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, *self.shape), dtype=np.float32)
        window_emb = self._embed_windows(np.concatenate(prepared))
        bounds = np.cumsum([0] + [len(p) for p in prepared])
        means = np.stack([window_emb[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
        return l2_normalize(means)

    def _embed_windows(self, features: np.ndarray) -> np.ndarray:
        import torch

        model = self.model()
        rows = []
        with torch.inference_mode():
            for start in range(0, len(features), WINDOWS_PER_FORWARD):
                chunk = torch.from_numpy(features[start : start + WINDOWS_PER_FORWARD]).to(self.device)
                is_longer = torch.zeros((len(chunk), 1), dtype=torch.bool, device=self.device)
                # transformers 5 returns an output object; pooler_output is the
                # projected, L2-normalised audio embedding.
                out = model.get_audio_features(input_features=chunk, is_longer=is_longer)
                rows.append(to_numpy(out.pooler_output))
        return np.concatenate(rows)
