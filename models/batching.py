"""The order in which the trainer reads batches: deterministic per (seed, step), split over DDP ranks.

See `models/trainer.py`'s docstring for the order itself; `batch_stream` makes a resumed run read
exactly the batches an uninterrupted run would, with 0 or N loader workers alike: each batch is
read with the global generators seeded from (seed, rank, epoch, batch) and the dataset's
`set_epoch(epoch)` called first, in whichever process reads it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = ["batch_stream", "iterate_batches", "to_device", "is_map_style"]


def batch_stream(data: Any, step: int, *, batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True, num_workers: int = 0, collate_fn, pin_memory: bool = False) -> Iterator[Any]:
    """Batches of `data` from step `step` (0-based count of batches already read) on, forever.

    With `num_workers` > 0 one DataLoader serves every epoch (persistent workers, `pin_memory`
    for CUDA); the epoch travels with each batch's indices, so the workers' copies of the dataset
    see `set_epoch` too.
    """
    if not is_map_style(data):
        yield from _iterable_stream(data, step)
        return
    n = len(data)
    if n == 0:
        raise ValueError("train_data is empty")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
    per_rank = math.ceil(n / world_size)
    size = min(batch_size, per_rank)
    batches = _EpochBatches(n, size, per_rank, world_size, rank, seed, shuffle)
    batches.epoch, batches.start = divmod(step, batches.per_epoch)
    reader = _BatchReader(data, collate_fn, seed, rank)
    if num_workers == 0:
        while True:
            for key in batches:
                yield reader[key]
            batches.epoch, batches.start = batches.epoch + 1, 0
    loader = torch.utils.data.DataLoader(
        reader, sampler=batches, batch_size=None, collate_fn=_as_read, num_workers=num_workers,
        persistent_workers=True, pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed))  # its worker seeds, not drawn from the global RNG
    while True:
        yield from loader  # iterating again reuses the workers; the sampler reads epoch and start anew
        batches.epoch, batches.start = batches.epoch + 1, 0


class _EpochBatches(torch.utils.data.Sampler):
    """The keys (epoch, batch position, indices) of this rank's batches of epoch `epoch` from
    batch `start` on; the stream moves `epoch` and `start` between passes."""

    def __init__(self, n: int, size: int, per_rank: int, world_size: int, rank: int, seed: int, shuffle: bool):
        self.n, self.size, self.per_rank, self.world_size, self.rank = n, size, per_rank, world_size, rank
        self.seed, self.shuffle = seed, shuffle
        self.per_epoch = per_rank // size
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        return self.per_epoch - self.start

    def __iter__(self) -> Iterator[tuple[int, int, list[int]]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=generator).tolist()
        else:
            order = list(range(self.n))
        order = (order * math.ceil(self.per_rank * self.world_size / self.n))[: self.per_rank * self.world_size]
        mine = order[self.rank :: self.world_size]
        epoch = self.epoch
        for b in range(self.start, self.per_epoch):
            yield epoch, b, mine[b * self.size : (b + 1) * self.size]


class _BatchReader(torch.utils.data.Dataset):
    """Reads the batch of a key (epoch, position, indices): `data.set_epoch(epoch)` when the epoch
    changes, then the items under global generators seeded from (seed, rank, epoch, position), then
    `collate_fn`. The caller's generator states are restored afterwards."""

    def __init__(self, data: Any, collate_fn, seed: int, rank: int):
        self.data, self.collate_fn, self.seed, self.rank = data, collate_fn, seed, rank
        self.epoch: int | None = None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int, list[int]]) -> Any:
        epoch, position, indices = key
        if epoch != self.epoch:
            if callable(getattr(self.data, "set_epoch", None)):
                self.data.set_epoch(epoch)
            self.epoch = epoch
        with _seeded_generators(self.seed, self.rank, epoch, position):
            return self.collate_fn([self.data[i] for i in indices])


@contextlib.contextmanager
def _seeded_generators(*entropy: int) -> Iterator[None]:
    """Python's, numpy's and torch's CPU generators seeded from `entropy`; restored on exit."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    seed = int(np.random.SeedSequence([abs(int(e)) for e in entropy]).generate_state(1, np.uint64)[0])
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)  # the CPU generator only: CUDA's is the model's
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def _as_read(batch: Any) -> Any:
    return batch  # _BatchReader collates already


def _iterable_stream(data: Any, step: int) -> Iterator[Any]:
    """Pass after pass over an iterable; pass p calls set_epoch(p) on it, its sampler and dataset."""
    if step > 0:
        logger.warning("train_data is an iterable: it restarts from its beginning on resume, "
                       "so this run's data order differs from an uninterrupted one")
    epoch = 0
    while True:
        _set_epoch(data, epoch)
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise ValueError("train_data yielded no batch")
        epoch += 1


def _set_epoch(data: Any, epoch: int) -> None:
    """set_epoch(epoch) on `data` and, for a DataLoader, on its (batch) sampler and dataset — a
    DistributedSampler reshuffles by it. A DataLoader with persistent workers keeps the dataset
    copies it started with, so only its sampler sees the epoch."""
    batch_sampler = getattr(data, "batch_sampler", None)
    seen: set[int] = set()
    for target in (data, getattr(data, "sampler", None), getattr(batch_sampler, "sampler", None),
                   batch_sampler, getattr(data, "dataset", None)):
        if target is not None and id(target) not in seen and callable(getattr(target, "set_epoch", None)):
            seen.add(id(target))
            target.set_epoch(epoch)


def is_map_style(data: Any) -> bool:
    return (hasattr(data, "__getitem__") and hasattr(data, "__len__")
            and not isinstance(data, (torch.utils.data.DataLoader, torch.utils.data.IterableDataset)))


def iterate_batches(data: Any, batch_size: int, collate_fn) -> Iterable[Any]:
    if not is_map_style(data):
        yield from data
        return
    for start in range(0, len(data), batch_size):
        yield collate_fn([data[i] for i in range(start, min(start + batch_size, len(data)))])


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
