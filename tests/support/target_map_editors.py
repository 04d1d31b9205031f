"""What the tests of the target-map editors (FGTransform, SaGIM) share: a tiny differentiable
saliency predictor, density blobs, a fixed batch, and the tiny-preset editor with both attached."""
from dataclasses import dataclass

import torch
from torch import nn

from models.base import SaliencyPredictor, build_model

H, W = 24, 32


@dataclass
class TinyPredictorConfig:
    channels: int = 8


class TinyPredictor(SaliencyPredictor):
    """Two convolutions → log-softmax over pixels: a differentiable stand-in for a trained predictor."""

    name = "tiny_test_predictor"
    Config = TinyPredictorConfig

    def __init__(self):
        super().__init__()
        self.config = TinyPredictorConfig()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))

    def forward(self, images):
        scores = 4 * self.net(images)
        return torch.log_softmax(scores.flatten(1), 1).view_as(scores)


def make_editor(name: str, seed: int = 0, **overrides):
    """The editor `name` at the tiny preset (random VGG), its weights from `seed`, with a TinyPredictor."""
    torch.manual_seed(seed)
    editor = build_model("editor", name, "tiny", overrides)
    torch.manual_seed(1000)
    editor.attach_predictor(TinyPredictor())
    return editor


def blob(cy, cx, size=(H, W), sigma=4.0):
    """(1, 1, H, W) density peaked at (cy, cx) px."""
    ys, xs = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
    density = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2)) + 1e-3
    return (density / density.sum())[None, None]


def fixed_batch():
    generator = torch.Generator().manual_seed(7)
    return {"image": torch.rand(2, 3, H, W, generator=generator),
            "target_map": torch.cat([blob(6, 8), blob(18, 24)])}
