import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
from tinydata import midi_bytes, tone

from featurestore import IngestError, Store
from featurestore.info import store_info
from featurestore.ingest import IngestConfig, ingest_paths
from featurestore.schemas import MEDIA, SEGMENTS

SR = 8000
MIDI = midi_bytes([(60 + i, i * 0.5, 0.5, 80) for i in range(4)])
UPSTREAM_TYPES = {
    "segment_id": pa.string(), "song_id": pa.string(), "rainbow_color": pa.string(),
    "rainbow_color_temporal_mode": pa.string(), "rainbow_color_objectional_mode": pa.string(),
    "rainbow_color_ontological_mode": pa.string(), "start_seconds": pa.float64(), "end_seconds": pa.float64(),
    "duration_seconds": pa.float64(), "lyric_text": pa.string(), "concept": pa.string(),
    "audio_waveform": pa.binary(), "audio_sample_rate": pa.int64(), "midi_binary": pa.binary(),
    "has_audio": pa.bool_(), "has_midi": pa.bool_(), "bpm": pa.float64(), "key_signature_note": pa.string(),
    "key_signature_mode": pa.string(), "unrelated_extra": pa.string(),
}
LABELS = ("rainbow_color_temporal_mode", "rainbow_color_objectional_mode", "rainbow_color_ontological_mode")


def audio(i: int) -> np.ndarray:
    return tone(200.0 + 20 * i, 0.25, sr=SR, seed=i)


def row(i: int, color: str = "Red", **overrides) -> dict:
    base = dict(
        segment_id=f"seg{i}", song_id=f"song{i % 3}", rainbow_color=color, start_seconds=float(i),
        end_seconds=i + 1.0, duration_seconds=1.0, lyric_text=f"words {i}", concept="a concept",
        audio_waveform=audio(i).tobytes(), audio_sample_rate=SR, midi_binary=MIDI, has_audio=True,
        has_midi=True, bpm=96.0, key_signature_note="F#", key_signature_mode="Minor", unrelated_extra="x",
    )
    return {**base, **overrides}


def write_parquet(path, rows: list[dict], without=()):
    columns = [c for c in UPSTREAM_TYPES if c not in without and any(c in r for r in rows)]
    schema = pa.schema([(c, UPSTREAM_TYPES[c]) for c in columns])
    pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows], schema=schema), path)
    return path


def segments_by_id(store: Store) -> dict[str, dict]:
    return {r["segment_id"]: r for r in store.read(SEGMENTS).to_pylist()}


def media_by_id(store: Store) -> dict[str, dict]:
    return {r["segment_id"]: r for r in store.read(MEDIA).to_pylist()}


def assert_accounted(summary) -> None:
    assert summary.rows_read == summary.ingested + summary.updated + summary.unchanged + summary.rejected_total


BAD_ROWS = [
    (row(100, color="Magenta"), "unknown colour"),
    (row(101, segment_id=None), "missing segment_id"),
    (row(102, segment_id="  "), "missing segment_id"),
    (row(0, song_id="duplicate-song"), "duplicate segment_id"),
    (row(103, start_seconds=5.0, end_seconds=4.0), "end before start"),
    (row(104, rainbow_color_temporal_mode="Tomorrow"), "invalid mode label"),
    (row(105, rainbow_color=None), "unknown colour"),
]
NAN_AUDIO = np.array([0.1, np.nan, 0.2], dtype="<f4").tobytes()
INF_AUDIO = np.array([0.1, np.inf], dtype="<f4").tobytes()
DROPPED_ROWS = [
    (row(200, audio_waveform=b"\x00" * 7), "audio: waveform byte length not a multiple of 4"),
    (row(201, audio_waveform=NAN_AUDIO), "audio: waveform holds NaN or inf"),
    (row(202, audio_waveform=INF_AUDIO), "audio: waveform holds NaN or inf"),
    (row(203, audio_waveform=b""), "audio: empty waveform"),
    (row(204, audio_sample_rate=0), "audio: missing or non-positive sample rate"),
    (row(205, audio_sample_rate=None), "audio: missing or non-positive sample rate"),
    (row(206, midi_binary=b"not a midi file"), "midi: MIDI cannot be parsed"),
]


@pytest.fixture
def mixed_file(tmp_path):
    """Good rows, then every kind of bad row; the duplicate repeats a good id."""
    good = [row(i, color=c) for i, c in enumerate(["Red", "Indigo", "Green", "Black"])]
    rows = good + [r for r, _ in BAD_ROWS] + [r for r, _ in DROPPED_ROWS]
    return write_parquet(tmp_path / "mixed.parquet", rows), len(good)


def test_good_rows_ingest_with_labels_derived_when_missing(tmp_path):
    no_labels = write_parquet(tmp_path / "a.parquet", [row(0), row(1, "Indigo"), row(2, "Black")], without=LABELS)
    labelled = [
        row(3, "Indigo", rainbow_color_ontological_mode="Known, Forgotten", lyric_text=""),
        row(4, "Red", rainbow_color_temporal_mode="Present", rainbow_color_objectional_mode=None),
        row(5, "yellow", has_audio=False, audio_waveform=None, midi_binary=None, has_midi=False),
    ]
    summary = ingest_paths(Store.open(tmp_path / "s"), [no_labels, write_parquet(tmp_path / "b.parquet", labelled)])
    store = Store.open(tmp_path / "s")
    seg, media = segments_by_id(store), media_by_id(store)
    assert (summary.ingested, summary.updated, summary.rejected_total, summary.rejects_path) == (6, 0, 0, None)
    assert [seg["seg0"][d] for d in ("temporal", "spatial", "ontological")] == ["Past", "Thing", "Known"]
    assert [seg["seg1"][d] for d in ("temporal", "spatial", "ontological")] == [None, None, "Known, Forgotten"]
    assert seg["seg2"]["ontological"] is None and seg["seg3"]["ontological"] == "Known, Forgotten"
    assert (seg["seg4"]["temporal"], seg["seg4"]["spatial"]) == ("Present", "Thing")  # given kept, null derived
    assert seg["seg5"]["color"] == "Yellow" and not seg["seg5"]["has_audio"] and seg["seg5"]["audio_status"] is None
    assert seg["seg0"]["key"] == "F# minor" and seg["seg0"]["has_lyrics"] and not seg["seg3"]["has_lyrics"]
    assert seg["seg0"]["source"] == "a.parquet" and seg["seg0"]["end_s"] == 1.0
    np.testing.assert_array_equal(np.array(media["seg1"]["audio"], dtype=np.float32), audio(1))
    assert media["seg1"]["sample_rate"] == SR and media["seg1"]["midi"] == MIDI
    assert media["seg5"]["audio"] is None and media["seg5"]["midi"] is None


def test_every_bad_row_is_accounted_for(tmp_path, mixed_file):
    path, n_good = mixed_file
    store = Store.open(tmp_path / "s")
    summary = ingest_paths(store, [path])
    assert summary.rows_read == n_good + len(BAD_ROWS) + len(DROPPED_ROWS)
    assert_accounted(summary)
    assert summary.ingested == n_good + len(DROPPED_ROWS) and summary.updated == 0
    assert summary.rejected == Counter(reason for _, reason in BAD_ROWS)
    assert summary.modality_dropped == Counter(reason for _, reason in DROPPED_ROWS)

    lines = [json.loads(line) for line in summary.rejects_path.read_text().splitlines()]
    drops = [ln for ln in lines if "dropped" in ln]
    lines = [ln for ln in lines if "dropped" not in ln]
    assert sorted((ln["segment_id"], ln["dropped"]) for ln in drops) == sorted(
        (row["segment_id"], reason.split(":")[0]) for row, reason in DROPPED_ROWS)
    named = [{key: ln[key] for key in ("segment_id", "dropped", "status")} for ln in drops[:5]]
    assert summary.dropped_examples == named and all(ln["status"].startswith("error: ") for ln in drops)
    assert summary.rejects_path.parent == store.side_path("rejects", "x").parent
    assert [(ln["row"], ln["reason"]) for ln in lines] == [(n_good + k, r) for k, (_, r) in enumerate(BAD_ROWS)]
    assert all(set(ln) == {"segment_id", "source", "row", "reason", "detail"} for ln in lines)
    assert lines[0]["segment_id"] == "seg100" and "Magenta" in lines[0]["detail"]

    seg, media = segments_by_id(store), media_by_id(store)
    assert store.count(SEGMENTS) == len(seg) == n_good + len(DROPPED_ROWS)
    assert seg["seg0"]["song_id"] == "song0"  # the first occurrence of a duplicated id wins
    for dropped, reason in DROPPED_ROWS:
        kept = seg[dropped["segment_id"]]
        modality = reason.split(":")[0]
        assert not kept[f"has_{modality}"] and kept[f"{modality}_status"].startswith("error: ")
        assert media[dropped["segment_id"]][modality] is None
        assert kept["has_midi" if modality == "audio" else "has_audio"]  # the other modality survives


def test_missing_required_column_fails_naming_it(tmp_path):
    path = write_parquet(tmp_path / "broken.parquet", [row(0)], without=("rainbow_color", "end_seconds"))
    store = Store.open(tmp_path / "s")
    with pytest.raises(IngestError, match="rainbow_color, end_seconds") as info:
        ingest_paths(store, [path])
    assert "song_id" in str(info.value)  # lists what the file has
    assert store.count(SEGMENTS) == 0


def store_bytes(store: Store) -> int:
    return sum(f.stat().st_size for f in Path(store.uri).rglob("*") if f.is_file() and "_chromatic" not in f.parts)


def test_reingest_changes_nothing(tmp_path, mixed_file):
    path, _ = mixed_file
    store = Store.open(tmp_path / "s")
    first = ingest_paths(store, [path])
    before = (store.count(SEGMENTS), store.count(MEDIA))
    versions, size = (store.version(SEGMENTS), store.version(MEDIA)), store_bytes(store)
    second = ingest_paths(store, [path])
    assert (second.ingested, second.updated, second.unchanged) == (0, 0, first.ingested)
    assert second.media_written == 0
    assert (store.version(SEGMENTS), store.version(MEDIA)) == versions and store_bytes(store) == size
    assert second.rejected == first.rejected
    assert_accounted(second)
    assert (store.count(SEGMENTS), store.count(MEDIA)) == before
    assert len(store.keys(SEGMENTS)) == before[0] and len(store.keys(MEDIA)) == before[1]
    overlap = ingest_paths(store, [write_parquet(tmp_path / "more.parquet", [row(0), row(300)])])
    assert (overlap.ingested, overlap.updated) == (1, 1)  # one batch holding a known and a new id
    assert len(store.keys(MEDIA)) == store.count(MEDIA) == before[1] + 1


def comparable(store: Store) -> tuple[list, list]:
    segments = store.read(SEGMENTS).drop_columns(["ingested_at"]).sort_by("segment_id").to_pylist()
    return segments, store.read(MEDIA).sort_by("segment_id").to_pylist()


def test_tiny_batches_give_the_same_result(tmp_path, mixed_file):
    path, _ = mixed_file
    big, tiny = Store.open(tmp_path / "big"), Store.open(tmp_path / "tiny")
    calls = []
    big_summary = ingest_paths(big, [path])
    tiny_summary = ingest_paths(tiny, [path], IngestConfig(batch_bytes=1), progress=lambda d, t: calls.append(d))
    assert len(calls) == tiny_summary.rows_read  # one row per batch
    assert comparable(big) == comparable(tiny)
    assert tiny_summary.rejected == big_summary.rejected
    assert tiny_summary.modality_dropped == big_summary.modality_dropped


def write_folder(folder):
    folder.mkdir()
    stereo = np.stack([tone(220, 0.5, sr=22050), tone(330, 0.5, sr=22050, seed=1)], axis=1)
    soundfile.write(folder / "a.wav", stereo, 22050, subtype="FLOAT")
    soundfile.write(folder / "b.flac", tone(440, 0.75, sr=16000), 16000)
    (folder / "a.mid").write_bytes(MIDI)
    (folder / "c.mid").write_bytes(MIDI)
    (folder / "manifest.csv").write_text(
        "segment_id,song_id,color,audio_file,midi_file,lyrics,concept,start_s,end_s,bpm,key\n"
        "fa,s1,Red,a.wav,a.mid,some words,an idea,1.0,1.5,120,C major\n"
        "fb,s1,violet,b.flac,,,an idea,,,,\n"
        "fc,s2,Green,,c.mid,,,,,,\n"
        "fd,s2,Blue,missing.wav,,la la,,0,2,,\n"
        "fe,s3,Teal,a.wav,,,,,,,\n"
    )
    return stereo


def test_folder_with_manifest_ingests_through_the_same_path(tmp_path):
    stereo = write_folder(tmp_path / "songs")
    store = Store.open(tmp_path / "s")
    summary = ingest_paths(store, [tmp_path / "songs"])
    assert (summary.rows_read, summary.ingested, summary.rejected) == (5, 4, Counter({"unknown colour": 1}))
    assert summary.modality_dropped == Counter({"audio: unreadable audio file": 1})
    seg, media = segments_by_id(store), media_by_id(store)
    np.testing.assert_allclose(media["fa"]["audio"], stereo.mean(axis=1), atol=1e-6)
    assert (media["fa"]["sample_rate"], media["fb"]["sample_rate"]) == (22050, 16000)
    assert seg["fa"]["key"] == "C major" and seg["fa"]["bpm"] == 120.0 and seg["fa"]["has_midi"]
    assert seg["fb"]["color"] == "Violet" and math.isclose(seg["fb"]["end_s"], 0.75)
    assert seg["fc"]["has_midi"] and not seg["fc"]["has_audio"] and seg["fc"]["end_s"] > 0
    assert "missing.wav" in seg["fd"]["audio_status"] and seg["fd"]["has_lyrics"]
    again = ingest_paths(store, [tmp_path / "songs"])
    assert (again.ingested, again.updated, again.unchanged) == (0, 0, 4) and store.count(MEDIA) == 4


def test_folder_manifest_option_and_missing_column(tmp_path):
    write_folder(tmp_path / "songs")
    other = tmp_path / "other.csv"
    other.write_text("segment_id,song_id,colour,audio_file\nx1,s,Orange,a.wav\n")
    store = Store.open(tmp_path / "s")
    assert ingest_paths(store, [tmp_path / "songs"], IngestConfig(manifest=other)).ingested == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("segment_id,song_id,audio_file\nx1,s,a.wav\n")
    with pytest.raises(IngestError, match="colour"):
        ingest_paths(store, [tmp_path / "songs"], IngestConfig(manifest=bad))


def test_store_info_counts_and_coverage(tmp_path):
    rows = [row(0), row(1, audio_waveform=None, lyric_text=""), row(2, "Blue", midi_binary=None)]
    store = Store.open(tmp_path / "s")
    ingest_paths(store, [write_parquet(tmp_path / "a.parquet", rows)])
    info = store_info(store)
    assert {t["table"]: t["rows"] for t in info["tables"]} == {SEGMENTS: 3, MEDIA: 3}
    by_color = {c["color"]: c for c in info["coverage"]}
    assert by_color["Red"] == {"color": "Red", "segments": 2, "audio_pct": 50.0, "midi_pct": 100.0,
                               "lyrics_pct": 50.0}
    assert by_color["all"]["segments"] == 3 and by_color["Blue"]["midi_pct"] == 0.0


def test_cli_ingest_and_info(tmp_path, mixed_file):
    from typer.testing import CliRunner

    from cli import app

    path, n_good = mixed_file
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(path), "--store", str(tmp_path / "s"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows_read"] == summary["ingested"] + summary["updated"] + summary["rejected_total"]
    info = json.loads(runner.invoke(app, ["info", "--store", str(tmp_path / "s"), "--json"]).stdout)
    assert info["coverage"][-1]["segments"] == summary["ingested"]
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope.parquet"), "--store", str(tmp_path / "s")])
    assert missing.exit_code == 2 and "does not exist" in " ".join(missing.output.split())


def test_wrongly_typed_values_are_rejected_or_fail_the_file(tmp_path):
    pq.write_table(pa.Table.from_pylist([{**row(0), "bpm": "fast"}, {**row(1), "bpm": "120"}]), tmp_path / "t.parquet")
    summary = ingest_paths(Store.open(tmp_path / "s"), [tmp_path / "t.parquet"])
    assert summary.rejected == Counter({"malformed value": 1}) and summary.ingested == 1
    assert segments_by_id(Store.open(tmp_path / "s"))["seg1"]["bpm"] == 120.0
    listed = pa.Table.from_pylist([{**row(0), "audio_waveform": [0.1, 0.2]}])
    pq.write_table(listed, tmp_path / "listed.parquet")
    with pytest.raises(IngestError, match="audio_waveform .* must be binary"):
        ingest_paths(Store.open(tmp_path / "s"), [tmp_path / "listed.parquet"])


def test_reingest_writes_only_rows_whose_content_changed(tmp_path):
    rows = [row(i) for i in range(4)]
    store = Store.open(tmp_path / "s")
    ingest_paths(store, [write_parquet(tmp_path / "a.parquet", rows)])
    before = segments_by_id(store)
    rows[1] = row(1, lyric_text="other words")  # text only: its media is not rewritten
    rows[2] = row(2, midi_binary=None, has_midi=False)  # MIDI removed
    again = ingest_paths(store, [write_parquet(tmp_path / "a.parquet", rows)])
    assert (again.ingested, again.updated, again.unchanged, again.media_written) == (0, 2, 2, 1)
    after = segments_by_id(store)
    assert after["seg1"]["lyrics_digest"] != before["seg1"]["lyrics_digest"]
    assert after["seg1"]["midi_digest"] == before["seg1"]["midi_digest"] is not None
    assert after["seg2"]["midi_digest"] is None and not after["seg2"]["has_midi"]
    assert media_by_id(store)["seg2"]["midi"] is None
    assert after["seg0"]["ingested_at"] == before["seg0"]["ingested_at"]  # untouched rows keep their stamp


def test_store_from_before_digests_is_upgraded_by_the_next_ingest(tmp_path):
    from featurestore.lineage import DIGEST_COLUMNS
    from featurestore.schemas import SEGMENTS_SCHEMA

    path = write_parquet(tmp_path / "a.parquet", [row(i) for i in range(3)])
    store = Store.open(tmp_path / "s")
    legacy = pa.schema([f for f in SEGMENTS_SCHEMA if f.name not in DIGEST_COLUMNS])
    store.ensure_table(SEGMENTS, legacy)
    ingest_paths(store, [path])  # adds the columns, then writes every row with its digests
    assert set(DIGEST_COLUMNS) <= set(store.table(SEGMENTS).schema.names)
    assert all(r["row_digest"] for r in segments_by_id(store).values())
    assert ingest_paths(store, [path]).unchanged == 3


def test_silent_audio_and_invisible_text_are_absent_with_a_reason(tmp_path):
    silent = np.zeros(800, dtype="<f4").tobytes()
    rows = [row(0, audio_waveform=silent), row(1, lyric_text="\x00\x00"), row(2, lyric_text="\u200b \u200d\ufeff"),
            row(3, concept="\x07"), row(4, lyric_text="a\x00b")]
    store = Store.open(tmp_path / "s")
    summary = ingest_paths(store, [write_parquet(tmp_path / "a.parquet", rows)])
    seg, media = segments_by_id(store), media_by_id(store)
    assert not seg["seg0"]["has_audio"] and "silent" in seg["seg0"]["audio_status"] and media["seg0"]["audio"] is None
    for sid in ("seg1", "seg2"):
        assert not seg[sid]["has_lyrics"] and seg[sid]["lyric_text"] is None
        assert seg[sid]["lyrics_status"].startswith("absent: ") and seg[sid]["lyrics_digest"] is None
    assert seg["seg3"]["concept_text"] is None and seg["seg3"]["concept_status"].startswith("absent: ")
    assert seg["seg4"]["has_lyrics"]  # visible text around a control character is still text
    dropped = summary.modality_dropped
    assert dropped["audio: silent waveform (every sample is zero)"] == 1 and sum(
        n for k, n in dropped.items() if k.startswith("lyrics: ")) == 2
