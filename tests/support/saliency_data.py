"""Bright-object images whose saliency follows the image, and the held-out check the predictor tests
(SalGAN, the SalG-GAN detector) run on them."""
from __future__ import annotations

import torch

from analysis.controls import control_verdicts, with_controls

HEIGHT, WIDTH = 24, 32


def bright_object_set(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (3, 24, 32) in [0, 1] where saliency follows the image: a textured grey ground with one
    bright yellow 4×4 square and two dim ones at random places; each density (1, 24, 32) a Gaussian
    (σ 2.5 px) at the bright square, plus a floor."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(HEIGHT) + 0.5, torch.arange(WIDTH) + 0.5, indexing="ij")
    images = 0.35 + 0.08 * torch.rand(n, 3, HEIGHT, WIDTH, generator=generator)
    maps = []
    for index in range(n):
        for k in range(3):
            x0 = int(torch.randint(0, WIDTH - 4, (1,), generator=generator))
            y0 = int(torch.randint(0, HEIGHT - 4, (1,), generator=generator))
            colour = torch.tensor([0.95, 0.9, 0.3]) if k == 0 else 0.2 + 0.2 * torch.rand(3, generator=generator)
            images[index, :, y0 : y0 + 4, x0 : x0 + 4] = colour.view(3, 1, 1)
            if k == 0:
                centre = (x0 + 2, y0 + 2)
        density = torch.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * 2.5**2)) + 1e-3
        maps.append(density / density.sum())
    return images, torch.stack(maps)[:, None]


def held_out_check(model, steps: int = 40) -> tuple[dict, list[str]]:
    """Train `model` `steps` steps (batch 8) on 64 bright-object images, then score its maps of 12
    others against their densities beside analysis.controls' centre bias and shuffle: (mean CC
    per model, verdict lines)."""
    train_x, train_maps = bright_object_set(64, seed=1)
    test_x, test_maps = bright_object_set(12, seed=2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        index = torch.randint(0, len(train_x), (8,), generator=generator)
        model.train_step({"x": train_x[index], "x_map": train_maps[index]})
    with torch.no_grad():
        predicted = model.eval().density(test_x)[:, 0].numpy()
    items = [{"name": f"{i:02d}", "pred": predicted[i], "gt_map": test_maps[i, 0].numpy()} for i in range(len(test_x))]
    table = with_controls(items, metrics=["cc"], rng=0)
    return table.groupby("model")["cc"].mean().to_dict(), control_verdicts(table)
