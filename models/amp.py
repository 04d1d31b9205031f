"""Mixed precision for the trainer: which autocast dtype a run uses, and the loss scaling fp16 needs.

On CUDA the trainer runs `train_step` under autocast: bfloat16 where the GPU has it natively
(`torch.cuda.is_bf16_supported(including_emulation=False)`: compute capability 8.0+), else float16
with a `torch.amp.GradScaler` — float16's narrow exponent range lets small gradients underflow to 0,
so the loss is multiplied by a scale before backward, the gradients are divided by it before the
step, and a step whose gradients hold inf or NaN is skipped (the scale then halves).

Models run their own backward and optimizer steps inside `train_step`, so they write

    amp.backward(loss)          # instead of loss.backward()
    amp.step(self.optimizer_g)  # instead of self.optimizer_g.step()

Inside the trainer's fp16 step these go through its scaler; everywhere else (bf16, float32, a
test calling `train_step` directly, inference) they are exactly `loss.backward()` and
`optimizer.step()`. The trainer refuses (`AmpProtocolError`) an fp16 step in which a model
stepped one of its optimizers directly, which would apply gradients still multiplied by the scale.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

import torch

__all__ = ["PRECISIONS", "AmpProtocolError", "Precision", "backward", "choose_precision", "step"]

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_ACTIVE: contextvars.ContextVar[Precision | None] = contextvars.ContextVar("gazelab_amp", default=None)


class AmpProtocolError(RuntimeError):
    """A model stepped an optimizer directly during an fp16 step instead of through `amp.step`."""


def backward(loss: torch.Tensor, **kwargs: Any) -> None:
    """`loss.backward(**kwargs)`, on the loss times the scale inside the trainer's fp16 step."""
    active = _ACTIVE.get()
    if active is None:
        loss.backward(**kwargs)
    else:
        active.backward(loss, **kwargs)


def step(optimizer: torch.optim.Optimizer) -> None:
    """`optimizer.step()`; inside the trainer's fp16 step, the scaler's step (unscale, skip on inf/NaN)."""
    active = _ACTIVE.get()
    if active is None:
        optimizer.step()
    else:
        active.step(optimizer)


def choose_precision(requested: str, device: torch.device) -> str:
    """'bf16', 'fp16' or 'fp32' for `requested` (one of PRECISIONS) on `device`.

    "auto": on CUDA bf16 where the GPU has it natively, else fp16; float32 on the CPU.
    "bf16" on a CUDA device without bfloat16 support is a ValueError. On the CPU "bf16" and
    "fp16" run CPU autocast (slow; meant for tests of the mixed-precision path).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision {requested!r} is not one of {', '.join(PRECISIONS)}")
    if requested == "fp32" or requested == "fp16":
        return requested
    if device.type != "cuda":
        return "fp32" if requested == "auto" else requested
    # native bfloat16 only (compute capability 8.0+): emulated bf16 on older GPUs is slower than fp16
    with torch.cuda.device(device) if torch.cuda.is_available() else contextlib.nullcontext():
        supported = torch.cuda.is_bf16_supported(including_emulation=False)
    if supported:
        return "bf16"
    if requested == "bf16":
        raise ValueError(f"precision 'bf16' was asked for but {device} has no native bfloat16 (torch.cuda."
                         "is_bf16_supported(including_emulation=False) is False); use 'auto' (fp16 with loss "
                         "scaling) or 'fp32'")
    return "fp16"


class Precision:
    """One run's precision: `mode` "bf16", "fp16" (with a GradScaler) or "fp32", on `device`."""

    def __init__(self, mode: str, device: torch.device):
        if mode not in _DTYPES and mode != "fp32":
            raise ValueError(f"precision mode {mode!r} is not one of 'bf16', 'fp16', 'fp32'")
        self.mode, self.device_type = mode, torch.device(device).type
        self.scaler = torch.amp.GradScaler(self.device_type) if mode == "fp16" else None
        self._stepped = False  # an optimizer went through the scaler in this train_step
        self._in_step = False  # inside scaler.step: the optimizer's own step is the scaler's doing

    def describe(self) -> str:
        """One line for the log: what runs, and why."""
        if self.mode == "bf16":
            return f"mixed precision: bfloat16 autocast on {self.device_type}"
        if self.mode == "fp16":
            why = " (this GPU has no native bfloat16)" if self.device_type == "cuda" else ""
            return f"mixed precision: float16 autocast with a GradScaler on {self.device_type}{why}"
        return f"float32 on {self.device_type} (no autocast)"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of this mode (nothing for fp32)."""
        if self.mode == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=_DTYPES[self.mode])

    @contextlib.contextmanager
    def train_step(self) -> Iterator[None]:
        """Around one `model.train_step`: autocast, `amp.backward` / `amp.step` routed here, and the
        scaler's update at the end (when an optimizer stepped; not after an exception)."""
        self._stepped = False
        token = _ACTIVE.set(self)
        try:
            with self.autocast():
                yield
        finally:
            _ACTIVE.reset(token)
        if self.scaler is not None and self._stepped:
            self.scaler.update()

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward(**kwargs)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self._in_step = True
        try:
            self.scaler.step(optimizer)
        finally:
            self._in_step = False
        self._stepped = True

    def watch(self, optimizers: Mapping[str, torch.optim.Optimizer], owner: str) -> list:
        """In fp16 mode, make a direct `optimizer.step()` inside a train_step raise AmpProtocolError;
        returns the hook handles (none in the other modes, where a direct step is harmless)."""
        if self.scaler is None:
            return []
        handles = []
        for name, optimizer in optimizers.items():
            def check(opt, args, kwargs, name=name):
                if _ACTIVE.get() is self and not self._in_step:
                    raise AmpProtocolError(
                        f"{owner} stepped optimizer {name!r} with optimizer.step() during an fp16 training step; "
                        "its gradients were still multiplied by the loss scale. In train_step call "
                        "models.amp.backward(loss) and models.amp.step(optimizer) (see models/trainer.py)")
            handles.append(optimizer.register_step_post_hook(check))
        return handles

    def state_dict(self) -> dict:
        """{"mode", "scaler": the GradScaler's state or None} — plain types, for checkpoints."""
        return {"mode": self.mode, "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, state: dict) -> bool:
        """Restore the scaler from `state_dict()` output; False (nothing restored) when `state` has no
        scaler state for this mode (another precision wrote it)."""
        if self.scaler is None or not state or not state.get("scaler"):
            return False
        self.scaler.load_state_dict(state["scaler"])
        return True
