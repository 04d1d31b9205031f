"""SaGIM (Chen et al.) on the tiny preset with a random VGG and an in-test saliency predictor."""

import math

import pytest
import torch

from models.base import build_model
from models.arrays import collate
from models.data import targets_from_predictor
from models.editors.sagim import SaGIM, SaGIMConfig
from support import target_map_editors
from support.target_map_editors import H, W, blob, fixed_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def make_editor(seed=0, **overrides) -> SaGIM:
    return target_map_editors.make_editor("sagim", seed, **overrides)


def test_paper_preset_architecture_and_loss_weights():
    torch.manual_seed(0)
    editor = build_model("editor", "sagim", "paper", {"backbone_weights": "random"})
    c = editor.config
    assert (c.lambda_reconstruction, c.lambda_content, c.lambda_color, c.lambda_cycle, c.lambda_adversarial) == (
        5.0, 5.0, 1.0, 9.0, 5.0)
    assert c.lr == 1e-3 and c.color_kernel_size == 21 and len(c.content_layers) == 5
    first = editor.generator.net[0]
    assert first.in_channels == 4 and first.out_channels == 64  # image + guiding map
    out = editor.edit(torch.rand(1, 3, 30, 42), blob(10, 20, (30, 42)))
    assert out.shape == (1, 3, 30, 42)


TERMS = {"reconstruction", "content", "color", "cycle", "adversarial"}


def test_gradients_reach_every_trainable_parameter():
    editor = make_editor()
    batch = fixed_batch()
    found = editor.generator_losses(batch["image"], batch["target_map"])
    assert set(found) == {"loss", "output"} | TERMS
    found["loss"].backward()
    for name, parameter in editor.generator.named_parameters():
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name
    assert all(p.grad is None for p in editor.vgg.parameters())  # frozen backbone
    assert all(p.grad is None for p in editor.predictor.parameters())  # frozen estimator E
    editor.discriminator.zero_grad(set_to_none=True)
    editor.discriminator_loss(batch["image"], found["output"]).backward()
    for name, parameter in editor.discriminator.named_parameters():
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name


def test_loss_weights_come_from_the_config_and_every_term_is_reported():
    weights = {"reconstruction": 2.0, "content": 3.0, "color": 0.5, "cycle": 7.0, "adversarial": 0.25}
    editor = make_editor(**{f"lambda_{key}": value for key, value in weights.items()})
    batch = fixed_batch()
    found = editor.generator_losses(batch["image"], batch["target_map"])
    assert all(float(found[key].detach()) > 0 for key in TERMS)
    expected = sum(weights[key] * found[key] for key in TERMS)
    assert torch.allclose(found["loss"], expected, rtol=1e-6)
    step = editor.train_step(batch)
    assert set(step) == {"loss", "discriminator"} | TERMS
    assert all(v.ndim == 0 and torch.isfinite(v) for v in step.values())


def test_overfitting_a_fixed_batch_lowers_the_loss():
    # Without the adversarial term: the GAN game is not a minimisation, the other four terms are.
    editor = make_editor(lambda_adversarial=0.0)
    batch = fixed_batch()
    history = [editor.train_step(batch) for _ in range(30)]
    first = float(history[0]["reconstruction"])
    assert sum(float(step["reconstruction"]) for step in history[-3:]) / 3 < 0.7 * first
    assert sum(float(step["loss"]) for step in history[-3:]) / 3 < 0.8 * float(history[0]["loss"])


def test_make_dataset_items_with_guides_from_human_maps(scene_dataset):
    editor = make_editor(target_source="human")
    data = editor.make_dataset(scene_dataset.path)
    assert len(data) == 12  # X and Y of 6 pairs, each with 2–3 objects
    torch.manual_seed(5)
    item = data[0]
    assert set(item) == {"image", "saliency_map", "target_map", "most_salient_id", "least_salient_id", "pair_id"}
    assert item["image"].shape == (3, H, W) and item["target_map"].shape == (1, H, W)
    assert abs(float(item["target_map"].sum()) - 1) < 1e-4 and float(item["target_map"].min()) >= 0
    most, least = int(item["most_salient_id"]), int(item["least_salient_id"])
    assert most != least and min(most, least) >= 1
    labels = data.read(0)["mask"]
    before, after = item["saliency_map"][0], item["target_map"][0]
    # the guide re-orders the two objects: the least salient one now draws more than the most salient one
    assert before[labels == most].mean() > before[labels == least].mean()
    assert after[labels == least].mean() > after[labels == most].mean()
    torch.manual_seed(5)
    assert torch.equal(data[0]["target_map"], item["target_map"])  # drawn from the global torch RNG
    batch = collate([data[i] for i in range(3)])
    assert batch["target_map"].shape == (3, 1, H, W)


def test_guides_reorder_the_predictors_map_of_the_input_by_default(scene_dataset):
    editor = make_editor()
    assert editor.config.target_source == "predictor"
    data = editor.make_dataset(scene_dataset.path)
    batch = collate([data[i] for i in range(2)])
    assert set(batch) == {"image", "mask", "pair_id"}
    found = targets_from_predictor(editor.predictor, batch, editor.make_target)
    for b in range(2):  # the predictor's most and least salient objects trade places in the guide
        labels = batch["mask"][b]
        most, least = int(found["most_salient_id"][b]), int(found["least_salient_id"][b])
        before, after = found["saliency_map"][b, 0], found["target_map"][b, 0]
        assert before[labels == most].mean() > before[labels == least].mean()
        assert after[labels == least].mean() > after[labels == most].mean()
    assert all(math.isfinite(float(v)) for v in editor.train_step(batch).values())


def test_paper_run_length_is_100_epochs_of_the_dataset_at_hand():
    from models.runs import run_length

    config, said = SaGIMConfig(), []
    assert config.max_epochs == 100
    assert run_length(config, n_items=12, batch_size=1, echo=said.append) == 1200
    assert said == ["100 epochs of 12 items at batch 1: 1200 steps"]
    assert run_length(config, 12, 1, steps=7) == 7  # --steps wins
