"""encoders/smf.py: the MIDI reader must give exactly what the miditoolkit path gave.

The reference below is the miditoolkit-based decoding that encoders/media.py
used before the switch, copied verbatim, so stored vectors can be compared
with freshly computed ones bit for bit.
"""

from __future__ import annotations

import io
import struct
from dataclasses import fields

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tinydata import midi_bytes, stacked_notes_midi, vlq

from encoders.base import BadInput, EncoderInput
from encoders.media import NoteTable, decode_midi, note_table, tempo_map
from encoders.midistats import MidiStatsConfig, MidiStatsEncoder, midi_statistics
from encoders.pianoroll import PianoRollConfig, PianoRollEncoder, render_roll
from encoders.smf import MAX_EVENTS, MAX_FILE_BYTES, read_smf


# -- the reference: encoders/media.py before the switch ------------------------------
def reference_decode(data: bytes):
    import miditoolkit

    if data is None or len(data) == 0:
        raise BadInput("MIDI data is empty (0 bytes)")
    try:
        midi = miditoolkit.MidiFile(file=io.BytesIO(bytes(data)), clip=True)
    except Exception as exc:  # noqa: BLE001
        raise BadInput(f"undecodable MIDI, not a standard MIDI file ({type(exc).__name__})") from exc
    if midi.ticks_per_beat <= 0:
        raise BadInput(f"MIDI uses unsupported timing division {midi.ticks_per_beat} (SMPTE timing)")
    return midi


def reference_tempo_map(midi) -> tuple[np.ndarray, np.ndarray]:
    changes = sorted(((int(tc.time), float(tc.tempo)) for tc in midi.tempo_changes), key=lambda c: c[0])
    by_tick = dict(changes)
    if not by_tick or 0 not in by_tick:
        by_tick[0] = 120.0
    ticks = np.array(sorted(by_tick), dtype=np.int64)
    bpm = np.array([by_tick[t] for t in ticks], dtype=np.float64)
    if not np.all(np.isfinite(bpm)) or np.any(bpm <= 0):
        raise BadInput(f"MIDI tempo map has invalid tempos: {sorted(set(bpm.tolist()))}")
    return ticks, bpm


def reference_ticks_to_seconds(ticks: np.ndarray, midi) -> np.ndarray:
    change_ticks, bpm = reference_tempo_map(midi)
    sec_per_tick = 60.0 / (bpm * midi.ticks_per_beat)
    segment_start_s = np.concatenate(([0.0], np.cumsum(np.diff(change_ticks) * sec_per_tick[:-1])))
    ticks = np.asarray(ticks, dtype=np.int64)
    which = np.searchsorted(change_ticks, ticks, side="right") - 1
    return segment_start_s[which] + (ticks - change_ticks[which]) * sec_per_tick[which]


def reference_note_table(data: bytes) -> NoteTable:
    midi = reference_decode(data)
    rows = [
        (n.pitch, n.velocity, n.start, max(n.end, n.start), inst.is_drum, inst.program)
        for inst in midi.instruments
        for n in inst.notes
    ]
    arr = np.array(rows, dtype=np.int64).reshape(-1, 6)
    arr = arr[np.lexsort((arr[:, 0], arr[:, 2]))]
    return NoteTable(
        pitch=arr[:, 0].astype(np.int16), velocity=arr[:, 1].astype(np.int16),
        start_tick=arr[:, 2], end_tick=arr[:, 3],
        start_s=reference_ticks_to_seconds(arr[:, 2], midi), end_s=reference_ticks_to_seconds(arr[:, 3], midi),
        is_drum=arr[:, 4].astype(bool), ticks_per_beat=int(midi.ticks_per_beat), program=arr[:, 5].astype(np.int16),
    )


def assert_same_as_reference(data: bytes) -> NoteTable:
    """Notes, tempo map and the pianoroll/midistats outputs equal the miditoolkit path's, bit for bit."""
    expected, actual = reference_note_table(data), note_table(decode_midi(data))
    for field in fields(NoteTable):
        want, got = getattr(expected, field.name), getattr(actual, field.name)
        if isinstance(want, np.ndarray):
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), field.name
        else:
            assert got == want, field.name
    for want, got in zip(reference_tempo_map(reference_decode(data)), tempo_map(decode_midi(data))):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    for config in (PianoRollConfig(), PianoRollConfig(resolution_ms=50, velocity="binary", drums="separate"),
                   PianoRollConfig(resolution_ms=20, steps=64, drums="drop")):
        got = PianoRollEncoder(config).prepare(EncoderInput("s", midi=data), "midi")
        assert got.tobytes() == render_roll(expected, config).tobytes()
    assert _midistats_outcome(lambda: MidiStatsEncoder(MidiStatsConfig()).prepare(EncoderInput("s", midi=data), "midi")) \
        == _midistats_outcome(lambda: midi_statistics(expected))
    return actual


def _midistats_outcome(compute):
    try:
        return compute().tobytes()
    except BadInput as exc:  # a file without notes: the same refusal on both paths
        return str(exc)


# -- building files byte by byte -------------------------------------------------------
def event(delta: int, *raw: int) -> bytes:
    return vlq(delta) + bytes(raw)


def meta(delta: int, kind: int, payload: bytes = b"") -> bytes:
    return vlq(delta) + bytes([0xFF, kind]) + vlq(len(payload)) + payload


def tempo(delta: int, micros_per_beat: int) -> bytes:
    return meta(delta, 0x51, micros_per_beat.to_bytes(3, "big"))


END = meta(0, 0x2F)


def smf(*tracks: bytes, file_format: int = 1, division: int = 480, header_extra: bytes = b"") -> bytes:
    header = struct.pack(">hhh", file_format, len(tracks), division) + header_extra
    return chunk(b"MThd", header) + b"".join(chunk(b"MTrk", track) for track in tracks)


def chunk(kind: bytes, body: bytes) -> bytes:
    return kind + len(body).to_bytes(4, "big") + body


def conductor_and_parts() -> bytes:
    """Type 1: tempo map and signatures in track 0, a piano track and a drum track."""
    conductor = (tempo(0, 500_000) + meta(0, 0x58, bytes([3, 2, 24, 8])) + meta(0, 0x59, bytes([0xFD, 1]))
                 + meta(0, 0x03, b"conductor") + tempo(960, 750_000) + tempo(480, 750_000) + tempo(960, 400_000) + END)
    piano = (meta(0, 0x03, b"piano") + event(0, 0xC0, 5) + event(0, 0x90, 60, 90) + event(0, 0x90, 64, 80)
             + event(480, 0x80, 60, 0) + event(0, 0x80, 64, 0) + event(480, 0x90, 67, 100) + event(1440, 0x80, 67, 64)
             + END)
    drums = b"".join(event(240, 0x99, 36, 120) + event(10, 0x89, 36, 0) for _ in range(8)) + END
    return smf(conductor, piano, drums)


def running_status_and_quirks() -> bytes:
    """Running status (also across a meta event), note-on velocity 0 as note-off, clipped data bytes."""
    track = (event(0, 0x90, 60, 100) + vlq(0) + bytes([62, 100]) + meta(0, 0x01, b"text between")
             + vlq(120) + bytes([60, 0]) + vlq(0) + bytes([62, 0])
             + event(0, 0x90, 65, 0xC8) + event(0, 0xB0, 64, 127) + event(0, 0xE0, 0, 64) + event(0, 0xD0, 10)
             + event(240, 0x80, 65, 0xFF) + END)
    return smf(track, file_format=0)


def overlapping_and_open_notes() -> bytes:
    """Same-pitch overlaps (FIFO pairing), zero-length notes, a spurious note-off and notes never closed."""
    track = (event(0, 0x90, 60, 50) + event(100, 0x90, 60, 70) + event(100, 0x80, 60, 0) + event(100, 0x80, 60, 0)
             + event(0, 0x90, 62, 80) + event(0, 0x80, 62, 0) + event(0, 0x80, 70, 0) + event(0, 0x90, 72, 90)
             + event(0, 0x90, 72, 91) + event(0, 0x80, 72, 0) + event(50, 0x90, 48, 40) + END)
    return smf(track, END)


def programs_channels_and_ties() -> bytes:
    """Notes tied on (start, pitch) in instruments created in a different order than they start."""
    track = (event(0, 0xC0, 1) + event(0, 0x91, 60, 40) + event(0, 0x90, 60, 90) + event(0, 0x90, 64, 70)
             + event(100, 0x81, 60, 0) + event(0, 0xC0, 7) + event(50, 0x80, 60, 0) + event(0, 0x90, 60, 30)
             + event(10, 0x80, 64, 0) + event(20, 0x80, 60, 0) + event(0, 0x99, 60, 99) + event(5, 0x99, 60, 0) + END)
    return smf(track, file_format=0)


def sysex_meta_and_late_tempos() -> bytes:
    """Sysex (F0 and F7), unknown/sequencer metas, an end-of-track mid-chunk, tempos outside track 0."""
    first = (tempo(0, 600_000) + event(0, 0xF0, 3, 0x43, 0x10, 0xF7) + event(0, 0xF7, 2, 0x01, 0x02)
             + meta(0, 0x7F, b"\x00\x01") + meta(0, 0x60, b"unknown") + meta(0, 0x00, b"\x00\x07")
             + meta(0, 0x20, b"\x00") + meta(0, 0x21, b"") + meta(0, 0x54, bytes([0x60, 1, 2, 3, 4]))
             + event(0, 0x90, 55, 60) + END + event(480, 0x80, 55, 0) + tempo(0, 500_000) + END)
    second = (tempo(240, 300_000) + tempo(240, 300_000) + event(0, 0x90, 57, 60) + meta(120, 0x08, b"lost delta")
              + event(240, 0x80, 57, 0) + END)
    third = tempo(0, 450_000) + tempo(720, 1_000_000) + END  # miditoolkit restarts its list at a tick-0 tempo
    return smf(first, second, third, header_extra=b"\x00\x00", division=96) + b"trailing junk"


HAND_BUILT = {
    "conductor_and_parts": conductor_and_parts,
    "running_status_and_quirks": running_status_and_quirks,
    "overlapping_and_open_notes": overlapping_and_open_notes,
    "programs_channels_and_ties": programs_channels_and_ties,
    "sysex_meta_and_late_tempos": sysex_meta_and_late_tempos,
}


# -- equality with the miditoolkit path -----------------------------------------------
@pytest.fixture(scope="module")
def corpus_midis(tmp_path_factory) -> list[bytes]:
    from synth import SynthConfig, write_corpus

    path = tmp_path_factory.mktemp("corpus") / "corpus.parquet"
    write_corpus(SynthConfig(songs=16, seed=3, segments_per_song=(2, 3), min_seconds=5, max_seconds=6), path)
    midis = [m for m in pq.read_table(path, columns=["midi_binary"]).column("midi_binary").to_pylist() if m]
    assert len(midis) >= 10
    return midis


def test_every_synthetic_corpus_midi_decodes_identically(corpus_midis):
    for data in corpus_midis:
        assert assert_same_as_reference(data).size > 0


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_hand_built_files_decode_identically(name):
    assert_same_as_reference(HAND_BUILT[name]())


def test_tinydata_files_with_tempo_changes_decode_identically():
    notes = [(60, 0, 1, 80), (64, 0.5, 1.5, 90), (60, 0.5, 2, 70), (67, 3.25, 0.5, 127), (48, 5, 0, 60)]
    for tpb in (96, 480, 960):
        assert_same_as_reference(midi_bytes(notes, tempo_bpm=97.0, ticks_per_beat=tpb,
                                            tempo_changes=[(1, 90), (2, 150), (4.5, 61.3)]))
    assert assert_same_as_reference(midi_bytes([])).size == 0


def test_pairing_tempo_and_drum_semantics_are_miditoolkit_s():
    notes = note_table(decode_midi(overlapping_and_open_notes()))
    rows = sorted(zip(notes.pitch.tolist(), notes.start_tick.tolist(), notes.end_tick.tolist(), notes.velocity.tolist()))
    # FIFO: the first 60 ends at the first note-off; 62 and one 72 have zero length; 48 never ends.
    assert rows == [(60, 0, 200, 50), (60, 100, 300, 70), (62, 300, 300, 80), (72, 300, 300, 90)]
    drums = note_table(decode_midi(conductor_and_parts()))
    assert drums.is_drum.sum() == 8 and set(drums.pitch[drums.is_drum].tolist()) == {36}
    # A tick-0 tempo in track 2 restarted miditoolkit's list, dropping track 0's and 1's later changes.
    ticks, bpm = tempo_map(decode_midi(sysex_meta_and_late_tempos()))
    assert ticks.tolist() == [0, 720] and bpm.tolist() == [60e6 / 450_000, 60.0]
    # mido dropped the delta time of meta types it does not know (0x08 here): the note ends at 720, not 840.
    late = note_table(decode_midi(sysex_meta_and_late_tempos()))
    assert late.end_tick[late.pitch == 57].tolist() == [720]
    clipped = note_table(decode_midi(running_status_and_quirks()))
    assert clipped.velocity[clipped.pitch == 65].tolist() == [127]


# -- malformed input ----------------------------------------------------------------
GOOD = conductor_and_parts()
MALFORMED = {
    "garbage": (b"definitely not a MIDI file", "no MThd header"),
    "truncated header": (GOOD[:11], "header is truncated"),
    "short header chunk": (chunk(b"MThd", b"\x00\x01\x00\x01") + GOOD[14:], "header is truncated"),
    "bad chunk id": (GOOD[:14] + b"MTrx" + GOOD[18:], "expected b'MTrk'"),
    "missing track": (GOOD[:14], "missing"),
    "truncated track": (GOOD[:-5], "truncated"),
    "event crosses the chunk end": (smf(event(0, 0x90, 60)), "ends inside an event"),
    "unterminated delta time": (smf(b"\x81\x82"), "ends inside an event"),
    "running status with no status": (smf(event(0, 60, 100) + END), "running status"),
    "undefined status byte": (smf(event(0, 0xF4) + END), "undefined status byte 0xF4"),
    "running status on a one-byte message": (smf(event(0, 0xF8) + event(0, 5) + END), "one-byte message"),
    "SMPTE division": (smf(END, division=-7440), "SMPTE"),
    "zero division": (smf(END, division=0), "0 ticks per beat"),
    "no tracks": (chunk(b"MThd", struct.pack(">hhh", 1, 0, 480)), "at least one"),
    "empty track": (smf(b""), "empty"),
    "zero tempo": (smf(tempo(0, 0) + END), "0 microseconds"),
    "short set-tempo": (smf(meta(0, 0x51, b"\x07\xa1") + END), "meta event 0x51 has 2 data bytes"),
    "impossible key": (smf(meta(0, 0x59, b"\x09\x00") + END), "key signature"),
    "zero time-signature numerator": (smf(meta(0, 0x58, b"\x00\x02\x18\x08") + END), "time signature"),
    "SMPTE offset minutes": (smf(meta(0, 0x54, bytes([0, 1, 61, 0, 0])) + END), "SMPTE offset"),
    "oversized sysex": (smf(event(0, 0xF0) + vlq(2_000_000) + END), "limit"),
    "note beyond 2**63": (smf(event(0, 0x90, 60, 1) + vlq(2**64) + bytes([0x80, 60, 0]) + END), "beyond tick"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_files_are_bad_input_with_a_reason(name):
    data, reason = MALFORMED[name]
    with pytest.raises(BadInput, match="undecodable MIDI") as caught:
        decode_midi(data)
    assert reason in str(caught.value)
    with pytest.raises(Exception):  # noqa: B017 - the old path refused (or crashed on) every one of them too
        reference_note_table(data)


def test_unknown_formats_are_refused_where_miditoolkit_was_lax():
    data = bytearray(GOOD)
    data[9] = 3
    reference_note_table(bytes(data))
    with pytest.raises(BadInput, match="valid formats are 0, 1, 2"):
        decode_midi(bytes(data))


def test_empty_data_is_refused():
    with pytest.raises(BadInput, match="empty"):
        decode_midi(b"")


# -- fuzz ---------------------------------------------------------------------------
def check_valid(data: bytes) -> None:
    """Anything but BadInput escaping, or a result breaking the NoteTable invariants, fails."""
    try:
        notes = note_table(decode_midi(data))
    except BadInput as exc:
        assert str(exc)
        return
    assert notes.ticks_per_beat > 0 and np.all(notes.start_tick <= notes.end_tick)
    assert np.all((0 <= notes.pitch) & (notes.pitch <= 127)) and np.all((1 <= notes.velocity) & (notes.velocity <= 127))
    assert np.all(np.isfinite(notes.start_s)) and np.all(notes.start_s <= notes.end_s)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_give_bad_input_or_a_valid_result(data):
    check_valid(data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_track_bytes_give_bad_input_or_a_valid_result(body):
    check_valid(smf(body))
    check_valid(smf(tempo(0, 400_000) + END, body))


HAND_BUILT_FILES = [build() for build in HAND_BUILT.values()]


def assert_same_outcome(data: bytes) -> None:
    """Whatever the old path refused (or crashed on), the new one refuses as BadInput; the rest is identical."""
    try:
        reference_note_table(data)
    except Exception:  # noqa: BLE001
        with pytest.raises(BadInput):
            read_smf(data)
        return
    assert_same_as_reference(data)


@FUZZ
@given(st.sampled_from(HAND_BUILT_FILES), st.lists(st.tuples(st.integers(14, 10_000), st.integers(0, 255)), max_size=4),
       st.integers(0, 10_000))
def test_mutated_files_decode_exactly_as_before_or_are_refused_by_both(original, edits, cut):
    data = bytearray(original)
    for index, value in edits:  # the header stays intact: unknown formats are refused on purpose (test above)
        data[14 + index % (len(data) - 14)] = value
    assert_same_outcome(bytes(data[: max(cut, 14)]))


# Mostly well-formed event streams: overlapping pitches, running status, clipped
# data bytes, drums, sysex, known and unknown metas, system messages.
_PITCH, _BYTE = st.sampled_from([0, 36, 60, 61, 127, 200]), st.integers(0, 255)
_EVENT = st.one_of(
    st.tuples(st.sampled_from([0x80, 0x90, 0x90, 0x91, 0x99, 0xA0, 0xB0, 0xE0]), _PITCH, _BYTE).map(bytes),
    st.tuples(st.sampled_from([0xC0, 0xC1, 0xD0]), _BYTE).map(bytes),
    st.tuples(_PITCH, _BYTE).map(bytes),  # running status
    st.binary(max_size=3).map(lambda b: b"\xf0" + vlq(len(b)) + b),
    st.tuples(st.sampled_from([0x01, 0x08, 0x2F, 0x4B, 0x51, 0x51, 0x7F]), st.binary(min_size=3, max_size=4)).map(
        lambda t: bytes([0xFF, t[0]]) + vlq(len(t[1])) + t[1]),
    st.sampled_from([b"\xf1\x10", b"\xf2\x01\x02", b"\xf6", b"\xf8"]),
)
_DELTA = st.one_of(st.sampled_from([0, 0, 1, 240]).map(vlq), st.integers(0, 5000).map(vlq), st.just(b"\x80\x00"))
_TRACK = st.lists(st.tuples(_DELTA, _EVENT).map(b"".join), max_size=40).map(lambda events: b"".join(events) + END)


@FUZZ
@given(st.lists(_TRACK, min_size=1, max_size=3), st.sampled_from([0, 1, 2]), st.sampled_from([1, 96, 480]))
def test_generated_event_streams_decode_exactly_as_before(tracks, file_format, division):
    assert_same_outcome(smf(*tracks, file_format=file_format, division=division))


# -- bounded work per file ---------------------------------------------------------------
def test_stacked_notes_pair_first_in_first_out():
    notes = read_smf(stacked_notes_midi(5_000, step_ticks=1)).notes
    starts, ends = notes[:, 2], notes[:, 3]
    np.testing.assert_array_equal(starts, np.arange(5_000))
    np.testing.assert_array_equal(ends - starts, np.full(5_000, 5_000))  # the oldest open note closes first


def test_pathological_files_are_flagged_quickly():
    import time

    huge = stacked_notes_midi(600_000)
    assert len(huge) > MAX_FILE_BYTES
    started = time.perf_counter()
    with pytest.raises(BadInput, match="MIDI too large"):
        decode_midi(huge)
    assert time.perf_counter() - started < 1.0
    dense = stacked_notes_midi(MAX_EVENTS // 2 + 1)  # under the byte limit, over the event limit
    assert len(dense) <= MAX_FILE_BYTES
    with pytest.raises(BadInput, match=f"over {MAX_EVENTS} note and program events"):
        decode_midi(dense)
    assert read_smf(stacked_notes_midi(MAX_EVENTS // 2 - 1)).notes.shape[0] == MAX_EVENTS // 2 - 1
