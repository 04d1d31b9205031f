"""CycleGAN with saliency conditioning (cyclegan_sal) on the tiny preset, CPU, with an in-test predictor."""

import pytest
import torch
import torch.nn.functional as F

from models import losses
from models.base import build_model, load_trained
from models.editors._gan_nets import ImagePool
from models.editors.cyclegan_sal import CycleGANSal
from models.runs import edit_dataset, train
from models.trainer import Trainer
from support.target_map_editors import TinyPredictor, blob

pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 24, 32  # the tiny preset's image_size
TERMS = {"gan_a", "gan_b", "cycle_a", "cycle_b", "identity_a", "identity_b", "saliency_a", "saliency_b"}


def make_editor(seed=0, **overrides) -> CycleGANSal:
    torch.manual_seed(seed)
    editor = build_model("editor", "cyclegan_sal", "tiny", overrides)
    torch.manual_seed(1000)
    editor.attach_predictor(TinyPredictor())
    return editor


def fixed_batch(height=H, width=W):
    """Two smooth X images, Y = their colour negatives, maps peaked at different places."""
    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(2, 3, height // 4, width // 4, generator=generator)
    x = 0.1 + 0.8 * F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    size = (height, width)
    return {"x": x, "y": 1 - x, "x_map": torch.cat([blob(5, 6, size), blob(18, 24, size)]),
            "y_map": torch.cat([blob(18, 24, size), blob(5, 6, size)])}


def test_paper_preset_is_cyclegans():
    torch.manual_seed(0)
    editor = build_model("editor", "cyclegan_sal", "paper")
    c = editor.config
    assert c.image_size == (256, 256) and (c.lambda_cycle, c.lambda_identity, c.pool_size) == (10.0, 0.5, 50)
    assert (c.lr, tuple(c.betas), c.batch_size) == (2e-4, (0.5, 0.999), 1)
    stem = editor.generator_a.net[0]
    assert (stem.in_channels, stem.out_channels, stem.kernel_size) == (5, 64, (7, 7))  # X ⊕ S_source ⊕ S_target
    blocks = [m for m in editor.generator_a.net if type(m).__name__ == "ResidualBlock"]
    assert len(blocks) == 9 and blocks[0].body[0].in_channels == 256
    convs = [m for m in editor.discriminator_a.net if isinstance(m, torch.nn.Conv2d)]
    assert [m.stride[0] for m in convs] == [2, 2, 2, 1, 1] and convs[0].out_channels == 64  # the 70 px PatchGAN
    assert editor.pool_a.images.shape == (50, 3, 256, 256)
    assert editor.optimizer_g.param_groups[0]["betas"] == (0.5, 0.999)
    assert editor.guidance == "target_map" and editor.needs_predictor_at_edit


def test_edit_shapes_range_and_any_size():
    editor = make_editor()
    batch = fixed_batch()
    out = editor.edit(batch["x"], batch["y_map"])
    assert out.shape == (2, 3, H, W) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    odd = editor.edit(torch.rand(1, 3, 21, 27), blob(10, 13, (21, 27)))  # padded to multiples of 4 and cropped
    assert odd.shape == (1, 3, 21, 27)


def test_edit_needs_the_predictor_and_a_density():
    torch.manual_seed(0)
    bare = build_model("editor", "cyclegan_sal", "tiny")
    with pytest.raises(ValueError, match="needs a saliency predictor"):
        bare.edit(torch.rand(1, 3, H, W), blob(5, 5))
    editor = make_editor()
    with pytest.raises(ValueError, match="not a density"):
        editor.edit(torch.rand(1, 3, H, W), 3 * blob(5, 5))
    with pytest.raises(ValueError, match=r"\(1, 1, 24, 30\).*\(1, 3, 24, 32\)"):
        editor.edit(torch.rand(1, 3, H, W), blob(5, 5, (24, 30)))


def test_the_target_map_changes_the_output():
    editor = make_editor()
    image = fixed_batch()["x"][:1]
    difference = (editor.edit(image, blob(4, 5)) - editor.edit(image, blob(20, 27))).abs()
    assert float(difference.mean()) > 1e-3 and float(difference.max()) > 1e-2


def test_gradients_reach_both_generators_and_both_discriminators():
    editor = make_editor()
    batch = fixed_batch()
    found = editor.generator_losses(batch)
    assert set(found) == {"loss", "fake_a", "fake_b"} | TERMS
    found["loss"].backward()
    for net in (editor.generator_a, editor.generator_b):
        for name, parameter in net.named_parameters():
            assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name
    assert all(p.grad is None for p in editor.predictor.parameters())  # frozen
    for net in (editor.discriminator_a, editor.discriminator_b):
        net.zero_grad(set_to_none=True)
    d_losses = editor.discriminator_losses(batch, found["fake_b"], found["fake_a"])
    (d_losses["d_a"] + d_losses["d_b"]).backward()
    for net in (editor.discriminator_a, editor.discriminator_b):
        for name, parameter in net.named_parameters():
            assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name


def test_loss_is_the_weighted_sum_and_the_saliency_term_changes_the_gradient():
    batch = fixed_batch()
    weighted = make_editor(lambda_cycle=3.0, lambda_identity=0.25, lambda_saliency=2.0)
    found = weighted.generator_losses(batch)
    assert all(float(found[key].detach()) > 0 for key in TERMS)
    expected = (found["gan_a"] + found["gan_b"] + 3.0 * (found["cycle_a"] + found["cycle_b"])
                + 0.75 * (found["identity_a"] + found["identity_b"])
                + 2.0 * (found["saliency_a"] + found["saliency_b"]))
    assert torch.allclose(found["loss"], expected, rtol=1e-6)
    target = losses.kl_saliency_loss(weighted.predictor.log_density((found["fake_b"] + 1) / 2), batch["y_map"])
    assert torch.allclose(found["saliency_a"], target)  # KL(S_y ‖ P(G_A(X)))

    def generator_gradient(lambda_saliency):
        editor = make_editor(lambda_saliency=lambda_saliency)
        editor.generator_losses(batch)["loss"].backward()
        return torch.cat([p.grad.flatten() for p in editor.generator_a.parameters()])

    with_term, without = generator_gradient(1.0), generator_gradient(0.0)
    assert float((with_term - without).norm()) > 1e-3 * float(without.norm())


def test_train_step_reports_every_term_and_overfits_the_cycle():
    editor = make_editor(lr=2e-3)
    batch = fixed_batch()
    history = [editor.train_step(batch) for _ in range(30)]
    assert set(history[0]) == {"loss", "d_a", "d_b"} | TERMS
    assert all(v.ndim == 0 and torch.isfinite(v) for step in history for v in step.values())
    cycle = [float(step["cycle_a"] + step["cycle_b"]) for step in history]
    assert sum(cycle[-3:]) / 3 < 0.7 * cycle[0]
    assert int(editor.pool_a.count) == 4  # the tiny pool (4 images) filled after 2 steps of 2


def test_image_pool_returns_inputs_while_filling_then_swaps_half_of_them():
    torch.manual_seed(0)
    pool = ImagePool(3, (1, 2, 2))
    first = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 3
    stored = {float(v) for v in pool.images[:, 0, 0, 0]}
    swapped = kept = 0
    for step in range(200):
        image = torch.full((1, 1, 2, 2), 10.0 + step)
        out = pool.query(image)
        value = float(out[0, 0, 0, 0])
        if value == 10.0 + step:
            kept += 1
        else:  # a stored image came back, and the new one took its place
            swapped += 1
            assert value in stored
            stored = (stored - {value}) | {10.0 + step}
        assert stored == {float(v) for v in pool.images[:, 0, 0, 0]}
    assert 70 < swapped < 130 and kept + swapped == 200
    assert torch.equal(ImagePool(0, (1, 2, 2)).query(first), first)  # size 0: no pool
    with pytest.raises(ValueError, match=r"\(1, 2, 2\).*\(1, 1, 3, 3\)"):
        pool.query(torch.zeros(1, 1, 3, 3))


def test_image_pool_state_resumes_exactly():
    torch.manual_seed(1)
    pool = ImagePool(4, (3, 2, 2))
    for _ in range(6):
        pool.query(torch.rand(2, 3, 2, 2))
    copy = ImagePool(4, (3, 2, 2))
    copy.load_state_dict(pool.state_dict())
    images = torch.rand(5, 3, 2, 2)
    state = torch.get_rng_state()
    expected = pool.query(images)
    torch.set_rng_state(state)
    assert torch.equal(copy.query(images), expected) and torch.equal(copy.images, pool.images)


def test_source_maps_are_measured_or_predicted():
    batch = fixed_batch()
    moved = {**batch, "x_map": torch.cat([blob(12, 3), blob(2, 30)])}  # another measured S_x

    def fake_b(source_map, data):
        editor = make_editor(source_map=source_map)
        with torch.no_grad():
            return editor.generator_losses(data)["fake_b"]

    assert not torch.allclose(fake_b("measured", batch), fake_b("measured", moved), atol=1e-5)
    assert torch.equal(fake_b("predicted", batch), fake_b("predicted", moved))  # S_x from the predictor


def test_make_dataset_items_and_single_rows(scene_dataset, tmp_path, write_pair):
    editor = make_editor()
    data = editor.make_dataset(scene_dataset.path)
    assert len(data) == 6
    item = data[0]
    assert set(item) == {"x", "y", "x_map", "y_map", "pair_id"}
    assert item["x"].shape == item["y"].shape == (3, H, W) and item["y_map"].shape == (1, H, W)
    assert abs(float(item["y_map"].sum()) - 1) < 1e-4
    from datadir import Dataset

    singles = Dataset.create(tmp_path / "singles", "singles", seed=1)
    row = write_pair(singles.path, "s0", size=(32, 24))
    row.update(source="single", edit_type="none", y_image="", y_mask="", n_observers_y=None)
    singles.add_pairs([row])
    with pytest.raises(ValueError, match=r"nothing cyclegan_sal \(X/Y pairs.*1 single rows"):
        editor.make_dataset(singles.path)
    singles.add_pairs([write_pair(singles.path, "p0", size=(32, 24), with_maps=False)])
    with pytest.raises(ValueError, match=r"nothing cyclegan_sal \(.*\) can train on: 1 with no x_map or y_map"):
        editor.make_dataset(singles.path)
    singles.add_pairs([write_pair(singles.path, "p1", size=(32, 24))])
    assert [item["pair_id"] for item in editor.make_dataset(singles.path)] == ["p1"]  # p0 has no maps
    with pytest.raises(ValueError, match=r"lacks \['y'.*single"):
        editor.train_step({"x": torch.rand(2, 3, H, W), "x_map": fixed_batch()["x_map"]})


def test_validation_reports_the_saliency_kld_of_input_and_output():
    editor = make_editor()
    batch = fixed_batch()
    found = editor.validation_step(batch)
    expected = float(losses.kl_saliency_loss(editor.predictor.log_density(batch["x"]), batch["y_map"]))
    assert set(found) == {"kld_input", "kld_output"} and found["kld_input"] == pytest.approx(expected)
    assert found["kld_output"] > 0


def test_save_and_load_give_identical_edits(scene_dataset, tmp_path):
    editor = make_editor()
    Trainer(editor, editor.make_dataset(scene_dataset.path), out_dir=tmp_path, max_steps=2, batch_size=2,
            device="cpu", progress=False).train()
    loaded = load_trained(tmp_path / "checkpoints/last.pt", kind="editor")
    assert type(loaded) is CycleGANSal and loaded.weights_info["predictor"]["name"] == "tiny_test_predictor"
    assert torch.equal(loaded.pool_a.images, editor.pool_a.images) and int(loaded.pool_a.count) == 4
    loaded.attach_predictor(editor.predictor)
    editor.eval()
    batch = fixed_batch()
    assert torch.equal(editor.edit(batch["x"], batch["y_map"]), loaded.edit(batch["x"], batch["y_map"]))


def test_resume_equals_an_uninterrupted_run(scene_dataset, tmp_path):
    def run(steps, out_dir, resume=False):
        editor = make_editor(max_steps=6, pool_size=2)  # the LR decays from step 3; the pools fill at step 1
        Trainer(editor, editor.make_dataset(scene_dataset.path), out_dir=out_dir, max_steps=steps, batch_size=2,
                device="cpu", progress=False, resume=resume).train()
        return editor

    full = run(6, tmp_path / "full")
    run(3, tmp_path / "split")
    resumed = run(6, tmp_path / "split", resume=True)
    for (key, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), key
    assert full.optimizer_g.param_groups[0]["lr"] == resumed.optimizer_g.param_groups[0]["lr"] < 2e-4


def test_cli_style_run_with_a_trained_salg_detector(scene_dataset, tmp_path):
    predictor = train("predictor", "salg_detector", scene_dataset.path, tmp_path / "p", preset="tiny", steps=1,
                      device="cpu", progress=False)
    result = train("editor", "cyclegan_sal", scene_dataset.path, tmp_path / "e", preset="tiny", steps=2,
                   predictor_ckpt=predictor["checkpoint"], device="cpu", progress=False)
    assert result["step"] == 2 and result["weights_info"]["predictor"]["name"] == "salg_detector"
    edits = edit_dataset(result["checkpoint"], scene_dataset.path, tmp_path / "edits", split=None, device="cpu")
    assert edits["count"] == 6 and len(list((tmp_path / "edits").glob("*.png"))) == 6
    with pytest.raises(ValueError, match="takes no option samples"):
        edit_dataset(result["checkpoint"], scene_dataset.path, tmp_path / "more", split=None, device="cpu", samples=2)


@pytest.mark.gpu
def test_paper_preset_trains_under_bf16_on_cuda():
    torch.manual_seed(0)
    editor = build_model("editor", "cyclegan_sal", "paper")
    editor.attach_predictor(TinyPredictor())
    editor.cuda()
    batch = {key: value.cuda() for key, value in fixed_batch(256, 256).items()}
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            found = editor.train_step(batch)
        assert all(torch.isfinite(v).all() for v in found.values())
    out = editor.edit(batch["x"], batch["y_map"])
    assert out.shape == batch["x"].shape and float(out.min()) >= 0 and float(out.max()) <= 1
