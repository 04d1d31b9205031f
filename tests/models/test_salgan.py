"""SalGAN at the tiny preset (random VGG16, 24×32 images) on the CPU, and its cpu preset learning an image."""

import socket
from collections import defaultdict

import pytest
import torch
from torch import nn

from models import backbones
from models.arrays import collate
from models.backbones import WeightsUnavailable
from models.base import build_model, load_trained, optimizer_state_follows_parameters
from models.registry import PREDICTORS
from models.saliency.salgan import SalGAN
from models.trainer import Trainer
from support.saliency_data import held_out_check

HEIGHT, WIDTH = 24, 32

pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(**overrides) -> SalGAN:
    torch.manual_seed(0)
    return build_model("predictor", "salgan", "tiny", config=overrides or None)


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


def snapshot(module: nn.Module) -> dict:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def same(module: nn.Module, before: dict) -> bool:
    return all(torch.equal(p, before[name]) for name, p in module.named_parameters())


def test_outputs_are_log_densities_and_the_map_a_sigmoid():
    model = make_model().eval()
    assert PREDICTORS.get("salgan") is SalGAN
    images = torch.rand(3, 3, HEIGHT, WIDTH)
    with torch.no_grad():
        log_density = model(images)
        raw = model.saliency_map(images)
        resized = model.log_density(torch.rand(2, 3, 40, 50))
    assert log_density.shape == raw.shape == (3, 1, HEIGHT, WIDTH)
    assert log_density.dtype == torch.float32 and torch.isfinite(log_density).all()
    assert torch.allclose(log_density.exp().flatten(1).sum(1), torch.ones(3), atol=1e-5)
    assert raw.min() >= 0 and raw.max() <= 1
    # the density is the sigmoid map normalised to sum 1
    assert torch.allclose(log_density.exp(), raw / raw.flatten(1).sum(1).view(-1, 1, 1, 1), atol=1e-6)
    assert resized.shape == (2, 1, 40, 50)
    assert torch.allclose(resized.exp().flatten(1).sum(1), torch.ones(2), atol=1e-5)


def test_architecture_discriminator_takes_image_and_map():
    model = make_model()
    first = model.discriminator.features[0]
    assert isinstance(first, nn.Conv2d) and first.in_channels == 4 and first.kernel_size == (1, 1)
    pairs = torch.rand(2, 4, HEIGHT, WIDTH)
    assert model.discriminator(pairs).shape == (2, 1)
    linears = [m for m in model.discriminator.classifier if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [16, 2, 1]  # fc4, fc5 (tanh) and the logit
    # no pool5: 24×32 images give 1×2 relu5_3 features
    assert model.generator.encoder(torch.rand(1, 3, HEIGHT, WIDTH))["relu5_3"].shape == (1, 512, 1, 2)
    decoder_convs = [m for m in model.generator.decoder.modules() if isinstance(m, nn.Conv2d)]
    assert len(decoder_convs) == 13 and model.generator.output.kernel_size == (1, 1)


def test_encoder_is_frozen_before_trainable_encoder_from():
    paper_like = make_model(trainable_encoder_from="conv4_1")
    trainable = {name.split(".")[1] for name, p in paper_like.generator.encoder.named_parameters() if p.requires_grad}
    assert trainable == {"17", "19", "21", "24", "26", "28"}  # conv4_1 … conv5_3 in torchvision's stack
    assert not any(p.requires_grad for p in paper_like.generator.encoder.features[:17].parameters())
    with pytest.raises(ValueError, match="trainable_encoder_from = 'relu4_1'"):
        make_model(trainable_encoder_from="relu4_1")


def test_gradients_reach_every_trainable_parameter():
    model = make_model(bce_only_steps=0)
    batch = peaked_batch()
    frozen = {n: p.detach().clone() for n, p in model.generator.named_parameters() if not p.requires_grad}
    model.train_step(batch)  # step 1: the discriminator's turn
    for name, p in model.discriminator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.train_step(batch)  # step 2: the generator's, α·BCE + adversarial BCE
    trained = [(n, p) for n, p in model.generator.named_parameters() if p.requires_grad]
    assert len(trained) == 2 + 2 * 14  # conv5_3 (tiny preset) + 13 decoder convs + the 1×1 output
    for name, p in trained:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for name, p in model.generator.named_parameters():
        if name in frozen:
            assert p.grad is None and torch.equal(p, frozen[name]), name


def test_phase_switch_at_bce_only_steps():
    model = make_model(bce_only_steps=3)
    batch = peaked_batch()
    d_before = snapshot(model.discriminator)
    for _ in range(3):
        g_before = snapshot(model.generator)
        losses = model.train_step(batch)
        assert not same(model.generator, g_before)
        assert torch.isclose(losses["g"], losses["bce"])  # BCE only
    assert same(model.discriminator, d_before)
    g_before = snapshot(model.generator)
    model.train_step(batch)  # step 4: first adversarial step, the discriminator's
    assert not same(model.discriminator, d_before) and same(model.generator, g_before)
    d_before = snapshot(model.discriminator)
    losses = model.train_step(batch)  # step 5: the generator's
    assert not same(model.generator, g_before) and same(model.discriminator, d_before)
    assert torch.isclose(losses["g"], model.config.alpha * losses["bce"] + losses["adv"])
    assert int(model.steps_done) == 5 and set(losses) == {"bce", "adv", "d", "g"}


def test_overfits_a_fixed_batch():
    model = make_model(lr=3e-2, bce_only_steps=1000)
    batch = peaked_batch()
    bce = [float(model.train_step(batch)["bce"]) for _ in range(30)]
    assert sum(bce[-5:]) / 5 < 0.75 * bce[0], bce


def test_cpu_preset_learns_image_specific_saliency_from_a_random_backbone():
    torch.manual_seed(0)
    model = build_model("predictor", "salgan", "cpu", config={"backbone_weights": "random",
                                                              "input_size": (HEIGHT, WIDTH)})
    assert model.weights_info["random_backbone"] is True
    means, verdicts = held_out_check(model)
    # each map matches its own image's density, not another image's (the old CPU preset: about equal)
    assert means["predictor"] > 0.7 and means["predictor"] > means["shuffle"] + 0.5, means
    assert verdicts[0].endswith("it beats both controls."), verdicts


def test_cpu_preset_is_a_shallow_vgg16_trained_whole():
    torch.manual_seed(0)
    model = build_model("predictor", "salgan", "cpu", config={"backbone_weights": "random"})
    generator = model.generator
    assert generator.last_layer == "relu3_3"
    assert generator.encoder(torch.rand(1, 3, 48, 64))["relu3_3"].shape == (1, 256, 12, 16)  # output stride 4
    assert all(p.requires_grad for p in generator.encoder.parameters())
    assert len([m for m in generator.decoder.modules() if isinstance(m, nn.Conv2d)]) == 3 + 2 + 2
    assert len([m for m in generator.decoder.modules() if isinstance(m, nn.BatchNorm2d)]) == 7
    assert model.config.bce_only_steps >= model.config.max_steps  # the BCE stage only
    assert model(torch.rand(2, 3, 48, 64)).shape == (2, 1, 48, 64)


def test_bad_inputs_raise_value_errors():
    model = make_model()
    batch = peaked_batch()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(2, 4, HEIGHT, WIDTH))
    with pytest.raises(ValueError, match="input_size"):
        model.train_step({"x": torch.rand(2, 3, 32, 32), "x_map": torch.full((2, 1, 32, 32), 1 / 1024)})
    with pytest.raises(ValueError, match="x_map has shape"):
        model.train_step({"x": batch["x"], "x_map": batch["x_map"][:, :, :20]})
    with pytest.raises(ValueError, match="densities"):
        model.train_step({"x": batch["x"], "x_map": batch["x_map"] * 5})
    with pytest.raises(ValueError, match="decoder_channels"):
        make_model(decoder_channels=(8, 8, 8))
    with pytest.raises(ValueError, match="expected 3 positive widths"):
        make_model(encoder_blocks=3, trainable_encoder_from="conv1_1")
    with pytest.raises(ValueError, match="encoder_blocks = 6"):
        make_model(encoder_blocks=6)
    with pytest.raises(ValueError, match="trainable_encoder_from = 'conv4_1'.*conv3_3$"):
        make_model(encoder_blocks=3, decoder_channels=(8, 8, 8), trainable_encoder_from="conv4_1")
    with pytest.raises(ValueError, match="decoder_norm = 'group'"):
        make_model(decoder_norm="group")


def test_optimizer_state_follows_the_parameters():
    # AdaGrad makes its sums at construction, on the CPU; a model moved to CUDA after it must take
    # them along or its first step fails (the gpu test below does it for real). Without a GPU the
    # parameters are stood in for by meta-device ones.
    model = make_model()
    for optimizer in model.optimizers().values():
        optimizer.state = defaultdict(dict, {nn.Parameter(torch.empty_like(p, device="meta")): state
                                             for p, state in optimizer.state.items()})
    optimizer_state_follows_parameters(model)
    for optimizer in model.optimizers().values():
        assert optimizer.state
        for parameter, state in optimizer.state.items():
            assert state["sum"].device == parameter.device == torch.device("meta")
            assert state["step"].device.type == "cpu"  # where torch keeps a non-fused step


def test_make_dataset_trains_saves_and_loads_identically(scene_dataset, tmp_path):
    model = make_model()
    data = model.make_dataset(scene_dataset.path, "train")
    item = data[0]
    assert {"x", "x_map"} <= set(item)
    assert item["x"].shape == (3, HEIGHT, WIDTH) and item["x_map"].shape == (1, HEIGHT, WIDTH)
    assert abs(float(item["x_map"].sum()) - 1) < 1e-4
    Trainer(model, data, out_dir=tmp_path, max_steps=5, batch_size=2, device="cpu", progress=False).train()
    assert int(model.steps_done) == 5
    loaded = load_trained(tmp_path / "checkpoints/last.pt")
    assert isinstance(loaded, SalGAN) and loaded.weights_info["random_backbone"] is True
    model.eval()
    images = collate([data[i] for i in range(3)])["x"]
    with torch.no_grad():
        assert torch.equal(model(images), loaded(images))
        assert torch.equal(model.saliency_map(images), loaded.saliency_map(images))
        assert model.validation_step(collate([data[0], data[1]]))["cc"] == loaded.validation_step(
            collate([data[0], data[1]]))["cc"]


def test_resume_equals_an_uninterrupted_run(scene_dataset, tmp_path):
    # 3 BCE-only steps, then D, G, D: the resumed half starts in the adversarial phase
    full = make_model()
    data = full.make_dataset(scene_dataset.path, "train")
    options = dict(batch_size=2, device="cpu", progress=False)
    Trainer(full, data, out_dir=tmp_path / "full", max_steps=6, **options).train()
    first = make_model()
    Trainer(first, data, out_dir=tmp_path / "split", max_steps=4, **options).train()
    second = make_model()
    trainer = Trainer(second, data, out_dir=tmp_path / "split", max_steps=6, resume=True, **options)
    assert trainer.step == 4 and int(second.steps_done) == 4
    trainer.train()
    state_full, state_second = full.state_dict(), second.state_dict()
    assert state_full.keys() == state_second.keys()
    for name in state_full:
        assert torch.equal(state_full[name], state_second[name]), name


def test_load_pretrained_false_never_reads_imagenet_weights(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("imagenet weights were requested")

    monkeypatch.setattr(backbones, "_imagenet_state_dict", forbidden)
    model = SalGAN(SalGAN.Config(input_size=(HEIGHT, WIDTH), backbone_weights="imagenet"), load_pretrained=False)
    assert model.weights_info["backbone"]["source"] == "random"


def test_imagenet_weights_missing_offline_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(WeightsUnavailable, match="vgg16"):
        build_model("predictor", "salgan", "tiny", config={"backbone_weights": "imagenet"})


@pytest.mark.gpu
def test_paper_preset_trains_on_cuda_in_bf16():
    torch.manual_seed(0)
    model = build_model("predictor", "salgan", "paper", config={"backbone_weights": "random", "bce_only_steps": 1})
    model.to("cuda").train()
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 1, 192, 256, generator=generator) + 0.01
    batch = {"x": torch.rand(2, 3, 192, 256, generator=generator).cuda(),
             "x_map": (maps / maps.sum(dim=(-2, -1), keepdim=True)).cuda()}
    d_before = snapshot(model.discriminator)
    for _ in range(2):  # a BCE step, then the first adversarial (D) step
        with torch.autocast("cuda", dtype=torch.bfloat16):
            losses = model.train_step(batch)
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in losses.values())
    assert not same(model.discriminator, d_before)
    with torch.no_grad():
        log_density = model.eval()(batch["x"])
    assert log_density.shape == (2, 1, 192, 256)
    assert torch.allclose(log_density.exp().flatten(1).sum(1), torch.ones(2, device="cuda"), atol=1e-4)
