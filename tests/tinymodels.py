"""Random-weight checkpoints built from configs and saved with save_pretrained.

Build machines cannot download weights, so the real loading code of the
`clap`, `mert` and `deberta` encoders is exercised on these: same classes,
same file layout as a hub snapshot, tiny sizes (a few seconds on a busy CPU).
`build_random_clap(dir, size="full")` gives a CLAP with larger_clap_music's
architecture and random weights, for benchmarks of the real compute cost.
"""

from __future__ import annotations

import json
from pathlib import Path

# Sub-configs of a CLAP small enough for tests. spec_size 64 with 16 mel bins
# fits a 10 s window when the extractor hops 2000 samples (241 frames <= 256).
TINY_CLAP_AUDIO = dict(
    spec_size=64, num_mel_bins=16, window_size=4, patch_size=4, patch_stride=(4, 4), depths=(1, 1),
    num_attention_heads=(1, 2), patch_embeds_hidden_size=8, hidden_size=16, mlp_ratio=2.0, num_classes=4,
)
TINY_CLAP_TEXT = dict(
    vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
    max_position_embeddings=40, projection_hidden_size=16,
)
TINY_CLAP_PROJECTION = 12
TINY_CLAP_EXTRACTOR = dict(feature_size=16, hop_length=2000, fft_window_size=2048)
# laion/larger_clap_music: HTSAT-base audio tower, RoBERTa-base text tower.
FULL_CLAP_AUDIO = dict(depths=(2, 2, 12, 2), hidden_size=1024, patch_embeds_hidden_size=128)
FULL_CLAP_PROJECTION = 512

TINY_HUBERT = dict(
    hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
    conv_dim=(8, 8, 8, 8), conv_kernel=(10, 5, 4, 4), conv_stride=(5, 5, 4, 4),
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=8,
)
MERT_SAMPLE_RATE = 24_000

# DeBERTa-v3's own attention settings (relative positions, no absolute ones).
TINY_DEBERTA = dict(
    hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
    max_position_embeddings=64, relative_attention=True, position_buckets=16, max_relative_positions=32,
    pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True, position_biased_input=False,
    type_vocab_size=0,
)
_CORPUS = [
    "the red song remembers a thing from the past",
    "a blue person sings about forgetting the present",
    "yellow places imagined in a future city of light",
    "green fields forgotten by everyone who once lived there",
    "violet voices know the people standing right here",
    "orange dreams of objects that never were made",
    "indigo nights hold what is known and what is lost",
    "black and white noise between the colours of the album",
]


def build_random_clap(directory, size: str = "tiny", seed: int = 0, fusion: bool = False) -> Path:
    """A ClapModel with random weights plus its feature extractor, saved to `directory`.

    size="tiny": a few thousand parameters, 10 s windows on a coarse mel grid.
    size="full": laion/larger_clap_music's architecture (512-d) and feature
    extractor (48 kHz, 64 mels, 10 s), for timing the real compute.
    """
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', got {size!r}")
    tiny = size == "tiny"
    audio = dict(TINY_CLAP_AUDIO if tiny else FULL_CLAP_AUDIO, enable_fusion=fusion)
    config = ClapConfig(
        audio_config=audio,
        text_config=TINY_CLAP_TEXT if tiny else None,
        projection_dim=TINY_CLAP_PROJECTION if tiny else FULL_CLAP_PROJECTION,
    )
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    # The unfused LAION checkpoints ship "rand_trunc" extractors; the encoder
    # picks the truncation from the model config either way.
    extractor = ClapFeatureExtractor(
        frequency_min=50, truncation="fusion" if fusion else "rand_trunc", **(TINY_CLAP_EXTRACTOR if tiny else {})
    )
    return _save(directory, model, extractor)


def build_tiny_hubert(directory, seed: int = 0) -> Path:
    """A HuBERT-architecture model (what MERT-v1 extends) with a 24 kHz extractor."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(seed)
    model = HubertModel(HubertConfig(**TINY_HUBERT)).eval()
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=MERT_SAMPLE_RATE, padding_value=0.0, do_normalize=True,
        return_attention_mask=True,
    )
    return _save(directory, model, extractor)


def build_tiny_deberta(directory, seed: int = 0) -> Path:
    """A DeBERTa-v2/v3 model with a SentencePiece tokenizer laid out like the hub's.

    Like microsoft/deberta-v3-base the directory holds spm.model and a
    tokenizer_config.json, so loading exercises the spm -> fast conversion.
    """
    import torch
    from transformers import DebertaV2Config, DebertaV2Model

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = _train_spm(out / "spm.model")
    # As on the hub: no tokenizer class named; AutoTokenizer goes by config.json's model_type.
    (out / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "vocab_type": "spm"}))
    torch.manual_seed(seed)
    config = DebertaV2Config(vocab_size=vocab_size + 1, pad_token_id=0, **TINY_DEBERTA)  # +1: [MASK]
    DebertaV2Model(config).eval().save_pretrained(out)
    return out


def _train_spm(path: Path) -> int:
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS), model_writer=buf, vocab_size=60, model_type="unigram",
        pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]",
        unk_piece="[UNK]", hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    path.write_bytes(buf.getvalue())
    return spm.SentencePieceProcessor(model_file=str(path)).vocab_size()


def _save(directory, model, extractor) -> Path:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    extractor.save_pretrained(out)
    return out
