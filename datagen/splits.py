"""Deterministic train/val/test assignment: a pair's split depends only on (seed, key)."""
from __future__ import annotations

import hashlib

from datadir import SPLITS


def parse_splits(text: str | tuple | list) -> tuple[float, float, float]:
    """'0.94,0.03,0.03' (train, val, test fractions, summing to 1) → a tuple of three floats."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        fractions = tuple(float(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"splits {text!r}: expected three numbers like 0.94,0.03,0.03") from exc
    if len(fractions) != 3 or any(not 0 <= f <= 1 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"splits {text!r}: expected three fractions in [0, 1] (train,val,test) that sum to 1")
    return fractions  # type: ignore[return-value]


def assign_split(seed: int, key: int | str, fractions: tuple[float, float, float]) -> str:
    """The split of pair `key` (an index or a file stem); the same for any run, order or worker."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for split, fraction in zip(SPLITS, fractions):
        cumulative += fraction
        if u < cumulative:
            return split
    return next(split for split, fraction in zip(reversed(SPLITS), reversed(fractions)) if fraction > 0)
