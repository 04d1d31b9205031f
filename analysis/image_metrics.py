"""Image metrics on pretrained networks: FID, LPIPS (whole image or a masked region) and the
diversity score (BicycleGAN's, and SalG-GAN's local one on attention boxes).

Weights policy (DESIGN.md §4): these metrics mean nothing without their pretrained weights, so
every public function returns a `MetricValue` or, when weights (or the `pytorch-fid` / `lpips`
packages, the `models` extra) are missing, `Unavailable(reason)`, whose str is
"unavailable: <reason>" — never a number from a random network. Nothing here downloads: the
weights files are looked up in the torch hub cache ($TORCH_HOME/hub/checkpoints/) and the
reason says which file is missing and how to get it. The keyword `_random_weights_for_tests`
builds the same networks untrained so that tests reach the code paths offline; such results
carry `random_weights=True` and print as meaningless.

Images, one convention for every entry point here and in `analysis.fidelity`: HxWx3 RGB uint8
(0-255), as saved in an 8-bit image file, or the path of such a file (read with OpenCV, any
8-bit format it reads). A float array is refused with a ValueError that says how to convert it,
never read by guessing its range from the dtype (a [0, 1] image read as [-1, 1] gives LPIPS
values ~10x too small). Inside, each network gets the scale it was trained on: lpips [-1, 1],
pytorch-fid's Inception [0, 1]. torch is imported inside functions only, and each network is
built once per (network, device) and cached.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np
from tqdm import tqdm

logger = logging.getLogger(__name__)

LPIPS_NETS = ("alex", "vgg")
REGIONS = ("full", "foreground", "background")
# pytorch-fid's pool3 feature size, the standard for FID.
_FID_DIMS = 2048
# Pairs of images per LPIPS forward pass in `diversity_score`.
_PAIRS_PER_BATCH = 16
_INSTALL_HINT = "install the models extra: pip install 'gazelab[models]'"

_models: dict[tuple, object] = {}
_models_lock = threading.Lock()


@dataclass(frozen=True)
class MetricValue:
    """A computed metric; `random_weights` marks one from untrained networks (tests only), which
    every report must print with it, as str() does."""

    value: float
    random_weights: bool = False

    def __float__(self) -> float:
        return self.value

    def __str__(self) -> str:
        text = f"{self.value:.6g}"
        return f"{text} (random weights: meaningless, tests only)" if self.random_weights else text


@dataclass(frozen=True)
class Unavailable:
    """A metric that could not be computed honestly (missing weights or packages), and why."""

    reason: str

    def __str__(self) -> str:
        return f"unavailable: {self.reason}"


def fid(images_a, images_b, *, device="cpu", batch_size: int = 50, weights=None, progress: bool = False,
        _random_weights_for_tests: bool = False) -> MetricValue | Unavailable:
    """Fréchet Inception Distance between two sets of images (>= 0; 0 = same statistics).

    Variant: pytorch-fid (Seitzer) with its port of the TF FID Inception (the standard FID
    weights, pt_inception-2015-12-05-6726825d.pth): 2048-d pool3 features; every image is
    resized bilinearly to 299x299 (torch `interpolate`, align_corners=False, no antialiasing:
    pytorch-fid's `resize_input=True`) and scaled from [0, 1] to [-1, 1]; means and covariances
    (ddof=1) go into pytorch-fid's `calculate_frechet_distance`. FID is biased upwards for small
    sets: compare values only at equal set sizes; with 2048 images or fewer per set the
    covariances are singular and the value is also inaccurate (logged as a warning). SciPy's
    matrix square root of the 2048x2048 product takes ~10 s on two CPU cores (15-35 s when singular).

    images_a, images_b: sequences (or an (N, H, W, 3) uint8 array) of uint8 RGB images or image
    paths, >= 2 per set (the covariance needs them); sizes may differ. weights: the path of the FID Inception
    state_dict; None looks in $TORCH_HOME/hub/checkpoints/ (where pytorch-fid caches it).
    """
    count_a, count_b = _count(images_a, "images_a"), _count(images_b, "images_b")
    if count_a < 2 or count_b < 2:
        raise ValueError(f"FID needs at least 2 images per set for a covariance; got {count_a} and {count_b}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model = _inception(device, weights, _random_weights_for_tests)
    if isinstance(model, Unavailable):
        return model
    features = [_inception_features(model, images, name, device, batch_size, progress)
                for images, name in ((images_a, "images_a"), (images_b, "images_b"))]
    if min(count_a, count_b) <= _FID_DIMS:
        logger.warning("FID from %d and %d images: covariances of %d-d features from so few images are singular, "
                       "so the value is inaccurate and biased; use more than %d images per set",
                       count_a, count_b, _FID_DIMS, _FID_DIMS)
    return MetricValue(frechet_distance(*features), _random_weights_for_tests)


def frechet_distance(features_a, features_b) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of feature vectors ((N, D)
    arrays, N >= 2 each): |μ_a − μ_b|² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½), means and covariances with
    ddof = 1, the square root by pytorch-fid's `calculate_frechet_distance` (which regularises a
    singular product and drops a negligible imaginary part). FID is this on Inception pool3 features."""
    from pytorch_fid.fid_score import calculate_frechet_distance
    from scipy.linalg import LinAlgWarning

    a, b = (np.asarray(f, np.float64) for f in (features_a, features_b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"features have shapes {a.shape} and {b.shape}; expected (N, D) arrays of one D, N >= 2")
    stats = [(f.mean(axis=0), np.cov(f, rowvar=False)) for f in (a, b)]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()) as printed:
        # pytorch-fid 0.3.0 passes sqrtm's `disp`, deprecated in SciPy 1.16 (removed in 1.18).
        warnings.filterwarnings("ignore", message="The `disp` argument is deprecated", category=DeprecationWarning)
        # `fid` says it once, with the reason, instead of SciPy's generic warning.
        warnings.filterwarnings("ignore", message="Matrix is singular", category=LinAlgWarning)
        distance = calculate_frechet_distance(*stats[0], *stats[1])
    if printed.getvalue().strip():  # pytorch-fid prints when it regularises a singular product
        logger.warning("pytorch-fid: %s", printed.getvalue().strip())
    return float(distance)


def lpips_distance(image_a, image_b, *, net: str = "alex", mask=None, region: str = "full", device="cpu",
                   _random_weights_for_tests: bool = False) -> MetricValue | Unavailable:
    """LPIPS v0.1 distance between two images of the same size (>= 0; 0 = identical), over the
    whole image or only the foreground or background of a mask.

    Variant: the `lpips` package, `LPIPS(net=..., version="0.1", spatial=True)`: the linear
    layers calibrated on human judgements (inside the lpips wheel) on torchvision's ImageNet
    alexnet or vgg16 features (from the torch hub cache). The spatial map (each layer's
    distance upsampled bilinearly to the image size, summed) is averaged over the region; for
    "full" this equals lpips' usual spatially averaged value up to the upsampling's border
    effect (about 0.1% at 32 px, less at larger sizes). Deep layers see far beyond a pixel, so a
    change in the foreground also raises the background's distance a little.

    image_a, image_b: uint8 RGB (H, W, 3) or image paths. net: "alex" or "vgg". mask: HxW at the
    image size, bool or integer (nonzero = foreground, e.g. an instance-id mask); required for
    region "foreground" or "background".
    """
    _check_net(net)
    a, b = _load_rgb(image_a, "image_a"), _load_rgb(image_b, "image_b")
    if a.shape != b.shape:
        raise ValueError(f"image_a has shape {a.shape} but image_b {b.shape}; LPIPS compares images of one size")
    _check_lpips_size(a.shape, net)
    region_mask = _region_mask(mask, region, a.shape[:2])
    model = _lpips_model(net, device, _random_weights_for_tests)
    if isinstance(model, Unavailable):
        return model
    distance_map = _lpips_maps(model, [(a, b)], device)[0]
    value = distance_map.mean() if region_mask is None else distance_map[region_mask].mean()
    return MetricValue(float(value), _random_weights_for_tests)


def lpips_regions(image_a, image_b, mask=None, *, net: str = "alex", device="cpu",
                  _random_weights_for_tests: bool = False) -> dict[str, MetricValue] | Unavailable:
    """LPIPS over the full image and, with a mask, over its foreground and background, from one
    forward pass: {"full": …, "foreground": …, "background": …} (a region the mask leaves empty
    is absent). Same variant and arguments as `lpips_distance`."""
    _check_net(net)
    a, b = _load_rgb(image_a, "image_a"), _load_rgb(image_b, "image_b")
    if a.shape != b.shape:
        raise ValueError(f"image_a has shape {a.shape} but image_b {b.shape}; LPIPS compares images of one size")
    _check_lpips_size(a.shape, net)
    regions = {"full": None}
    if mask is not None:
        for region in ("foreground", "background"):
            try:
                regions[region] = _region_mask(mask, region, a.shape[:2])
            except ValueError as exc:
                if "is empty" not in str(exc):
                    raise
    model = _lpips_model(net, device, _random_weights_for_tests)
    if isinstance(model, Unavailable):
        return model
    distance_map = _lpips_maps(model, [(a, b)], device)[0]
    return {region: MetricValue(float(distance_map.mean() if pixels is None else distance_map[pixels].mean()),
                                _random_weights_for_tests)
            for region, pixels in regions.items()}


def diversity_score(samples, *, net: str = "alex", boxes=None, n_pairs: int | None = None, seed: int = 0,
                    device="cpu", _random_weights_for_tests: bool = False) -> MetricValue | Unavailable:
    """Diversity of several outputs for one input: mean LPIPS distance between pairs of them.

    Variant: BicycleGAN's diversity score (LPIPS between random samples of the same input; the
    paper averages 19 pairs per input over 100 inputs — average this function's values over
    inputs). All k(k-1)/2 pairs by default; with `n_pairs`, that many distinct pairs drawn
    uniformly without replacement with numpy's default_rng(seed). With `boxes`, SalG-GAN's local
    DS: each pair's LPIPS map is averaged inside the union of the boxes only.

    samples: >= 2 uint8 RGB images (or paths) of one size. boxes: (x0, y0, x1, y1) in image pixels (x right, y down);
    a pixel (row, col) is inside when its centre (col + 0.5, row + 0.5) is. net: as in
    `lpips_distance`.
    """
    _check_net(net)
    images = [_load_rgb(sample, f"samples[{i}]") for i, sample in enumerate(samples)]
    shapes = {image.shape for image in images}
    if len(images) < 2 or len(shapes) > 1:
        raise ValueError(f"diversity needs at least 2 samples of one size, got {len(images)} of shapes {sorted(shapes)}")
    _check_lpips_size(images[0].shape, net)
    pairs = _pairs(len(images), n_pairs, seed)
    box_mask = None if boxes is None else _box_mask(boxes, images[0].shape[:2])
    model = _lpips_model(net, device, _random_weights_for_tests)
    if isinstance(model, Unavailable):
        return model
    distances = []
    for start in range(0, len(pairs), _PAIRS_PER_BATCH):
        batch = [(images[i], images[j]) for i, j in pairs[start:start + _PAIRS_PER_BATCH]]
        for distance_map in _lpips_maps(model, batch, device):
            distances.append(distance_map.mean() if box_mask is None else distance_map[box_mask].mean())
    return MetricValue(float(np.mean(distances)), _random_weights_for_tests)


def fid_weights_file() -> Path:
    """Where pytorch-fid caches the FID Inception weights: $TORCH_HOME/hub/checkpoints/<file>."""
    from pytorch_fid.inception import FID_WEIGHTS_URL

    return _hub_checkpoints() / os.path.basename(urlparse(FID_WEIGHTS_URL).path)


def lpips_backbone_file(net: str) -> Path:
    """The torchvision ImageNet checkpoint that lpips' `net` trunk loads from the torch hub cache."""
    return _hub_checkpoints() / os.path.basename(urlparse(_backbone_url(net)).path)


# ---------------------------------------------------------------- helpers: networks


def _inception(device, weights, random_weights: bool):
    """The FID InceptionV3 (pool3, eval mode) on `device`, built once; or Unavailable."""
    try:
        import torch
        from pytorch_fid import inception as fid_inception
    except ImportError as exc:
        return Unavailable(f"FID needs torch and pytorch-fid ({exc}); {_INSTALL_HINT}")
    url = fid_inception.FID_WEIGHTS_URL
    path = None if random_weights else Path(weights) if weights is not None else fid_weights_file()
    if path is not None and not path.is_file():
        return Unavailable(f"FID Inception weights not found at {path}; download {url} into "
                           f"{_hub_checkpoints()} ($TORCH_HOME/hub/checkpoints) or pass weights=PATH")
    device = torch.device(device)
    key = ("inception", str(device), "random" if path is None else str(path.resolve()))
    with _models_lock:
        if key not in _models:
            try:
                state = None if path is None else torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # torch.load raises several types for a damaged file
                return Unavailable(f"FID Inception weights {path} could not be read ({exc}); "
                                   f"delete the file and download {url} again")
            model = _build_inception(fid_inception, state)
            if isinstance(model, Unavailable):
                return model
            _models[key] = model.to(device).eval()
            logger.info("FID Inception on %s: %s", device, path or "random weights (tests only)")
        return _models[key]


def _build_inception(fid_inception, state):
    """pytorch-fid's InceptionV3 with `state` loaded, or untrained when `state` is None.

    Its builder fetches the weights by URL (downloading when they are not cached); it gets the
    checked file's state_dict instead, or for the test-only network its own fresh one.
    """
    from unittest import mock

    import torch

    built = []
    make_trunk = fid_inception._inception_v3

    def record_trunk(*args, **kwargs):
        built.append(make_trunk(*args, **kwargs))
        return built[-1]

    def load(url, *args, **kwargs):
        own = built[-1].state_dict()
        if state is None:
            return own
        if not isinstance(state, dict):
            raise ValueError(f"the file holds a {type(state).__name__}, not a state_dict")
        # The 2018 file predates BatchNorm's num_batches_tracked, which load_state_dict fills in.
        missing = sorted(k for k in set(own) - set(state) if not k.endswith(".num_batches_tracked"))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"{len(missing)} keys missing (e.g. {missing[:2]}), "
                             f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})")
        return state

    try:
        with _seeded_torch(), mock.patch.object(fid_inception, "_inception_v3", record_trunk), \
                mock.patch.object(fid_inception, "load_state_dict_from_url", load):
            model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[_FID_DIMS]],
                                              resize_input=True, normalize_input=True)
            if state is None:
                # pytorch-fid skips torchvision's init; PyTorch's default one shrinks activations about
                # 50 layers deep to ~1e-8 (FIDs ~1e-15). He init keeps the features O(0.1).
                for module in model.modules():
                    if isinstance(module, torch.nn.Conv2d):
                        torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            return model
    except (ValueError, RuntimeError) as exc:  # RuntimeError: load_state_dict's mis-shaped tensors
        detail = str(exc) if len(str(exc)) < 300 else str(exc)[:300] + " …"
        return Unavailable(f"the FID Inception weights do not fit pytorch-fid's network ({detail}); "
                           f"expected the state_dict of {fid_inception.FID_WEIGHTS_URL}")


@contextlib.contextmanager
def _seeded_torch():
    """torch's CPU generator seeded with 0 inside, restored after: the test-only random networks
    are the same in every run, and the caller's random stream is left alone."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def _inception_features(model, images, name: str, device, batch_size: int, progress: bool) -> np.ndarray:
    """(N, 2048) float64 pool3 features of `images` (uint8 RGB, fed to the network in [0, 1])."""
    import torch

    features = []
    batches = _same_size_batches(images, name, batch_size)
    for batch in tqdm(batches, desc=f"FID features ({name})", unit="batch", disable=not progress):
        tensor = torch.from_numpy(np.stack([_to_unit(image) for image in batch])).permute(0, 3, 1, 2)
        with torch.inference_mode():
            pooled = model(tensor.to(device))[0]
        features.append(pooled.squeeze(3).squeeze(2).cpu().numpy().astype(np.float64))
    return np.concatenate(features)


def _lpips_model(net: str, device, random_weights: bool):
    """lpips v0.1 (spatial) for `net` on `device`, built once; or Unavailable."""
    try:
        import lpips
        import torch
    except ImportError as exc:
        return Unavailable(f"LPIPS needs torch and lpips ({exc}); {_INSTALL_HINT}")
    linear = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    if not linear.is_file():
        return Unavailable(f"the lpips package lacks its v0.1 linear layers {linear}; reinstall lpips")
    backbone, url = lpips_backbone_file(net), _backbone_url(net)
    if not random_weights and not backbone.is_file():
        return Unavailable(
            f"LPIPS ({net}) needs torchvision's ImageNet weights {backbone.name}, which are not in {backbone.parent} "
            f"(the torch hub cache, $TORCH_HOME/hub/checkpoints); get them with `mkdir -p {backbone.parent} && "
            f"curl -L -o {backbone} {url}` or point TORCH_HOME at a cache that has them")
    device = torch.device(device)
    key = ("lpips", net, str(device), "random" if random_weights else str(backbone.resolve()))
    with _models_lock:
        if key not in _models:
            try:
                with _seeded_torch(), warnings.catch_warnings():
                    # lpips builds its trunk with torchvision's deprecated `pretrained=` argument.
                    for message in ("The parameter 'pretrained' is deprecated",
                                    "Arguments other than a weight enum or `None` for 'weights' are deprecated"):
                        warnings.filterwarnings("ignore", message=message, category=UserWarning)
                    model = lpips.LPIPS(net=net, version="0.1", spatial=True, pnet_rand=random_weights, verbose=False)
            except Exception as exc:  # a damaged cached checkpoint; torch.load raises several types
                if random_weights:
                    raise
                return Unavailable(f"LPIPS ({net}) could not load {backbone} ({exc}); delete it and download {url} again")
            _models[key] = model.to(device).eval()
            logger.info("LPIPS %s on %s: %s", net, device, "random trunk (tests only)" if random_weights else backbone)
        return _models[key]


def _lpips_maps(model, pairs, device) -> list[np.ndarray]:
    """LPIPS spatial maps (H, W), one per (image, image) pair of one size."""
    import torch

    def batch(side: int):
        return torch.from_numpy(np.stack([_to_signed(pair[side]) for pair in pairs])).permute(0, 3, 1, 2).to(device)

    with torch.inference_mode():
        maps = model(batch(0), batch(1))
    return list(maps[:, 0].double().cpu().numpy())


def _hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _backbone_url(net: str) -> str:
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    _check_net(net)
    return (AlexNet_Weights if net == "alex" else VGG16_Weights).IMAGENET1K_V1.url


# ---------------------------------------------------------------- helpers: images, masks, pairs


# The smallest side each LPIPS trunk can take (alexnet's strided convolutions and pools).
_LPIPS_MIN_SIDE = {"alex": 31, "vgg": 16}


def _check_lpips_size(shape, net: str) -> None:
    if min(shape[:2]) < _LPIPS_MIN_SIDE[net]:
        raise ValueError(f"LPIPS ({net}) needs images of at least {_LPIPS_MIN_SIDE[net]} px on each side, got "
                         f"{shape[1]}×{shape[0]} (W×H)")


def _check_net(net: str) -> None:
    if net not in LPIPS_NETS:
        raise ValueError(f"unknown LPIPS net {net!r}; expected one of {LPIPS_NETS}")


def _count(images, name: str) -> int:
    """len(images), or ValueError for one image or path where a set was expected."""
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise ValueError(f"{name} has shape {images.shape}; expected a sequence or an (N, height, width, 3) array")
    if isinstance(images, (str, os.PathLike)) or not hasattr(images, "__len__"):
        raise ValueError(f"{name} is a {type(images).__name__}; expected a sequence of images (arrays or paths)")
    return len(images)


def _load_rgb(image, name: str) -> np.ndarray:
    """An HxWx3 uint8 RGB image, read from a file if given a path; ValueError for anything else."""
    if isinstance(image, (str, os.PathLike)):
        pixels = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if pixels is None:
            raise ValueError(f"{name}: cannot read an image from {str(image)!r}")
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} has shape {array.shape}; expected an RGB image (height, width, 3)")
    return require_uint8(array, name)


def require_uint8(array: np.ndarray, name: str) -> np.ndarray:
    """`array` itself when its dtype is uint8; otherwise ValueError naming it, its dtype and range,
    and how to convert. gazelab's image metrics take 8-bit RGB (0-255) only (module docstring)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind == "f" and array.size:
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        hint = ("; for an image in [0, 1] use np.round(image * 255).astype(np.uint8), for one in [-1, 1] "
                "np.round((image + 1) * 127.5).astype(np.uint8)")
        raise ValueError(f"{name} is {array.dtype} with values in [{low:.4g}, {high:.4g}]; expected uint8 RGB "
                         f"(0-255), as saved in an 8-bit image file{hint}")
    raise ValueError(f"{name} has dtype {array.dtype}; expected uint8 RGB (0-255), as saved in an 8-bit image file")


def _to_signed(image: np.ndarray) -> np.ndarray:
    """uint8 → float32 in [-1, 1] (what lpips expects: its `im2tensor`'s 0-255 / 127.5 - 1)."""
    return image.astype(np.float32) / 127.5 - 1.0


def _to_unit(image: np.ndarray) -> np.ndarray:
    """uint8 → float32 in [0, 1] (what pytorch-fid's Inception expects; it scales to [-1, 1] itself)."""
    return image.astype(np.float32) / 255.0


def _same_size_batches(images, name: str, batch_size: int):
    """Yields lists of up to `batch_size` consecutive images of one size, read as needed."""
    batch = []
    for index, image in enumerate(images):
        image = _load_rgb(image, f"{name}[{index}]")
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield batch
            batch = []
        batch.append(image)
    if batch:
        yield batch


def _region_mask(mask, region: str, shape: tuple[int, int]) -> np.ndarray | None:
    """The boolean pixels of `region` (None for the full image), or ValueError."""
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; expected one of {REGIONS}")
    if (region == "full") != (mask is None):
        raise ValueError(f"region {region!r} with mask={'None' if mask is None else 'an array'}: "
                         "a mask goes with region 'foreground' or 'background' only, and they need one")
    if mask is None:
        return None
    array = np.asarray(mask)
    if array.dtype.kind not in "bui":
        raise ValueError(f"mask has dtype {array.dtype}; expected bool or integer (nonzero = foreground)")
    if array.shape != shape:
        raise ValueError(f"mask has shape {array.shape}; expected the image's {shape}")
    foreground = array != 0
    selected = foreground if region == "foreground" else ~foreground
    if not selected.any():
        raise ValueError(f"region {region!r} of the mask is empty (foreground covers "
                         f"{int(foreground.sum())} of {foreground.size} pixels)")
    return selected


def _box_mask(boxes, shape: tuple[int, int]) -> np.ndarray:
    """Union of (x0, y0, x1, y1) pixel boxes as a boolean HxW mask (pixel centres inside)."""
    height, width = shape
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4 or len(array) == 0:
        raise ValueError(f"boxes has shape {array.shape}; expected a non-empty list of (x0, y0, x1, y1)")
    bad = [tuple(box) for box in array.tolist() if not (box[2] > box[0] and box[3] > box[1])]
    if bad:
        raise ValueError(f"boxes {bad} are empty; expected x1 > x0 and y1 > y0")
    cols, rows = np.arange(width) + 0.5, np.arange(height) + 0.5
    mask = np.zeros(shape, bool)
    for x0, y0, x1, y1 in array:
        mask |= ((rows >= y0) & (rows <= y1))[:, None] & ((cols >= x0) & (cols <= x1))[None, :]
    if not mask.any():
        raise ValueError(f"boxes {array.tolist()} contain no pixel centre of the {width}x{height} image")
    return mask


def _pairs(count: int, n_pairs: int | None, seed: int) -> list[tuple[int, int]]:
    pairs = list(itertools.combinations(range(count), 2))
    if n_pairs is None:
        return pairs
    if not 1 <= n_pairs <= len(pairs):
        raise ValueError(f"n_pairs must be in 1..{len(pairs)} for {count} samples, got {n_pairs}")
    picks = np.random.default_rng(seed).choice(len(pairs), n_pairs, replace=False)
    return [pairs[k] for k in sorted(picks)]
