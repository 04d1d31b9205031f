"""models.editors._layers: the one PatchGAN and the one multi-scale discriminator the editors share."""

import re

import pytest
import torch
from torch import nn

from models.editors._layers import MultiScaleDiscriminator, PatchDiscriminator


def parameter_count(module):
    return sum(p.numel() for p in module.parameters())


def test_the_multiscale_discriminator_builds_each_editors_own():
    torch.manual_seed(0)
    bicyclegan = MultiScaleDiscriminator(3, 64, 3, 2, halve_channels=True)
    salggan = MultiScaleDiscriminator(3 + 1, 64, 3, 3)
    gazeshiftnet = MultiScaleDiscriminator(3, 64, 3, 3, norm="none", spectral=True, unit_input=True)
    # the paper presets' counts of the three classes this one replaced (measured on them before)
    assert [parameter_count(d) for d in (bicyclegan, salggan, gazeshiftnet)] == [3460322, 8299971, 8294211]
    assert [net.net[0].out_channels for net in bicyclegan.nets] == [64, 32]  # half the channels per scale
    assert [net.net[0].out_channels for net in salggan.nets] == [64, 64, 64]
    convs = [m for m in gazeshiftnet.nets[0].net if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1] and all(c.bias is not None for c in convs)
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in gazeshiftnet.modules())
    assert all(hasattr(c, "parametrizations") for c in convs)  # spectral norm on every convolution
    images = torch.rand(1, 4, 256, 256)
    for d in (bicyclegan, salggan, gazeshiftnet):
        d.eval()
    assert [tuple(s.shape) for s in salggan(images)] == [(1, 1, 30, 30), (1, 1, 14, 14), (1, 1, 6, 6)]
    assert [tuple(s.shape) for s in bicyclegan(images[:, :3])] == [(1, 1, 30, 30), (1, 1, 14, 14)]


def test_unit_input_maps_images_to_the_signed_range_first():
    torch.manual_seed(0)
    critic = MultiScaleDiscriminator(3, 8, 2, 2, norm="none", unit_input=True).eval()
    signed = MultiScaleDiscriminator(3, 8, 2, 2, norm="none").eval()
    signed.load_state_dict(critic.state_dict())
    images = torch.rand(2, 3, 32, 32)
    for a, b in zip(critic(images), signed(images * 2 - 1), strict=True):
        assert torch.equal(a, b)


def test_a_state_dict_of_gazeshiftnets_former_critic_loads():
    """GazeShiftNet's critic had its scales as bare nn.Sequential: nets.0.0.bias, not nets.0.net.0.bias."""
    torch.manual_seed(0)
    critic = MultiScaleDiscriminator(3, 8, 2, 2, norm="none", spectral=True, unit_input=True).eval()
    former = {re.sub(r"^nets\.(\d+)\.net\.", r"nets.\1.", key): value for key, value in critic.state_dict().items()}
    assert "nets.1.0.parametrizations.weight.original" in former
    torch.manual_seed(1)
    fresh = MultiScaleDiscriminator(3, 8, 2, 2, norm="none", spectral=True, unit_input=True).eval()
    fresh.load_state_dict(former)  # strict: every key found its place
    images = torch.rand(2, 3, 32, 32)
    for a, b in zip(critic(images), fresh(images), strict=True):
        assert torch.equal(a, b)


def test_bad_discriminator_settings_are_refused():
    with pytest.raises(ValueError, match="n_layers >= 1.*got 0"):
        PatchDiscriminator(3, 8, 0)
    with pytest.raises(ValueError, match="norm must be 'instance' or 'none', got 'batch'"):
        PatchDiscriminator(3, 8, 2, norm="batch")
    with pytest.raises(ValueError, match="scales must be >= 1, got 0"):
        MultiScaleDiscriminator(3, 8, 2, 0)
