"""The synthetic corpus: layout, determinism, coverage, decodable media, learnability."""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from dataclasses import replace

import miditoolkit
import numpy as np
import pyarrow.parquet as pq
import pytest

from featurestore.taxonomy import color_modes
from synth import ALBUM_COLORS, COVERAGE, SynthConfig, write_corpus
from synth.errors import SynthError

COLUMNS = [
    "segment_id", "song_id", "rainbow_color", "rainbow_color_temporal_mode", "rainbow_color_objectional_mode",
    "rainbow_color_ontological_mode", "start_seconds", "end_seconds", "duration_seconds", "lyric_text", "concept",
    "audio_waveform", "audio_sample_rate", "midi_binary", "has_audio", "has_midi", "bpm", "key_signature_note",
    "key_signature_mode",
]
SMALL = SynthConfig(songs=8, seed=3, segments_per_song=(2, 3), min_seconds=1.0, max_seconds=2.5)
# Big enough for coverage and learnability; a low sample rate keeps it fast (the
# MIDI, text and coverage draws do not depend on it).
MODERATE = SynthConfig(songs=64, seed=7, segments_per_song=(6, 9), min_seconds=3.0, max_seconds=5.0, sample_rate=8000)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "small.parquet"
    summary = write_corpus(SMALL, path)
    return path, summary, pq.read_table(path).to_pylist()


@pytest.fixture(scope="module")
def moderate(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "moderate.parquet"
    summary = write_corpus(MODERATE, path)
    return summary, pq.read_table(path).to_pylist()


def test_same_seed_gives_identical_file_and_other_seed_differs(small, tmp_path):
    path, _, _ = small
    again = tmp_path / "again.parquet"
    write_corpus(SMALL, again)
    assert again.read_bytes() == path.read_bytes()
    other = tmp_path / "other.parquet"
    write_corpus(replace(SMALL, seed=4), other)
    assert pq.read_table(other).column("audio_waveform") != pq.read_table(path).column("audio_waveform")


def test_a_song_does_not_depend_on_corpus_size(small, tmp_path):
    _, _, rows = small
    fewer = tmp_path / "fewer.parquet"
    write_corpus(replace(SMALL, songs=3), fewer)
    fewer_rows = pq.read_table(fewer).to_pylist()
    assert fewer_rows == rows[: len(fewer_rows)]
    assert {r["song_id"] for r in fewer_rows} == {r["song_id"] for r in rows[: len(fewer_rows)]}


def test_layout_labels_and_segment_windows(small):
    path, summary, rows = small
    assert pq.read_schema(path).names == COLUMNS
    assert summary.segments == len(rows) and summary.failures == ()
    by_song = defaultdict(list)
    for row in rows:
        modes = color_modes(row["rainbow_color"])
        assert row["rainbow_color"] in ALBUM_COLORS
        assert row["rainbow_color_temporal_mode"] == modes.label_string("temporal")
        assert row["rainbow_color_objectional_mode"] == modes.label_string("spatial")
        assert row["rainbow_color_ontological_mode"] == modes.label_string("ontological")
        assert SMALL.min_seconds <= row["duration_seconds"] <= SMALL.max_seconds
        assert row["end_seconds"] - row["start_seconds"] == pytest.approx(row["duration_seconds"], abs=1e-6)
        assert row["key_signature_mode"] in ("major", "minor")
        assert re.fullmatch(r"[A-G]#?", row["key_signature_note"])
        assert 40 <= row["bpm"] <= 200
        by_song[row["song_id"]].append(row)
    for song_id, song_rows in by_song.items():
        assert [r["segment_id"] for r in song_rows] == [f"{song_id}_seg{k:03d}" for k in range(len(song_rows))]
        assert all(a["end_seconds"] == b["start_seconds"] for a, b in zip(song_rows, song_rows[1:]))
        assert len({r["concept"] for r in song_rows}) == 1 and song_rows[0]["concept"]
        assert len({r["rainbow_color"] for r in song_rows}) == 1


def test_every_album_colour_once_per_eight_songs_with_upstream_label_spelling(tmp_path):
    config = SynthConfig(songs=8, seed=0, segments_per_song=(1, 1), min_seconds=0.5, max_seconds=0.5, sample_rate=8000)
    write_corpus(config, tmp_path / "eight.parquet")
    rows = pq.read_table(tmp_path / "eight.parquet").to_pylist()
    labels = {r["rainbow_color"]: r["rainbow_color_ontological_mode"] for r in rows}
    assert len(rows) == 8 and set(labels) == set(ALBUM_COLORS)
    assert labels["Indigo"] == color_modes("Indigo").label_string("ontological") and "," in labels["Indigo"]
    assert labels["Black"] is None


def test_media_decode_and_flags_match_bytes(small):
    _, _, rows = small
    for row in rows:
        assert row["has_audio"] or row["has_midi"]
        assert row["has_audio"] == (row["audio_waveform"] is not None)
        assert row["has_midi"] == (row["midi_binary"] is not None)
        if row["has_audio"]:
            wave = np.frombuffer(row["audio_waveform"], dtype="<f4")
            assert row["audio_sample_rate"] == 44100
            assert wave.size == round(row["duration_seconds"] * 44100)
            assert np.isfinite(wave).all() and np.abs(wave).max() == pytest.approx(0.5, abs=1e-3)
        if row["has_midi"]:
            midi = miditoolkit.MidiFile(file=io.BytesIO(row["midi_binary"]))
            notes = [n for inst in midi.instruments for n in inst.notes]
            assert notes and min(n.start for n in notes) >= 0
            end_seconds = midi.get_tick_to_time_mapping()[max(n.end for n in notes)]
            assert end_seconds <= row["duration_seconds"] + 0.05
            assert midi.tempo_changes[0].tempo == pytest.approx(row["bpm"], abs=0.01)


def test_coverage_near_targets(moderate):
    summary, rows = moderate
    total = summary.total
    assert total.segments == len(rows)
    assert total.coverage("audio") == pytest.approx(0.85, abs=0.06)
    assert total.coverage("midi") == pytest.approx(0.44, abs=0.07)
    assert total.coverage("lyrics") == pytest.approx(0.60, abs=0.07)
    per_color = summary.per_color
    assert max(c.songs for c in per_color.values()) - min(c.songs for c in per_color.values()) <= 1
    assert per_color["Green"].lyrics == 0
    assert per_color["Yellow"].coverage("lyrics") == pytest.approx(COVERAGE["Yellow"].lyrics, abs=0.2)
    blue_midi = per_color["Blue"].coverage("midi")
    assert blue_midi < 0.3 and all(blue_midi < c.coverage("midi") for k, c in per_color.items() if k != "Blue")
    assert all(r["has_audio"] or r["has_midi"] for r in rows)
    assert sum(bool(r["lyric_text"]) for r in rows) == total.lyrics


def _midi_stats(data: bytes) -> np.ndarray:
    midi = miditoolkit.MidiFile(file=io.BytesIO(data))
    notes = [n for inst in midi.instruments for n in inst.notes]
    pitch = np.array([n.pitch for n in notes])
    velocity = np.array([n.velocity for n in notes])
    onsets = np.array([n.start for n in notes])
    seconds = midi.get_tick_to_time_mapping()[midi.max_tick]
    histogram = np.bincount(pitch % 12, minlength=12) / pitch.size
    off_beat = np.mean(onsets % midi.ticks_per_beat != 0)
    return np.concatenate([histogram, [pitch.mean(), pitch.std(), pitch.size / seconds, velocity.mean(), off_beat]])


def _held_out_accuracy(features: np.ndarray, colors: list[str], songs: list[str]) -> float:
    """Nearest colour centroid, two folds of songs alternating within each colour."""
    colors_arr, first_color = np.array(colors), dict(zip(songs, colors))
    seen, fold = Counter(), {}
    for song in sorted(first_color):
        fold[song] = seen[first_color[song]] % 2
        seen[first_color[song]] += 1
    folds = np.array([fold[s] for s in songs])
    correct = 0
    for held in (0, 1):
        train, test = folds != held, folds == held
        mean, std = features[train].mean(0), features[train].std(0) + 1e-6
        z = (features - mean) / std
        labels = sorted(set(colors_arr[train]))
        centroids = np.stack([z[train][colors_arr[train] == c].mean(0) for c in labels])
        distance = ((z[test][:, None, :] - centroids[None]) ** 2).sum(-1)
        correct += int((np.array(labels)[distance.argmin(1)] == colors_arr[test]).sum())
    return correct / len(colors)


def test_midi_statistics_learnable_but_not_trivial(moderate):
    _, rows = moderate
    rows = [r for r in rows if r["has_midi"]]
    features = np.stack([_midi_stats(r["midi_binary"]) for r in rows])
    accuracy = _held_out_accuracy(features, [r["rainbow_color"] for r in rows], [r["song_id"] for r in rows])
    chance = 1 / len(ALBUM_COLORS)
    assert 2 * chance < accuracy < 0.9


def _bag_of_words(texts: list[str]) -> np.ndarray:
    tokens = [re.findall(r"[a-z]+", t.lower()) for t in texts]
    vocabulary = {w: i for i, w in enumerate(sorted({w for ts in tokens for w in ts}))}
    counts = np.zeros((len(texts), len(vocabulary)))
    for row, words in enumerate(tokens):
        for word in words:
            counts[row, vocabulary[word]] += 1
    return counts / (np.linalg.norm(counts, axis=1, keepdims=True) + 1e-9)


def test_text_alone_cannot_label_instrumental_segments_but_lyrics_help(moderate):
    _, rows = moderate
    instrumental = [r for r in rows if not r["lyric_text"]]
    concept_accuracy = _held_out_accuracy(
        _bag_of_words([r["concept"] for r in instrumental]),
        [r["rainbow_color"] for r in instrumental], [r["song_id"] for r in instrumental],
    )
    sung = [r for r in rows if r["lyric_text"]]
    lyric_accuracy = _held_out_accuracy(
        _bag_of_words([r["lyric_text"] for r in sung]), [r["rainbow_color"] for r in sung], [r["song_id"] for r in sung]
    )
    assert concept_accuracy < 0.4
    assert lyric_accuracy > 1.5 / len(ALBUM_COLORS)


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"songs": 0}, "songs must be at least 1"),
        ({"segments_per_song": (5, 2)}, "segments_per_song"),
        ({"min_seconds": 9.0, "max_seconds": 3.0}, "min_seconds <= max_seconds"),
        ({"sample_rate": 100}, "sample_rate"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(changes, expected):
    with pytest.raises(SynthError, match=re.escape(expected)):
        SynthConfig(**changes)


def test_a_failing_song_is_reported_and_the_rest_written(tmp_path, monkeypatch):
    import synth.corpus as corpus

    real = corpus.sample_song_params
    calls = Counter()

    def flaky(color, rng):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("synthetic failure")
        return real(color, rng)

    monkeypatch.setattr(corpus, "sample_song_params", flaky)
    config = SynthConfig(songs=3, seed=1, segments_per_song=(1, 2), min_seconds=0.5, max_seconds=1.0, sample_rate=8000)
    summary = write_corpus(config, tmp_path / "c.parquet")
    assert summary.failures == (("syn1-0001", "ValueError: synthetic failure"),)
    assert summary.songs == 2
    written = {r["song_id"] for r in pq.read_table(tmp_path / "c.parquet").to_pylist()}
    assert written == {"syn1-0000", "syn1-0002"}
