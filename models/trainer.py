"""The training loop (detectron2's shape): `TrainerBase` runs steps with hooks around them, and
`Trainer` adds devices, mixed precision, data order, DDP and the checkpoint's contents. What
happens around a step is a hook (`models/hooks.py`): the NaN stop, the LR schedule, the logs,
validation, checkpoints and the progress bar.

The trainer owns the loop and never a model's maths. A model it trains follows this protocol:

    class MyEditor(nn.Module):
        name: str                      # its registry name, e.g. "gazeshiftnet"
        config: MyEditorConfig         # a config dataclass (models/config.py)
        weights_info: dict             # optional: pretrained-weights provenance (DESIGN.md §4)

        def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
            '''One optimisation step on `batch` (tensors already on the model's device): the
            model does its own zero_grad, `amp.backward(loss)` and `amp.step(optimizer)`
            (`from models import amp`; not loss.backward() / optimizer.step(), see below), as
            many G and D steps as its paper asks, and returns its losses as scalar tensors (or
            floats). Each optimizer steps at most once per train_step.'''
        def optimizers(self) -> dict[str, Optimizer]:
            '''Its optimisers, created once in __init__ (the same objects on every call).'''
        def schedulers(self) -> dict[str, LRScheduler]:            # optional
            '''LR schedulers; the TRAINER calls .step() on each once per train_step.'''
        def validation_step(self, batch) -> dict[str, float]:      # optional
            '''Metrics on one batch; called in eval mode under torch.no_grad.'''
        def networks(self) -> dict[str, nn.Module]:                # optional, needed for DDP
            '''{attribute name: sub-network} that DDP wraps; the trainer replaces each attribute
            by its DistributedDataParallel wrapper, so train_step must call them through
            `self.<name>(...)`. Networks without trainable parameters are left unwrapped.'''

Mixed precision (`models/amp.py`): on CUDA the trainer runs `train_step` and `validation_step`
under autocast — bfloat16 where the GPU has it natively (`torch.cuda.is_bf16_supported(
including_emulation=False)`), else float16 with a GradScaler; the log says which. float16 needs
the model's cooperation: `amp.backward(loss)` scales the loss and `amp.step(optimizer)` unscales
the gradients and skips a step with inf/NaN ones (the trainer updates the scale after
train_step). Outside an fp16 step both are plain `loss.backward()` / `optimizer.step()`, so a
model calls them always; an optimizer stepped directly during an fp16 step is an
`AmpProtocolError`. The scaler's state is in checkpoints. A model that needs float32 for some
part wraps it in `torch.autocast(device_type, enabled=False)`.

Data: `train_data` is best a map-style dataset (`__len__` and `__getitem__` returning a dict of
tensors and plain values). The trainer then batches it itself (`collate_fn`, by default
`models.data.collate`: tensors stacked, everything else kept as lists): epoch e is the
permutation `randperm(len, generator seeded with seed·1_000_003 + e)`, split over DDP ranks like
DistributedSampler (padded to ceil(len / world_size) per rank, rank r takes every
world_size-th index), cut into full batches only (one smaller batch if a rank holds fewer than
batch_size samples). Step k (0-based) reads batch
k mod that count of epoch k div it, so a resumed run reads exactly the batches the uninterrupted
run would. Before reading a batch of epoch e the dataset's `set_epoch(e)` is called (where it has
one), and the batch is read under python / numpy / torch-CPU generators seeded from (seed, rank,
e, batch) — restored afterwards — so random augmentation in `__getitem__` gives the same batch
with 0 or N `num_workers` and after a resume. Workers (`num_workers` > 0) persist across epochs
and, on CUDA, pin batches' memory. An iterable (e.g. a DataLoader) is accepted too; pass p calls
`set_epoch(p)` on it and on its sampler (a DistributedSampler) and dataset, but it is replayed
from its start on resume (logged), so resume is exact only with a map-style dataset.

Exact resume is guaranteed for a single process. Under DDP the checkpoint holds rank 0's RNG
states, restored on every rank.

Frozen backbones: the frozen parameters of a model's pretrained feature extractors (modules of
`models.backbones`, e.g. a perceptual loss's VGG) are left out of checkpoints, which record their
weights' source and digest instead; resume and `load_trained` rebuild them from it
(`models.checkpoint.model_state`).

Steps are counted from 1: `step` is the number of train_step calls done; checkpoints
`out_dir/checkpoints/step_000100.pt` (the newest `keep_checkpoints`, default 3) and `last.pt`
(a hard link to the newest), with `config.yaml` beside them; logs
`out_dir/log.csv` (step, seconds since training began, losses, lr) and `out_dir/val.csv`; on rank 0
the same numbers as TensorBoard scalars in `out_dir/tensorboard/` (`train/<loss>`, `train/lr`,
`val/<metric>`; `tensorboard=False` turns them off; without the tensorboard package, which
`pip install tensorboard` adds, the logs are CSV only and the log says so). The state of the hooks
(the losses since the last log row, the validation results) is in every checkpoint, so a resumed
run also logs what the uninterrupted run would.
"""


from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from models.amp import Precision, choose_precision
from models.arrays import collate
from models.batching import batch_stream, to_device
from models.checkpoint import (FORMAT, check_compatible, load_model_state, model_state, read_checkpoint,
                               restore_rng_states, rng_states)
from models.config import config_to_dict
from models.hooks import (Checkpointer, HookBase, LogWriter, LRScheduler, ProgressBar, StopOnNonFinite,
                          TrainingDiverged, ValidationHook, hook_keys)

logger = logging.getLogger(__name__)

__all__ = ["TrainerBase", "Trainer", "TrainingDiverged", "HookBase", "ValidationHook", "resolve_device"]

AnyHook = TypeVar("AnyHook", bound=HookBase)


def resolve_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    """'auto' → CUDA (this process's GPU) if available, else CPU; 'cuda' without CUDA → ValueError."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} was asked for but CUDA is not available (torch {torch.__version__}, "
                f"{torch.cuda.device_count()} visible devices); use device='cpu' or 'auto'"
            )
        return torch.device("cuda", local_rank if dev.index is None else dev.index)
    if dev.type != "cpu":
        raise ValueError(f"device {device!r} is not supported; expected 'auto', 'cpu' or 'cuda[:N]'")
    return dev


class TrainerBase:
    """The loop: `run_step` until `step` reaches `max_steps`, with hooks around it (`models/hooks.py`).

    Subclasses implement `run_step`. `state_dict` holds the step and the hooks' state.
    """

    def __init__(self, max_steps: int):
        self.max_steps = max_steps
        self.step = 0  # steps done
        self.elapsed_s = 0.0  # training seconds before this process's run (kept across resumes)
        self.hooks: list[HookBase] = []
        self._clock: float | None = None

    def register_hooks(self, hooks: Sequence[HookBase]) -> None:
        """Append `hooks` (HookBase objects) to the ones run, in order."""
        for hook in hooks:
            if not isinstance(hook, HookBase):
                raise ValueError(f"hooks must be HookBase objects (models/hooks.py), got {hook!r}")
            hook.trainer = self
            self.hooks.append(hook)

    def hook(self, kind: type[AnyHook]) -> AnyHook | None:
        """The first hook of type `kind`, or None."""
        return next((hook for hook in self.hooks if isinstance(hook, kind)), None)

    @property
    def seconds(self) -> float:
        """Seconds of training so far, earlier runs of a resumed one included."""
        return self.elapsed_s + (time.perf_counter() - self._clock if self._clock is not None else 0.0)

    def train(self) -> None:
        """before_train; (before_step, run_step, after_step) until max_steps; after_train in reverse
        order, also after an exception, on every hook whose before_train ran."""
        self._clock = time.perf_counter()
        begun: list[HookBase] = []
        try:
            for hook in self.hooks:
                hook.before_train()
                begun.append(hook)
            while self.step < self.max_steps:
                for hook in self.hooks:
                    hook.before_step()
                self.run_step()
                self.step += 1
                for hook in self.hooks:
                    hook.after_step()
        finally:
            self.elapsed_s, self._clock = self.seconds, None
            for hook in reversed(begun):
                hook.after_train()

    def run_step(self) -> None:
        """One training step (the subclass's)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """{"step", "hooks": {hook key: state} for the hooks that have state}."""
        states = {key: hook.state_dict() for key, hook in zip(hook_keys(self.hooks), self.hooks)}
        return {"step": self.step, "hooks": {key: state for key, state in states.items() if state}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` output; the state of a hook this run lacks is logged and left unused."""
        self.step = int(state["step"])
        saved = state.get("hooks") or {}
        keys = hook_keys(self.hooks)
        for key, hook in zip(keys, self.hooks):
            if key in saved:
                hook.load_state_dict(saved[key])
        if set(saved) - set(keys):
            logger.info("the checkpoint holds the state of hooks %s, which this run does not have; left unused",
                        sorted(set(saved) - set(keys)))


class Trainer(TrainerBase):
    """Train `model` (see the module docstring for its protocol) for `max_steps` train_step calls.

    Args:
        train_data: a map-style dataset of dict samples (exact resume) or an iterable of batches.
        out_dir: run folder for checkpoints/, log.csv, val.csv, tensorboard/.
        batch_size: samples per batch and per process (map-style data only).
        val_data / val_every / val_batch_size: periodic validation (needs `validation_step`).
        ckpt_every, log_every: in steps; a checkpoint and a log row are also written at the end.
        keep_checkpoints: the newest step_NNNNNN.pt files kept (older ones are deleted as new
            ones are written; 0 keeps all). last.pt is a hard link to the newest where the file
            system allows, so it costs no second copy.
        device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        bf16: mixed precision on CUDA (False: float32 everywhere; the same as precision="fp32").
        precision: "auto" (bf16 on CUDA where the GPU has it natively, else fp16 with a GradScaler;
            float32 on the CPU), or "bf16", "fp16", "fp32" to force one (on the CPU bf16 and fp16
            run CPU autocast, for tests). See `models/amp.py`.
        seed: seeds python, numpy and torch (plus the rank) and the data order.
        hooks: extra HookBase objects, run after the built-in NaN stop, LR schedule, logs and
            validation, before the checkpointer and the progress bar.
        resume: continue from out_dir/checkpoints/last.pt if it exists.
        num_workers: DataLoader worker processes for map-style data (0: load in this process);
            they persist across epochs and pin memory on CUDA.
        collate_fn: list of items → batch (default `models.data.collate`).
        tensorboard: also write the logs as TensorBoard scalars under out_dir/tensorboard.
    """

    def __init__(self, model: nn.Module, train_data: Any, *, out_dir: str | os.PathLike, max_steps: int,
                 batch_size: int = 1, shuffle: bool = True, val_data: Any = None, val_every: int = 1000,
                 val_batch_size: int | None = None, ckpt_every: int = 1000, log_every: int = 10,
                 device: str | torch.device = "auto", bf16: bool = True, seed: int = 0,
                 hooks: Sequence[HookBase] = (), progress: bool = True, resume: bool = False,
                 num_workers: int = 0, find_unused_parameters: bool = False, collate_fn: Any = None,
                 keep_checkpoints: int = 3, precision: str = "auto", tensorboard: bool = True):
        for what, value in (("max_steps", max_steps), ("batch_size", batch_size), ("ckpt_every", ckpt_every),
                            ("log_every", log_every)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be an int >= 1, got {value!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        if not bf16 and precision not in ("auto", "fp32"):
            raise ValueError(f"bf16=False asks for float32 but precision={precision!r}; give one of them")
        if not callable(getattr(model, "train_step", None)) or not callable(getattr(model, "optimizers", None)):
            raise ValueError(f"{type(model).__name__} lacks train_step(batch) or optimizers(); see models/trainer.py")
        if val_data is not None and not callable(getattr(model, "validation_step", None)):
            raise ValueError(f"val_data was given but {type(model).__name__} has no validation_step(batch)")
        validation = [ValidationHook(val_data, val_every, val_batch_size or batch_size)] if val_data is not None else []
        checkpointer = Checkpointer(ckpt_every, keep_checkpoints)
        super().__init__(max_steps)
        self.model, self.train_data, self.out_dir = model, train_data, Path(out_dir)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.num_workers, self.collate_fn = num_workers, collate_fn or collate
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(device, self.local_rank)
        self.precision = Precision(choose_precision(precision if bf16 else "fp32", self.device), self.device)
        logger.info("%s", self.precision.describe())
        self._owns_process_group = False
        if self.world_size > 1:
            self._init_distributed()
        _seed_everything(seed + self.rank)
        model.to(self.device)
        model.train()
        self.optimizers = dict(model.optimizers())
        self.precision.watch(self.optimizers, getattr(model, "name", type(model).__name__))
        self.schedulers = dict(model.schedulers()) if callable(getattr(model, "schedulers", None)) else {}
        self._ddp: dict[str, tuple[nn.Module, nn.Module]] = {}
        if self.world_size > 1:
            self._wrap_ddp(find_unused_parameters)
        self.last_losses: dict[str, float] = {}
        self._batches: Iterator[Any] | None = None
        self.register_hooks([StopOnNonFinite(), LRScheduler(), LogWriter(log_every, tensorboard), *validation,
                             *hooks, checkpointer, ProgressBar(progress)])
        if resume:
            if (self.ckpt_dir / "last.pt").is_file():
                self.resume()
            else:
                logger.info("resume asked but %s holds no last.pt; starting from step 0", self.ckpt_dir)

    @property
    def bf16(self) -> bool:
        """Whether train_step runs under bfloat16 autocast."""
        return self.precision.mode == "bf16"

    @property
    def loss_history(self) -> list[dict[str, float]]:
        """The rows written to log.csv by this process (kept on every rank)."""
        return self.hook(LogWriter).rows

    def write_row(self, log: str, row: dict[str, Any]) -> None:
        """Append `row` to out_dir/<log>.csv (columns fixed by the first row) and to TensorBoard; rank 0."""
        self.hook(LogWriter).write_row(log, row)

    # -- the loop ----------------------------------------------------------------------------------

    def train(self) -> dict[str, float]:
        """Run steps until `max_steps`; returns the last losses. Raises TrainingDiverged on NaN/inf."""
        self._batches = batch_stream(
            self.train_data, self.step, batch_size=self.batch_size, world_size=self.world_size, rank=self.rank,
            seed=self.seed, shuffle=self.shuffle, num_workers=self.num_workers, collate_fn=self.collate_fn,
            pin_memory=self.device.type == "cuda")  # from step `self.step` on (see the module docstring)
        try:
            super().train()
        finally:
            self._batches.close()  # ends the loader's worker processes
            self._batches = None
            if self._owns_process_group:
                self._shutdown_distributed()
        return self.last_losses

    def run_step(self) -> None:
        """One `model.train_step` on the next batch, under the run's precision; `last_losses` its losses."""
        batch = to_device(next(self._batches), self.device)
        with self.precision.train_step():
            losses = self.model.train_step(batch)
        self.last_losses = self._loss_values(losses)

    # -- checkpoints -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint of the present state (keys: `models/checkpoint.py`), with this rank's RNG states."""
        with self.unwrapped():
            state, frozen = model_state(self.model)
        return {
            "format": FORMAT,
            "model_name": getattr(self.model, "name", type(self.model).__name__),
            "config": config_to_dict(self.model.config),
            "model": state,
            "frozen": frozen,
            "precision": self.precision.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            **super().state_dict(),  # step, hooks
            "rng": rng_states(),
            "weights_info": _plain(getattr(self.model, "weights_info", None)),
            "extra": {"world_size": self.world_size, "batch_size": self.batch_size, "seed": self.seed,
                      "elapsed_s": self.seconds},
        }

    def resume(self, path: str | os.PathLike | None = None) -> int:
        """Continue from the checkpoint at `path` (default last.pt): `load_state_dict` of it.

        Raises FileNotFoundError if there is none, ValueError if it is another model or config.
        Returns the step resumed from.
        """
        path = Path(path) if path is not None else self.ckpt_dir / "last.pt"
        self.load_state_dict(read_checkpoint(path), source=f"checkpoint {path}")
        logger.info("resumed from %s at step %d", path, self.step)
        return self.step

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore model, optimisers, schedulers, loss scaler, step, hooks and RNG states from a
        checkpoint dict; frozen backbones it left out are rebuilt from their recorded weights.
        ValueError (naming `source`) if it is another model or config, or has other optimisers."""
        check_compatible(state, self.model, source=source)
        for kind, mine in (("optimizers", self.optimizers), ("schedulers", self.schedulers)):
            if set(state[kind]) != set(mine):
                raise ValueError(f"{source} holds {kind} {sorted(state[kind])}, the model has {sorted(mine)}")
        with self.unwrapped():
            load_model_state(self.model, state, source=source)
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][key])
        for key, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][key])
        saved = state.get("precision") or {}
        if not self.precision.load_state_dict(saved) and saved.get("mode", self.precision.mode) != self.precision.mode:
            logger.warning("resuming in %s; the checkpoint trained in %s", self.precision.mode, saved["mode"])
        super().load_state_dict(state)  # step and hooks
        extra = state.get("extra", {})
        self.elapsed_s = float(extra.get("elapsed_s", 0.0))
        for key, now in (("world_size", self.world_size), ("batch_size", self.batch_size), ("seed", self.seed)):
            if key in extra and extra[key] != now:
                logger.warning("resuming with %s=%s, the checkpoint used %s: the data order will differ", key, now, extra[key])
        restore_rng_states(state["rng"])

    # -- devices and DDP ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def unwrapped(self):
        """The model with its original networks in place of their DDP wrappers, for the duration."""
        for name, (original, _) in self._ddp.items():
            setattr(self.model, name, original)
        try:
            yield self.model
        finally:
            for name, (_, wrapper) in self._ddp.items():
                setattr(self.model, name, wrapper)

    def _loss_values(self, losses: dict[str, Any]) -> dict[str, float]:
        """Losses as floats, averaged over DDP ranks (so every rank sees a NaN on any rank)."""
        if not isinstance(losses, dict) or not losses:
            raise ValueError(f"train_step must return a non-empty dict of losses, got {losses!r}")
        keys = list(losses)
        stacked = torch.stack([torch.as_tensor(losses[k]).detach().float().mean().to(self.device) for k in keys])
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(stacked)
            stacked /= self.world_size
        return dict(zip(keys, stacked.tolist()))

    def _init_distributed(self) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend=backend)
            self._owns_process_group = True
            logger.info("rank %d of %d: process group up (%s)", self.rank, self.world_size, backend)

    def _wrap_ddp(self, find_unused_parameters: bool) -> None:
        from torch.nn.parallel import DistributedDataParallel

        if not callable(getattr(self.model, "networks", None)):
            raise ValueError(f"{type(self.model).__name__} has no networks(); DDP needs it to know what to wrap")
        for name, net in self.model.networks().items():
            if getattr(self.model, name, None) is not net:
                raise ValueError(f"networks() key {name!r} must be the attribute of the model holding that network")
            if not any(p.requires_grad for p in net.parameters()):
                continue  # frozen (e.g. a fixed saliency predictor): nothing to synchronise
            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapper = DistributedDataParallel(net, device_ids=ids, find_unused_parameters=find_unused_parameters)
            setattr(self.model, name, wrapper)
            self._ddp[name] = (net, wrapper)

    def _shutdown_distributed(self) -> None:
        import torch.distributed as dist

        for name, (original, _) in self._ddp.items():
            setattr(self.model, name, original)
        self._ddp = {}
        if dist.is_initialized():
            dist.barrier()  # let rank 0 finish its last checkpoint before the group goes
            dist.destroy_process_group()
        self._owns_process_group = False


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value
