"""Offset strategies: place buffers with known lifetimes in one arena so that buffers live at the
same step never overlap, keeping the arena small.

Every strategy takes a list of :class:`~passes.memory.liveness.Buffer` (aligned sizes, lifetimes
in steps) and returns one offset per buffer (aligned, since sizes are). Three are built in:

- ``greedy-size``: Pisarchyk & Lee (2020), "Efficient Memory Management for Deep Neural Net
  Inference", greedy by size for offset calculation: the largest buffers first, each at the
  smallest gap between already placed buffers that overlap it in time and that fits it.
- ``greedy-breadth``: the same paper's greedy by breadth: steps in decreasing order of the total
  size live at them; at each step, its unplaced buffers largest first, placed as above.
- ``best-fit``: a classical online allocator replayed over the order: at each step free the
  buffers that died, then allocate the new ones (largest first) in the smallest free block that
  holds them, growing the arena when none does.

``STRATEGIES`` maps a name to its function; ``plan_offsets`` runs one, or all of them with
``"auto"`` and keeps the smallest arena.
"""

from __future__ import annotations

import bisect
from typing import Callable

import numpy as np

from passes.memory.liveness import Buffer

__all__ = ["STRATEGIES", "arena_size", "best_fit", "greedy_by_breadth", "greedy_by_size"]


class _Placed:
    """The buffers placed so far, as numpy arrays, for fast "which overlap [first, last]" queries."""

    def __init__(self, n: int):
        self.first = np.empty(n, np.int64)
        self.last = np.empty(n, np.int64)
        self.offset = np.empty(n, np.int64)
        self.end = np.empty(n, np.int64)
        self.n = 0

    def add(self, b: Buffer, offset: int) -> None:
        k = self.n
        self.first[k], self.last[k], self.offset[k], self.end[k] = b.first, b.last, offset, offset + b.size
        self.n += 1

    def best_gap(self, b: Buffer) -> int:
        """The offset of the smallest gap among placed buffers overlapping ``b`` in time that
        holds ``b``; the top of those buffers when no gap does (Pisarchyk & Lee, algorithm 3)."""
        n = self.n
        if n == 0:
            return 0
        mask = (self.first[:n] <= b.last) & (self.last[:n] >= b.first)
        if not mask.any():
            return 0
        offs = self.offset[:n][mask]
        ends = self.end[:n][mask]
        order = np.argsort(offs, kind="stable")
        prev = 0
        best, best_gap = None, None
        for o, e in zip(offs[order].tolist(), ends[order].tolist()):
            gap = o - prev
            if gap >= b.size and (best_gap is None or gap < best_gap):
                best, best_gap = prev, gap
            prev = max(prev, e)
        return prev if best is None else best


def greedy_by_size(buffers: list[Buffer]) -> list[int]:
    """Largest buffers first, each in the tightest gap that fits among time-overlapping ones."""
    offsets = [0] * len(buffers)
    placed = _Placed(len(buffers))
    for b in sorted(buffers, key=lambda b: (-b.size, b.first, b.id)):
        if not b.size:  # holds no bytes: offset 0, overlapping nothing
            continue
        offsets[b.id] = off = placed.best_gap(b)
        placed.add(b, off)
    return offsets


def greedy_by_breadth(buffers: list[Buffer]) -> list[int]:
    """Steps with the most live bytes first; their buffers largest first, placed as in
    :func:`greedy_by_size`."""
    if not buffers:
        return []
    steps = max(b.last for b in buffers) + 1
    breadth = np.zeros(steps + 1, np.int64)
    for b in buffers:  # difference array: + at first, - after last
        breadth[b.first] += b.size
        breadth[b.last + 1] -= b.size
    breadth = np.cumsum(breadth)[:steps]
    starting: list[list[Buffer]] = [[] for _ in range(steps)]
    for b in buffers:
        starting[b.first].append(b)
    # The buffers live at a step: a sweep keeps the set of live ones.
    live_at: list[list[Buffer]] = []
    live: dict[int, Buffer] = {}
    ending: list[list[int]] = [[] for _ in range(steps + 1)]
    for b in buffers:
        ending[b.last + 1].append(b.id)
    for s in range(steps):
        for k in ending[s]:
            live.pop(k, None)
        for b in starting[s]:
            live[b.id] = b
        live_at.append(list(live.values()))
    offsets = [0] * len(buffers)
    done = [False] * len(buffers)
    placed = _Placed(len(buffers))
    for s in sorted(range(steps), key=lambda s: (-int(breadth[s]), s)):
        for b in sorted(live_at[s], key=lambda b: (-b.size, b.first, b.id)):
            if done[b.id] or not b.size:
                continue
            offsets[b.id] = off = placed.best_gap(b)
            placed.add(b, off)
            done[b.id] = True
    return offsets


def best_fit(buffers: list[Buffer]) -> list[int]:
    """An online best-fit allocator replayed over the execution order."""
    offsets = [0] * len(buffers)
    if not buffers:
        return offsets
    steps = max(b.last for b in buffers) + 1
    starting: list[list[Buffer]] = [[] for _ in range(steps)]
    ending: list[list[Buffer]] = [[] for _ in range(steps + 1)]
    for b in buffers:
        if b.size:  # a buffer of no bytes keeps offset 0 and takes no space
            starting[b.first].append(b)
            ending[b.last + 1].append(b)
    free_starts: list[int] = []   # sorted offsets of free blocks below the top
    free_size: dict[int, int] = {}
    top = 0                        # everything at and above ``top`` is free
    for s in range(steps):
        for b in ending[s]:
            off, size = offsets[b.id], b.size
            # Merge with the free neighbours, or lower the top.
            i = bisect.bisect_left(free_starts, off)
            if i < len(free_starts) and free_starts[i] == off + size:
                size += free_size.pop(free_starts.pop(i))
            if i > 0 and free_starts[i - 1] + free_size[free_starts[i - 1]] == off:
                i -= 1
                off = free_starts[i]
                size += free_size[off]
                free_starts.pop(i)
            if off + size == top:
                top = off
            else:
                free_starts.insert(i, off)
                free_size[off] = size
            if free_starts and free_starts[-1] + free_size[free_starts[-1]] == top:
                top = free_starts.pop()
                free_size.pop(top)
        for b in sorted(starting[s], key=lambda b: (-b.size, b.id)):
            best = None
            for off in free_starts:
                size = free_size[off]
                if size >= b.size and (best is None or size < free_size[best]):
                    best = off
            if best is None:
                offsets[b.id] = top
                top += b.size
                continue
            offsets[b.id] = best
            rest = free_size.pop(best) - b.size
            i = bisect.bisect_left(free_starts, best)
            free_starts.pop(i)
            if rest:
                free_starts.insert(i, best + b.size)
                free_size[best + b.size] = rest
    return offsets


def arena_size(buffers: list[Buffer], offsets: list[int]) -> int:
    """The bytes an arena needs to hold ``buffers`` at ``offsets``."""
    return max((o + b.size for b, o in zip(buffers, offsets)), default=0)


#: Strategies by name; ``"auto"`` (in :func:`passes.memory.plan.plan_memory`) tries them all.
STRATEGIES: dict[str, Callable[[list[Buffer]], list[int]]] = {
    "greedy-size": greedy_by_size,
    "greedy-breadth": greedy_by_breadth,
    "best-fit": best_fit,
}
