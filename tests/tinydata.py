"""Tiny, deterministic test data: MIDI bytes, waveforms and a small store.

Tests build everything they need here (offline, in a tmp dir, in well under a
second), without going through ingest or the synthetic corpus.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from featurestore import Store
from featurestore.lineage import audio_digest, midi_digest, row_digest, text_digest
from featurestore.registry import EncoderRecord, put_encoder_record
from featurestore.schemas import MEDIA, MEDIA_SCHEMA, SEGMENTS, SEGMENTS_SCHEMA, FeatureTableName, feature_schema
from featurestore.taxonomy import COLORS, color_modes

TINY_COLORS = ("Red", "Orange", "Yellow", "Green", "Blue", "Indigo", "Violet", "Black")
SAMPLE_RATE = 44_100
FEATURE_DIM = 8


def midi_bytes(notes, tempo_bpm: float = 120.0, ticks_per_beat: int = 480, tempo_changes=()) -> bytes:
    """A one-instrument MIDI file. notes: (pitch, start_beat, dur_beats, velocity).

    tempo_changes: extra (beat, bpm) pairs after the initial tempo.
    """
    import miditoolkit

    mid = miditoolkit.MidiFile(ticks_per_beat=ticks_per_beat)
    mid.tempo_changes = [miditoolkit.TempoChange(tempo_bpm, 0)] + [
        miditoolkit.TempoChange(bpm, int(beat * ticks_per_beat)) for beat, bpm in tempo_changes
    ]
    inst = miditoolkit.Instrument(program=0, is_drum=False, name="piano")
    for pitch, start, dur, vel in notes:
        s = int(start * ticks_per_beat)
        inst.notes.append(miditoolkit.Note(velocity=vel, pitch=pitch, start=s, end=s + int(dur * ticks_per_beat)))
    mid.instruments.append(inst)
    buf = io.BytesIO()
    mid.dump(file=buf)
    return buf.getvalue()


def tone(freq: float, seconds: float, sr: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def tiny_rows(songs_per_color: int = 2, segments_per_song: int = 3, seconds: float = 2.0, seed: int = 0):
    """Segment and media rows: every colour, some audio/MIDI/lyrics missing."""
    rng = np.random.default_rng(seed)
    now = datetime.now(timezone.utc)
    segments, media = [], []
    for ci, color in enumerate(TINY_COLORS):
        modes = color_modes(color)
        for song in range(songs_per_color):
            song_id = f"{color.lower()}-song{song}"
            for k in range(segments_per_song):
                sid = f"{song_id}-seg{k}"
                has_audio = bool(rng.random() < 0.85)
                has_midi = bool(rng.random() < 0.5) or not has_audio
                has_lyrics = color not in ("Green",) and bool(rng.random() < 0.6)
                base = 48 + 3 * ci
                notes = [(base + (i * 4) % 12, i * 0.5, 0.5, 60 + 5 * ci) for i in range(8)]
                segments.append(
                    dict(
                        segment_id=sid, song_id=song_id, color=color,
                        temporal=modes.label_string("temporal"), spatial=modes.label_string("spatial"),
                        ontological=modes.label_string("ontological"),
                        start_s=k * seconds, end_s=(k + 1) * seconds, bpm=120.0, key="C major",
                        lyric_text=f"{color.lower()} words about song {song}" if has_lyrics else None,
                        concept_text=f"a concept of {color.lower()} things", has_audio=has_audio,
                        has_midi=has_midi, has_lyrics=has_lyrics, audio_status=None, midi_status=None,
                        source="tiny", ingested_at=now,
                    )
                )
                media.append(
                    dict(
                        segment_id=sid,
                        audio=tone(110.0 * (1 + ci / 4), seconds, seed=len(media)) if has_audio else None,
                        sample_rate=SAMPLE_RATE if has_audio else None,
                        midi=midi_bytes(notes) if has_midi else None,
                    )
                )
    for segment, blobs in zip(segments, media):
        add_digests(segment, blobs)
    return segments, media


def add_digests(segment: dict, media: dict) -> dict:
    """Fill a segment row's content digests as ingest does (featurestore/lineage.py)."""
    segment.update(
        audio_digest=audio_digest(media["audio"], media["sample_rate"]), midi_digest=midi_digest(media["midi"]),
        lyrics_digest=text_digest(segment["lyric_text"]), concept_digest=text_digest(segment["concept_text"]),
    )
    segment["row_digest"] = row_digest(segment, ignore=("ingested_at", "row_digest"))
    return segment


def build_tiny_store(path, **kwargs) -> Store:
    store = Store.open(path)
    segments, media = tiny_rows(**kwargs)
    store.ensure_table(SEGMENTS)
    store.ensure_table(MEDIA)
    store.upsert(SEGMENTS, pa.Table.from_pylist(segments, schema=SEGMENTS_SCHEMA))
    store.upsert(MEDIA, pa.Table.from_pylist(media, schema=MEDIA_SCHEMA))
    return store


def stacked_notes_midi(notes: int, step_ticks: int = 0) -> bytes:
    """One track: `notes` note-ons of middle C, then as many note-offs (running status).

    The shape that made FIFO note pairing quadratic: 600k notes is a 3.6 MB file.
    step_ticks: delta before every event after the first (0 stacks them on one tick).
    """
    delta = vlq(step_ticks)
    track = bytearray(b"\x00\x90\x3c\x64") + (delta + b"\x3c\x64") * (notes - 1)
    track += delta + b"\x80\x3c\x40" + (delta + b"\x3c\x40") * (notes - 1) + b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + b"\x00\x00\x00\x01\x01\xe0"
    return header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)


def vlq(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def write_feature_table(
    store, modality: str, spec: str, present_column: str | None, seed: int, dim: int = FEATURE_DIM,
    spread: float = 1.0,
) -> None:
    """A registered vector table: one colour centroid per colour plus noise, times `spread` (0: every vector
    the same); absent where the segment lacks it."""
    name = FeatureTableName.from_spec(modality, spec)
    segments = store.read(SEGMENTS, ["segment_id", "color", present_column or "segment_id"]).to_pylist()
    rng = np.random.default_rng(seed)
    centroids = {color: rng.standard_normal(dim) for color in COLORS}
    rows = []
    for segment in segments:
        present = bool(segment[present_column]) if present_column else True
        vector = (spread * (centroids[segment["color"]] + 0.3 * rng.standard_normal(dim))).astype(np.float32)
        rows.append(dict(segment_id=segment["segment_id"], vector=vector.tolist() if present else None,
                         present=present, status=None if present else "absent", encoded_at=None))
    schema = feature_schema((dim,))
    store.ensure_table(str(name), schema)
    store.upsert(str(name), pa.Table.from_pylist(rows, schema=schema))
    n_present = sum(r["present"] for r in rows)
    put_encoder_record(store, EncoderRecord(
        table_name=str(name), modality=modality, encoder=name.encoder, version=name.version, kind="vector",
        shape=(dim,), dtype="float32", params=json.dumps({"seed": seed}), model_id=None, weights_fingerprint=None,
        fingerprint=f"test-{name}-{seed}", code_version="test", state="complete", rows=len(rows),
        present=n_present, absent=len(rows) - n_present,
    ))


EXPLORER_INPUTS = ({"audio": "fake:v1"}, {"audio": "fake:v1", "lyrics": "fake:v1"})


def build_explorer_store(path, epochs: int = 3):
    """A tiny store with two registered feature tables and one trained run per EXPLORER_INPUTS entry."""
    from fusion.train import TrainConfig, train

    store = build_tiny_store(path)
    write_feature_table(store, "audio", "fake:v1", "has_audio", seed=1)
    write_feature_table(store, "lyrics", "fake:v1", "has_lyrics", seed=2)
    config = TrainConfig(epochs=epochs, batch_size=16, patience=2, seed=0, threads=1, export_onnx=False)
    runs = [train(store, inputs, config).run_id for inputs in EXPLORER_INPUTS]
    return store, runs


def parts_midi(parts, ticks_per_beat: int = 480) -> bytes:
    """A type-1 MIDI file at 120 bpm, one track per part. parts: (program, channel, notes), notes as in
    `midi_bytes`: (pitch, start_beat, dur_beats, velocity)."""
    import mido

    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for program, channel, notes in parts:
        events = []
        for pitch, start, dur, vel in notes:
            events.append((round(start * ticks_per_beat), mido.Message("note_on", channel=channel, note=pitch, velocity=vel)))
            events.append((round((start + dur) * ticks_per_beat), mido.Message("note_off", channel=channel, note=pitch)))
        track = mido.MidiTrack([mido.Message("program_change", channel=channel, program=program, time=0)])
        now = 0
        for tick, message in sorted(events, key=lambda e: e[0]):
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()
