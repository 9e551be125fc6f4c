"""Offset strategies: place buffers with known lifetimes in one arena so that buffers live at the
same step never overlap, keeping the arena small.

Every strategy takes a list of :class:`~passes.memory.liveness.Buffer` (aligned sizes, lifetimes
in steps) and returns one offset per buffer (aligned, since sizes are). Four are built in:

- ``greedy-size``: Pisarchyk & Lee (2020), "Efficient Memory Management for Deep Neural Net
  Inference", greedy by size for offset calculation: the largest buffers first (ties: the
  longest-lived first), each at the smallest gap between already placed buffers that overlap it
  in time and that fits it.
- ``greedy-breadth``: the same paper's greedy by breadth: steps in decreasing order of the total
  size live at them; at each step, its unplaced buffers largest first, placed as above.
- ``greedy-repair``: greedy by size, then a bounded repair: the buffers that end above the lower
  bound (the most bytes live at one step) move to the front of the placement order, and all are
  placed again, until the arena reaches the bound, an order repeats, ``REPAIR_PATIENCE`` rounds
  in a row bring nothing, or ``REPAIR_ROUNDS`` rounds have run; the smallest arena found wins.
  Greedy by size places every equal-sized buffer in the same way, e.g. each transformer block's
  MLP at the bottom, so the residual stream that crosses two blocks finds no room beside both;
  placed first, it takes the bottom and the MLPs shift.
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

from passes.memory.liveness import Buffer, lower_bound

__all__ = ["REPAIR_PATIENCE", "REPAIR_ROUNDS", "STRATEGIES", "arena_size", "best_fit",
           "greedy_by_breadth", "greedy_by_size", "greedy_repair"]

#: At most this many re-placements after the first greedy one in :func:`greedy_repair`.
REPAIR_ROUNDS = 8
#: :func:`greedy_repair` gives up after this many rounds in a row that did not shrink the arena.
REPAIR_PATIENCE = 2


class _Placed:
    """The buffers placed so far, for fast "which placed buffers overlap [first, last] in time"
    queries: short-lived buffers are listed in the blocks of steps they span, long-lived ones
    (more than ``LONG`` blocks) in numpy arrays searched with one vectorized test."""

    BLOCK = 32
    LONG = 4

    def __init__(self, n: int):
        self.blocks: dict[int, list[tuple[int, int, int, int]]] = {}
        self.long = np.empty((n, 4), np.int64)  # offset, end, first, last
        self.n_long = 0

    def add(self, b: Buffer, offset: int) -> None:
        lo, hi = b.first // self.BLOCK, b.last // self.BLOCK
        if hi - lo >= self.LONG:
            self.long[self.n_long] = (offset, offset + b.size, b.first, b.last)
            self.n_long += 1
            return
        item = (offset, offset + b.size, b.first, b.last)
        for k in range(lo, hi + 1):
            self.blocks.setdefault(k, []).append(item)

    def best_gap(self, b: Buffer) -> int:
        """The offset of the smallest gap among placed buffers overlapping ``b`` in time that
        holds ``b``; the top of those buffers when no gap does (Pisarchyk & Lee, algorithm 3)."""
        first, last = b.first, b.last
        found = set()
        for k in range(first // self.BLOCK, last // self.BLOCK + 1):
            for item in self.blocks.get(k, ()):
                if item[2] <= last and item[3] >= first:
                    found.add(item)
        hit = None
        if self.n_long:
            lg = self.long[:self.n_long]
            hit = lg[(lg[:, 2] <= last) & (lg[:, 3] >= first), :2]
        if hit is not None and len(hit) + len(found) > 32:
            if found:
                hit = np.concatenate([hit, np.array([f[:2] for f in found], np.int64)])
            return _best_gap_np(hit, b.size)
        if hit is not None:
            found.update(map(tuple, hit.tolist()))
        if not found:
            return 0
        prev = 0
        best, best_gap = None, None
        for o, e, *_ in sorted(found):
            gap = o - prev
            if gap >= b.size and (best_gap is None or gap < best_gap):
                best, best_gap = prev, gap
            prev = max(prev, e)
        return prev if best is None else best


def _best_gap_np(spans: np.ndarray, size: int) -> int:
    """:meth:`_Placed.best_gap` over many ``(offset, end)`` rows, vectorized."""
    spans = spans[np.lexsort((spans[:, 1], spans[:, 0]))]
    offs, ends = spans[:, 0], spans[:, 1]
    prevs = np.concatenate([[0], np.maximum.accumulate(np.maximum(ends, 0))[:-1]])
    gaps = offs - prevs
    ok = gaps >= size
    if not ok.any():
        return int(max(0, ends.max()))
    k = int(np.argmin(np.where(ok, gaps, np.iinfo(np.int64).max)))
    return int(prevs[k])


def _size_order(buffers: list[Buffer]) -> list[Buffer]:
    """The buffers holding bytes, largest first; ties in size: the longer-lived buffer first (it
    constrains more of the others). A buffer of no bytes keeps offset 0, overlapping nothing."""
    return sorted((b for b in buffers if b.size),
                  key=lambda b: (-b.size, b.first - b.last, b.first, b.id))


def _place_in_order(buffers: list[Buffer], order: list[Buffer]) -> list[int]:
    """Each buffer of ``order`` in turn in the tightest gap that fits among the time-overlapping
    buffers placed before it."""
    offsets = [0] * len(buffers)
    placed = _Placed(len(buffers))
    for b in order:
        offsets[b.id] = off = placed.best_gap(b)
        placed.add(b, off)
    return offsets


def greedy_by_size(buffers: list[Buffer]) -> list[int]:
    """Largest buffers first, each in the tightest gap that fits among time-overlapping ones."""
    return _place_in_order(buffers, _size_order(buffers))


def greedy_repair(buffers: list[Buffer], rounds: int | None = None) -> list[int]:
    """:func:`greedy_by_size`, then up to ``rounds`` (default :data:`REPAIR_ROUNDS`) repairs: the
    buffers ending above the lower bound go to the front of the placement order (the latest
    offenders first, then the earlier ones), and everything is placed again. Stops at the lower
    bound, when the front repeats, or after :data:`REPAIR_PATIENCE` rounds in a row without a
    smaller arena (so a model where repairing does not help pays about three greedy runs);
    returns the smallest arena seen (never worse than greedy by size, the first round)."""
    rounds = REPAIR_ROUNDS if rounds is None else rounds
    base = _size_order(buffers)
    bound = lower_bound(buffers)
    front: list[Buffer] = []
    seen: set[tuple[int, ...]] = set()
    best, best_size = None, None
    stale = 0
    for _ in range(rounds + 1):
        in_front = {b.id for b in front}
        offsets = _place_in_order(buffers, front + [b for b in base if b.id not in in_front])
        size = arena_size(buffers, offsets)
        if best_size is None or size < best_size:
            best, best_size, stale = offsets, size, 0
        else:
            stale += 1
        if size <= bound or stale >= REPAIR_PATIENCE:
            break
        over = [b for b in base if offsets[b.id] + b.size > bound]
        over_ids = {b.id for b in over}
        front = over + [b for b in front if b.id not in over_ids]
        key = tuple(b.id for b in front)
        if key in seen:
            break
        seen.add(key)
    return best if best is not None else [0] * len(buffers)


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
    # The buffers live at a step, found through blocks of steps (as in _Placed).
    by_block: dict[int, list[Buffer]] = {}
    for b in buffers:
        if b.size:
            for k in range(b.first // _Placed.BLOCK, b.last // _Placed.BLOCK + 1):
                by_block.setdefault(k, []).append(b)
    offsets = [0] * len(buffers)
    placed = _Placed(len(buffers))
    left = [b.size > 0 for b in buffers]
    remaining = sum(left)
    for s in np.lexsort((np.arange(steps), -breadth)).tolist():
        if not remaining:
            break
        live = [b for b in by_block.get(s // _Placed.BLOCK, ())
                if left[b.id] and b.first <= s <= b.last]
        for b in sorted(live, key=lambda b: (-b.size, b.first, b.id)):
            offsets[b.id] = off = placed.best_gap(b)
            placed.add(b, off)
            left[b.id] = False
            remaining -= 1
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
    "greedy-repair": greedy_repair,
}
