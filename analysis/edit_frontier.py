"""The fidelity/attention frontier of fixed edits: is a learned editor better than a hand edit of its size?

A fixed edit is one knob at one strength for every image (the foreground two stops brighter, say).
Each gives a point (size, gain): size = how much it changes the image (e.g. mean |edit − input| on
[0, 1] images, >= 0), gain = the attention it moves in the asked direction (Δp for an increase,
−Δp for a decrease; any unit, one for every point compared). The frontier is the upper envelope of
those points together with the identity edit (0, 0): for each size, the most gain any fixed edit
reaches at that size or less. Between the envelope's points it is linear (an edit of intermediate
strength is assumed to reach the intermediate gain, which makes the frontier harder to beat than a
staircase), and beyond the largest size it stays at the largest gain (no fixed edit was tried
there). An editor's point lies above the frontier when its gain is strictly higher at its size.

`matching_position` is the line search "the fixed edit of the same size": along one knob's path of
strengths, ordered from the identity outwards, where its size first reaches a given size.

Pure functions on numbers and arrays; bad input raises ValueError naming the argument.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Frontier", "fixed_edit_frontier", "above_frontier", "matching_position"]


@dataclass(frozen=True)
class Frontier:
    """The upper envelope of fixed edits: `sizes` strictly increasing from 0, `gains` strictly
    increasing from >= 0 (the identity's 0 or, where an edit of size 0 moved attention, more)."""

    sizes: np.ndarray
    gains: np.ndarray

    def gain_at(self, size: float) -> float:
        """The most gain a fixed edit reaches at `size` (>= 0) or less, interpolated linearly."""
        return float(np.interp(_size(size, "size"), self.sizes, self.gains))


def fixed_edit_frontier(sizes: Sequence[float], gains: Sequence[float]) -> Frontier:
    """The frontier (module docstring) of fixed edits with these sizes (>= 0) and gains, one per edit;
    the identity (0, 0) is always one of them, so no edit at all gives the empty frontier at 0."""
    size_values = _finite(sizes, "sizes")
    gain_values = _finite(gains, "gains")
    if size_values.shape != gain_values.shape:
        raise ValueError(f"sizes and gains must be one per edit, got {size_values.size} sizes and "
                         f"{gain_values.size} gains")
    if (size_values < 0).any():
        raise ValueError(f"sizes must be >= 0 (edit magnitudes), got {size_values.min():.4g}")
    size_values = np.concatenate([[0.0], size_values])
    gain_values = np.concatenate([[0.0], gain_values])
    # By size, the larger gain first among equal sizes: a point is on the envelope if it beats
    # every point of its size or less.
    order = np.lexsort((-gain_values, size_values))
    kept_sizes, kept_gains = [], []
    for size, gain in zip(size_values[order], gain_values[order]):
        if not kept_gains or gain > kept_gains[-1]:  # the first is of size 0: the identity or better
            kept_sizes.append(float(size))
            kept_gains.append(float(gain))
    return Frontier(np.array(kept_sizes), np.array(kept_gains))


def above_frontier(size: float, gain: float, frontier: Frontier) -> bool:
    """True if an edit of `size` (>= 0) moving attention by `gain` beats every fixed edit of its size or
    less: gain strictly above the frontier there (a tie is not above)."""
    return bool(_finite([gain], "gain")[0] > frontier.gain_at(size))


def matching_position(path_sizes: Sequence[float], size: float) -> float | None:
    """Line search along one knob: where an edit of `size` lies on its path of strengths.

    path_sizes: the sizes (>= 0) of the knob's edits at strengths ordered from the identity outwards
    (e.g. +0.25, +0.5, … stops), the identity itself not included. Returns a fractional position p
    on the path with the identity prepended (0 = the identity, k = the k-th edit given): the first
    place where the size, interpolated linearly between neighbours, reaches `size`; interpolate the
    strengths and gains at p the same way. None when no edit on the path is that large.
    """
    target = _size(size, "size")
    sizes = np.concatenate([[0.0], _finite(path_sizes, "path_sizes")])
    if (sizes < 0).any():
        raise ValueError(f"path_sizes must be >= 0 (edit magnitudes), got {sizes.min():.4g}")
    if target == 0:
        return 0.0
    reached = np.nonzero(sizes >= target)[0]
    if reached.size == 0:
        return None
    index = int(reached[0])
    low, high = sizes[index - 1], sizes[index]
    # sizes[index - 1] < target <= sizes[index], so the step is > 0
    return index - 1 + float((target - low) / (high - low))


# ---------------------------------------------------------------- helpers


def _finite(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite numbers, got {array[~np.isfinite(array)][:3].tolist()}")
    return array


def _size(size, name: str) -> float:
    value = float(_finite([size], name)[0])
    if value < 0:
        raise ValueError(f"{name} must be >= 0 (an edit magnitude), got {value:.4g}")
    return value
