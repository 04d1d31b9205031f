"""models.schedules: the one linear-decay factor the GAN editors and the SalG-GAN detector use."""

import pytest
import torch

from models.schedules import linear_decay


def test_linear_decay_is_flat_then_falls_linearly_to_zero():
    factor = linear_decay(100, 0.5)
    assert [factor(step) for step in (0, 50, 60, 75, 100, 130)] == [1.0, 1.0, pytest.approx(0.8), 0.5, 0.0, 0.0]
    assert [linear_decay(10, 0.0)(step) for step in (0, 5, 10)] == [1.0, 0.5, 0.0]
    assert [linear_decay(10, 1.0)(step) for step in (10, 11)] == [1.0, 0.0]  # no decay within the run


def test_linear_decay_drives_a_lambda_lr_from_the_configured_rate():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(4, 0.5))
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.2, 0.2, 0.2, 0.1]) and optimizer.param_groups[0]["lr"] == 0.0
    assert scheduler.state_dict()["lr_lambdas"] == [None]  # a plain function: checkpoints hold no code
