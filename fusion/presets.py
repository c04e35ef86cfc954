"""Named training recipes: `chromatic train --preset NAME`.

`scorer` is the model the generation loop should score MIDI candidates with:
chosen on the 5-fold MIDI-candidate view of BENCHMARKS.md ("Model quality"). A
candidate is MIDI and nothing else, so the model reads MIDI alone, as weight-free
`midistats` statistics with instrument families and part rhythms
(`chromatic encode --encoder midistats --version v2 --param features=parts`): it
ranks candidates better than every fused model measured, none of which collapses
less (a fused piano-roll model collapsed in 4 of 5 folds), better than a MIDI-only
piano-roll encoder, and better than the v1 statistics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from encoders.registry import get_encoder_class, make_config
from featurestore.registry import get_encoder_record
from featurestore.schemas import FeatureTableName, input_modality
from featurestore.store import Store
from fusion.errors import ModelError


@dataclass(frozen=True)
class Encoding:
    """One feature table a preset reads: `chromatic encode --encoder E --version V --param k=v ...`."""

    encoder: str
    version: str
    params: dict = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return f"{self.encoder}:{self.version}"

    @property
    def command(self) -> str:
        params = "".join(f" --param {k}={v}" for k, v in sorted(self.params.items()))
        return f"chromatic encode --encoder {self.encoder} --version {self.version}{params}"

    def stored_params(self) -> dict:
        """The params as the registry stores them (defaults left out where the encoder's config does so)."""
        return json.loads(make_config(get_encoder_class(self.encoder), dict(self.params)).to_json())


@dataclass(frozen=True)
class Preset:
    encodings: dict[str, Encoding]  # input -> the feature table it reads
    overrides: dict = field(default_factory=dict)  # TrainConfig fields the recipe sets
    about: str = ""

    @property
    def inputs(self) -> dict[str, str]:
        """{input: ENCODER:VERSION}, as `train` takes them."""
        return {name: encoding.spec for name, encoding in self.encodings.items()}


SCORER_ENCODING = Encoding("midistats", "v2", {"features": "parts"})
SCORER_MIDI = SCORER_ENCODING.spec
PRESETS: dict[str, Preset] = {
    "scorer": Preset(
        encodings={"midi": SCORER_ENCODING},
        about="the MIDI-candidate fitness function: MIDI alone, as midistats statistics with instruments and parts",
    ),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ModelError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def check_preset_tables(store: Store, name: str) -> None:
    """Refuse a preset whose tables are missing or were encoded with other params under the same version label:
    the label is the user's, so `midistats:v2` in one store need not be the preset's features."""
    chosen = preset(name)
    for input_name, encoding in chosen.encodings.items():
        modality = input_modality(input_name)
        table = str(FeatureTableName.from_spec(modality, encoding.spec))
        record = get_encoder_record(store, table)
        if record is None:
            raise ModelError(f"--preset {name} reads {table}, which this store does not have; run `{encoding.command}`")
        if record.encoder != encoding.encoder or record.params_dict != encoding.stored_params():
            elsewhere = replace(encoding, version=f"{encoding.version}-{name}")
            raise ModelError(
                f"--preset {name} reads {table} as {encoding.encoder} with params {encoding.stored_params()}, but this "
                f"store's {table} was encoded by {record.encoder} with params {record.params_dict}. Encode the "
                f"preset's features under another label (`{elsewhere.command}`) "
                f"and train on it without the preset (`chromatic train --{modality} {elsewhere.spec}`)"
            )
