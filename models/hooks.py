"""Trainer hooks (detectron2 style): everything around the training step that is not the step itself.

`TrainerBase.train` (models/trainer.py) calls, on every hook in list order, `before_train` once,
then `before_step` and `after_step` around each step, and at the end `after_train` — in reverse
order, and also when training stops with an exception, on each hook whose `before_train` ran, so
a hook can close what it opened. `trainer.step` counts the steps done: in `before_step` it is the
0-based index of the coming step, in `after_step` it includes the step just done.

A hook with state that a resumed run needs returns it from `state_dict()` (plain types and
tensors, so a checkpoint loads with `weights_only=True`) and takes it back in `load_state_dict`;
checkpoints hold it under `hooks`, keyed by `hook_keys` (the class name, `#2`, `#3` … for repeats).

The Trainer's own hooks, in the order it runs them (extra hooks go between validation and the checkpointer):

    StopOnNonFinite   a NaN or infinite loss stops training (TrainingDiverged); the last good checkpoint stays
    LRScheduler       steps the model's learning-rate schedulers once a step
    LogWriter         log.csv (mean losses and learning rates every `every` steps) and the rows other hooks
                      write (val.csv), as CSV and TensorBoard; state: the losses since the last row
    ValidationHook    every `every` steps, the mean of `model.validation_step` over the validation data;
                      state: the results so far (`history`)
    Checkpointer      step_NNNNNN.pt, last.pt and config.yaml every `every` steps and at the last
    ProgressBar       a tqdm bar on rank 0
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from models.batching import iterate_batches, to_device
from models.checkpoint import restore_rng_states, rng_states, save_checkpoint
from models.config import save_config
from models.run_logs import RunLogs

if TYPE_CHECKING:
    from models.trainer import Trainer

logger = logging.getLogger(__name__)

__all__ = ["HookBase", "TrainingDiverged", "StopOnNonFinite", "LRScheduler", "LogWriter", "ValidationHook",
           "Checkpointer", "ProgressBar", "hook_keys"]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the loss."""


class HookBase:
    """detectron2-style hook; `self.trainer` is set when the trainer takes the hook."""

    trainer: Trainer

    def before_train(self) -> None: ...

    def before_step(self) -> None: ...

    def after_step(self) -> None: ...

    def after_train(self) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs of this hook (empty: nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back `state_dict()` output from a checkpoint."""


def hook_keys(hooks: Iterable[HookBase]) -> list[str]:
    """The key each hook's state has in a checkpoint: its class name, with `#2`, `#3` … for repeats."""
    keys, seen = [], {}
    for hook in hooks:
        name = type(hook).__name__
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


class StopOnNonFinite(HookBase):
    """Raise TrainingDiverged, naming the step and the losses, when a loss of the step is NaN or infinite.

    It runs first after each step, so neither the schedulers, the logs nor a checkpoint see that step:
    the newest checkpoint is the last good one. Losses are averaged over DDP ranks first, so every
    rank stops together.
    """

    def after_step(self) -> None:
        t = self.trainer
        bad = {k: v for k, v in t.last_losses.items() if not math.isfinite(v)}
        if bad:
            last = t.ckpt_dir / "last.pt"
            kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
            raise TrainingDiverged(f"training diverged at step {t.step}: "
                                   + ", ".join(f"loss {k} = {v}" for k, v in bad.items()) + f"; {kept}")


class LRScheduler(HookBase):
    """Step each of the model's schedulers (`trainer.schedulers`) once after every step.

    Their state is the model's, like its optimisers': checkpoints keep it under `schedulers`.
    """

    def after_step(self) -> None:
        t = self.trainer
        with warnings.catch_warnings():
            if t.precision.scaler is not None:  # a step fp16 skipped (inf/NaN gradients) still counts
                warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            for scheduler in t.schedulers.values():
                scheduler.step()


class LogWriter(HookBase):
    """The run's logs: every `every` steps and at the last, a row of `out_dir/log.csv` — step, seconds
    of training so far, each loss averaged over the steps since the previous row, the learning
    rates — and, on rank 0, the same as TensorBoard scalars `train/<column>` under
    `out_dir/tensorboard/` (unless `tensorboard` is False or the tensorboard package is missing,
    which the log says once). Other hooks write their rows through `write_row` (validation: val.csv).

    `rows` holds the log.csv rows of this process (on every rank; the files are rank 0's). Its
    state, the losses since the last row, goes into checkpoints, so a resumed run's rows are the
    uninterrupted run's. Rows after the resumed step (left by a crashed run) are dropped.
    """

    def __init__(self, every: int, tensorboard: bool = True):
        self.every, self.tensorboard = every, bool(tensorboard)
        self.rows: list[dict[str, float]] = []
        self._window: dict[str, list[float]] = {}
        self._logs: RunLogs | None = None

    def before_train(self) -> None:
        t = self.trainer
        if t.rank == 0:
            self._logs = RunLogs(t.out_dir, t.step, tensorboard=self.tensorboard)

    def after_step(self) -> None:
        t = self.trainer
        for key, value in t.last_losses.items():
            self._window.setdefault(key, []).append(value)
        if t.step % self.every == 0 or t.step == t.max_steps:
            row = {"step": t.step, "seconds": round(t.seconds, 3),
                   **{k: sum(v) / len(v) for k, v in self._window.items()}, **_learning_rates(t.optimizers)}
            self._window = {}
            self.rows.append(row)
            self.write_row("log", row)

    def after_train(self) -> None:
        if self._logs is not None:
            self._logs.close()
            self._logs = None

    def write_row(self, log: str, row: dict[str, Any]) -> None:
        """Append `row` to out_dir/<log>.csv (columns fixed by the first row) and to TensorBoard; rank 0 only."""
        if self._logs is not None:
            self._logs.write_row(log, row)

    def state_dict(self) -> dict[str, Any]:
        return {"window": {key: list(values) for key, values in self._window.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._window = {key: [float(v) for v in values] for key, values in state.get("window", {}).items()}


class ValidationHook(HookBase):
    """Every `every` steps (and at the last), average `model.validation_step` over `data`.

    Runs on rank 0 only, on the unwrapped networks, in eval mode under no_grad and the run's
    autocast, with every RNG state saved and restored around it (so validation never changes the
    training run). Results go to `val.csv` and TensorBoard (`val/<key>`) through the log writer,
    to the log, and to `history` ({"step", metrics…} per validation), which checkpoints keep.
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
        metrics = self.evaluate()
        self.history.append({"step": t.step, **metrics})
        t.write_row("val", {"step": t.step, **metrics})
        logger.info("step %d validation: %s", t.step, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))

    def evaluate(self) -> dict[str, float]:
        """Mean of `model.validation_step` over the batches of the data (RNG states left untouched)."""
        t = self.trainer
        states = rng_states()
        sums: dict[str, float] = {}
        count = 0
        t.model.eval()
        try:
            with t.unwrapped(), torch.no_grad(), t.precision.autocast():
                for batch in iterate_batches(self.data, self.batch_size, t.collate_fn):
                    for key, value in t.model.validation_step(to_device(batch, t.device)).items():
                        sums[key] = sums.get(key, 0.0) + float(value)
                    count += 1
        finally:
            t.model.train()
            restore_rng_states(states)
        if count == 0:
            raise ValueError("validation data yielded no batch")
        return {key: total / count for key, total in sums.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(row) for row in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [dict(row) for row in state.get("history", [])]


class Checkpointer(HookBase):
    """Every `every` steps and at the last, on rank 0: `trainer.state_dict()` to
    checkpoints/step_NNNNNN.pt (atomically), last.pt a hard link to it (a copy where the file
    system has no hard links), config.yaml beside them; then the step files beyond the newest
    `keep` are deleted (0: keep all; files whose name is not step_<digits>.pt are left alone)."""

    def __init__(self, every: int, keep: int = 3):
        if not isinstance(keep, int) or keep < 0:
            raise ValueError(f"keep_checkpoints must be an int >= 0 (0: keep all), got {keep!r}")
        self.every, self.keep = every, keep

    def after_step(self) -> None:
        t = self.trainer
        if t.step % self.every == 0 or t.step == t.max_steps:
            self.save()

    def save(self) -> Path | None:
        """Write the checkpoint of the trainer's present state; its path (None on ranks other than 0)."""
        t = self.trainer
        if t.rank != 0:
            return None
        directory = t.ckpt_dir
        path = save_checkpoint(t.state_dict(), directory / f"step_{t.step:06d}.pt")
        tmp = directory / f".last.pt.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)
        except OSError:  # no hard links here (some network and FAT file systems): a copy
            shutil.copyfile(path, tmp)
        os.replace(tmp, directory / "last.pt")
        save_config(t.model.config, directory / "config.yaml")
        logger.info("step %d: checkpoint %s", t.step, path)
        if self.keep:
            written = sorted((p for p in directory.glob("step_*.pt") if p.stem[5:].isdigit()),
                             key=lambda p: int(p.stem[5:]))  # by number: step_1000000 comes after step_999999
            for old in written[:-self.keep]:
                old.unlink(missing_ok=True)
        return path


class ProgressBar(HookBase):
    """A tqdm bar of the steps on rank 0 (none when `enabled` is False), showing the latest logged losses."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bar: tqdm | None = None

    def before_train(self) -> None:
        t = self.trainer
        self._bar = tqdm(total=t.max_steps, initial=t.step, desc=getattr(t.model, "name", "train"),
                         disable=not self.enabled or t.rank != 0, dynamic_ncols=True)

    def after_step(self) -> None:
        t = self.trainer
        history = t.loss_history
        if history and history[-1]["step"] == t.step:
            self._bar.set_postfix({k: f"{history[-1][k]:.4g}" for k in t.last_losses})
        self._bar.update(1)

    def after_train(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _learning_rates(optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
    """{"lr": …} for one optimiser, {"lr_<name>": …} for several (each one's first parameter group)."""
    lrs = {name: opt.param_groups[0]["lr"] for name, opt in optimizers.items()}
    if len(lrs) == 1:
        return {"lr": next(iter(lrs.values()))}
    return {f"lr_{name}": lr for name, lr in lrs.items()}
