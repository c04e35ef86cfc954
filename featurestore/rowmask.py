"""Row-address allow-lists in the byte format Lance's scanner takes (`row_addr_allowlist`).

A filter resolved once to the feature table's row addresses is handed to every
later vector query as a bitmap, so Lance masks rows before ranking instead of
parsing and matching a `segment_id IN (...)` list of thousands of ids per query.

The format is Lance's `RowAddrTreeMap::serialize_into`: u32 count of fragments,
then per fragment u32 fragment id, u32 byte length and a RoaringBitmap in the
portable format over the row offsets inside the fragment (array containers up to
4096 values, bitmap containers above; no run containers). All little-endian.
Row addresses are only valid for the table version they were read at.
"""

from __future__ import annotations

import struct

import numpy as np

_NO_RUN_COOKIE = 12346
_ARRAY_MAX = 4096  # roaring's limit between an array container and a 2^16-bit bitmap container
_LOW32 = np.uint64(0xFFFFFFFF)


def allowlist(row_addrs: np.ndarray) -> bytes:
    """Serialized allow-list of `row_addrs` (u64 `_rowaddr` values: fragment << 32 | offset)."""
    addrs = np.unique(np.asarray(row_addrs, dtype=np.uint64))
    fragments = (addrs >> np.uint64(32)).astype(np.uint32)
    keys, starts = np.unique(fragments, return_index=True)
    ends = np.append(starts[1:], len(addrs))
    parts = [struct.pack("<I", len(keys))]
    for fragment, start, end in zip(keys, starts, ends):
        bitmap = roaring_bitmap((addrs[start:end] & _LOW32).astype(np.uint32))
        parts.append(struct.pack("<II", int(fragment), len(bitmap)))
        parts.append(bitmap)
    return b"".join(parts)


def roaring_bitmap(values: np.ndarray) -> bytes:
    """Portable-format RoaringBitmap of sorted, unique u32 `values`."""
    high = (values >> 16).astype(np.uint16)
    keys, starts, counts = np.unique(high, return_index=True, return_counts=True)
    bodies = [_container((values[s : s + c] & 0xFFFF).astype("<u2")) for s, c in zip(starts, counts)]
    header = struct.pack("<II", _NO_RUN_COOKIE, len(keys))
    descriptions = np.empty(2 * len(keys), dtype="<u2")
    descriptions[0::2], descriptions[1::2] = keys, counts - 1
    first_body = len(header) + 8 * len(keys)  # descriptions (4 bytes) + offsets (4 bytes) per container
    sizes = np.array([len(body) for body in bodies], dtype=np.int64)
    offsets = (first_body + np.concatenate([[0], np.cumsum(sizes)[:-1]])).astype("<u4")
    return header + descriptions.tobytes() + offsets.tobytes() + b"".join(bodies)


def _container(lows: np.ndarray) -> bytes:
    if len(lows) <= _ARRAY_MAX:
        return lows.tobytes()
    bits = np.zeros(1 << 16, dtype=bool)
    bits[lows] = True
    return np.packbits(bits, bitorder="little").tobytes()
