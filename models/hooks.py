"""Trainer hooks (detectron2 style): code that runs before training, after each step and at the end."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.trainer import Trainer

logger = logging.getLogger(__name__)

__all__ = ["HookBase", "ValidationHook"]


class HookBase:
    """detectron2-style hook; `self.trainer` is set when the Trainer takes the hook."""

    trainer: Trainer

    def before_train(self) -> None: ...

    def after_step(self) -> None: ...

    def after_train(self) -> None: ...


class ValidationHook(HookBase):
    """Every `every` steps (and at the last), average `model.validation_step` over `data`.

    Runs on rank 0 only, on the unwrapped networks, in eval mode under no_grad, with every RNG
    state saved and restored around it (so validation never changes the training run).
    Results go to `val.csv`, TensorBoard (`val/<key>`), the log, and `self.history`.
    """

    def __init__(self, data: Any, every: int, batch_size: int):
        if every < 1:
            raise ValueError(f"val_every must be >= 1 step, got {every}")
        self.data, self.every, self.batch_size = data, every, batch_size
        self.history: list[dict[str, float]] = []

    def after_step(self) -> None:
        t = self.trainer
        if t.rank != 0 or not (t.step % self.every == 0 or t.step == t.max_steps):
            return
        metrics = t.validate(self.data, self.batch_size)
        self.history.append({"step": t.step, **metrics})
        t.write_row("val", {"step": t.step, **metrics})
        logger.info("step %d validation: %s", t.step, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
