"""`basicpitch`: audio -> a transcribed [pitch x time] roll on pianoroll's grid.

Spotify's basic-pitch (Apache-2.0) ships a small pretrained polyphonic note
transcription network inside its wheel as ONNX; this encoder runs that file with
onnxruntime, so it needs no download and no tensorflow. The package's own
`run_inference` is not called: it reads audio only from files (the store holds
waveforms), and it picks whichever backend is installed (tensorflow first),
which would change the numbers under the same fingerprint. The pre/post-
processing below is basic-pitch 0.4.0's `run_inference`, step for step, and a
test holds its posteriors equal to `run_inference`'s on a rendered clip:

* audio resampled to 22 050 Hz (soxr_hq, as `librosa.load` does), 3 840 zeros
  (half of a 30-frame overlap) prepended, cut into 43 844-sample windows every
  36 164 samples, the last one zero-padded;
* each window gives 172 frames of note posteriors (88 keys, A0..C8); 15 frames
  are dropped from each end of every window and the rest concatenated, then
  trimmed to the audio's length (`unwrap_output`).

Frame i of window w (after the trim) is centred on sample w*36164 + i*256 of
the original audio, exactly: dropping 15 frames undoes the 3 840-sample
padding. (basic-pitch's own note decoder uses an approximate correction.)

The roll: step k covers [k*res, (k+1)*res) like pianoroll's; its value in a key's
row is the largest note posterior of the frames overlapping the step (rows
outside 21..108 stay 0), or 1/0 against `threshold` when one is set. So a
transcribed roll and a MIDI roll (binary or velocity) are the same kind of input.

Identity: the weights file's content hash is the fingerprint, so a changed file
under the same table version is refused like any changed checkpoint.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from encoders.base import BadInput, Encoder, EncoderConfig, EncoderInput
from encoders.hf import fingerprint_file
from encoders.media import check_audio, check_modality, resample
from encoders.pianoroll import PITCHES, check_grid
from encoders.registry import register
from encoders.errors import EncoderError

SAMPLE_RATE = 22_050
FFT_HOP = 256
WINDOW_SAMPLES = 2 * SAMPLE_RATE - FFT_HOP  # 43 844: the network's fixed input length
OVERLAP_FRAMES = 30
OVERLAP_SAMPLES = OVERLAP_FRAMES * FFT_HOP
HOP_SAMPLES = WINDOW_SAMPLES - OVERLAP_SAMPLES
TRIM_FRAMES = OVERLAP_FRAMES // 2
NETWORK_FRAMES = 172  # output frames per window (centred frames: ceil(43844 / 256))
KEPT_FRAMES = NETWORK_FRAMES - 2 * TRIM_FRAMES
FRAME_S = FFT_HOP / SAMPLE_RATE
# basic-pitch trims to floor(len * 86 / 22050) frames (its ANNOTATIONS_FPS is 22050 // 256).
OUTPUT_FPS = SAMPLE_RATE // FFT_HOP
LOWEST_KEY = 21  # A0, the network's first note bin
KEYS = 88
BUNDLED_MODEL = ("saved_models", "icassp_2022", "nmp.onnx")
_INPUT, _NOTE = "serving_default_input_2:0", "StatefulPartitionedCall:1"
# Windows per onnxruntime call: bounds activation memory, does not change outputs.
WINDOWS_PER_RUN = 16


@dataclass(frozen=True)
class BasicPitchConfig(EncoderConfig):
    resolution_ms: float = 100.0
    steps: int = 256
    threshold: float | None = None  # None: posteriors in [0, 1]; a number: 1 where posterior >= it
    model: str | None = None  # an nmp.onnx file; None: the one inside the installed basic-pitch wheel

    def __post_init__(self):
        check_grid(self, "basicpitch")
        if self.threshold is not None:
            object.__setattr__(self, "threshold", float(self.threshold))
            if not 0.0 < self.threshold < 1.0:
                raise EncoderError(f"basicpitch threshold must be between 0 and 1, got {self.threshold}; e.g. 0.5")


@dataclass(frozen=True)
class PreparedAudio:
    windows: np.ndarray  # [n_windows, WINDOW_SAMPLES, 1] float32
    samples: int  # length of the audio at SAMPLE_RATE, before padding


@register("basicpitch")
class BasicPitchEncoder(Encoder):
    config_cls = BasicPitchConfig
    modalities = ("audio",)
    kind = "tensor"
    dtype = "float16"
    code_version = "1"
    config: BasicPitchConfig

    def __init__(self, config: EncoderConfig, device: str = "cpu"):
        super().__init__(config, device)
        self._session = None

    def __getstate__(self) -> dict:
        # The onnxruntime session does not pickle; spawned workers only `prepare`.
        return {**self.__dict__, "_session": None}

    @property
    def shape(self) -> tuple[int, ...]:
        return (PITCHES, self.config.steps)

    @property
    def model_id(self) -> str:
        return self.config.model or "basic-pitch:" + "/".join(BUNDLED_MODEL)

    def model_path(self) -> Path:
        return Path(self.config.model).expanduser() if self.config.model else bundled_model_path()

    def weights_fingerprint(self) -> str:
        path = self.model_path()
        if not path.is_file():
            raise EncoderError(
                f"basicpitch weights file {path} does not exist; point the encoder's `model` param at an "
                "nmp.onnx file (e.g. basic_pitch/saved_models/icassp_2022/nmp.onnx) or leave it unset"
            )
        return fingerprint_file(path)

    @property
    def is_loaded(self) -> bool:
        return self._session is not None

    def session(self):
        if self._session is None:
            self.weights_fingerprint()  # a missing file is reported as such, not as an onnxruntime error
            self._session = load_session(self.model_path())
        return self._session

    def prepare(self, item: EncoderInput, modality: str) -> PreparedAudio:
        check_modality(self, modality)
        wave = resample(check_audio(item.audio, item.sample_rate), item.sample_rate, SAMPLE_RATE)
        return PreparedAudio(cut_windows(wave), int(wave.size))

    def encode_batch(self, prepared: list[PreparedAudio]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, *self.shape), dtype=np.float16)
        notes = run_network(self.session(), np.concatenate([p.windows for p in prepared]))
        bounds = np.cumsum([0] + [len(p.windows) for p in prepared])
        rolls = [
            posterior_roll(unwrap(notes[a:b], p.samples), self.config)
            for p, a, b in zip(prepared, bounds[:-1], bounds[1:])
        ]
        return np.stack(rolls).astype(np.float16)


def bundled_model_path() -> Path:
    """The ONNX file inside the installed wheel, found without importing basic_pitch (which logs
    a warning about tensorflow and costs ~0.4 s)."""
    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError(
            "basic-pitch is not installed, so its bundled weights are missing; install it with "
            "`pip install --no-deps basic-pitch==0.4.0` (see the Makefile) or set the encoder's `model` param "
            "to an nmp.onnx file"
        )
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*BUNDLED_MODEL)


def load_session(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # A few threads, not spinning: the encode job's workers and other jobs share the CPU.
    options.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        raise EncoderError(
            f"onnxruntime cannot load the basicpitch weights {path}: {exc}; point the `model` param at an "
            "intact nmp.onnx file"
        ) from exc


def cut_windows(wave: np.ndarray) -> np.ndarray:
    """basic-pitch's padding and windowing: [n_windows, WINDOW_SAMPLES, 1]."""
    padded = np.concatenate([np.zeros(OVERLAP_SAMPLES // 2, dtype=np.float32), wave])
    starts = range(0, padded.size, HOP_SAMPLES)
    windows = np.zeros((len(starts), WINDOW_SAMPLES), dtype=np.float32)
    for row, start in enumerate(starts):
        chunk = padded[start : start + WINDOW_SAMPLES]
        windows[row, : chunk.size] = chunk
    return windows[:, :, None]


def run_network(session: Any, windows: np.ndarray) -> np.ndarray:
    """Note posteriors [n_windows, 172, 88] of each window."""
    if not len(windows):
        raise BadInput("audio gave no analysis windows")
    outs = [
        session.run([_NOTE], {_INPUT: windows[start : start + WINDOWS_PER_RUN]})[0]
        for start in range(0, len(windows), WINDOWS_PER_RUN)
    ]
    notes = np.concatenate(outs)
    if notes.shape[1:] != (NETWORK_FRAMES, KEYS):
        raise EncoderError(
            f"the basicpitch weights give note posteriors of shape {notes.shape[1:]} per window, not "
            f"({NETWORK_FRAMES}, {KEYS}); this encoder needs basic-pitch's icassp_2022 nmp.onnx architecture"
        )
    return notes


def unwrap(windows: np.ndarray, samples: int) -> np.ndarray:
    """basic-pitch's `unwrap_output`: overlaps trimmed, windows joined, cut to the audio -> [frames, 88]."""
    kept = windows[:, TRIM_FRAMES:-TRIM_FRAMES, :]
    frames = int(np.floor(samples * (OUTPUT_FPS / SAMPLE_RATE)))
    return kept.reshape(-1, kept.shape[-1])[:frames]


def frame_times(n_frames: int) -> np.ndarray:
    """Centre time (s) of each unwrapped frame in the original audio (see the module doc)."""
    index = np.arange(n_frames)
    return ((index // KEPT_FRAMES) * HOP_SAMPLES + (index % KEPT_FRAMES) * FFT_HOP) / SAMPLE_RATE


def posterior_roll(notes: np.ndarray, config: BasicPitchConfig) -> np.ndarray:
    """Frame posteriors [frames, 88] -> a [128, steps] roll: per step, the max over overlapping frames."""
    roll = np.zeros((config.steps, PITCHES), dtype=np.float32)  # time-major while filling
    res_s = config.resolution_ms / 1000.0
    centres = frame_times(len(notes))
    first = np.floor(np.maximum(centres - FRAME_S / 2, 0.0) / res_s).astype(np.int64)
    last = np.ceil((centres + FRAME_S / 2) / res_s).astype(np.int64) - 1  # inclusive
    for offset in range(int((last - first).max(initial=0)) + 1):
        step = first + offset
        hit = (step <= last) & (step < config.steps)
        np.maximum.at(roll[:, LOWEST_KEY : LOWEST_KEY + KEYS], step[hit], notes[hit])
    if config.threshold is not None:
        roll = (roll >= config.threshold).astype(np.float32)
    return roll.T
