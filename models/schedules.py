"""Learning-rate schedules the models build their `LambdaLR`s from (the trainer steps them once a step)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["linear_decay"]


def linear_decay(total_steps: int, decay_start: float) -> Callable[[int], float]:
    """LambdaLR factor: 1 until decay_start·total_steps, then linearly to 0 at total_steps (0 after).

    The references' "n epochs constant, n epochs decaying to 0" (CycleGAN, BicycleGAN), per step.
    """
    start = decay_start * total_steps
    return lambda step: 1.0 if step <= start else max(0.0, (total_steps - step) / max(total_steps - start, 1e-12))
