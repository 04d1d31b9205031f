"""analysis.image_metrics: "unavailable" without weights, and the FID / LPIPS / diversity code
paths on untrained networks through the test-only option (values meaningless, relations not)."""
import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("lpips")
pytest.importorskip("pytorch_fid")

from analysis import image_metrics as im  # noqa: E402

RANDOM = {"_random_weights_for_tests": True}


@pytest.fixture
def fresh_model_cache(monkeypatch):
    """The module's network cache, empty for this test and restored after it."""
    cache = {}
    monkeypatch.setattr(im, "_models", cache)
    return cache


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """TORCH_HOME pointed at an empty directory: no cached weights anywhere."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def _images(seed, count=4, size=32):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), np.uint8)


def _with_square(background, value, box=(16, 16, 32, 32)):
    """A copy of `background` with the pixels of box (x0, y0, x1, y1) set to `value`."""
    image = background.copy()
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = value
    return image


# ---------------------------------------------------------------- unavailable: no weights, no number


def test_fid_without_weights_is_unavailable_and_names_the_file(empty_torch_home):
    result = im.fid(_images(0), _images(1))
    assert isinstance(result, im.Unavailable)
    expected = empty_torch_home / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    assert str(result).startswith("unavailable: FID Inception weights not found at ")
    assert str(expected) in result.reason
    assert "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" in result.reason
    assert "weights=PATH" in result.reason
    with pytest.raises(TypeError):
        float(result)  # never a number


def test_fid_with_a_missing_or_damaged_weights_file_is_unavailable(empty_torch_home, tmp_path):
    missing = im.fid(_images(0), _images(1), weights=tmp_path / "nowhere.pth")
    assert isinstance(missing, im.Unavailable) and str(tmp_path / "nowhere.pth") in missing.reason
    damaged = im.fid_weights_file()
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a checkpoint")
    result = im.fid(_images(0), _images(1))
    assert isinstance(result, im.Unavailable)
    assert "could not be read" in result.reason and str(damaged) in result.reason


def test_fid_loads_a_weights_file_given_as_a_path_and_rejects_one_for_another_network(tmp_path, fresh_model_cache):
    import torch
    import torchvision

    # The FID file holds a torchvision-style Inception3 state_dict (1008 classes, no aux head),
    # saved before BatchNorm had num_batches_tracked.
    state = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False,
                                            init_weights=False).state_dict()
    state = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    state["Conv2d_1a_3x3.conv.weight"] = torch.full_like(state["Conv2d_1a_3x3.conv.weight"], 0.25)
    path = tmp_path / "fid_inception.pth"
    torch.save(state, path)
    loaded = im._inception("cpu", path, random_weights=False)
    assert not isinstance(loaded, im.Unavailable) and not loaded.training
    assert torch.equal(loaded.blocks[0][0].conv.weight, state["Conv2d_1a_3x3.conv.weight"])
    assert torch.equal(loaded.blocks[3][2].branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"])
    wrong = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3)}, wrong)
    result = im.fid(_images(0), _images(1), weights=wrong)
    assert isinstance(result, im.Unavailable) and "do not fit pytorch-fid's network" in result.reason
    assert "keys missing (e.g. ['Conv2d_1a_3x3.bn.bias'" in result.reason and len(result.reason) < 600


@pytest.mark.parametrize("net, file", [("alex", "alexnet-owt-7be5be79.pth"), ("vgg", "vgg16-397923af.pth")])
def test_lpips_and_diversity_without_backbone_weights_are_unavailable(empty_torch_home, net, file):
    images = _images(0, count=2)
    results = [im.lpips_distance(images[0], images[1], net=net), im.diversity_score(images, net=net)]
    for result in results:
        assert isinstance(result, im.Unavailable)
        assert str(result).startswith(f"unavailable: LPIPS ({net}) needs torchvision's ImageNet weights {file}")
        assert str(empty_torch_home / "hub" / "checkpoints") in result.reason
        assert f"https://download.pytorch.org/models/{file}" in result.reason


def test_lpips_with_a_damaged_cached_backbone_is_unavailable(empty_torch_home, fresh_model_cache):
    cached = im.lpips_backbone_file("vgg")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated download")
    a, b = _images(0, count=2)
    result = im.lpips_distance(a, b, net="vgg")
    assert isinstance(result, im.Unavailable)
    assert str(result).startswith(f"unavailable: LPIPS (vgg) could not load {cached}")
    assert "delete it and download https://download.pytorch.org/models/vgg16-397923af.pth" in result.reason


def test_random_networks_never_answer_a_request_for_real_weights(empty_torch_home):
    images = _images(0, count=2)
    assert not isinstance(im.lpips_distance(images[0], images[1], **RANDOM), im.Unavailable)
    assert isinstance(im.lpips_distance(images[0], images[1]), im.Unavailable)  # the cached random one is not used


def test_lpips_uses_a_cached_backbone_without_the_test_option(empty_torch_home, fresh_model_cache):
    import torch
    import torchvision

    # A stand-in for the ImageNet file, where torchvision's hub cache keeps it (nothing is downloaded).
    state = torchvision.models.alexnet(weights=None).state_dict()
    state["features.0.weight"] = torch.full_like(state["features.0.weight"], 0.01)
    cached = im.lpips_backbone_file("alex")
    assert cached == empty_torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    a, b = _images(0, count=2)
    result = im.lpips_distance(a, b)
    assert isinstance(result, im.MetricValue) and not result.random_weights and result.value > 0
    assert str(result) == f"{result.value:.6g}"
    [model] = fresh_model_cache.values()
    assert torch.equal(model.net.slice1[0].weight, state["features.0.weight"])


# ---------------------------------------------------------------- bad input, before any network


def test_fid_needs_two_images_per_set():
    with pytest.raises(ValueError, match="at least 2 images per set.*got 1 and 4"):
        im.fid(_images(0, count=1), _images(1), **RANDOM)
    with pytest.raises(ValueError, match=r"images_a has shape \(32, 32, 3\); expected a sequence"):
        im.fid(_images(0)[0], _images(1), **RANDOM)
    with pytest.raises(ValueError, match="images_b is a str"):
        im.fid(_images(0), "images/", **RANDOM)


def test_lpips_rejects_bad_regions_masks_and_images():
    a, b = _images(0, count=2)
    mask = np.zeros((32, 32), bool)
    with pytest.raises(ValueError, match="region 'foreground' of the mask is empty"):
        im.lpips_distance(a, b, mask=mask, region="foreground", **RANDOM)
    with pytest.raises(ValueError, match="region 'background' of the mask is empty"):
        im.lpips_distance(a, b, mask=~mask, region="background", **RANDOM)
    with pytest.raises(ValueError, match="they need one"):
        im.lpips_distance(a, b, region="background", **RANDOM)
    with pytest.raises(ValueError, match=r"expected the image's \(32, 32\)"):
        im.lpips_distance(a, b, mask=np.ones((16, 16), bool), region="foreground", **RANDOM)
    with pytest.raises(ValueError, match="dtype float64"):
        im.lpips_distance(a, b, mask=np.ones((32, 32)), region="foreground", **RANDOM)
    with pytest.raises(ValueError, match="unknown region 'inside'"):
        im.lpips_distance(a, b, mask=mask, region="inside", **RANDOM)
    with pytest.raises(ValueError, match="unknown LPIPS net 'squeeze'"):
        im.lpips_distance(a, b, net="squeeze", **RANDOM)
    with pytest.raises(ValueError, match=r"image_a is float64 with values in \[0, 1\]; expected uint8 RGB.*"
                                         r"np.round\(image \* 255\)"):
        im.lpips_distance(a / 255.0, b, **RANDOM)  # a [0, 1] image is refused, never read as [-1, 1]
    with pytest.raises(ValueError, match=r"image_b is float32 with values in \[-1, 1\]; expected uint8"):
        im.lpips_distance(a, (b / 127.5 - 1).astype(np.float32), **RANDOM)
    with pytest.raises(ValueError, match=r"images_a\[0\] is float64.*expected uint8"):
        im.fid([a / 255.0, b / 255.0], [a, b], **RANDOM)
    with pytest.raises(ValueError, match=r"samples\[1\] has dtype int64; expected uint8"):
        im.diversity_score([a, b.astype(np.int64)], **RANDOM)
    with pytest.raises(ValueError, match="image_a has shape .* but image_b"):
        im.lpips_distance(a[:16], b, **RANDOM)


def test_diversity_rejects_bad_boxes_and_pair_counts():
    samples = _images(0, count=3)
    with pytest.raises(ValueError, match="contain no pixel centre"):
        im.diversity_score(samples, boxes=[(40, 40, 50, 50)], **RANDOM)
    with pytest.raises(ValueError, match="are empty"):
        im.diversity_score(samples, boxes=[(5, 5, 5, 9)], **RANDOM)
    with pytest.raises(ValueError, match=r"n_pairs must be in 1\.\.3"):
        im.diversity_score(samples, n_pairs=4, **RANDOM)
    with pytest.raises(ValueError, match="at least 2 samples of one size, got 1"):
        im.diversity_score(samples[:1], **RANDOM)


# ---------------------------------------------------------------- code paths on random networks


@pytest.mark.slow  # two square roots of singular 2048x2048 matrices: 30-100 s on two CPU cores
def test_fid_code_path_on_a_random_inception(caplog):
    a, b = _images(0), _images(1)
    same, different = im.fid(a, a, **RANDOM), im.fid(a, b, **RANDOM)
    assert same.random_weights and different.random_weights
    assert "random weights" in str(same)
    assert abs(same.value) < 1e-4 * different.value
    assert different.value > 0
    assert "singular" in caplog.text  # 4 images: the covariances cannot be full rank


def test_fid_features_read_files_and_mixed_sizes_in_batches(tmp_path):
    model = im._inception("cpu", None, random_weights=True)
    images = [*_images(0, count=3), _images(1, count=1, size=48)[0], *_images(2, count=2)]
    batches = list(im._same_size_batches(images, "images", batch_size=2))
    assert [[image.shape[0] for image in batch] for batch in batches] == [[32, 32], [32], [48], [32, 32]]
    paths = []
    for index, image in enumerate(images):
        paths.append(tmp_path / f"{index}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    features = im._inception_features(model, images, "images", "cpu", 2, progress=False)
    from_files = im._inception_features(model, paths, "paths", "cpu", 4, progress=False)
    (mean, cov), (mean_files, cov_files) = ((f.mean(axis=0), np.cov(f, rowvar=False)) for f in (features, from_files))
    assert mean.shape == (2048,) and cov.shape == (2048, 2048) and np.abs(mean).max() > 0.01
    np.testing.assert_allclose(mean_files, mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(cov_files, cov, rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("net", im.LPIPS_NETS)
def test_lpips_is_zero_for_equal_images_and_positive_for_different_ones(net):
    a, b = _images(0, count=2)
    same = im.lpips_distance(a, a, net=net, **RANDOM)
    different = im.lpips_distance(a, b, net=net, **RANDOM)
    assert same.random_weights and different.random_weights
    assert "random weights" in str(different)
    assert same.value == 0.0
    assert different.value > 0.0


def test_lpips_reads_uint8_and_files_alike(tmp_path):
    a, b = _images(0, count=2)
    reference = im.lpips_distance(a, b, **RANDOM).value
    path_a, path_b = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(path_a), cv2.cvtColor(a, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(path_b), cv2.cvtColor(b, cv2.COLOR_RGB2BGR))
    assert im.lpips_distance(path_a, path_b, **RANDOM).value == pytest.approx(reference, rel=1e-6)
    swapped = im.lpips_distance(b, a, **RANDOM).value  # RGB order matters to LPIPS
    assert swapped == pytest.approx(reference, rel=1e-5)


@pytest.mark.parametrize("net", im.LPIPS_NETS)
def test_lpips_regions_separate_a_changed_foreground_from_an_unchanged_background(net):
    background = _images(2, count=1, size=64)[0]
    before, after = _with_square(background, 0), _with_square(background, 255)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:32, 16:32] = 3  # an instance id: nonzero is foreground
    region = {r: im.lpips_distance(before, after, net=net, mask=mask if r != "full" else None, region=r, **RANDOM).value
              for r in im.REGIONS}
    assert region["foreground"] > region["full"] > region["background"] >= 0.0
    # Not ~0: deep layers see across the whole 64 px image (alexnet's last ones are 1x1 there, and
    # measured 0.044 vs 0.107 in the foreground; vgg 0.012 vs 0.35), but well below the foreground.
    assert region["background"] < 0.5 * region["foreground"]
    # The full value is the pixel-weighted mix of the two regions (16x16 of 64x64 is foreground).
    assert region["full"] == pytest.approx((region["foreground"] + 15 * region["background"]) / 16, rel=1e-5)


def test_diversity_is_zero_for_identical_samples_and_positive_for_different_ones():
    identical = np.repeat(_images(0, count=1), 4, axis=0)
    different = _images(1, count=4)
    zero, positive = im.diversity_score(identical, **RANDOM), im.diversity_score(different, **RANDOM)
    assert zero.value == 0.0 and zero.random_weights
    assert positive.value > 0.0 and positive.random_weights
    # The mean over all pairs is the mean of the pairwise LPIPS distances.
    pairwise = [im.lpips_distance(different[i], different[j], **RANDOM).value for i in range(4) for j in range(i + 1, 4)]
    assert positive.value == pytest.approx(np.mean(pairwise), rel=1e-5)


def test_diversity_random_pairs_are_seeded_and_a_subset():
    samples = _images(3, count=5)
    first = im.diversity_score(samples, n_pairs=3, seed=7, **RANDOM).value
    assert im.diversity_score(samples, n_pairs=3, seed=7, **RANDOM).value == first
    every = im.diversity_score(samples, n_pairs=10, seed=7, **RANDOM).value
    assert every == pytest.approx(im.diversity_score(samples, **RANDOM).value, rel=1e-6)


def test_local_diversity_looks_only_inside_the_attention_boxes():
    background = _images(4, count=1, size=64)[0]
    box = (16, 16, 32, 32)
    samples = [_with_square(background, value, box) for value in (0, 90, 180, 255)]
    inside = im.diversity_score(samples, boxes=[box], **RANDOM).value
    elsewhere = im.diversity_score(samples, boxes=[(40, 40, 64, 64)], **RANDOM).value
    global_ds = im.diversity_score(samples, **RANDOM).value
    assert inside > global_ds > elsewhere >= 0.0
    # Overlapping boxes count each pixel once: the union equals the one box.
    halves = [(16, 16, 32, 24), (16, 20, 32, 32)]
    assert im.diversity_score(samples, boxes=halves, **RANDOM).value == pytest.approx(inside, rel=1e-6)
