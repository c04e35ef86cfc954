"""Model input names and input specs: what `--midi midistats:v1 --midi pianoroll:v1|basicpitch:v1` means.

Pure parsing, no store access (featurestore/join.py resolves specs to tables). An
input is named after the modality it reads (`midi`) or `MODALITY.TAG` where several
inputs read one modality (featurestore.schemas.input_modality); a spec is
ENCODER:VERSION, or A:V1|B:V1 to fill each segment from the first table that has it.
"""

from __future__ import annotations

from featurestore.errors import InputNameError, StoreError
from featurestore.schemas import MODALITIES, FeatureTableName, input_modality, input_name

COALESCE = "|"


def ordered_inputs(inputs: dict[str, str]) -> dict[str, str]:
    """Validate input names (`midi`, `midi.pianoroll`: featurestore.schemas.input_modality) and put them in the
    canonical order: by modality (taxonomy of modalities), then as given."""
    if not inputs:
        raise StoreError(f"no inputs given; choose at least one of {', '.join(MODALITIES)}, e.g. --audio clap:v1")
    rank = {name: MODALITIES.index(input_modality(name)) for name in inputs}
    return {name: inputs[name] for name in sorted(inputs, key=rank.__getitem__)}


def name_inputs(modality: str, specs: list[str]) -> dict[str, str]:
    """{input name: spec} for the specs given for one modality (`--midi A --midi B`).

    One spec keeps the plain name (`midi`), as every run has. Several are told apart by the encoder of
    each one's first table (`midi.midistats`, `midi.pianoroll`), or by encoder and version where encoders
    repeat (`midi.pianoroll-v1`, `midi.pianoroll-v2`): a name says what the input reads.
    """
    input_modality(modality)
    if len(specs) == 1:
        return {modality: specs[0]}
    firsts = [FeatureTableName.from_spec(modality, split_spec(spec)[0]) for spec in specs]
    for tags in ([f.encoder for f in firsts], [f"{f.encoder}-{f.version}" for f in firsts]):
        if len(set(tags)) == len(tags):
            return {input_name(modality, tag): spec for tag, spec in zip(tags, specs)}
    raise InputNameError(
        f"{len(specs)} {modality} inputs given ({', '.join(specs)}) but two start with the same table, so they "
        f"cannot be named apart; give each table once, or coalesce them into one input (A:V1|B:V1)"
    )


def split_spec(spec: str) -> list[str]:
    """"pianoroll:v1|basicpitch:v1" -> ["pianoroll:v1", "basicpitch:v1"] (blanks refused)."""
    parts = [part.strip() for part in spec.split(COALESCE)]
    if not all(parts):
        raise StoreError(f"bad input spec {spec!r}; expected ENCODER:VERSION or A:V1|B:V1 (first present wins)")
    if len(set(parts)) != len(parts):
        raise StoreError(f"input spec {spec!r} names a table twice; list each source once")
    return parts


def check_spec(name: str, spec: str) -> None:
    """Refuse a malformed input name or spec before anything is read."""
    for part in split_spec(spec):
        FeatureTableName.from_spec(input_modality(name), part)
