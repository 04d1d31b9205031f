"""Counterbalancing for within-participant designs: Latin squares over blocks × conditions.

The design of Gatys et al. (papers/002…, §5): every participant sees each of the source images
once per block, each block shows one version (condition) of them, and the order of the blocks
is counterbalanced over participants with a Latin square, so that about as many participants
see each condition in their first block. `counterbalanced_blocks` builds one participant's
blocks; participant p takes row p mod R of a Williams square (R = C rows for an even number of
conditions C, 2C for an odd one), which balances both the position of each condition and which
condition follows which (first-order carry-over), over every R consecutive participants.

Two layouts:
- "blocked": block b shows every image in the participant's b-th condition (Gatys: one block of
  originals, then one of each manipulation, in a balanced order);
- "mixed": block b shows image i in condition row[(b + i) mod C], so each block mixes the
  conditions evenly, and each image still meets every condition exactly once over the blocks.
Images are shuffled within each block by a seed per participant.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

LAYOUTS = ("blocked", "mixed")


def williams_square(n: int) -> list[list[int]]:
    """The rows of a Williams design for n conditions (0..n-1): a Latin square whose columns hold
    every condition once and in which every ordered pair of conditions is adjacent equally
    often. n rows for even n; for odd n the square and its mirror image, 2n rows.
    ValueError for n < 1."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of conditions must be an integer >= 1, got {n!r}")
    # First row 0, 1, n-1, 2, n-2, ...; row r adds r (mod n) to it.
    first, low, high = [0], 1, n - 1
    for k in range(1, n):
        first.append(low if k % 2 else high)
        if k % 2:
            low += 1
        else:
            high -= 1
    rows = [[(c + r) % n for c in first] for r in range(n)]
    if n % 2:
        rows += [row[::-1] for row in rows]
    return rows


def condition_order(n_conditions: int, participant_index: int) -> list[int]:
    """The condition indices of participant `participant_index` (0, 1, ...) in block order."""
    if not isinstance(participant_index, int) or participant_index < 0:
        raise ValueError(f"participant_index must be an integer >= 0, got {participant_index!r}")
    rows = williams_square(n_conditions)
    return rows[participant_index % len(rows)]


def counterbalanced_blocks(images: Sequence[Hashable], conditions: Sequence[Hashable], participant_index: int,
                           *, layout: str = "blocked", seed: int | None = None) -> list[list[tuple]]:
    """One participant's blocks: len(conditions) blocks, each a list of (image, condition) holding
    every image exactly once, the images in a per-participant random order (seeded by `seed`
    and the participant index; None keeps the given order).

    ValueError when there are no images, fewer than one condition, repeated images or
    conditions, or an unknown layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not images:
        raise ValueError("counterbalancing needs at least one image")
    if not conditions:
        raise ValueError("counterbalancing needs at least one condition")
    for name, values in (("images", images), ("conditions", conditions)):
        repeated = sorted(str(v) for v, n in Counter(values).items() if n > 1)
        if repeated:
            raise ValueError(f"{name} must be distinct; repeated: {repeated[:5]}")
    order = condition_order(len(conditions), participant_index)
    rng = None if seed is None else np.random.default_rng([seed, participant_index])
    blocks = []
    for b in range(len(conditions)):
        if layout == "blocked":
            block = [(image, conditions[order[b]]) for image in images]
        else:
            block = [(image, conditions[order[(b + i) % len(conditions)]]) for i, image in enumerate(images)]
        if rng is not None:
            block = [block[k] for k in rng.permutation(len(block))]
        blocks.append(block)
    return blocks


def first_block_counts(conditions: Sequence[Hashable], n_participants: int, *, layout: str = "blocked") -> dict:
    """{condition: participants who see it in their first block} for participants 0..n-1 in the
    blocked layout (how balanced a study of that size is); in the mixed layout every first block
    holds every condition, so each count is n_participants."""
    counts = {condition: 0 for condition in conditions}
    for p in range(n_participants):
        if layout == "mixed":
            for condition in conditions:
                counts[condition] += 1
        else:
            counts[conditions[condition_order(len(conditions), p)[0]]] += 1
    return counts
