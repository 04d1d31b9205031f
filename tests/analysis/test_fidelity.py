"""analysis.fidelity: uint8 RGB only, values against scikit-image and plain numpy on [0, 1] images."""
import cv2
import numpy as np
import pytest
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from analysis import fidelity


def _scene(rng, height, width):
    """A CLEVR-like uint8 RGB image: grey floor with a vertical gradient, shaded discs and boxes."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = np.linspace(90, 140, height, dtype=np.uint8)[:, None, None]
    for _ in range(4):
        colour = tuple(int(c) for c in rng.integers(20, 240, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        size = int(rng.integers(3, max(4, min(height, width) // 4)))
        if rng.random() < 0.5:
            cv2.circle(image, centre, size, colour, -1, lineType=cv2.LINE_AA)
        else:
            cv2.rectangle(image, centre, (centre[0] + size, centre[1] + size), colour, -1)
    return cv2.GaussianBlur(image, (3, 3), 0.8)


def _edited(rng, image):
    """The image recoloured in one corner, blurred and with sensor noise, as an editor might return it."""
    edited = image.astype(np.float64)
    edited[: image.shape[0] // 3, : image.shape[1] // 3] *= (1.3, 0.7, 1.0)
    edited = cv2.GaussianBlur(edited, (5, 5), 1.0) + rng.normal(0, 4, image.shape)
    return np.clip(np.round(edited), 0, 255).astype(np.uint8)


def _pairs():
    """(name, image, reference) uint8 pairs: random noise, CLEVR-like scenes, scikit-image's photos."""
    rng = np.random.default_rng(0)
    pairs = []
    for height, width in [(11, 11), (11, 40), (37, 11), (64, 48), (240, 320), (97, 203)]:
        noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        pairs.append((f"noise {width}x{height}", noise, rng.integers(0, 256, (height, width, 3), dtype=np.uint8)))
        scene = _scene(rng, height, width)
        pairs.append((f"scene {width}x{height}", _edited(rng, scene), scene))
    for photo in (skdata.astronaut(), skdata.chelsea(), skdata.coffee()):
        pairs.append((f"photo {photo.shape[1]}x{photo.shape[0]}", _edited(rng, photo), photo))
    return pairs


PAIRS = _pairs()


@pytest.mark.parametrize("name, image, reference", PAIRS, ids=[p[0] for p in PAIRS])
def test_ssim_matches_scikit_image_with_wang_et_al_settings(name, image, reference):
    expected = structural_similarity(reference, image, channel_axis=2, data_range=255, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
    # The same images in [0, 1] with data range 1: SSIM does not depend on the intensity unit.
    in_unit_range = structural_similarity(reference / 255.0, image / 255.0, channel_axis=2, data_range=1.0,
                                          gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    got = fidelity.ssim(image, reference)
    assert got == pytest.approx(expected, abs=1e-9)
    assert got == pytest.approx(in_unit_range, abs=1e-9)
    assert fidelity.ssim(reference, image) == pytest.approx(got, abs=1e-12)


@pytest.mark.parametrize("name, image, reference", PAIRS[:12], ids=[p[0] for p in PAIRS[:12]])
def test_ssim_map_is_scikit_images_full_map_and_ssim_its_cropped_mean(name, image, reference):
    _, full = structural_similarity(reference, image, channel_axis=2, data_range=255, gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False, full=True)
    got = fidelity.ssim_map(image, reference)
    assert got.shape == image.shape[:2] and got.dtype == np.float64
    # every pixel, the border ones (windows reflected at the edge) included
    np.testing.assert_allclose(got, full.mean(axis=2), rtol=0, atol=1e-9)
    assert fidelity.ssim(image, reference) == pytest.approx(got[5:-5, 5:-5].mean(), abs=1e-12)


def test_ssim_map_is_one_where_windows_see_no_change():
    scene = _scene(np.random.default_rng(5), 40, 60)
    edited = scene.copy()
    edited[10:20, 30:45] = (250, 20, 20)
    similarity = fidelity.ssim_map(edited, scene)
    far = np.ones(similarity.shape, bool)
    far[10 - 5:20 + 5, 30 - 5:45 + 5] = False  # the Gaussian window reaches 5 px
    assert np.allclose(similarity[far], 1.0, atol=1e-12) and similarity[10:20, 30:45].max() < 0.9


@pytest.mark.parametrize("name, image, reference", PAIRS, ids=[p[0] for p in PAIRS])
def test_l1_mse_psnr_match_numpy_and_scikit_image_on_unit_range_images(name, image, reference):
    a, b = image / 255.0, reference / 255.0
    assert fidelity.l1(image, reference) == pytest.approx(np.abs(a - b).mean(), rel=1e-12)
    assert fidelity.mse(image, reference) == pytest.approx(np.square(a - b).mean(), rel=1e-12)
    assert fidelity.psnr(image, reference) == pytest.approx(peak_signal_noise_ratio(reference, image, data_range=255),
                                                            rel=1e-12)
    assert fidelity.psnr(image, reference) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0), rel=1e-12)


def test_hand_worked_values_and_identical_images():
    # One of 12 values differs by 51 (= 0.2 of the range): L1 0.2 / 12, MSE 0.04 / 12,
    # PSNR 10 log10(1 / (0.04 / 12)) = 10 log10(300) = 24.771 dB.
    a = np.full((2, 2, 3), 100, np.uint8)
    b = a.copy()
    b[1, 0, 2] = 151
    assert fidelity.l1(a, b) == pytest.approx(0.2 / 12)
    assert fidelity.mse(a, b) == pytest.approx(0.04 / 12)
    assert fidelity.psnr(a, b) == pytest.approx(10 * np.log10(300))
    scene = _scene(np.random.default_rng(3), 30, 40)
    assert fidelity.l1(scene, scene) == 0.0 and fidelity.mse(scene, scene) == 0.0
    assert fidelity.psnr(scene, scene) == float("inf")
    assert fidelity.ssim(scene, scene) == pytest.approx(1.0, abs=1e-12)
    # The largest possible difference: black against white.
    black, white = np.zeros((12, 12, 3), np.uint8), np.full((12, 12, 3), 255, np.uint8)
    assert fidelity.l1(black, white) == 1.0 and fidelity.mse(black, white) == 1.0
    assert fidelity.psnr(black, white) == 0.0


@pytest.mark.parametrize("metric", [fidelity.l1, fidelity.mse, fidelity.psnr, fidelity.ssim, fidelity.ssim_map])
def test_float_images_are_refused_with_the_conversion_to_use(metric):
    scene = _scene(np.random.default_rng(1), 16, 16)
    unit = scene / 255.0
    with pytest.raises(ValueError, match=r"image is float64 with values in \[0\.\d+, 0\.\d+\]; expected uint8 RGB "
                                         r".*np\.round\(image \* 255\)\.astype\(np\.uint8\)"):
        metric(unit, scene)
    with pytest.raises(ValueError, match=r"reference is float32 with values in .*expected uint8 RGB"):
        metric(scene, unit.astype(np.float32))
    with pytest.raises(ValueError, match=r"image has dtype uint16; expected uint8 RGB"):
        metric(scene.astype(np.uint16), scene)


@pytest.mark.parametrize("call, message", [
    (lambda s: fidelity.l1(s[..., 0], s[..., 0]),
     r"image must be an RGB image of shape \(H, W, 3\), got shape \(16, 16\)"),
    (lambda s: fidelity.mse(s, s[..., :2]), r"reference must be an RGB image .* got shape \(16, 16, 2\)"),
    (lambda s: fidelity.psnr(s, s[:8]), r"image has shape \(16, 16, 3\) but reference \(8, 16, 3\)"),
    (lambda s: fidelity.ssim(s[:10], s[:10]), r"SSIM needs images of at least 11×11 pixels .* got 16×10 \(W×H\)"),
    (lambda s: fidelity.ssim_map(s[:, :10], s[:, :10]), r"SSIM needs images of at least 11×11 pixels .* got 10×16"),
])
def test_bad_shapes_raise_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call(_scene(np.random.default_rng(2), 16, 16))


def test_as_rgb_uint8_returns_the_array_itself():
    scene = _scene(np.random.default_rng(4), 12, 12)
    assert fidelity.as_rgb_uint8(scene) is scene
    with pytest.raises(ValueError, match=r"^x is float64 with values in \[0, 1\]"):
        fidelity.as_rgb_uint8(np.eye(3)[:, :, None].repeat(3, axis=2), "x")
