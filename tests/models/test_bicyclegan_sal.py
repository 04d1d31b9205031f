"""BicycleGAN with saliency conditioning (bicyclegan_sal) on the tiny preset, CPU, with an in-test predictor."""

import pytest
import torch
import torch.nn.functional as F

from models import losses
from models.base import build_model, load_trained
from models.editors._gan_nets import UNetGenerator
from models.editors.bicyclegan_sal import BicycleGANSal
from models.runs import edit_dataset, train
from models.trainer import Trainer
from support.target_map_editors import TinyPredictor, blob

pytestmark = pytest.mark.usefixtures("one_thread")

H = W = 32  # the tiny preset's image_size
SIZE = (H, W)
TERMS = {"gan", "gan2", "l1", "kl", "latent", "saliency_encoded", "saliency_random"}


def make_editor(seed=0, **overrides) -> BicycleGANSal:
    torch.manual_seed(seed)
    editor = build_model("editor", "bicyclegan_sal", "tiny", overrides)
    torch.manual_seed(1000)
    editor.attach_predictor(TinyPredictor())
    return editor


def fixed_batch(height=H, width=W):
    """Two smooth X images, Y = their colour negatives, maps peaked at different places."""
    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(2, 3, height // 4, width // 4, generator=generator)
    x = 0.1 + 0.8 * F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    size = (height, width)
    return {"x": x, "y": 1 - x, "x_map": torch.cat([blob(5, 6, size), blob(24, 26, size)]),
            "y_map": torch.cat([blob(24, 26, size), blob(5, 6, size)])}


def test_paper_preset_is_bicyclegans():
    torch.manual_seed(0)
    editor = build_model("editor", "bicyclegan_sal", "paper")
    c = editor.config
    lambdas = (c.lambda_l1, c.lambda_kl, c.lambda_latent, c.lambda_gan, c.lambda_gan2)
    assert c.nz == 8 and lambdas == (10.0, 0.01, 0.5, 1.0, 1.0)
    assert (c.lr, tuple(c.betas), c.batch_size, c.image_size) == (2e-4, (0.5, 0.999), 2, (256, 256))
    first = editor.generator.root.down[0]
    assert (first.in_channels, first.out_channels) == (5 + 8, 64)  # X ⊕ S_x ⊕ S_y ⊕ z
    depth, level = 0, editor.generator.root
    while level is not None:
        depth, level = depth + 1, level.submodule
    assert depth == 8  # unet_256
    assert len(editor.discriminator.nets) == len(editor.discriminator2.nets) == 2
    assert editor.encoder.mu.in_features == 256 and editor.encoder.mu.out_features == 8
    assert sum(isinstance(m, torch.nn.Dropout) for m in editor.generator.modules()) == 3
    editor.attach_predictor(TinyPredictor())
    out = editor.edit(torch.rand(1, 3, 40, 52), blob(20, 26, (40, 52)), samples=2, seed=0)  # padded to 256²
    assert out.shape == (1, 2, 3, 40, 52)


def test_unet_takes_z_at_the_input_only_or_at_every_level():
    every = UNetGenerator(5, 3, nz=4, levels=5, channels=8, z_at_every_level=True)
    first = UNetGenerator(5, 3, nz=4, levels=5, channels=8, z_at_every_level=False)
    def inputs(unet):  # the down-convolution's input channels, level by level
        return [level.down[0 if i == 0 else 1].in_channels for i, level in enumerate(_levels(unet))]

    assert inputs(every) == [9, 12, 20, 36, 68]
    assert inputs(first) == [9, 8, 16, 32, 64]
    assert first(torch.rand(2, 5, 32, 64) * 2 - 1, torch.randn(2, 4)).shape == (2, 3, 32, 64)


def _levels(unet):
    level = unet.root
    while level is not None:
        yield level
        level = level.submodule


def test_edit_samples_are_different_reproducible_and_shaped():
    editor = make_editor()
    editor.eval()
    batch = fixed_batch()
    one = editor.edit(batch["x"], batch["y_map"], seed=3)
    assert one.shape == (2, 3, H, W) and float(one.min()) >= 0 and float(one.max()) <= 1
    many = editor.edit(batch["x"], batch["y_map"], samples=4, seed=3)
    assert many.shape == (2, 4, 3, H, W)
    assert torch.equal(many[:, 0], one)  # the first code of a seed is the same
    for i in range(4):
        for j in range(i + 1, 4):
            assert float((many[:, i] - many[:, j]).abs().max()) > 1e-3, (i, j)
    assert torch.equal(editor.edit(batch["x"], batch["y_map"], samples=4, seed=3), many)
    assert not torch.equal(editor.edit(batch["x"], batch["y_map"], samples=4, seed=4), many)
    odd = editor.edit(torch.rand(1, 3, 21, 27), blob(10, 13, (21, 27)), samples=2)
    assert odd.shape == (1, 2, 3, 21, 27)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="samples must be an int >= 1"):
            editor.edit(batch["x"], batch["y_map"], samples=bad)
    with pytest.raises(ValueError, match="not a density"):
        editor.edit(batch["x"], 2 * batch["y_map"])


def test_the_target_map_changes_the_output_after_a_few_steps():
    editor = make_editor(lr=2e-3)  # at init (Xavier, gain 0.02) every output is close to grey
    batch = fixed_batch()
    for _ in range(5):
        editor.train_step(batch)
    editor.eval()
    image = batch["x"][:1]
    difference = (editor.edit(image, blob(4, 5, SIZE), seed=0) - editor.edit(image, blob(26, 27, SIZE), seed=0)).abs()
    assert float(difference.mean()) > 1e-3 and float(difference.max()) > 1e-2


def test_gradients_reach_g_e_and_both_discriminators():
    editor = make_editor()
    batch = fixed_batch()
    found = editor.generator_losses(batch)
    assert set(found) == {"loss", "fake_encoded", "fake_random"} | TERMS
    found["loss"].backward()
    for net in (editor.generator, editor.encoder):
        for name, parameter in net.named_parameters():
            assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name
    assert all(p.grad is None for p in editor.predictor.parameters())  # frozen
    for net in (editor.discriminator, editor.discriminator2):
        net.zero_grad(set_to_none=True)
    d_losses = editor.discriminator_losses(batch, found["fake_encoded"], found["fake_random"])
    (d_losses["d"] + d_losses["d2"]).backward()
    for net in (editor.discriminator, editor.discriminator2):
        for name, parameter in net.named_parameters():
            assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name


def test_the_latent_regression_trains_g_but_not_e():
    editor = make_editor()
    found = editor.generator_losses(fixed_batch())
    found["latent"].backward()
    assert all(p.grad is None or not p.grad.any() for p in editor.encoder.parameters())
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in editor.generator.parameters())


def test_loss_is_the_weighted_sum_and_the_saliency_term_changes_the_gradient():
    batch = fixed_batch()
    weights = {"lambda_gan": 0.5, "lambda_gan2": 2.0, "lambda_l1": 3.0, "lambda_kl": 0.1, "lambda_latent": 0.7,
               "lambda_saliency": 4.0}
    found = make_editor(**weights).generator_losses(batch)
    assert all(float(found[key].detach()) > 0 for key in TERMS - {"kl"}) and float(found["kl"].detach()) > -1e-6
    expected = (0.5 * found["gan"] + 2.0 * found["gan2"] + 3.0 * found["l1"] + 0.1 * found["kl"]
                + 0.7 * found["latent"] + 4.0 * (found["saliency_encoded"] + found["saliency_random"]))
    assert torch.allclose(found["loss"], expected, rtol=1e-6)

    def generator_gradient(lambda_saliency):
        editor = make_editor(lambda_saliency=lambda_saliency)
        editor.generator_losses(batch)["loss"].backward()
        return torch.cat([p.grad.flatten() for p in editor.generator.parameters()])

    with_term, without = generator_gradient(1.0), generator_gradient(0.0)
    assert float((with_term - without).norm()) > 1e-3 * float(without.norm())


def test_overfitting_a_fixed_batch_lowers_the_loss():
    # Without the GAN terms: the game is not a minimisation, the rest is.
    editor = make_editor(lr=2e-3, lambda_gan=0.0, lambda_gan2=0.0)
    batch = fixed_batch()
    history = [editor.train_step(batch) for _ in range(40)]
    assert set(history[0]) == {"loss", "d", "d2"} | TERMS
    assert all(v.ndim == 0 and torch.isfinite(v) for step in history for v in step.values())

    def late(key):
        return sum(float(step[key]) for step in history[-3:]) / 3

    assert late("l1") < 0.8 * float(history[0]["l1"])
    assert late("loss") < 0.8 * float(history[0]["loss"])


def test_training_needs_pairs_of_at_least_two(tmp_path, write_pair):
    editor = make_editor()
    batch = fixed_batch()
    with pytest.raises(ValueError, match="at least 2 pairs, got 1"):
        editor.train_step({key: value[:1] for key, value in batch.items()})
    with pytest.raises(ValueError, match=r"lacks \['y'.*single"):
        editor.train_step({"x": batch["x"], "x_map": batch["x_map"], "target_map": batch["y_map"]})
    with pytest.raises(ValueError, match="batch_size = 1"):
        make_editor(batch_size=1)
    from datadir import Dataset

    singles = Dataset.create(tmp_path / "singles", "singles", seed=1)
    row = write_pair(singles.path, "s0", size=(32, 24))
    row.update(source="single", edit_type="none", y_image="", y_mask="", n_observers_y=None)
    singles.add_pairs([row])
    with pytest.raises(ValueError, match=r"nothing bicyclegan_sal \(X/Y pairs with a ground-truth Y.*has no pairs.*1 single rows"):
        editor.make_dataset(singles.path)


def test_validation_reports_the_saliency_kld_of_input_and_output():
    editor = make_editor()
    batch = fixed_batch()
    found = editor.validation_step(batch)
    expected = float(losses.kl_saliency_loss(editor.predictor.log_density(batch["x"]), batch["y_map"]))
    assert set(found) == {"kld_input", "kld_output"} and found["kld_input"] == pytest.approx(expected)
    assert found["kld_output"] > 0


def test_save_and_load_give_identical_edits(scene_dataset, tmp_path):
    editor = make_editor()
    data = editor.make_dataset(scene_dataset.path)
    assert len(data) == 6 and data[0]["x"].shape == (3, H, W)
    Trainer(editor, data, out_dir=tmp_path, max_steps=2, batch_size=2, device="cpu", progress=False).train()
    loaded = load_trained(tmp_path / "checkpoints/last.pt", kind="editor")
    assert type(loaded) is BicycleGANSal and loaded.weights_info["predictor"]["name"] == "tiny_test_predictor"
    loaded.attach_predictor(editor.predictor)
    editor.eval()
    batch = fixed_batch()
    assert torch.equal(editor.edit(batch["x"], batch["y_map"], samples=3, seed=1),
                       loaded.edit(batch["x"], batch["y_map"], samples=3, seed=1))


def test_resume_equals_an_uninterrupted_run(scene_dataset, tmp_path):
    def run(steps, out_dir, resume=False):
        editor = make_editor(max_steps=6)  # the LR decays from step 3: the schedulers resume too
        Trainer(editor, editor.make_dataset(scene_dataset.path), out_dir=out_dir, max_steps=steps, batch_size=2,
                device="cpu", progress=False, resume=resume).train()
        return editor

    full = run(6, tmp_path / "full")
    run(3, tmp_path / "split")
    resumed = run(6, tmp_path / "split", resume=True)
    for (key, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), key


def test_cli_style_run_with_a_trained_salg_detector(scene_dataset, tmp_path):
    predictor = train("predictor", "salg_detector", scene_dataset.path, tmp_path / "p", preset="tiny", steps=1,
                      device="cpu", progress=False)
    result = train("editor", "bicyclegan_sal", scene_dataset.path, tmp_path / "e", preset="tiny", steps=2,
                   predictor_ckpt=predictor["checkpoint"], device="cpu", progress=False)
    assert result["step"] == 2 and result["weights_info"]["predictor"]["name"] == "salg_detector"
    edits = edit_dataset(result["checkpoint"], scene_dataset.path, tmp_path / "edits", split=None, device="cpu",
                         samples=2, seed=0)
    assert edits["count"] == 6
    assert len(list((tmp_path / "edits").glob("*_1.png"))) == len(list((tmp_path / "edits").glob("*_2.png"))) == 6


@pytest.mark.gpu
def test_paper_preset_trains_under_bf16_on_cuda():
    torch.manual_seed(0)
    editor = build_model("editor", "bicyclegan_sal", "paper")
    editor.attach_predictor(TinyPredictor())
    editor.cuda()
    batch = {key: value.cuda() for key, value in fixed_batch(256, 256).items()}
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            found = editor.train_step(batch)
        assert all(torch.isfinite(v).all() for v in found.values())
    out = editor.edit(batch["x"], batch["y_map"], samples=3, seed=0)
    assert out.shape == (2, 3, 3, 256, 256) and float(out.min()) >= 0 and float(out.max()) <= 1
