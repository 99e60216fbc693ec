"""Plain-Python reference of the core's hierarchy matcher and window search.

Written for clarity with Python sets, straight from OAR3's algorithm as
documented; the tests check the compiled core against it on random inputs,
and the benchmarks measure the core against it.  Not used by the scheduler.
"""
from __future__ import annotations

from typing import Mapping, Sequence

Block = frozenset


def extract_n_blocks(itvs: set[int], blocks: Sequence[Block], n: int) -> set[int]:
    """The first ``n`` blocks entirely inside ``itvs`` (union), or empty when fewer."""
    out: set[int] = set()
    taken = 0
    for blk in blocks:
        if taken == n:
            break
        if blk <= itvs:
            out |= blk
            taken += 1
    return out if taken == n and n > 0 else set()


def extract_keyword(itvs: set[int], blocks: Sequence[Block], n: int) -> set[int]:
    """ALL (-1), BEST (-2), HALF_BEST (-3) on one level."""
    free_blocks = [b for b in blocks if b <= itvs]
    if n == -1:
        return set().union(*blocks) if blocks and len(free_blocks) == len(blocks) else set()
    if n == -2:
        return set().union(*free_blocks) if free_blocks else set()
    if n == -3:
        half = free_blocks[: len(free_blocks) // 2]
        return set().union(*half) if half else set()
    return set()


def find_n_h(itvs: set[int], hy: Sequence[Sequence[Block]], counts: Sequence[int], top: Sequence[Block], h: int) -> set[int]:
    n = counts[h]
    if n <= 0:
        return set()
    avail = [b for b in top if b & itvs]
    if len(avail) < n:
        return set()
    acc: set[int] = set()
    found = 0
    for blk in avail:
        if found == n:
            break
        if h == len(hy) - 2:
            subs = [blk & x for x in hy[h + 1] if blk & x]
            r = extract_n_blocks(itvs, subs, counts[h + 1])
        else:
            children = [x for x in hy[h + 1] if x <= blk]
            r = find_n_h(itvs, hy, counts, children, h + 1)
        if r:
            acc |= r
            found += 1
    return acc if found == n else set()


def find_group(itvs: set[int], hy: Sequence[Sequence[Block]], counts: Sequence[int]) -> set[int]:
    """Resources for one group (levels' block lists ``hy``, top first) in ``itvs``."""
    if len(hy) == 1:
        if counts[0] > 0:
            return extract_n_blocks(itvs, hy[0], counts[0])
        return extract_keyword(itvs, hy[0], counts[0])
    return find_n_h(itvs, hy, counts, hy[0], 0)


def find_request(avail: set[int], groups, levels: Mapping[str, Sequence[Block]]) -> set[int] | None:
    """Union of every group's resources, or None when a group does not fit.

    ``groups`` is a list of ``(levels, constraint)`` with ``levels`` a list of
    ``(label, count)`` and ``constraint`` a set of order indices.
    """
    out: set[int] = set()
    for group_levels, constraint in groups:
        hy = [levels[label] for label, _ in group_levels]
        counts = [n for _, n in group_levels]
        r = find_group(avail & set(constraint), hy, counts)
        if not r:
            return None
        out |= r
    return out


def find_first_window(slots: list[tuple[int, int, set[int]]], walltime: int, groups, levels) -> tuple[int, set[int]] | None:
    """First window of ``slots`` (``(begin, end, free)`` in time order) where the request fits: ``(begin, resources)``."""
    for i, (b, _, _) in enumerate(slots):
        j = i
        while j < len(slots) and slots[j][1] - b + 1 < walltime:
            j += 1
        if j == len(slots):
            return None
        avail = set.intersection(*(set(s[2]) for s in slots[i : j + 1]))
        r = find_request(avail, groups, levels)
        if r:
            return b, r
    return None
