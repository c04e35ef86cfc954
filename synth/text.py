"""Lyrics and concept text from mode-flavoured and generic vocabularies.

Colour signal in text comes only through the colour's taxonomy modes (asked
of featurestore.taxonomy), so colours that share a mode share words: Red and
Orange both sound "Past" and "Thing". Lyrics carry a moderate share of mode
phrases; the per-song concept is mostly generic with a small, noisy share, so
text alone cannot label an instrumental segment reliably.
"""

from __future__ import annotations

import numpy as np

from featurestore.taxonomy import DIMENSIONS, MODES, color_modes
from synth.errors import SynthError

MODE_PHRASES: dict[str, tuple[str, ...]] = {
    "Past": (
        "we used to", "long ago", "the old photograph", "back when", "yesterday's light",
        "what we had", "the years behind", "an older song", "before it all", "a faded summer",
        "the way it was", "childhood rooms",
    ),
    "Present": (
        "right now", "this very moment", "here tonight", "as we breathe", "today again",
        "while it lasts", "in this room now", "the clock says now", "still awake", "this minute",
        "at the moment", "as it happens",
    ),
    "Future": (
        "someday soon", "tomorrow's door", "what will be", "the coming years", "after this",
        "a world ahead", "not yet born", "one day we will", "the next horizon", "we are going",
        "plans for later", "the morning after",
    ),
    "Thing": (
        "a broken radio", "the silver key", "paper and glue", "an iron bell", "the glass jar",
        "wires and dust", "a wooden box", "the engine's hum", "a cracked mirror", "tin machines",
        "the little stone", "a coat of paint",
    ),
    "Place": (
        "the empty field", "across the city", "down the valley", "a harbour town", "the open road",
        "under the bridge", "the garden wall", "a rented room", "by the river", "the northern coast",
        "in the hills", "a parking lot",
    ),
    "Person": (
        "my brother", "you and I", "her quiet voice", "a stranger's hand", "my old friend",
        "his tired eyes", "the girl next door", "a mother's call", "someone like you", "the two of us",
        "your name", "a familiar face",
    ),
    "Imagined": (
        "in a dream", "if I could fly", "invented stars", "a made-up kingdom", "pretend with me",
        "castles in the air", "a story I wrote", "make believe", "the dreamed-up sea", "what if",
        "imaginary lights", "a fable",
    ),
    "Forgotten": (
        "lost somewhere", "I can't recall", "erased and gone", "the missing page", "names I lost",
        "left behind", "slipping away", "a blank where it was", "nobody remembers", "fading out",
        "a buried letter", "the lost address",
    ),
    "Known": (
        "I know for sure", "plain as day", "the simple truth", "we both know", "certain as stone",
        "the facts of it", "as we learned", "counted and true", "known by heart", "no doubt",
        "it is written", "the proven way",
    ),
}

GENERIC_PHRASES: tuple[str, ...] = (
    "in the night", "hold on", "and I said", "the light goes", "over and over", "come closer",
    "let it go", "one more time", "turn around", "all the same", "through the rain", "with the wind",
    "say the word", "the heart beats", "on and on", "breathe in", "under the sky", "the long way",
    "take it slow", "a little while", "fall and rise", "the sound of it", "nothing more", "in between",
    "keep it close", "the same song", "walk with me", "out of time", "the colour of it", "a quiet hour",
    "every single day", "the night is young", "follow me", "waves and echoes", "open the door", "sing it",
)

CONCEPT_OPENINGS: tuple[str, ...] = (
    "A song about", "This piece explores", "A meditation on", "Built around", "A track concerned with",
    "An exploration of", "Sketches of", "A study in",
)

LYRIC_LINES = (1, 4)  # lines per sung segment, inclusive range
PHRASES_PER_LINE = 3
LYRIC_MODE_SHARE = 0.45  # share of lyric phrases drawn from the colour's modes
CONCEPT_PHRASES = 4
CONCEPT_OWN_MODE_SHARE = 0.25  # phrases hinting at the song's own colour
CONCEPT_OTHER_MODE_SHARE = 0.15  # decoy phrases from any mode

_unknown_modes = set(MODE_PHRASES) ^ {m for d in DIMENSIONS for m in MODES[d]}
if _unknown_modes:
    raise SynthError(f"synth text vocabulary and taxonomy modes disagree on {sorted(_unknown_modes)}")


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _mode_phrase(color: str, rng: np.random.Generator) -> str:
    """A phrase from one of the colour's modes; a 'none' dimension picks any mode
    of that dimension, so it carries no signal (its target is uniform too)."""
    dimension = _pick(rng, DIMENSIONS)
    modes = color_modes(color).modes(dimension) or MODES[dimension]
    return _pick(rng, MODE_PHRASES[_pick(rng, modes)])


def _any_mode_phrase(rng: np.random.Generator) -> str:
    return _pick(rng, MODE_PHRASES[_pick(rng, tuple(MODE_PHRASES))])


def lyric_text(color: str, rng: np.random.Generator) -> str:
    lines = []
    for _ in range(int(rng.integers(LYRIC_LINES[0], LYRIC_LINES[1] + 1))):
        phrases = [
            _mode_phrase(color, rng) if rng.random() < LYRIC_MODE_SHARE else _pick(rng, GENERIC_PHRASES)
            for _ in range(PHRASES_PER_LINE)
        ]
        line = " ".join(phrases)
        lines.append(line[0].upper() + line[1:])
    return "\n".join(lines)


def concept_text(color: str, rng: np.random.Generator) -> str:
    phrases = []
    for _ in range(CONCEPT_PHRASES):
        draw = rng.random()
        if draw < CONCEPT_OWN_MODE_SHARE:
            phrases.append(_mode_phrase(color, rng))
        elif draw < CONCEPT_OWN_MODE_SHARE + CONCEPT_OTHER_MODE_SHARE:
            phrases.append(_any_mode_phrase(rng))
        else:
            phrases.append(_pick(rng, GENERIC_PHRASES))
    listing = ", ".join(f"'{p}'" for p in phrases[:-1]) + f" and '{phrases[-1]}'"
    return f"{_pick(rng, CONCEPT_OPENINGS)} {listing}."
