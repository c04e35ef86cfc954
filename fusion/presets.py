"""Named training recipes: `chromatic train --preset NAME`.

`scorer` is the model the generation loop should score MIDI candidates with:
chosen on the 5-fold MIDI-candidate view of BENCHMARKS.md ("Model quality"). A
candidate is MIDI and nothing else, so the model reads MIDI alone, as weight-free
`midistats` statistics (`chromatic encode --encoder midistats --version v1`): it
ranks candidates better than every fused model measured, none of which collapses
less (a fused piano-roll model collapsed in 4 of 5 folds), and better than a
MIDI-only piano-roll CNN. Issue 13 measured training it on input rows only, as a
5-member deep ensemble, and with temperature scaling (TrainConfig's skip_inputless,
members, calibrate): none beat this recipe on the same folds, so it uses none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fusion.errors import ModelError


@dataclass(frozen=True)
class Preset:
    inputs: dict[str, str]
    overrides: dict = field(default_factory=dict)  # TrainConfig fields the recipe sets
    encode: tuple[str, ...] = ()  # the encode commands its feature tables come from
    about: str = ""


SCORER_MIDI = "midistats:v1"
SCORER_ENCODING = ("midistats", "v1", {})
PRESETS: dict[str, Preset] = {
    "scorer": Preset(
        inputs={"midi": SCORER_MIDI},
        encode=("chromatic encode --encoder midistats --version v1",),
        about="the MIDI-candidate fitness function: MIDI alone, as midistats statistics",
    ),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ModelError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]
