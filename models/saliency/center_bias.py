"""The centre-bias baseline: one Gaussian fitted to the training maps, in normalised coordinates.

A floor for every predictor and the baseline density of information gain (Kümmerer et al.).
Coordinates are normalised to [0, 1] across the width and the height, so a fitted model
predicts for any image size. Pure numpy: no torch needed.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from models.registry import PREDICTORS

FORMAT = "gazelab-center-bias/1"


@dataclass(frozen=True)
class CenterBiasConfig:
    """regularization: added to the covariance's diagonal (normalised units²) so that a fit on
    few maps never collapses to a point; uniform_weight: share of a uniform density mixed in, so
    no pixel has zero probability (information gain takes logs)."""

    regularization: float = 1e-3
    uniform_weight: float = 0.01

    PRESETS = {"paper": {}, "tiny": {}}


@PREDICTORS.register("center_bias")
class CenterBias:
    """A 2-D Gaussian (mean, covariance over normalised x, y) plus a little uniform mass."""

    def __init__(self, config: CenterBiasConfig | None = None, mean=(0.5, 0.5), cov=((0.04, 0.0), (0.0, 0.04)), n_maps: int = 0):
        self.config = config or CenterBiasConfig()
        self.mean = np.asarray(mean, np.float64)
        self.cov = np.asarray(cov, np.float64)
        self.n_maps = int(n_maps)

    @classmethod
    def fit(cls, densities: Iterable[np.ndarray], config: CenterBiasConfig | None = None) -> "CenterBias":
        """Fit to fixation densities (2-D, non-negative, any sizes): the average of their moments."""
        config = config or CenterBiasConfig()
        first = np.zeros(2)
        second = np.zeros((2, 2))
        n = 0
        for index, density in enumerate(densities):
            values = np.asarray(density, np.float64)
            if values.ndim != 2 or not np.all(np.isfinite(values)) or values.min() < 0 or values.sum() <= 0:
                raise ValueError(f"densities[{index}] must be a finite, non-negative 2-D map with some mass")
            values = values / values.sum()
            xs, ys = _grid(values.shape)
            mean = np.array([(values * xs).sum(), (values * ys).sum()])
            dx, dy = xs - mean[0], ys - mean[1]
            cov = np.array([[(values * dx * dx).sum(), (values * dx * dy).sum()],
                            [(values * dx * dy).sum(), (values * dy * dy).sum()]])
            first += mean
            second += cov + np.outer(mean, mean)
            n += 1
        if n == 0:
            raise ValueError("densities is empty; expected at least one map to fit the centre bias")
        mean = first / n
        cov = second / n - np.outer(mean, mean) + config.regularization * np.eye(2)
        return cls(config, mean, cov, n)

    def predict(self, shape: tuple[int, int]) -> np.ndarray:
        """The density (float32, sums to 1) for an image of `shape` = (height, width) pixels."""
        height, width = (int(v) for v in shape)
        if height <= 0 or width <= 0:
            raise ValueError(f"shape must be positive (height, width), got {shape!r}")
        xs, ys = _grid((height, width))
        offsets = np.stack([xs - self.mean[0], ys - self.mean[1]], axis=-1)
        precision = np.linalg.inv(self.cov)
        gaussian = np.exp(-0.5 * np.einsum("...i,ij,...j->...", offsets, precision, offsets))
        gaussian /= gaussian.sum()
        weight = self.config.uniform_weight
        return ((1 - weight) * gaussian + weight / gaussian.size).astype(np.float32)

    def log_density(self, shape: tuple[int, int]) -> np.ndarray:
        """Natural log of `predict(shape)`."""
        return np.log(self.predict(shape).astype(np.float64)).astype(np.float32)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fit as JSON (atomically)."""
        path = Path(path)
        data = {"format": FORMAT, "config": asdict(self.config), "mean": self.mean.tolist(),
                "cov": self.cov.tolist(), "n_maps": self.n_maps}
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CenterBias":
        """Read a fit written by `save`; another file → ValueError saying what it is not."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable centre-bias file: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path} is not a centre-bias fit (format {FORMAT!r})")
        return cls(CenterBiasConfig(**data["config"]), data["mean"], data["cov"], data["n_maps"])


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates normalised to [0, 1]: x across the width, y down the height."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return (xs + 0.5) / width, (ys + 0.5) / height
