"""SalG-GAN's saliency detector at the tiny preset (growth rate 4, 24×32 images) on the CPU, and its cpu
preset learning an image."""

import pytest
import torch
from torch import nn

from models import backbones
from models.arrays import collate
from models.base import build_model, load_trained
from models.registry import PREDICTORS
from models.saliency.salg_detector import SalGDetector
from models.trainer import Trainer
from support.saliency_data import held_out_check

HEIGHT, WIDTH = 24, 32

pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(preset: str = "tiny", **overrides) -> SalGDetector:
    torch.manual_seed(0)
    return build_model("predictor", "salg_detector", preset, config=overrides or None)


def peaked_batch(batch_size: int = 2) -> dict:
    """Random images whose densities peak at different places (+ a floor, so every pixel has mass)."""
    generator = torch.Generator().manual_seed(3)
    ys, xs = torch.meshgrid(torch.arange(HEIGHT * 1.0), torch.arange(WIDTH * 1.0), indexing="ij")
    maps = []
    for index in range(batch_size):
        cx, cy = (8.0, 6.0) if index % 2 == 0 else (24.0, 16.0)
        density = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 36.0) + 1e-3
        maps.append(density / density.sum())
    return {"x": torch.rand(batch_size, 3, HEIGHT, WIDTH, generator=generator), "x_map": torch.stack(maps)[:, None]}


def conv_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


@pytest.mark.parametrize("preset", ["paper", "cpu", "tiny"])
def test_has_36_conv_layers_in_dense_aspp_deconv_order(preset):
    model = make_model(preset)
    net = model.detector
    assert len(conv_layers(model)) == 36
    assert len(net.dense) == 3 and len(net.decoder) == 3
    assert [len(conv_layers(block)) for block in net.dense] == [2 * 2 + 1, 2 * 3 + 1, 2 * 5 + 1]
    assert len(conv_layers(net.aspp)) == 6
    dilations = sorted({m.dilation[0] for m in conv_layers(net.aspp)})
    assert dilations == [1, 6, 12, 18]
    assert [sum(isinstance(m, nn.ConvTranspose2d) for m in block.modules()) for block in net.decoder] == [1, 1, 1]


def test_outputs_are_log_densities_at_the_input_size():
    model = make_model().eval()
    assert PREDICTORS.get("salg_detector") is SalGDetector
    with torch.no_grad():
        for height, width in ((HEIGHT, WIDTH), (20, 30)):  # 20×30: not a multiple of 8
            images = torch.rand(3, 3, height, width)
            log_density = model(images)
            raw = model.saliency_map(images)
            assert log_density.shape == raw.shape == (3, 1, height, width)
            assert torch.isfinite(log_density).all()
            assert torch.allclose(log_density.exp().flatten(1).sum(1), torch.ones(3), atol=1e-5)
            assert raw.min() >= 0 and torch.allclose(raw.flatten(1).amax(1), torch.ones(3))
        resized = model.log_density(torch.rand(2, 3, 48, 64))
    assert resized.shape == (2, 1, 48, 64)
    assert torch.allclose(resized.exp().flatten(1).sum(1), torch.ones(2), atol=1e-5)


def test_gradients_reach_every_parameter():
    model = make_model()
    model.train_step(peaked_batch())
    for name, p in model.detector.named_parameters():
        assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name


def test_overfits_a_fixed_batch():
    model = make_model(lr=3e-3)
    batch = peaked_batch()
    kl = [float(model.train_step(batch)["kl"]) for _ in range(30)]
    assert sum(kl[-5:]) / 5 < 0.4 * kl[0], kl


def test_cpu_preset_learns_image_specific_saliency():
    model = make_model("cpu", input_size=(HEIGHT, WIDTH))
    means, verdicts = held_out_check(model)
    # each map matches its own image's density, not another image's
    assert means["predictor"] > 0.7 and means["predictor"] > means["shuffle"] + 0.5, means
    assert verdicts[0].endswith("it beats both controls."), verdicts


def test_learning_rate_falls_linearly_to_zero_from_decay_start():
    model = make_model(decay_start=0.5, max_steps=4, lr=1e-3)
    rates = []
    for _ in range(4):  # as the trainer does: one scheduler step after each train_step
        model.train_step(peaked_batch())
        model.schedulers()["detector"].step()
        rates.append(model.optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([1e-3, 1e-3, 5e-4, 0.0])
    assert make_model("paper").schedulers() == {}  # constant: the paper states no schedule
    assert make_model("cpu").config.decay_start == 0.5
    with pytest.raises(ValueError, match="decay_start = 1.5"):
        make_model(decay_start=1.5)


def test_bad_inputs_raise_value_errors():
    model = make_model()
    batch = peaked_batch()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(2, 1, HEIGHT, WIDTH))
    with pytest.raises(ValueError, match="x_map has shape"):
        model.train_step({"x": batch["x"], "x_map": batch["x_map"][:, :, :20]})
    with pytest.raises(ValueError, match="not a density"):
        model.train_step({"x": batch["x"], "x_map": batch["x_map"] * 5})
    with pytest.raises(ValueError, match="block_layers"):
        make_model(block_layers=(2, 3))


def test_make_dataset_trains_saves_and_loads_identically(scene_dataset, tmp_path):
    model = make_model()
    data = model.make_dataset(scene_dataset.path, "train")
    item = data[0]
    assert item["x"].shape == (3, HEIGHT, WIDTH) and item["x_map"].shape == (1, HEIGHT, WIDTH)
    Trainer(model, data, out_dir=tmp_path, max_steps=4, batch_size=2, device="cpu", progress=False).train()
    loaded = load_trained(tmp_path / "checkpoints/last.pt")
    assert isinstance(loaded, SalGDetector) and loaded.weights_info["backbone"] is None
    model.eval()
    images = collate([data[i] for i in range(3)])["x"]
    with torch.no_grad():
        assert torch.equal(model(images), loaded(images))
        assert torch.equal(model.saliency_map(images), loaded.saliency_map(images))


def test_resume_equals_an_uninterrupted_run(scene_dataset, tmp_path):
    full = make_model()
    data = full.make_dataset(scene_dataset.path, "train")
    options = dict(batch_size=2, device="cpu", progress=False)
    Trainer(full, data, out_dir=tmp_path / "full", max_steps=8, **options).train()  # 6 batches an epoch
    first = make_model()
    Trainer(first, data, out_dir=tmp_path / "split", max_steps=4, **options).train()
    second = make_model()
    trainer = Trainer(second, data, out_dir=tmp_path / "split", max_steps=8, resume=True, **options)
    assert trainer.step == 4
    trainer.train()
    state_full, state_second = full.state_dict(), second.state_dict()
    for name in state_full:  # parameters and batch-norm statistics
        assert torch.equal(state_full[name], state_second[name]), name


def test_no_pretrained_weights_are_ever_read(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("imagenet weights were requested")

    monkeypatch.setattr(backbones, "_imagenet_state_dict", forbidden)
    for load_pretrained in (True, False):
        model = SalGDetector(SalGDetector.Config(input_size=(HEIGHT, WIDTH)), load_pretrained=load_pretrained)
        assert model.weights_info["backbone"] is None and model.weights_info["random_backbone"] is False


@pytest.mark.gpu
def test_paper_preset_trains_on_cuda_in_bf16():
    model = make_model("paper").to("cuda").train()
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 1, 256, 256, generator=generator) + 0.01
    batch = {"x": torch.rand(2, 3, 256, 256, generator=generator).cuda(),
             "x_map": (maps / maps.sum(dim=(-2, -1), keepdim=True)).cuda()}
    before = {n: p.detach().clone() for n, p in model.detector.named_parameters()}
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            losses = model.train_step(batch)
        assert torch.isfinite(losses["kl"])
    assert any(not torch.equal(p, before[n]) for n, p in model.detector.named_parameters())
    with torch.no_grad():
        log_density = model.eval()(batch["x"])
    assert log_density.shape == (2, 1, 256, 256)
    assert torch.allclose(log_density.exp().flatten(1).sum(1), torch.ones(2, device="cuda"), atol=1e-4)
