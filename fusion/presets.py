"""Named training recipes: `chromatic train --preset NAME`.

`scorer` is the model the generation loop should score MIDI candidates with:
chosen on the 5-fold MIDI-candidate view of BENCHMARKS.md ("Model quality"). A
candidate is MIDI and nothing else, so the model reads MIDI alone: the
key- and tempo-invariant `midistats` version (stored as midistats:v2, encoded with
`chromatic encode --encoder midistats --version v2 --param features=invariant`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from featurestore.errors import ModelError


@dataclass(frozen=True)
class Preset:
    inputs: dict[str, str]
    overrides: dict = field(default_factory=dict)  # TrainConfig fields the recipe sets
    encode: tuple[str, ...] = ()  # the encode commands its feature tables come from
    about: str = ""


SCORER_MIDI = "midistats:v2"
SCORER_ENCODING = ("midistats", "v2", {"features": "invariant"})
PRESETS: dict[str, Preset] = {
    "scorer": Preset(
        inputs={"midi": SCORER_MIDI},
        encode=("chromatic encode --encoder midistats --version v2 --param features=invariant",),
        about="the MIDI-candidate fitness function: MIDI alone, key- and tempo-invariant statistics",
    ),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ModelError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]
