"""Shared plumbing for encoders backed by Hugging Face checkpoints.

A checkpoint is named by a hub id (resolved in the local Hugging Face cache,
never downloaded: build machines are offline) or by a local directory. Its
identity is a content hash of the files that decide its outputs, so a store
can tell "same name, other weights" apart. torch and transformers are imported
inside functions only: importing an encoder module stays cheap, and spawned
workers that only `prepare` never pay for them.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np

from encoders.base import Encoder, EncoderConfig
from encoders.device import require_device
from encoders.errors import EncoderError

# Files whose content decides a checkpoint's outputs. Weights are hashed in the
# format transformers will load (safetensors is preferred when both exist);
# configs and tokenizer/feature-extractor files change outputs too.
WEIGHT_SUFFIXES = (".safetensors", ".bin")
IDENTITY_FILES = (
    "config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spm.model",
    "sentencepiece.bpe.model",
)
_HASH_CHUNK = 4 << 20
_fingerprint_cache: dict[tuple, str] = {}


# -- locating a checkpoint ------------------------------------------------------
def resolve_model_dir(model: str) -> Path:
    """A local directory as given, or the cached snapshot of a hub id; never downloads."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if _looks_like_path(model):
        raise EncoderError(
            f"model directory {model!r} does not exist; point --model (the encoder's `model` param) "
            "at a directory holding config.json and the weights"
        )
    snapshot = _cached_snapshot(model)
    if snapshot is None:
        raise EncoderError(_not_on_machine_message(model))
    return snapshot


def _looks_like_path(model: str) -> bool:
    # A hub id is "name" or "owner/name"; anything else can only be a path.
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or (os.sep != "/" and os.sep in model)


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except HFValidationError:
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def _not_on_machine_message(repo_id: str) -> str:
    from huggingface_hub import constants

    return (
        f"the weights of {repo_id!r} are not on this machine (not in the Hugging Face cache "
        f"{constants.HF_HUB_CACHE}) and model downloads are disabled here. Fix: on a machine with "
        f"network run `huggingface-cli download {repo_id} --local-dir <dir>`, copy <dir> here and "
        "pass --model /path/to/<dir> (the encoder's `model` param), or set HF_HOME to a cache that holds it"
    )


# -- identity -------------------------------------------------------------------
def identity_files(model_dir: Path) -> list[Path]:
    """The weight files transformers would load, plus configs and tokenizer files."""
    top = sorted(p for p in model_dir.iterdir() if p.is_file())
    weights = []
    for suffix in WEIGHT_SUFFIXES:
        weights = [p for p in top if p.name.endswith(suffix)]
        if weights:
            break
    if not weights:
        raise EncoderError(
            f"no weight files (*.safetensors or *.bin) in {model_dir}; point --model (the encoder's `model` "
            "param) at a directory written by save_pretrained or a complete hub snapshot"
        )
    return weights + [p for p in top if p.name in IDENTITY_FILES]


def fingerprint_model_dir(model_dir: Path) -> str:
    """Content hash of a checkpoint's identity files; cached per file size/mtime."""
    files = identity_files(model_dir)
    stats = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (str(model_dir.resolve()), stats)
    if key not in _fingerprint_cache:
        total = hashlib.sha256()
        for path in files:
            total.update(f"{path.name}\0{file_sha256(path)}\n".encode())
        _fingerprint_cache[key] = total.hexdigest()[:16]
    return _fingerprint_cache[key]


def fingerprint_file(path: Path) -> str:
    """Content hash of one weights file (e.g. an ONNX model); cached per size/mtime like a directory's."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _fingerprint_cache:
        _fingerprint_cache[key] = file_sha256(Path(path))[:16]
    return _fingerprint_cache[key]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- loading --------------------------------------------------------------------
def load_auto_config(model_dir: Path, trust_remote_code: bool = False):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise EncoderError(f"cannot read the model config in {model_dir}: {exc}{_remote_code_hint(exc)}") from exc


def load_component(loader: Callable[..., Any], model_dir: Path, what: str, **kwargs) -> Any:
    """Call a transformers `from_pretrained` offline; failures become EncoderError."""
    try:
        return loader(str(model_dir), local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise EncoderError(f"cannot load the {what} from {model_dir}: {exc}{_remote_code_hint(exc)}") from exc


def load_model(model_dir: Path, device: str, trust_remote_code: bool = False):
    """Weights in float32 (whatever the checkpoint stores), eval mode, on `device`."""
    import torch
    from transformers import AutoModel

    require_device(device)
    with _quiet_progress():
        model = load_component(
            AutoModel.from_pretrained, model_dir, "model", trust_remote_code=trust_remote_code, dtype=torch.float32
        )
    return model.eval().to(device)


@contextmanager
def _quiet_progress():
    # transformers draws its own per-load bar, which would tear the job's rich progress display.
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _remote_code_hint(exc: Exception) -> str:
    if "trust_remote_code" in str(exc):
        return "; this checkpoint ships its own model code: set --param trust_remote_code=true if you trust it"
    return ""


def to_numpy(tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy().astype(np.float32)


def l2_normalize(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


# -- audio windows ----------------------------------------------------------------
def window_starts(n_samples: int, window: int, hop: int, max_windows: int) -> list[int]:
    """Deterministic window starts covering a clip.

    Windows start every `hop` samples; a remainder is covered by one extra
    window aligned to the clip's end, so every window of a long clip is full
    length (only a clip shorter than one window is padded, by the model's own
    padding rule). Above `max_windows`, an evenly spaced subset is kept, first
    and last included.
    """
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    if len(starts) > max_windows:
        picks = np.linspace(0, len(starts) - 1, max_windows).round().astype(int)
        starts = [starts[i] for i in picks]
    return starts


def cut_windows(wave: np.ndarray, window: int, hop: int, max_windows: int) -> list[np.ndarray]:
    return [wave[s : s + window] for s in window_starts(len(wave), window, hop, max_windows)]


def check_window_params(window_s: float | None, hop_s: float | None, max_windows: int) -> None:
    """Shared validation of the audio encoders' window params (at config build time)."""
    for name, value in (("window_s", window_s), ("hop_s", hop_s)):
        if value is not None and not value > 0:
            raise EncoderError(f"{name} must be a positive number of seconds, got {value!r}")
    if max_windows < 1:
        raise EncoderError(f"max_windows must be at least 1, got {max_windows!r}")


# -- the base class ---------------------------------------------------------------
class HFEncoder(Encoder):
    """An encoder over one transformers checkpoint (`config.model`), loaded lazily.

    Loaded parts (model, tokenizer, feature extractor, config) live in
    `self._loaded` and are dropped on pickling, so the encode job can send the
    encoder to spawned workers that only `prepare`; they reload what they use.
    """

    def __init__(self, config: EncoderConfig, device: str = "cpu"):
        super().__init__(config, device)
        self._model_dir: Path | None = None
        self._weights_fp: str | None = None
        self._loaded: dict[str, Any] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_loaded"] = {}
        return state

    @property
    def model_id(self) -> str:
        return self.config.model

    @property
    def trust_remote_code(self) -> bool:
        return bool(getattr(self.config, "trust_remote_code", False))

    def model_dir(self) -> Path:
        if self._model_dir is None:
            self._model_dir = resolve_model_dir(self.config.model)
        return self._model_dir

    def weights_fingerprint(self) -> str:
        if self._weights_fp is None:
            self._weights_fp = fingerprint_model_dir(self.model_dir())
        return self._weights_fp

    def lazy(self, name: str, factory: Callable[[], Any]) -> Any:
        """Load a part once per process (and once again after unpickling)."""
        if name not in self._loaded:
            self._loaded[name] = factory()
        return self._loaded[name]

    def hf_config(self):
        return self.lazy("config", lambda: load_auto_config(self.model_dir(), self.trust_remote_code))

    def model(self):
        return self.lazy("model", lambda: load_model(self.model_dir(), self.device, self.trust_remote_code))

    def feature_extractor(self):
        from transformers import AutoFeatureExtractor

        return self.lazy(
            "feature_extractor",
            lambda: load_component(
                AutoFeatureExtractor.from_pretrained, self.model_dir(), "feature extractor",
                trust_remote_code=self.trust_remote_code,
            ),
        )

    @property
    def is_loaded(self) -> bool:
        """Whether the model weights are in memory (tests and the scorer's laziness)."""
        return "model" in self._loaded
