"""A small, strict Standard MIDI File reader with numpy output.

The scorer decodes every candidate's MIDI on each request, and mido builds one
Python object per event (~85% of `score_batch`'s time), so the encoders read
files here instead. Only what they use is kept: notes with their channel-10
drum flag, program changes (they decide how notes are grouped) and set-tempo
events. Vectors stored by the miditoolkit path must not change, so where the
choice matters this reproduces miditoolkit 1.0.1 reading through mido 1.3 with
clip=True:

- a note-off (or a note-on of velocity 0) closes the OLDEST open note of its
  (channel, pitch) in its track (FIFO); note-offs with nothing open are
  ignored; notes still open when their track ends are dropped;
- notes come out in miditoolkit's instrument order: track by track, grouped
  by (program at the note-off, channel) in the order each group first closes
  a note, so a later stable sort breaks ties exactly as before;
- set-tempo events of every track, in file order: one at tick 0 restarts the
  list and one equal to the last collected tempo is skipped;
- channel-message data bytes above 127 are clipped to 127; an end-of-track
  event does not end the track (its chunk length does);
- a meta event of a type mido does not know (0x08 program name, 0x4B, ...)
  loses its delta time, as it did in mido, shifting the rest of its track;
- what mido or miditoolkit refused is refused here too (so the same items are
  recorded as bad), and also file formats other than 0, 1 and 2.

Every failure is a `BadInput` whose reason starts with "undecodable MIDI",
or "MIDI too large" past the work limits below: reading is pure Python
(~2-6 us per event), so without a bound one pathological file (3.6 MB, 600k
stacked notes: 7 s here) would stall a whole scoring batch. A segment or a
generated candidate is far below both limits (a dense 30 s segment is a few
thousand notes, tens of KB).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from encoders.base import BadInput

NOTE_COLUMNS = ("pitch", "velocity", "start_tick", "end_tick", "is_drum", "program")
FORMATS = (0, 1, 2)
DRUM_CHANNEL = 9  # MIDI channel 10 counted from 0, as miditoolkit's is_drum
# An int like miditoolkit's default, so a file's own 120 bpm compares equal to it.
DEFAULT_BPM = 120
MAX_PAYLOAD_BYTES = 1_000_000  # mido's cap on one meta or sysex payload
MAX_FILE_BYTES = 2_000_000  # refused before parsing
MAX_EVENTS = 100_000  # note and program events per file; parsing stops at the first one past it
SYSEX = (0xF0, 0xF7)
META = 0xFF
SET_TEMPO = 0x51
NOTE_OFF, NOTE_ON, PROGRAM_CHANGE = 0x80, 0x90, 0xC0


def _data_lengths() -> tuple[int | None, ...]:
    """Data bytes after each status byte (None: undefined; F0/F7/FF are read apart)."""
    lengths: list[int | None] = [None] * 256
    for status in range(0x80, 0xF0):
        lengths[status] = 1 if 0xC0 <= status < 0xE0 else 2
    system = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0, 0xFE: 0}
    for status, length in system.items():
        lengths[status] = length
    return tuple(lengths)


_DATA_LENGTHS = _data_lengths()
# The meta types mido 1.3 knows. It drops the delta time of any other meta
# event (a bug: UnknownMetaMessage is built without it), which shifts every
# later event of the track; vectors were stored that way, so it is kept.
_MIDO_META_TYPES = frozenset((0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x09, 0x20, 0x21, 0x2F, 0x51, 0x54, 0x58,
                              0x59, 0x7F))
# Meta payloads shorter than these made mido fail (it indexes the bytes).
_META_MIN_BYTES = {0x20: 1, 0x51: 3, 0x54: 5, 0x58: 4, 0x59: 2}
# mido checks a time-signature denominator 2**e with a float log2, which
# rounds wrongly for some e, and miditoolkit refuses a numerator of 0; such
# files were refused and still are.
_BAD_DENOMINATOR_EXPONENTS = frozenset(
    e for e in range(256) if math.log(2**e, 2) != int(math.log(2**e, 2))
)


@dataclass(frozen=True)
class SmfContents:
    """What the encoders need from one file (see the module doc for the order)."""

    format: int
    ticks_per_beat: int
    track_count: int
    notes: np.ndarray  # (n, 6) int64, columns NOTE_COLUMNS
    tempo_ticks: np.ndarray  # int64, tempo changes as collected (not sorted)
    tempo_bpm: np.ndarray  # float64


def _undecodable(reason: str) -> BadInput:
    return BadInput(f"undecodable MIDI: {reason}")


def read_smf(data: bytes) -> SmfContents:
    """Parse Standard MIDI File bytes; BadInput with the reason if they are not one."""
    data = bytes(data)
    if len(data) > MAX_FILE_BYTES:
        raise BadInput(f"MIDI too large: {len(data)} bytes, over the {MAX_FILE_BYTES}-byte limit per file")
    file_format, track_count, ticks_per_beat = _read_header(data)
    rows: list[tuple] = []
    tempos: list[tuple[int, int]] = []
    pos = 8 + int.from_bytes(data[4:8], "big")
    for index in range(track_count):
        start, end = _track_bounds(data, pos, index, track_count)
        events = _read_track(data[start:end], index, tempos, MAX_EVENTS - len(rows))
        rows.extend(_pair_notes(events))
        pos = end
    tempo_ticks, tempo_bpm = _collect_tempos(tempos)
    try:
        notes = np.array(rows, dtype=np.int64).reshape(-1, len(NOTE_COLUMNS))
    except OverflowError:
        raise _undecodable("a note lies beyond tick 2**63 (corrupt delta times)") from None
    return SmfContents(file_format, ticks_per_beat, track_count, notes, tempo_ticks, tempo_bpm)


def _read_header(data: bytes) -> tuple[int, int, int]:
    if data[:4] != b"MThd":
        raise _undecodable(f"no MThd header (the file starts with {data[:4]!r}); not a standard MIDI file")
    size = int.from_bytes(data[4:8], "big")
    if len(data) < 14 or size < 6:
        raise _undecodable(f"the MThd header is truncated ({len(data)} bytes in the file, header length {size})")
    file_format, track_count, division = (int.from_bytes(data[i:i + 2], "big", signed=True) for i in (8, 10, 12))
    if file_format not in FORMATS:
        raise _undecodable(f"unknown file format {file_format}; valid formats are {', '.join(map(str, FORMATS))}")
    if track_count <= 0:
        raise _undecodable(f"the header declares {track_count} tracks; a MIDI file needs at least one")
    if division < 0:
        raise _undecodable(
            f"unsupported timing division 0x{division & 0xFFFF:04X} (SMPTE timing); only ticks per beat are supported"
        )
    if division == 0:
        raise _undecodable("timing division of 0 ticks per beat")
    return file_format, track_count, division


def _track_bounds(data: bytes, pos: int, index: int, track_count: int) -> tuple[int, int]:
    if pos + 8 > len(data):
        raise _undecodable(f"track {index} of {track_count} is missing: the file ends at byte {len(data)}")
    if data[pos:pos + 4] != b"MTrk":
        raise _undecodable(f"track {index} has chunk id {data[pos:pos + 4]!r} at byte {pos}, expected b'MTrk'")
    size = int.from_bytes(data[pos + 4:pos + 8], "big")
    start, end = pos + 8, pos + 8 + size
    if end > len(data):
        raise _undecodable(f"track {index} is truncated: it declares {size} bytes, {len(data) - start} remain")
    if size == 0:
        raise _undecodable(f"track {index} is empty (a track needs at least an end-of-track event)")
    return start, end


def _read_track(track: bytes, index: int, tempos: list, budget: int) -> list[tuple[int, int, int, int]]:
    """Note and program events (tick, status, data1, data2); set-tempos go to `tempos`.

    `budget`: events the file may still hold (MAX_EVENTS less the notes of earlier tracks).
    """
    events: list[tuple[int, int, int, int]] = []
    tick, running, pos, size = 0, None, 0, len(track)
    try:
        while pos < size:
            if len(events) > budget:
                raise BadInput(f"MIDI too large: over {MAX_EVENTS} note and program events in one file")
            delta, pos = _varint(track, pos)
            status = track[pos]
            is_running = status < 0x80
            if not is_running:
                pos += 1
                if status == META:
                    pos, tick = _read_meta(track, pos, tick, delta, tempos)
                    continue
                running = status
            elif running is None:
                raise _undecodable(f"track {index}: running status with no previous status byte at byte {pos}")
            elif running in SYSEX:
                status, pos = running, pos + 1  # mido dropped that data byte before reading the sysex
            else:
                status = running
            tick += delta
            if status in SYSEX:
                pos = _skip_sysex(track, pos)
                continue
            pos = _read_channel_or_system(track, pos, status, is_running, tick, events)
    except IndexError:
        raise _undecodable(f"track {index} ends inside an event (its chunk length disagrees with its events)") from None
    return events


def _read_channel_or_system(track: bytes, pos: int, status: int, is_running: bool, tick: int, events: list) -> int:
    length = _DATA_LENGTHS[status]
    if length is None:
        raise _undecodable(f"undefined status byte 0x{status:02X}")
    if is_running and length == 0:
        raise _undecodable(f"running status on a one-byte message 0x{status:02X}")
    end = pos + length
    if end > len(track):
        raise IndexError(end)  # _read_track reports it: the event runs past its chunk
    kind = status & 0xF0
    if kind == NOTE_ON or kind == NOTE_OFF or kind == PROGRAM_CHANGE:
        first = track[pos]
        second = track[pos + 1] if length == 2 else 0
        events.append((tick, status, first if first < 127 else 127, second if second < 127 else 127))
    return end


def _varint(track: bytes, pos: int) -> tuple[int, int]:
    """A variable-length quantity (mido accepts any number of bytes; so does this)."""
    byte = track[pos]
    value = byte & 0x7F
    pos += 1
    while byte & 0x80:
        byte = track[pos]
        value = (value << 7) | (byte & 0x7F)
        pos += 1
    return value, pos


def _payload(track: bytes, pos: int, what: str) -> tuple[bytes, int]:
    length, pos = _varint(track, pos)
    if length > MAX_PAYLOAD_BYTES:
        raise _undecodable(f"{what} of {length} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    if pos + length > len(track):
        raise IndexError(pos + length)  # _read_track reports it: the payload runs past its chunk
    return track[pos:pos + length], pos + length


def _skip_sysex(track: bytes, pos: int) -> int:
    return _payload(track, pos, "a sysex event")[1]


def _read_meta(track: bytes, pos: int, tick: int, delta: int, tempos: list) -> tuple[int, int]:
    """Read one meta event; returns the position after it and the track's tick after it."""
    meta_type = track[pos]
    payload, pos = _payload(track, pos + 1, f"meta event 0x{meta_type:02X}")
    _check_meta(meta_type, payload)
    if meta_type not in _MIDO_META_TYPES:
        return pos, tick  # mido built unknown meta events without their delta time; later events shift
    tick += delta
    if meta_type == SET_TEMPO:
        tempos.append((tick, (payload[0] << 16) | (payload[1] << 8) | payload[2]))
    return pos, tick


def _check_meta(meta_type: int, payload: bytes) -> None:
    """Refuse the meta events mido could not decode."""
    needed = _META_MIN_BYTES.get(meta_type, 0)
    if len(payload) < needed or (meta_type == 0x00 and len(payload) == 1):
        raise _undecodable(f"meta event 0x{meta_type:02X} has {len(payload)} data bytes, needs {max(needed, 2)}")
    if meta_type == 0x54 and (payload[0] >> 5 > 3 or payload[1] > 59 or payload[2] > 59 or payload[4] > 99):
        raise _undecodable(f"SMPTE offset meta event out of range: {list(payload[:5])}")
    if meta_type == 0x58 and (payload[0] == 0 or payload[1] in _BAD_DENOMINATOR_EXPONENTS):
        raise _undecodable(f"time signature {payload[0]}/2**{payload[1]} is out of range")
    if meta_type == 0x59:
        sharps = payload[0] - 256 if payload[0] > 127 else payload[0]
        if not -7 <= sharps <= 7 or payload[1] > 1:
            raise _undecodable(f"key signature with {sharps} sharps and mode {payload[1]} does not exist")


def _pair_notes(events: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int, bool]]:
    """One track's notes as rows of NOTE_COLUMNS, in miditoolkit's instrument order."""
    programs = [0] * 16  # per channel, reset for every track
    # Deques: a note-off closes the oldest open note, and list.pop(0) made stacked notes quadratic.
    open_notes: dict[tuple[int, int], deque[tuple[int, int]]] = {}
    groups: dict[tuple[int, int], list] = {}  # (program, channel) -> rows; dicts keep first-seen order
    for tick, status, number, value in events:
        kind, channel = status & 0xF0, status & 0x0F
        if kind == PROGRAM_CHANGE:
            programs[channel] = number
        elif kind == NOTE_ON and value > 0:
            open_notes.setdefault((channel, number), deque()).append((tick, value))
        else:
            waiting = open_notes.get((channel, number))
            if waiting:
                start, velocity = waiting.popleft()
                if not waiting:
                    del open_notes[(channel, number)]
                # The program at the note-off: the one miditoolkit files the note under.
                row = (number, velocity, start, tick, channel == DRUM_CHANNEL, programs[channel])
                groups.setdefault((programs[channel], channel), []).append(row)
    return [row for rows in groups.values() for row in rows]


def _collect_tempos(tempos: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(ticks, bpm) of the tempo changes as miditoolkit collected them (see module doc)."""
    changes: list[tuple[int, float]] = [(0, DEFAULT_BPM)]
    for tick, micros_per_beat in tempos:
        if micros_per_beat == 0:
            raise _undecodable(f"set-tempo event of 0 microseconds per beat at tick {tick}")
        bpm = 60 * 1e6 / micros_per_beat * 4 / 4.0  # mido.tempo2bpm's arithmetic, for bit-identical bpm
        if tick == 0:
            changes = [(0, bpm)]
        elif bpm != changes[-1][1]:
            changes.append((tick, bpm))
    try:
        ticks = np.array([tick for tick, _ in changes], dtype=np.int64)
    except OverflowError:
        raise _undecodable("a tempo change lies beyond tick 2**63 (corrupt delta times)") from None
    return ticks, np.array([bpm for _, bpm in changes], dtype=np.float64)
