"""Realism measured offline: a classifier two-sample test (C2ST) of edited against unedited images.

`realism_c2st` follows Lopez-Paz & Oquab 2017 ("Revisiting classifier two-sample tests"): a
classifier is trained to tell the two sets apart on part of them, and its accuracy on the rest is
the statistic — 0.5 when the sets cannot be told apart (the edits look like unedited images), 1
when every held-out image is told right. No pretrained weights are needed: the classifier is a
small CNN (three stride-2 convolutions, global average and max pooling, a linear head) trained
from a seeded initialisation on the images resized to 64×64 (both sets alike, so the aspect
change favours neither). It sees what survives that resize — colour, brightness, layout, blur,
coarse artefacts — not pixel-level GAN texture. The training budget is fixed (150 steps of 32
images), so the cost does not grow with the set, and neither does the classifier's power to find
a subtle difference: a large set narrows the interval around what 150 steps can learn.

The split is pair-aware: the edited and unedited image of one pair fall on the same side, so the
classifier cannot pass by recognising a scene it saw in training. The interval is Clopper-Pearson
(exact binomial, 95%) and the p-value the one-sided binomial test of accuracy > 0.5, both treating
the n_test held-out images as independent trials, as the paper does; the two images of a held-out
pair are not quite independent, so read them as approximate. Deterministic given the seed on the
CPU (torch's generator forked and seeded, the caller's random stream left alone).

Images: uint8 RGB (H, W, 3), the convention of every image metric here (`analysis.image_metrics`).
torch is imported inside functions only.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from analysis.fidelity import as_rgb_uint8

__all__ = ["C2STResult", "realism_c2st", "MIN_PAIRS", "C2ST_SIZE", "C2ST_STEPS"]

MIN_PAIRS = 4  # per set: at least two pairs to train on and two to test on at test_fraction 0.5
C2ST_SIZE = 64  # images are resized to C2ST_SIZE × C2ST_SIZE pixels
C2ST_STEPS = 150  # Adam steps of `_BATCH` images: ~1.5 s on one CPU thread, however many pairs
_BATCH = 32
_LEARNING_RATE = 2e-3
_WIDTHS = (16, 32, 64)


@dataclass(frozen=True)
class C2STResult:
    """A C2ST's held-out accuracy in [0, 1] (0.5 = indistinguishable) with its Clopper-Pearson 95%
    interval, the number of held-out and training images (both sets together), and the one-sided
    binomial p of accuracy > 0.5."""

    accuracy: float
    ci_low: float
    ci_high: float
    n_test: int
    p_value: float
    n_train: int


def realism_c2st(edited: Sequence, unedited: Sequence, *, paired: bool = True, seed: int = 0,
                 test_fraction: float = 0.5, size: int = C2ST_SIZE, steps: int = C2ST_STEPS,
                 device: str = "cpu") -> C2STResult:
    """Classifier two-sample test (module docstring) of `edited` against `unedited`: sequences of
    uint8 RGB images (H, W, 3), any sizes. paired: edited[i] is the edit of unedited[i] (the counts
    must match; a pair's two images go to one side of the split); otherwise each set is split on
    its own. test_fraction of the pairs (at least one, at most all but one) are held out.
    ValueError for fewer than MIN_PAIRS images in a set, mismatched counts when paired, a bad
    fraction, size or steps, and images that are not uint8 RGB."""
    edited, unedited = _images(edited, "edited"), _images(unedited, "unedited")
    if paired and len(edited) != len(unedited):
        raise ValueError(f"paired C2ST needs one edited image per unedited one, got {len(edited)} edited and "
                         f"{len(unedited)} unedited; pass paired=False for unpaired sets")
    for name, images in (("edited", edited), ("unedited", unedited)):
        if len(images) < MIN_PAIRS:
            raise ValueError(f"C2ST needs at least {MIN_PAIRS} images per set (some to train on, some to test "
                             f"on), got {len(images)} {name}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if size < 16 or steps < 1:
        raise ValueError(f"size must be >= 16 pixels and steps >= 1, got size {size}, steps {steps}")
    rng = np.random.default_rng(seed)
    if paired:
        test_e, train_e = _split(len(edited), test_fraction, rng)
        test_u, train_u = test_e, train_e
    else:
        (test_e, train_e), (test_u, train_u) = (_split(len(s), test_fraction, rng) for s in (edited, unedited))
    e, u = _resized(edited, size), _resized(unedited, size)
    train = np.concatenate([e[train_e], u[train_u]])
    test = np.concatenate([e[test_e], u[test_u]])
    train_labels = np.r_[np.ones(len(train_e)), np.zeros(len(train_u))].astype(np.float32)
    test_labels = np.r_[np.ones(len(test_e)), np.zeros(len(test_u))].astype(bool)
    predicted = _train_and_predict(train, train_labels, test, seed, steps, device)
    correct = int((predicted == test_labels).sum())
    return _binomial_result(correct, len(test_labels), len(train_labels))


# ---------------------------------------------------------------- helpers


def _images(images: Sequence, name: str) -> list[np.ndarray]:
    return [as_rgb_uint8(image, f"{name}[{i}]") for i, image in enumerate(images)]


def _split(count: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(held-out indices, training indices) of `count` items, seeded; at least one of each."""
    n_test = min(max(int(round(test_fraction * count)), 1), count - 1)
    order = rng.permutation(count)
    return np.sort(order[:n_test]), np.sort(order[n_test:])


def _resized(images: list[np.ndarray], size: int) -> np.ndarray:
    """(N, 3, size, size) float32 in [0, 1]; INTER_AREA averages the pixels a shrink merges."""
    return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in images]
                    ).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def _train_and_predict(train: np.ndarray, labels: np.ndarray, test: np.ndarray, seed: int, steps: int,
                       device: str) -> np.ndarray:
    """Train the small CNN on `train` (labels 1 = edited) and return its test predictions (bool)."""
    import torch

    # Standardised with the training images' channel statistics: the test images stay unseen.
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    std = train.std(axis=(0, 2, 3), keepdims=True) + 1e-3
    with torch.random.fork_rng(devices=[]), _deterministic_cudnn(), _one_cpu_thread(device):
        torch.manual_seed(seed)
        network = _network().to(device)
        optimizer = torch.optim.Adam(network.parameters(), lr=_LEARNING_RATE)
        x = torch.from_numpy((train - mean) / std).to(device)
        y = torch.from_numpy(labels).to(device)
        generator = torch.Generator().manual_seed(seed)
        loss_function = torch.nn.BCEWithLogitsLoss()
        network.train()
        for _ in range(steps):
            batch = torch.randperm(len(x), generator=generator)[:_BATCH].to(device)
            flip = (torch.rand(len(batch), generator=generator) < 0.5).to(device)
            images = torch.where(flip[:, None, None, None], x[batch].flip(-1), x[batch])  # mirrored scenes alike
            loss = loss_function(network(images)[:, 0], y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        network.eval()
        with torch.no_grad():
            logits = network(torch.from_numpy((test - mean) / std).to(device))[:, 0]
    # A tie (identical images give identical logits) is called unedited: one of a pair's two is right.
    return (logits > 0).cpu().numpy()


def _network():
    import torch
    from torch import nn

    class _Classifier(nn.Module):
        """Three stride-2 3×3 convolutions, global average and max pooling, a linear head (a logit)."""

        def __init__(self):
            super().__init__()
            layers, channels = [], 3
            for width in _WIDTHS:
                layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
                channels = width
            self.features = nn.Sequential(*layers)
            self.head = nn.Linear(2 * channels, 1)

        def forward(self, images):
            features = self.features(images)
            # the maximum finds a small local change that the average dilutes
            pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
            return self.head(pooled)

    return _Classifier()


@contextlib.contextmanager
def _one_cpu_thread(device: str):
    """torch on one CPU thread inside, restored after: batches of 32 small images are too little
    work to share, and two threads on a busy machine took 4x as long as one."""
    import torch

    if not str(device).startswith("cpu"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _deterministic_cudnn():
    """cuDNN's deterministic kernels inside (CUDA only; the CPU's are deterministic), restored after."""
    import torch

    backends = torch.backends.cudnn
    saved = backends.deterministic, backends.benchmark
    backends.deterministic, backends.benchmark = True, False
    try:
        yield
    finally:
        backends.deterministic, backends.benchmark = saved


def _binomial_result(correct: int, n_test: int, n_train: int) -> C2STResult:
    from scipy.stats import binomtest

    interval = binomtest(correct, n_test, 0.5).proportion_ci(confidence_level=0.95, method="exact")
    p_value = binomtest(correct, n_test, 0.5, alternative="greater").pvalue
    return C2STResult(correct / n_test, float(interval.low), float(interval.high), n_test, float(p_value), n_train)
