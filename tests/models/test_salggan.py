"""SalG-GAN (Jiang et al., papers/000): the attention module and boxes, the networks, both training
paths, the Table 3 ablations, diverse edits, checkpoints and the CLI (tiny preset, CPU)."""

import logging
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from datadir import Dataset
from models.base import build_model, load_trained
from models.arrays import collate
from models.editors.salggan import ABLATIONS, SalGGAN
from models.editors.salggan_parts import SalGGANSamples, attention_boxes, attention_maps
from models.registry import EDITORS
from models.trainer import Trainer
from support import target_map_editors
from support.target_map_editors import H, W, TinyPredictor, blob

pytestmark = pytest.mark.usefixtures("one_thread")


def make_editor(seed=0, **overrides) -> SalGGAN:
    return target_map_editors.make_editor("salggan", seed, **overrides)


def box_density(rows, cols, size=(H, W), floor=1e-3):
    """(1, 1, H, W) density: a constant floor and one flat box of 1s; equal boxes give equal values."""
    values = torch.full(size, floor, dtype=torch.float64)
    values[rows, cols] = 1.0
    total = floor * (size[0] * size[1] - int((values == 1).sum())) + int((values == 1).sum())  # the same sum for
    return (values / total).float()[None, None]  # equal boxes anywhere, so maps that agree agree exactly


def fixed_batch():
    """Two pairs: Y is X with a flat coloured object where the target map peaks (attention moves there)."""
    x = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(7))
    y = x.clone()
    y[0, :, 14:22, 20:28] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
    y[1, :, 2:10, 2:12] = torch.tensor([0.1, 0.3, 0.9]).view(3, 1, 1)
    return {"x": x, "y": y, "x_map": torch.cat([blob(6, 8), blob(18, 24)]),
            "y_map": torch.cat([blob(18, 24), blob(6, 8)])}


# -- the attention module and its boxes ---------------------------------------------------------------


def test_attention_maps_split_one_changed_region_into_additive_and_subtractive_parts():
    a, b = (slice(2, 8), slice(2, 10)), (slice(14, 20), slice(20, 28))
    source, target = box_density(*a), box_density(*b)
    maps = attention_maps(source, target, alpha=10.0, beta=0.5)
    s_p, s_m, s_d = maps.additive[0, 0], maps.subtractive[0, 0], maps.difference[0, 0]
    assert float(s_p.min()) >= 0 and float(s_m.min()) >= 0
    assert torch.equal(s_p * s_m, torch.zeros_like(s_p))  # disjoint
    torch.testing.assert_close(s_d, s_p + s_m)
    assert float(s_p[b].min()) > 0.99 and float(s_m[a].min()) > 0.99  # attention moves from a to b
    assert float(s_p[a].max()) == 0 and float(s_m[b].max()) == 0
    agree = source[0, 0] == target[0, 0]
    assert int(agree.sum()) == H * W - 48 - 48 and float(s_d[agree].abs().max()) == 0
    same = attention_maps(source, source.clone(), 10.0, 0.5)
    assert float(same.difference.max()) == 0
    assert float(maps.target.max()) == 1 and float(maps.source.max()) == 1  # D's max-normalised conditions


def test_the_threshold_makes_s_d_exactly_zero_where_the_maps_agree():
    # realistic maps: fixation-like blobs with a floor, and a smooth predictor-like S_x; where both
    # lie below a tenth of their peak, SAF leaves ~1e-3 differences that only the threshold zeroes
    from analysis.attention_boxes import salggan_boxes

    size = (96, 128)
    source = blob(30, 40, size, 8.0) + blob(60, 100, size, 12.0) + 0.3 * blob(48, 64, size, 40.0)
    target = blob(70, 30, size, 8.0) + blob(60, 100, size, 12.0)
    source, target = source / source.sum(), target / target.sum()
    agree = ((source / source.max() < 0.1) & (target / target.max() < 0.1))[0, 0]
    assert float(agree.float().mean()) > 0.4
    paper = attention_maps(source, target, 10.0, 0.5)
    assert float((paper.difference == 0).float().mean()) < 0.01  # the floor: exact zeros almost nowhere
    maps = attention_maps(source, target, 10.0, 0.5, threshold=0.1)
    s_d = maps.difference[0, 0]
    assert bool((s_d[agree] == 0).all())
    assert float((s_d == 0).float().mean()) > 0.7 and float(s_d.max()) > 0.9  # the change regions stay
    kept = paper.difference[0, 0] >= 0.1
    assert torch.equal(s_d[kept], paper.difference[0, 0][kept]) and bool((s_d[~kept] == 0).all())  # kept, not shrunk
    torch.testing.assert_close(maps.difference, maps.additive + maps.subtractive, rtol=0, atol=0)
    editor = make_editor(image_size=size)
    assert editor.config.attention_threshold == 0.1
    torch.testing.assert_close(editor.attention(source, target).difference, maps.difference)
    # threshold <= box_min_difference: the model's B_a are evaluation's (analysis.attention_boxes)
    assert editor.boxes(maps.difference)[0] == salggan_boxes(source[0, 0].numpy(), target[0, 0].numpy())
    with pytest.raises(ValueError, match="attention_threshold = 0.2 with box_min_difference = 0.1"):
        make_editor(attention_threshold=0.2)


def test_saf_sharpens_with_alpha_and_shifts_with_beta():
    from models.editors.salggan_parts import saliency_adjustment

    ramp = torch.linspace(0, 1, 101).view(1, 1, 1, 101)
    soft, sharp = saliency_adjustment(ramp, 2.0, 0.5), saliency_adjustment(ramp, 40.0, 0.5)
    assert float(soft.min()) == 0 and float(soft.max()) == pytest.approx(1)
    assert float(sharp[..., 30]) < 1e-3 < float(soft[..., 30])  # a high α suppresses what lies below β
    later = saliency_adjustment(ramp, 40.0, 0.8)
    assert float(later[..., 65]) < 0.01 and float(sharp[..., 65]) > 0.99  # a higher β: only more salient pixels count
    assert float(saliency_adjustment(torch.ones(1, 1, 4, 4), 10.0, 0.5).abs().max()) == 0  # nothing stands out


def test_boxes_cover_the_changed_regions_and_nothing_else():
    a, b = (slice(2, 8), slice(2, 10)), (slice(14, 20), slice(20, 28))
    editor = make_editor()
    maps = editor.attention(box_density(*a), box_density(*b))
    boxes = editor.boxes(maps.difference)[0]
    assert len(boxes) == 2
    covered = torch.zeros(H, W, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes:
        covered[y0:y1, x0:x1] = True
    assert bool(covered[a].all()) and bool(covered[b].all())
    assert bool(covered[maps.difference[0, 0] > 0.5].all())
    assert int(covered.sum()) < 0.45 * H * W and not bool(covered[22:, :2].any())
    unchanged = editor.attention(box_density(*a), box_density(*a))
    assert editor.boxes(unchanged.difference) == [[]]


def test_box_clustering_links_near_regions_and_drops_specks():
    difference = torch.zeros(1, 1, 20, 30)
    difference[..., 2:6, 2:6] = 1.0
    difference[..., 2:6, 8:12] = 0.9  # two columns of gap: Chebyshev distance 3
    difference[..., 15, 25] = 1.0  # a one-pixel speck
    apart = attention_boxes(difference, link_px=1, min_pixels=1)[0]
    assert sorted(apart) == [(2, 2, 6, 6), (8, 2, 12, 6), (25, 15, 26, 16)]
    linked = attention_boxes(difference, link_px=3, min_pixels=2)[0]
    assert linked == [(2, 2, 12, 6)]
    grown = attention_boxes(difference, link_px=3, min_pixels=2, margin_px=3)[0]
    assert grown == [(0, 0, 15, 9)]  # clipped to the image
    assert attention_boxes(difference, min_pixels=1, max_boxes=1)[0] == [(2, 2, 6, 6)]  # the largest mass first
    assert attention_boxes(difference * 0.05, min_difference=0.1) == [[]]


# -- the networks -------------------------------------------------------------------------------------


def test_tiny_preset_shapes():
    editor = make_editor()
    assert EDITORS.get("salggan") is SalGGAN and editor.guidance == "target_map" and editor.needs_predictor_at_edit
    assert editor.weights_info["random_backbone"] is True
    c = editor.config
    batch = fixed_batch()
    x, maps = batch["x"], editor.attention(batch["x_map"], batch["y_map"])
    condition = torch.cat([maps.additive, maps.subtractive], 1)
    out = editor.generator(x, condition, maps.difference, torch.zeros(2, c.z_dim))
    assert out.shape == (2, 3, H, W)
    mu, logvar = editor.encoder(x)
    assert mu.shape == logvar.shape == (2, c.z_dim)
    scores = editor.discriminator_global(torch.rand(2, 4, H, W))
    assert len(scores) == 3 and all(s.shape[:2] == (2, 1) and s.numel() >= 2 for s in scores)
    assert editor.discriminator_local(torch.rand(5, 4, c.local_size, c.local_size)).shape[:2] == (5, 1)
    edited = editor.edit(x, batch["y_map"], seed=0)
    assert edited.shape == (2, 3, H, W) and float(edited.min()) >= 0 and float(edited.max()) <= 1
    many = editor.edit(x, batch["y_map"], samples=3, seed=0)
    assert many.shape == (2, 3, 3, H, W)
    odd = editor.edit(torch.rand(1, 3, 21, 27), blob(10, 13, (21, 27)), seed=0)  # padded for the U-Net, cropped back
    assert odd.shape == (1, 3, 21, 27)


def test_paper_preset_architecture():
    torch.manual_seed(0)
    editor = build_model("editor", "salggan", "paper", {"backbone_weights": "random"})
    c = editor.config
    assert c.image_size == (256, 256) and c.unet_depth == 8 and c.d_scales == 3 and c.z_dim == 8
    assert (c.lambda_img, c.lambda_kl, c.lambda_cue, c.lr) == (10.0, 0.01, 0.5, 2e-4)
    assert len(editor.generator.unet.downs) == len(editor.generator.unet.ups) == 8
    assert editor.generator.unet.downs[0].in_channels == 3 + 2 + 8  # X, S_p, S_m, tiled z
    assert editor.generator.mix.in_channels == 6 and editor.generator.mix.kernel_size == (1, 1)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in editor.encoder.modules()) == 5
    assert len(editor.discriminator_global.nets) == 3 and editor.discriminator_local is not None


def test_outside_the_difference_map_the_output_is_the_input_whatever_c_has_learnt():
    editor = make_editor()
    a, b = (slice(2, 8), slice(2, 10)), (slice(14, 20), slice(20, 28))
    source, target = box_density(*a), box_density(*b)
    image = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(2))
    generator = editor.generator
    assert float(generator.mix_drift().detach()) == 0  # C_1×1 starts at the blend identity
    with torch.no_grad():
        generator.mix.weight.copy_(torch.randn(3, 6, 1, 1))  # far from it
        generator.mix.bias.copy_(torch.randn(3))
        z = torch.randn(1, editor.config.z_dim)
        out = editor.translate(image, target, z, source)
        maps = editor.attention(source, target)
        unet = generator.unet(torch.cat([image * 2 - 1, maps.additive, maps.subtractive,
                                         z[:, :, None, None].expand(-1, -1, H, W)], 1))
        d = maps.difference
        eq2 = generator.mix(torch.cat([d * (unet + 1) / 2, (1 - d) * image], 1))
        for parameter in generator.unet.parameters():
            parameter.add_(torch.randn_like(parameter))
        other = editor.translate(image, target, z, source)
    drift = float(generator.mix_drift().detach())
    with torch.no_grad():
        expected = (generator.mix.weight[:, :, 0, 0] - torch.cat([torch.eye(3)] * 2, 1)).square().sum()
        assert drift == pytest.approx(float(expected + generator.mix.bias.square().sum()))
    outside = (d == 0).expand_as(out)
    assert int(outside.sum()) > 0.5 * out.numel()
    assert torch.equal(out[outside], image[outside]) and torch.equal(other[outside], image[outside])
    torch.testing.assert_close(out[~outside], eq2[~outside])  # eq. 2 itself inside S_d
    assert not torch.allclose(other[~outside], out[~outside])  # the U-Net acts inside S_d only


def test_the_exact_invariant_holds_after_a_few_training_steps(shifted_dataset, tmp_path):
    editor = make_editor()
    data = editor.make_dataset(shifted_dataset.path)
    Trainer(editor, data, out_dir=tmp_path, max_steps=4, batch_size=2, device="cpu", progress=False).train()
    logged = pd.read_csv(tmp_path / "log.csv")
    assert "mix_identity" in logged and float(logged["mix_identity"].iloc[-1]) > 0  # C has moved: nothing trivial
    assert float(editor.generator.mix_drift().detach()) > 0
    editor.eval()
    batch = collate([data[i] for i in range(len(data))])
    x, source, target = batch["x"], batch["x_map"], batch["y_map"]
    for sx, s_x in (("measured", source), ("predicted", editor.predictor.log_density(x).exp().detach())):
        options = {"source_map": source} if sx == "measured" else {}
        out = editor.edit(x, target, seed=0, sx=sx, **options)
        s_d = editor.attention(s_x, target).difference
        outside = (s_d == 0).expand_as(out)
        assert float((out - x).abs()[outside].max()) <= 1e-6, sx
        assert not torch.allclose(out[~outside], x[~outside])  # the edit acts inside S_d
    agree = (source / source.flatten(1).amax(1).view(-1, 1, 1, 1) < 0.1) & (
        target / target.flatten(1).amax(1).view(-1, 1, 1, 1) < 0.1)
    s_d = editor.attention(source, target).difference
    assert float(agree.float().mean()) > 0.3 and bool((s_d[agree] == 0).all())
    assert float((s_d == 0).float().mean()) > 0.5


def test_the_mix_identity_term_pulls_c_back_to_the_identity():
    batch = fixed_batch()
    drift = {}
    for weight in (0.0, 100.0):
        editor = make_editor(lambda_mix_identity=weight, lr=2e-3)
        terms = editor.generator_losses(editor.forward_pass(batch))
        assert float(terms["mix_identity"].detach()) == 0
        for _ in range(5):
            editor.train_step(batch)
        drift[weight] = float(editor.generator.mix_drift().detach())
    assert drift[100.0] < 0.5 * drift[0.0]


# -- training -----------------------------------------------------------------------------------------


def test_gradients_reach_g_e_and_both_discriminators():
    editor = make_editor()
    batch = fixed_batch()
    found = editor.forward_pass(batch)
    assert all(found.boxes)  # every image has a change region, so D_L sees real patches
    d_losses = editor.discriminator_losses(found)
    assert set(d_losses) == {"d_global", "d_local"}
    sum(d_losses.values()).backward()
    for net in (editor.discriminator_global, editor.discriminator_local):
        for name, parameter in net.named_parameters():
            assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, name
    assert all(p.grad is None for net in (editor.generator, editor.encoder) for p in net.parameters())
    g_losses = editor.generator_losses(editor.forward_pass(batch))
    assert set(g_losses) == {"loss", "adversarial_global", "adversarial_local", "content", "saliency", "img", "local",
                             "kl", "cycle", "cue", "mix_identity"}
    g_losses["loss"].backward()
    for net in (editor.generator, editor.encoder):
        for name, parameter in net.named_parameters():
            assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, name
    assert all(p.grad is None for p in editor.vgg.parameters())
    assert all(p.grad is None for p in editor.predictor.parameters())


def test_latent_regression_trains_g_but_not_e():
    editor = make_editor()
    found = editor.forward_pass(fixed_batch())
    editor.generator_losses(found)["cue"].backward()
    assert float(sum(p.grad.abs().sum() for p in editor.generator.parameters() if p.grad is not None)) > 0
    # E's supervised codes share G's batched pass, so E's parameters may hold gradients, all zero
    assert all(p.grad is None or not bool(p.grad.any()) for p in editor.encoder.parameters())
    found = editor.forward_pass(fixed_batch())
    editor.generator_losses(found)["kl"].backward()  # while another term does reach E
    assert any(p.grad is not None and bool(p.grad.any()) for p in editor.encoder.parameters())


def test_overfitting_a_fixed_batch_lowers_the_losses():
    # without the adversarial terms: the GAN game is not a minimisation, the other terms are
    editor = make_editor(lambda_adversarial=0.0, lr=2e-3)
    batch = fixed_batch()
    history = [editor.train_step(batch) for _ in range(50)]
    assert all(math.isfinite(float(v)) for step in history for v in step.values())

    def late(key):
        return sum(float(step[key]) for step in history[-3:]) / 3

    assert late("img") < 0.5 * float(history[0]["img"])
    assert late("local") < 0.5 * float(history[0]["local"])
    assert late("cycle") < 0.8 * float(history[0]["cycle"])
    assert late("g_total") < 0.75 * float(history[0]["g_total"])


def test_train_step_rejects_bad_batches():
    editor = make_editor()
    batch = fixed_batch()
    with pytest.raises(ValueError, match=r"y has shape \(2, 3, 24, 30\) but x has \(2, 3, 24, 32\)"):
        editor.train_step({**batch, "y": batch["y"][..., :30]})
    with pytest.raises(ValueError, match="y_map is not a density"):
        editor.train_step({**batch, "y_map": batch["y_map"] * 3})
    with pytest.raises(ValueError, match="x_map has size"):
        editor.train_step({**batch, "x_map": F.interpolate(batch["x_map"], size=(12, 16))})
    with pytest.raises(ValueError, match="lacks"):
        editor.train_step({"x": batch["x"]})
    single = {**batch, "has_y": torch.tensor([True, False])}
    assert all(math.isfinite(float(v)) for v in editor.train_step(single).values())
    with pytest.raises(ValueError, match=r"1 row\(s\) of the batch have no ground-truth Y.*no_upath"):
        make_editor(**ABLATIONS["no_upath"]).train_step(single)
    with pytest.raises(ValueError, match="invalid SalG-GAN config: .*at least one path"):
        make_editor(supervised_path=False, unsupervised_path=False)
    with pytest.raises(ValueError, match="image_size"):
        make_editor(image_size=(8, 8))


def test_rows_without_an_x_map_take_it_from_the_predictor():
    editor = make_editor()
    batch = {**fixed_batch(), "has_x_map": torch.tensor([False, True])}
    found = editor.forward_pass(batch)
    predicted = editor.attention(editor.predictor.log_density(batch["x"][:1]).exp(), batch["y_map"][:1])
    torch.testing.assert_close(found.maps.difference[:1], predicted.difference)
    given = editor.attention(batch["x_map"][1:], batch["y_map"][1:])
    torch.testing.assert_close(found.maps.difference[1:], given.difference)


def test_validation_step_scores_the_translation():
    editor = make_editor()
    found = editor.validation_step({**fixed_batch(), "has_y": torch.tensor([True, False])})
    assert set(found) == {"saliency_kld", "l1"} and all(math.isfinite(v) and v > 0 for v in found.values())


# -- the Table 3 ablations ----------------------------------------------------------------------------


GONE = {"no_spath": {"img", "local", "kl"}, "no_upath": {"cycle", "cue"}, "no_dl": {"adversarial_local"},
        "no_sald": {"saliency"}, "e_no_sal": set(), "d_no_sal": set(), "g_no_sal": set()}


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_each_ablation_removes_its_part(name):
    assert set(ABLATIONS) == set(GONE)
    full, ablated = make_editor(), make_editor(**ABLATIONS[name])
    batch = fixed_batch()
    full_terms = full.generator_losses(full.forward_pass(batch))
    ablated_terms = ablated.generator_losses(ablated.forward_pass(batch))
    assert set(full_terms) - set(ablated_terms) == GONE[name] and set(ablated_terms) <= set(full_terms)
    step = ablated.train_step(batch)
    assert all(math.isfinite(float(v)) for v in step.values())
    if name == "no_dl":
        assert ablated.discriminator_local is None and "discriminator_local" not in ablated.networks()
        assert "d_local" not in step and "d_local" in full.train_step(batch)
    if name == "d_no_sal":  # the discriminators see the image only
        assert full.discriminator_global.nets[0].net[0].in_channels == 4
        assert ablated.discriminator_global.nets[0].net[0].in_channels == 3
        assert ablated.discriminator_local.net[0].in_channels == 3
    if name == "g_no_sal":  # the U-Net sees S_y instead of S_p and S_m
        z_dim = full.config.z_dim
        assert full.generator.unet.downs[0].in_channels == 3 + 2 + z_dim
        assert ablated.generator.unet.downs[0].in_channels == 3 + 1 + z_dim
    if name == "e_no_sal":  # E encodes Y, not Y·S_d
        for editor, attended in ((full, True), (ablated, False)):
            found = editor.forward_pass(batch)
            seen = batch["y"] * found.maps.difference if attended else batch["y"]
            torch.testing.assert_close(found.mu, editor.encoder(seen)[0])
    if name == "no_spath":
        assert full.forward_pass(batch).fake_sup.shape[0] == 2
        assert ablated.forward_pass(batch).fake_sup.shape[0] == 0


# -- editing ------------------------------------------------------------------------------------------


def test_samples_are_diverse_and_seeded():
    editor = make_editor()
    batch = fixed_batch()
    many = editor.edit(batch["x"], batch["y_map"], samples=3, seed=0)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert float((many[:, i] - many[:, j]).abs().max()) > 1e-2
    assert torch.equal(editor.edit(batch["x"], batch["y_map"], samples=3, seed=0), many)
    assert not torch.equal(editor.edit(batch["x"], batch["y_map"], samples=3, seed=1), many)
    z = torch.randn(2, 3, editor.config.z_dim)
    torch.testing.assert_close(editor.edit(batch["x"], batch["y_map"], samples=3, z=z)[:, 1],
                               editor.edit(batch["x"], batch["y_map"], z=z[:, 1]))
    given = editor.edit(batch["x"], batch["y_map"], seed=0, sx="measured", source_map=batch["x_map"])
    assert not torch.equal(given, editor.edit(batch["x"], batch["y_map"], seed=0))  # S_x given, not predicted
    with pytest.raises(ValueError, match="sx='measured' needs the measured S_x as source_map"):
        editor.edit(batch["x"], batch["y_map"], sx="measured")
    with pytest.raises(ValueError, match="source_map was given with sx='predicted'"):
        editor.edit(batch["x"], batch["y_map"], source_map=batch["x_map"])
    with pytest.raises(ValueError, match="sx = 'human'"):
        editor.edit(batch["x"], batch["y_map"], sx="human")
    with pytest.raises(ValueError, match="samples"):
        editor.edit(batch["x"], batch["y_map"], samples=0)
    with pytest.raises(ValueError, match="z must be"):
        editor.edit(batch["x"], batch["y_map"], z=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="not a density"):
        editor.edit(batch["x"], 2 * batch["y_map"])
    editor._predictor = []  # "measured" needs no predictor
    assert torch.equal(given, editor.edit(batch["x"], batch["y_map"], seed=0, sx="measured",
                                          source_map=batch["x_map"]))


# -- data, checkpoints, the CLI -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shifted_dataset(scene_dataset, tmp_path_factory):
    """scene_dataset with each Y map moved to the mirrored position, so that attention changes
    (scene_dataset's X and Y maps peak on the same object, where SalG-GAN has nothing to do)."""
    root = tmp_path_factory.mktemp("salggan") / "ds"
    shutil.copytree(scene_dataset.path, root)
    for path in sorted(root.glob("maps/*_y.npy")):
        density = np.load(path)[::-1, ::-1]
        np.save(path, np.ascontiguousarray(density / density.sum(dtype=np.float64), dtype=np.float32))
    return Dataset.open(root)


def test_shifted_dataset_has_change_regions(shifted_dataset):
    editor = make_editor()
    batch = collate([editor.make_dataset(shifted_dataset.path)[i] for i in range(6)])
    assert all(editor.forward_pass(batch).boxes)


@pytest.fixture
def mixed_dataset(tmp_path, write_pair):
    """Two pairs with maps, one pair without, and one single row (an image and a target map)."""
    ds = Dataset.create(tmp_path / "mixed", "mixed", seed=1)
    single = write_pair(ds.path, "s0")
    target = np.full((12, 16), 1e-4, np.float32)
    target[3:6, 8:12] = 1.0
    np.save(ds.path / "maps/s0_target.npy", target / target.sum())
    single.update(source="single", edit_type="none", y_image="", y_mask="", y_map="maps/s0_target.npy")
    ds.add_pairs([write_pair(ds.path, "p0"), write_pair(ds.path, "p1"), write_pair(ds.path, "p2", with_maps=False),
                  single])
    return ds


def test_dataset_feeds_single_rows_to_the_unsupervised_path_only(mixed_dataset, caplog):
    editor = make_editor()
    with caplog.at_level(logging.INFO):
        data = editor.make_dataset(mixed_dataset.path)
    assert len(data) == 3
    assert "1 single row(s) without a ground-truth Y train the unsupervised path only" in caplog.text
    assert "left out 1 with no y_map (SalG-GAN needs y_map)" in caplog.text
    items = [data[i] for i in range(3)]
    assert [bool(item["has_y"]) for item in items] == [True, True, False]
    assert items[0]["x"].shape == (3, H, W) and items[0]["y_map"].shape == (1, H, W)
    assert float(items[2]["y"].abs().sum()) == 0 and float(items[2]["y_map"][0, 8, 20]) > 0.01
    losses = editor.train_step(collate(items))
    assert all(math.isfinite(float(v)) for v in losses.values())
    with pytest.raises(ValueError, match="1 single row.*unsupervised_path=False"):
        make_editor(**ABLATIONS["no_upath"]).make_dataset(mixed_dataset.path)
    with pytest.raises(ValueError, match="nothing SalG-GAN can train on"):
        SalGGANSamples(mixed_dataset.path, "test", (W, H))


def test_save_load_gives_identical_edits(shifted_dataset, tmp_path):
    editor = make_editor()
    Trainer(editor, editor.make_dataset(shifted_dataset.path), out_dir=tmp_path, max_steps=2, batch_size=2,
            device="cpu", progress=False).train()
    loaded = load_trained(tmp_path / "checkpoints/last.pt", kind="editor")
    assert type(loaded) is SalGGAN and loaded.weights_info["predictor"]["name"] == "tiny_test_predictor"
    torch.manual_seed(1000)
    loaded.attach_predictor(TinyPredictor())  # the same weights as make_editor's
    editor.eval()
    batch = fixed_batch()
    assert torch.equal(loaded.edit(batch["x"], batch["y_map"], samples=2, seed=3),
                       editor.edit(batch["x"], batch["y_map"], samples=2, seed=3))


def test_resume_equals_an_uninterrupted_run(shifted_dataset, tmp_path):
    def run(max_steps, out_dir, resume=False):
        editor = make_editor()
        Trainer(editor, editor.make_dataset(shifted_dataset.path), out_dir=out_dir, max_steps=max_steps, batch_size=2,
                device="cpu", progress=False, resume=resume).train()
        return editor

    straight = run(4, tmp_path / "straight")
    run(2, tmp_path / "split")
    resumed = run(4, tmp_path / "split", resume=True)
    assert list(straight.state_dict()) == list(resumed.state_dict())
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_cli_trains_the_detector_then_salggan_and_edits_a_dataset(shifted_dataset, tmp_path, run_cli):
    data = shifted_dataset.path
    code, out, err = run_cli("train", "predictor", "salg_detector", "--data", data, "--preset", "tiny", "--steps", 2,
                             "--out", tmp_path / "det", "--device", "cpu", "--no-progress")
    assert code == 0, err
    detector = tmp_path / "det/checkpoints/last.pt"
    code, out, err = run_cli("train", "editor", "salggan", "--data", data, "--preset", "tiny", "--steps", 2,
                             "--predictor", detector, "--out", tmp_path / "run", "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert "WARNING: random backbone" in out and "saliency predictor: salg_detector" in out
    assert "trained salggan to step 2" in out
    logged = pd.read_csv(tmp_path / "run/log.csv")
    assert float(logged["d_local"].iloc[-1]) > 0 and float(logged["local"].iloc[-1]) > 0  # boxes were found
    code, out, err = run_cli("edit", "salggan", "--ckpt", tmp_path / "run/checkpoints/last.pt", "--data", data,
                             "--split", "train", "--samples", 2, "--seed", 0, "--out", tmp_path / "edits",
                             "--device", "cpu")
    assert code == 0, err
    assert "6 edited images" in out
    assert len(list((tmp_path / "edits").glob("*_2.png"))) == 6
    ckpt = tmp_path / "run/checkpoints/last.pt"
    code, out, err = run_cli("edit", "salggan", "--ckpt", ckpt, "--data", data, "--split", "train", "--sx", "measured",
                             "--seed", 0, "--out", tmp_path / "measured", "--device", "cpu")
    assert code == 0, err
    assert "6 edited images" in out and '"sx": "measured"' in (tmp_path / "measured/edits.json").read_text()
    code, out, err = run_cli("edit", "salggan", "--ckpt", ckpt, "--image", data / "images/000000_x.png",
                             "--target-map", data / "maps/000000_y.npy", "--sx", "measured", "--out",
                             tmp_path / "one.png", "--device", "cpu")
    assert code != 0 and "--sx measured: the image" in err and "has no measured saliency map" in err
    assert "Traceback" not in err


def test_sx_measured_names_a_pair_without_an_x_map_and_other_editors_refuse_sx(tmp_path, write_pair):
    from models.runs import iter_pair_edits

    ds = Dataset.create(tmp_path / "ds", "no-x-map", seed=1)
    lacking = write_pair(ds.path, "p1")
    lacking.update(x_map="", n_observers_x=0)  # a target (Y's map) but no human map of X
    (ds.path / "maps/p1_x.npy").unlink()
    ds.add_pairs([write_pair(ds.path, "p0"), lacking])
    editor = make_editor()
    measured = iter_pair_edits(editor, ds.path, None, options={"sx": "measured", "seed": 0})
    assert next(measured)[0] == "p0"
    with pytest.raises(ValueError, match="--sx measured: pair p1 has no measured saliency map of X"):
        next(measured)
    edited = {pair: out for pair, out, _ in iter_pair_edits(editor, ds.path, None, options={"seed": 0})}
    assert edited["p1"].shape == (1, 12, 16, 3)  # the default, predicted S_x, needs no X map
    other = target_map_editors.make_editor("cyclegan_sal")
    with pytest.raises(ValueError, match="the editor cyclegan_sal takes no option sx"):
        next(iter_pair_edits(other, ds.path, None, options={"sx": "predicted"}))


@pytest.mark.gpu
def test_paper_preset_trains_under_bf16_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    editor = build_model("editor", "salggan", "paper", {"backbone_weights": "random"})
    editor.attach_predictor(TinyPredictor())
    editor.cuda()
    size = editor.config.image_size
    x = torch.rand(2, 3, *size, device="cuda")
    y = x.clone()
    y[..., 160:224, 160:224] = 0.5
    source = torch.cat([blob(64, 64, size, 20.0)] * 2).cuda()
    target = torch.cat([blob(192, 192, size, 20.0)] * 2).cuda()
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            found = editor.train_step({"x": x, "y": y, "x_map": source, "y_map": target})
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in found.values())
        assert float(found["d_local"]) > 0
    out = editor.edit(x, target, samples=2, seed=0)
    assert out.shape == (2, 2, 3, *size) and float(out.min()) >= 0 and float(out.max()) <= 1
