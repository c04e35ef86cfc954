"""A least-recently-used map under a byte budget: search sessions' vectors in RAM and the process's snapshot cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class ByteLRU(Generic[T]):
    """Values sized by `size_of`; the least recently used are dropped beyond `budget_bytes` (0 keeps nothing),
    and a value larger than the whole budget is not kept at all. Thread-safe."""

    def __init__(self, budget_bytes: int, size_of: Callable[[T], int]):
        self.budget = int(budget_bytes)
        self._size_of = size_of
        self._entries: OrderedDict[Hashable, tuple[T, int]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> T | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def put(self, key: Hashable, value: T) -> None:
        """Keep `value` under `key` (replacing what was there), then drop the least recently used over budget."""
        size = self._size_of(value)
        with self._lock:
            self._put(key, value, size)

    def get_or_make(self, key: Hashable, make: Callable[[], T]) -> T:
        """The value under `key`, made and kept on a miss (an entry another thread made meanwhile wins)."""
        with self._lock:  # (membership, not None: a made value may be None, e.g. "this table has no index")
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        value = make()  # outside the lock: a slow read must not block other callers' hits
        size = self._size_of(value)
        with self._lock:
            if key in self._entries:
                return self._entries[key][0]
            self._put(key, value, size)
        return value

    def _put(self, key: Hashable, value: T, size: int) -> None:
        if key in self._entries:
            self._held -= self._entries.pop(key)[1]
        if size > self.budget:
            return
        self._entries[key] = (value, size)
        self._held += size
        while self._held > self.budget:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._held -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._held = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._held
