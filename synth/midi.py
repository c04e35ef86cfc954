"""Writing a segment's notes as a standard MIDI file (type 1, one track per part)."""

from __future__ import annotations

import io

import miditoolkit
import numpy as np

from synth.music import BASS, LEAD, PAD, PARTS, Notes
from synth.styles import SongParams

TICKS_PER_BEAT = 480
# Key-signature names that MIDI meta events accept (mido spells some keys flat).
_MAJOR_KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_KEYS = ("Cm", "C#m", "Dm", "D#m", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "A#m", "Bm")
# General MIDI programs of the accompaniment, by the lead's register: warm pad
# and fingered bass under low leads, string pad and synth bass under high ones.
_PAD_PROGRAMS = (89, 48)
_BASS_PROGRAMS = (33, 38)


def midi_key_name(params: SongParams) -> str:
    return (_MINOR_KEYS if params.minor else _MAJOR_KEYS)[params.tonic]


def _programs(params: SongParams) -> dict[int, int]:
    high = int(params.register >= 64)
    return {LEAD: params.lead_program, PAD: _PAD_PROGRAMS[high], BASS: _BASS_PROGRAMS[high]}


def midi_bytes(notes: Notes, params: SongParams) -> bytes:
    """A MIDI file of `notes` (times from 0) at the song's tempo and key."""
    ticks_per_second = params.bpm / 60.0 * TICKS_PER_BEAT
    starts = np.round(notes.start * ticks_per_second).astype(np.int64)
    ends = np.maximum(np.round(notes.end * ticks_per_second).astype(np.int64), starts + 1)
    mid = miditoolkit.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    mid.tempo_changes = [miditoolkit.TempoChange(params.bpm, 0)]
    mid.time_signature_changes = [miditoolkit.TimeSignature(4, 4, 0)]
    mid.key_signature_changes = [miditoolkit.KeySignature(midi_key_name(params), 0)]
    programs = _programs(params)
    for part, name in enumerate(PARTS):
        instrument = miditoolkit.Instrument(program=programs[part], is_drum=False, name=name)
        chosen = np.flatnonzero(notes.part == part)
        instrument.notes = [
            miditoolkit.Note(velocity=int(notes.velocity[i]), pitch=int(notes.pitch[i]), start=int(starts[i]), end=int(ends[i]))
            for i in chosen
        ]
        if instrument.notes:
            mid.instruments.append(instrument)
    mid.max_tick = int(ends.max()) if ends.size else 0
    buffer = io.BytesIO()
    mid.dump(file=buffer)
    return buffer.getvalue()
