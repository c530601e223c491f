"""One deadline queue for every timer of the core.

A heap with lazy cancellation and lazy postponement (the aioquic / asyncio
pattern). The state objects hold the real deadlines; the queue only holds
*wake-up* times. Pushing happens only when a wake-up must come earlier than the
one already queued for that key, so refreshing a timer to a later time (the
common case: every report refreshes a group timer) costs two dict operations and
no heap push. When a wake-up fires, the owner looks at the real deadline and
either acts or asks for a later wake-up.

Costs: ``schedule`` O(1) or O(log n); ``next_deadline`` O(1); ``pop_due`` with
nothing due O(1).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class DeadlineQueue(Generic[K]):
    __slots__ = ("_heap", "_scheduled", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._scheduled: dict[K, float] = {}  # key -> earliest live wake-up queued
        self._seq = 0

    def __len__(self) -> int:
        return len(self._scheduled)

    def schedule(self, key: K, at: float) -> None:
        """Make sure ``key`` wakes up no later than ``at``."""
        queued = self._scheduled.get(key)
        if queued is not None and queued <= at:
            return  # an earlier wake-up is queued; it will re-check and postpone
        self._scheduled[key] = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, key))

    def cancel(self, key: K) -> None:
        """Forget ``key``; its heap entry becomes stale and is dropped when popped."""
        self._scheduled.pop(key, None)

    def next_deadline(self) -> float | None:
        """The earliest queued wake-up (possibly stale: an early wake-up is harmless)."""
        heap = self._heap
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[K]:
        """Keys whose wake-up time has come, in deadline order."""
        heap = self._heap
        if not heap or heap[0][0] > now:
            return []
        due: list[K] = []
        scheduled = self._scheduled
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            if scheduled.get(key) != at:
                continue  # cancelled, or superseded by an earlier wake-up
            del scheduled[key]
            due.append(key)
        return due
