"""HAG (models/editors/hag.py): per-image intensity/colour optimisation towards a target saliency map.

The saliency predictors here are built in the file: log-softmax of a blurred linear feature of
the image (luminance, or red − green), so which edit lowers the KL is known."""
import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import losses
from models.base import SaliencyPredictor, build_model, load_editor
from models.editors.hag import HAG
from models.runs import load_editor_for_editing

pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 24, 32
LUMINANCE = (0.299, 0.587, 0.114)
RED_GREEN = (1.0, -1.0, 0.0)  # depends on chroma only: R − G = 0.344 Cb + 2.116 Cr


@dataclass
class FeatureConfig:
    weights: tuple[float, float, float] = LUMINANCE


class BlurredFeaturePredictor(SaliencyPredictor):
    """log_softmax(sharpness · 5×5 box blur of (weights · RGB)) over the pixels; counts its calls."""

    name = "blurred_feature_test"
    Config = FeatureConfig

    def __init__(self, weights=LUMINANCE, sharpness=8.0):
        super().__init__()
        self.config = FeatureConfig(tuple(weights))
        self.sharpness = sharpness
        self.calls = 0

    def forward(self, images):
        self.calls += 1
        weights = torch.tensor(self.config.weights, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        feature = F.avg_pool2d((images * weights).sum(1, keepdim=True), 5, 1, 2, count_include_pad=False)
        scores = self.sharpness * feature
        return torch.log_softmax(scores.flatten(1), 1).view_as(scores)


def blob(cy, cx, size=(H, W), sigma=3.0):
    """(1, 1, H, W) density peaked at (cy, cx) px."""
    ys, xs = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
    density = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2)) + 1e-3
    return (density / density.sum())[None, None]


def make_hag(predictor=None, preset="tiny", **overrides):
    editor = build_model("editor", "hag", preset, overrides)
    editor.attach_predictor(predictor if predictor is not None else BlurredFeaturePredictor())
    return editor


def mid_grey_images(batch=2, seed=0):
    """Images in [0.3, 0.7]: no channel clips under the default limits."""
    return 0.3 + 0.4 * torch.rand(batch, 3, H, W, generator=torch.Generator().manual_seed(seed))


def targets():
    return torch.cat([blob(6, 8), blob(18, 24)])


def kl_of(predictor, images, target):
    with torch.no_grad():
        return losses.kl_saliency_loss(predictor.log_density(images), target, reduction="none")


@pytest.mark.parametrize("weights, moved", [(LUMINANCE, "intensity"), (RED_GREEN, "colour")])
def test_lowers_the_kl_to_the_target_through_the_channel_the_predictor_sees(weights, moved):
    predictor = BlurredFeaturePredictor(weights)
    editor = make_hag(predictor)
    image, target = mid_grey_images(), targets()
    result = editor.optimise(image, target)
    before, after = kl_of(predictor, image, target), kl_of(predictor, result.image, target)
    assert bool((after < 0.6 * before).all()), (before, after)
    assert torch.allclose(after, result.kl[result.best_iteration, torch.arange(2)], atol=1e-5)
    gain_moved = float((result.gain - 1).abs().max())
    colour_moved = float(result.chroma_shift.abs().max())
    if moved == "intensity":  # a luminance predictor: only the gain lowers the KL
        assert gain_moved > 0.1 and colour_moved < 1e-4
    else:  # red − green is blind to luma: only the chroma offsets lower the KL
        assert colour_moved > 0.03 and gain_moved < 1e-3
    # the target's region gained saliency: brighter (or redder) there than elsewhere, relative to the input
    feature = torch.tensor(weights).view(1, 3, 1, 1)
    change = ((result.image - image) * feature).sum(1)
    assert float(change[0, 3:10, 4:12].mean()) > float(change[0, 14:, 18:].mean()) + 0.02


@pytest.mark.parametrize("name", ["salgan", "salg_detector"])
def test_works_with_the_registered_predictors(name):
    torch.manual_seed(0)
    predictor = build_model("predictor", name, "tiny")
    editor = make_hag(predictor)
    image = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(4))
    result = editor.optimise(image, blob(6, 8))
    assert result.image.shape == image.shape
    assert float(kl_of(predictor, result.image, blob(6, 8))[0]) < float(result.kl[0, 0]) - 1e-4
    assert editor.weights_info["predictor"]["name"] == name


def test_output_stays_in_range_and_within_the_configured_limits():
    limit, shift = 0.1, 0.04
    editor = make_hag(BlurredFeaturePredictor(LUMINANCE, sharpness=40.0), max_intensity_change=limit,
                      max_chroma_shift=shift, iterations=30)
    image = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(1))  # full range: some pixels clip
    result = editor.optimise(image, targets())
    out = result.image
    assert out.shape == image.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert float(result.gain.min()) >= 1 - limit - 1e-6 and float(result.gain.max()) <= 1 + limit + 1e-6
    assert float(result.chroma_shift.abs().max()) <= shift + 1e-6
    assert float(result.gain.max()) > 1 + limit / 2  # the bound was pressed against, not merely unused
    # RGB moves at most by the YCbCr → RGB images of the bounds (clamping only moves towards the input)
    luma = (image * torch.tensor(LUMINANCE).view(1, 3, 1, 1)).sum(1, keepdim=True)
    chroma_gain = torch.tensor([1.402, 0.344136 + 0.714136, 1.772]).view(1, 3, 1, 1)
    assert bool(((out - image).abs() <= limit * luma + shift * chroma_gain + 1e-5).all())


def test_two_runs_are_identical_and_edit_works_under_no_grad():
    image, target = mid_grey_images(), targets()
    first = make_hag().optimise(image, target)
    second = make_hag().optimise(image, target)
    for key in ("image", "gain", "chroma_shift", "kl", "objective", "best_iteration"):
        assert torch.equal(getattr(first, key), getattr(second, key)), key
    with torch.no_grad():  # as models.runs calls edit
        edited = make_hag().edit(image, target)
    assert torch.equal(edited, first.image) and not torch.equal(edited, image)


@pytest.mark.parametrize("iterations", [0, 3, 7])
def test_the_iteration_budget_is_respected(iterations):
    predictor = BlurredFeaturePredictor()
    editor = make_hag(predictor, iterations=iterations)
    image, target = mid_grey_images(), targets()
    result = editor.optimise(image, target)
    assert predictor.calls == iterations + 1  # one per Adam step, one to score the last iterate
    assert result.kl.shape == result.objective.shape == (iterations + 1, 2)
    best = result.objective[result.best_iteration, torch.arange(2)]
    assert bool((best <= result.objective[0]).all())  # never worse than the input itself
    if iterations == 0:
        assert torch.allclose(result.image, image, atol=1e-6) and result.best_iteration.tolist() == [0, 0]
    else:
        assert bool((best < result.objective[0]).all())


@pytest.mark.gpu
def test_edits_on_cuda_as_on_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    editor = make_hag()
    image, target = mid_grey_images(), targets()
    on_cpu = editor.optimise(image, target)
    editor.cuda()  # the predictor moves with it
    on_cuda = editor.optimise(image.cuda(), target.cuda())
    assert on_cuda.image.device.type == "cuda"
    assert torch.allclose(on_cuda.image.cpu(), on_cpu.image, atol=1e-2)
    assert bool((on_cuda.kl[-1].cpu() < 0.6 * on_cuda.kl[0].cpu()).all())


def test_the_progress_bar_is_off_unless_asked_for(capsys):
    editor = make_hag(iterations=3)
    editor.edit(mid_grey_images(1), blob(6, 8))
    assert capsys.readouterr().err == ""
    editor.edit(mid_grey_images(1), blob(6, 8), progress=True)
    assert "hag" in capsys.readouterr().err


def test_bad_inputs_raise_clear_errors():
    editor = make_hag()
    image, target = mid_grey_images(1), blob(6, 8)
    with pytest.raises(ValueError, match="not a density"):
        editor.edit(image, 2 * target)
    with pytest.raises(ValueError, match=">= 0"):
        editor.edit(image, target - target.mean())
    with pytest.raises(ValueError, match=r"\(1, 1, 24, 30\).*\(1, 3, 24, 32\)"):
        editor.edit(image, blob(6, 8, (24, 30)))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        editor.edit(image, target.expand(1, 3, H, W))
    with pytest.raises(ValueError, match=r"in \[0, 1\], got \[0.3.*, 1.5\]"):
        editor.edit(torch.cat([image[:, :, :1] * 0 + 1.5, image[:, :, 1:]], 2), target)
    with pytest.raises(ValueError, match="none is attached"):
        build_model("editor", "hag", "tiny").edit(image, target)


@pytest.mark.parametrize("overrides, message", [
    ({"iterations": -1}, "iterations = -1; expected an int >= 0"),
    ({"max_intensity_change": 1.0}, "max_intensity_change = 1.0; expected in"),
    ({"max_chroma_shift": 0.6}, "max_chroma_shift = 0.6"),
    ({"field_size": (0, 4)}, r"field_size = \(0, 4\)"),
    ({"lr": 0.0}, "lr = 0.0"),
])
def test_bad_configs_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_model("editor", "hag", "tiny", overrides)


def test_cli_train_writes_a_checkpoint_and_edit_uses_it(run_cli, scene_dataset, tmp_path, caplog):
    data = scene_dataset.path
    predictor = tmp_path / "det"
    code, stdout, err = run_cli("train", "predictor", "salg_detector", "--data", data, "--preset", "tiny",
                                "--steps", 2, "--batch-size", 2, "--out", predictor, "--device", "cpu", "--no-progress")
    assert code == 0, err
    predictor_ckpt = predictor / "checkpoints/last.pt"
    run = tmp_path / "hag"
    code, stdout, err = run_cli("train", "editor", "hag", "--data", data, "--preset", "tiny", "--predictor",
                                predictor_ckpt, "--out", run, "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert "trained hag to step 1 (trainable_parameters 0)" in stdout
    assert "hag has nothing to train: writing its checkpoint" in caplog.text
    ckpt = run / "checkpoints/last.pt"
    editor = load_editor(ckpt)
    assert isinstance(editor, HAG) and editor.config.iterations == 20
    assert editor.weights_info["predictor"]["name"] == "salg_detector"
    assert editor.weights_info["predictor"]["path"] == str(predictor_ckpt.resolve())
    assert load_editor_for_editing(ckpt, "hag", "cpu").predictor.name == "salg_detector"

    image, target = data / "images/000001_x.png", data / "maps/000001_y.npy"
    code, stdout, err = run_cli("edit", "hag", "--ckpt", ckpt, "--image", image, "--target-map", target,
                                "--out", tmp_path / "edited.png", "--device", "cpu")
    assert code == 0, err
    assert "saliency predictor: salg_detector" in stdout and "edited image:" in stdout
    edited, original = cv2.imread(str(tmp_path / "edited.png")), cv2.imread(str(image))
    assert edited.shape == original.shape == (24, 32, 3) and not np.array_equal(edited, original)
    info = json.loads((tmp_path / "edited.json").read_text())
    assert info["editor"] == "hag" and info["target_map"] == str(target)

    code, stdout, err = run_cli("edit", "hag", "--ckpt", ckpt, "--data", data, "--split", "train",
                                "--predictor", predictor_ckpt, "--out", tmp_path / "edits", "--device", "cpu")
    assert code == 0, err
    assert "6 edited images" in stdout and len(list((tmp_path / "edits").glob("*.png"))) == 6

    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((24, 32), 0.5, np.float32))
    for extra, expected in ((("--target-map", bad), "not a density"),
                            (("--target-map", target, "--seed", 1), "takes no option seed"),
                            (("--target-map", target, "--predictor", tmp_path / "none.pt"), "needs its saliency")):
        code, _, err = run_cli("edit", "hag", "--ckpt", ckpt, "--image", image, *extra, "--out", tmp_path / "x.png",
                               "--device", "cpu")
        assert code == 2 and expected in err and "Traceback" not in err, err
