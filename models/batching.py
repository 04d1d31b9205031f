"""The order in which the trainer reads batches: deterministic per (seed, step), split over DDP ranks.

See `models/trainer.py`'s docstring for the order itself; `batch_stream` makes a resumed run read
exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = ["batch_stream", "iterate_batches", "to_device", "is_map_style"]


def batch_stream(data: Any, step: int, *, batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True, num_workers: int = 0, collate_fn) -> Iterator[Any]:
    """Batches of `data` from step `step` (0-based count of batches already read) on, forever."""
    if not is_map_style(data):
        if step > 0:
            logger.warning("train_data is an iterable: it restarts from its beginning on resume, "
                           "so this run's data order differs from an uninterrupted one")
        while True:
            empty = True
            for batch in data:
                empty = False
                yield batch
            if empty:
                raise ValueError("train_data yielded no batch")
    n = len(data)
    if n == 0:
        raise ValueError("train_data is empty")
    per_rank = math.ceil(n / world_size)
    size = min(batch_size, per_rank)
    n_batches = per_rank // size
    epoch, start = divmod(step, n_batches)
    while True:
        if shuffle:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        order = (order * math.ceil(per_rank * world_size / n))[: per_rank * world_size]
        mine = order[rank :: world_size]
        index_batches = [mine[b * size : (b + 1) * size] for b in range(start, n_batches)]
        if num_workers > 0:
            loader = torch.utils.data.DataLoader(data, batch_sampler=index_batches, num_workers=num_workers,
                                                 collate_fn=collate_fn)
            yield from loader
        else:
            for indices in index_batches:
                yield collate_fn([data[i] for i in indices])
        epoch, start = epoch + 1, 0


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
