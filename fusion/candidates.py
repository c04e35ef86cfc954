"""Candidates for the scorer: their inputs, their results, and the chromatic match.

No torch here: the scorer runs on onnxruntime and numpy only.

The chromatic match of a prediction to a target colour is

    match = 0.5 * mean over dimensions of dot(p(modes | dim), soft_target(target, dim))
          + 0.5 * p(color = target)

Each dot product is the expected agreement between the predicted mode
distribution and the target's soft target (taxonomy.soft_target: 0.8/0.1/0.1
for one mode, uniform for "none"), so it lies in [0.1, 0.8] for a single-mode
target and is 1/3 for "none"; the colour term rewards the colour head directly.
Both halves lie in [0, 1], and so does the match. Colours whose three
dimensions are all "none" (Black, White) are told apart by the colour term only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from encoders.base import BadInput, EncoderInput
from encoders.media import check_audio, load_audio_path, load_midi_path
from featurestore.text import has_visible_text
from featurestore.taxonomy import COLORS, DIMENSIONS, MODES, TaxonomyError, canonical_color, color_modes, soft_target
from fusion.errors import ModelError

MATCH_DIMENSION_WEIGHT = 0.5  # the rest (0.5) goes to p(color = target)
CANDIDATE_FIELDS = ("id", "midi", "audio", "sample_rate", "lyrics")
OWN_INPUTS = ("midi", "audio", "lyrics")  # what each candidate may bring; `concept` is shared by the batch


@dataclass(frozen=True)
class Candidate:
    """One thing to score. midi: bytes or a path; audio: mono samples (with sample_rate) or a path."""

    id: str | None = None
    midi: bytes | str | Path | None = None
    audio: np.ndarray | str | Path | None = None
    sample_rate: int | None = None
    lyrics: str | None = None

    def given(self) -> tuple[str, ...]:
        return tuple(name for name in OWN_INPUTS if getattr(self, name) is not None)


def text_or_none(text: str | None) -> str | None:
    """Text with nothing visible ("", blanks, NUL or zero-width only) means "no text", as it does at ingest:
    such inputs take the null path."""
    return None if isinstance(text, str) and not has_visible_text(text) else text


def as_candidate(obj: Any, index: int) -> Candidate:
    """A Candidate from a Candidate, a dict or another dataclass with the same fields; ids default to the
    MIDI/audio file name, else `candidate-<index>`."""
    if isinstance(obj, Candidate):
        candidate = obj
    else:
        data = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
        if not isinstance(data, dict):
            raise ModelError(f"candidate {index} is a {type(obj).__name__}; give a dict or dataclass with any of "
                             f"{', '.join(CANDIDATE_FIELDS)}")
        unknown = sorted(set(data) - set(CANDIDATE_FIELDS))
        if unknown:
            raise ModelError(f"candidate {index} has unknown field(s) {', '.join(unknown)}; "
                             f"valid fields: {', '.join(CANDIDATE_FIELDS)}")
        candidate = Candidate(**data)
    candidate = dataclasses.replace(candidate, lyrics=text_or_none(candidate.lyrics))
    if candidate.id is None:
        path = next((v for v in (candidate.midi, candidate.audio) if isinstance(v, (str, Path))), None)
        candidate = dataclasses.replace(candidate, id=Path(path).name if path else f"candidate-{index}")
    return candidate


def inputs_fed_by(modality: str, reads: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """The model inputs that a candidate giving `modality` alone feeds, given each input's tables' modalities
    ({input: modalities in fill order}): those with a table of that modality. ChromaticScorer routes such a
    candidate through the first of them per input; every other input takes the null path."""
    return tuple(name for name, modalities in reads.items() if modality in tuple(modalities))


def encoder_input(candidate: Candidate, name: str) -> EncoderInput:
    """The candidate's `name` input ready for an encoder; BadInput when it cannot be read."""
    value = getattr(candidate, name)
    if name == "midi":
        data = load_midi_path(value) if isinstance(value, (str, Path)) else value
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BadInput(f"midi must be bytes or a file path, got {type(data).__name__}")
        return EncoderInput(candidate.id, midi=bytes(data))
    if name == "audio":
        if isinstance(value, (str, Path)):
            samples, rate = load_audio_path(value)
        else:
            # The shared check also makes the samples float32, as the store keeps them.
            samples, rate = check_audio(value, candidate.sample_rate), candidate.sample_rate
        return EncoderInput(candidate.id, audio=samples, sample_rate=int(rate))
    if not isinstance(value, str):
        raise BadInput(f"{name} must be a string, got {type(value).__name__}")
    return EncoderInput(candidate.id, text=value)


@dataclass
class ScoreResult:
    id: str
    temporal: dict[str, float] | None = None
    spatial: dict[str, float] | None = None
    ontological: dict[str, float] | None = None
    color: dict[str, float] | None = None
    predicted_color: str | None = None
    match: float | None = None  # None without a target, or on error
    p_target: float | None = None
    rank: int | None = None
    error: str | None = None
    inputs: dict[str, bool] = field(default_factory=dict)  # model input -> fed (true) or null path (false)
    via: dict[str, str] = field(default_factory=dict)  # model input -> the feature table whose encoder fed it
    unused: tuple[str, ...] = ()  # inputs the candidate gave that the model does not take

    def top_mode(self, dimension: str) -> str | None:
        probs = getattr(self, dimension)
        return max(probs, key=probs.get) if probs else None

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "unused": list(self.unused)}


def target_color(target: str | None) -> str | None:
    """The canonical colour name; ModelError listing the colours for an unknown one."""
    if target is None:
        return None
    try:
        return canonical_color(target)
    except TaxonomyError as exc:
        raise ModelError(f"bad target: {exc}") from None


def target_profile(color: str) -> dict[str, np.ndarray]:
    """The target colour's soft target per dimension."""
    modes = color_modes(color)
    return {dim: soft_target(dim, modes.modes(dim)) for dim in DIMENSIONS}


def chromatic_match(probs: dict[str, np.ndarray], color: str) -> tuple[np.ndarray, np.ndarray]:
    """(match, p(color)) per row for probabilities {head: [B, k]}; see the module doc."""
    profile = target_profile(color)
    dims = np.mean([probs[dim] @ profile[dim] for dim in DIMENSIONS], axis=0)
    p_color = probs["color"][:, COLORS.index(color)]
    return MATCH_DIMENSION_WEIGHT * dims + (1 - MATCH_DIMENSION_WEIGHT) * p_color, p_color


def fill_scores(result: ScoreResult, probs: dict[str, np.ndarray], row: int) -> None:
    """Copy row `row` of the heads' probabilities into `result` as {label: prob} dicts."""
    for dim in DIMENSIONS:
        setattr(result, dim, dict(zip(MODES[dim], probs[dim][row].tolist())))
    result.color = dict(zip(COLORS, probs["color"][row].tolist()))
    result.predicted_color = COLORS[int(np.argmax(probs["color"][row]))]


def rank(results: list[ScoreResult]) -> list[ScoreResult]:
    """Best match first; failed candidates last (in input order), every result numbered."""
    scored = sorted((r for r in results if r.error is None), key=lambda r: -(r.match or 0.0))
    ordered = scored + [r for r in results if r.error is not None]
    for position, result in enumerate(ordered, start=1):
        result.rank = position
    return ordered
