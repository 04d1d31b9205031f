"""VGG16/VGG19 feature extractors with named layers, under the weights policy of DESIGN.md §4.

`VGGFeatures` wraps torchvision's VGG `features` stack (the classifier is never built) and
returns the activations of the requested layers by name: `conv{b}_{i}`, `relu{b}_{i}`,
`pool{b}` — vgg16 has blocks of 2, 2, 3, 3, 3 convolutions, vgg19 of 2, 2, 4, 4, 4.

Weights are explicit: `"imagenet"` loads torchvision's IMAGENET1K_V1 checkpoint from the torch
hub cache (`$TORCH_HOME/hub/checkpoints/`), downloading it only when the cache lacks it, and
raises `WeightsUnavailable` (what is missing, where, how to get it) rather than falling back
to a random backbone; `"random"` is an untrained backbone, on request only (torchvision's init
drawn from a fixed seed, so the same every time); anything else is a path to a local state_dict.
`weights_info` records which, for checkpoints and reports: a checkpoint leaves a frozen backbone
out and rebuilds it from there with `reload_weights` (models/checkpoint.py).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import VGG16_Weights, VGG19_Weights
from torchvision.models.vgg import cfgs, make_layers

logger = logging.getLogger(__name__)

ARCHS = {"vgg16": ("D", VGG16_Weights.IMAGENET1K_V1), "vgg19": ("E", VGG19_Weights.IMAGENET1K_V1)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Seconds to wait for download.pytorch.org (DNS + TCP) and for each stalled read while downloading.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
RANDOM_WEIGHTS_SEED = 0  # "random" weights: reproducible, so a checkpoint need not store them


class WeightsUnavailable(RuntimeError):
    """Pretrained backbone weights are neither in the cache nor downloadable; says how to get them."""


def vgg_layer_names(arch: str) -> list[str]:
    """Names of the layers of `arch`'s feature stack in order, e.g. conv1_1, relu1_1, …, pool5."""
    return list(_layer_indices(arch))


class VGGFeatures(nn.Module):
    """Named activations of a VGG feature stack, truncated after the deepest requested layer.

    Args:
        arch: "vgg16" or "vgg19".
        layers: names from `vgg_layer_names(arch)`; `forward` returns them in this order.
        weights: "imagenet" (torchvision's IMAGENET1K_V1, cached under $TORCH_HOME/hub/checkpoints),
            "random" (untrained, torchvision's init; only on explicit request), or the path of a
            state_dict file (a torchvision VGG's, its `features` only, or a `VGGFeatures`').
        requires_grad: train the VGG parameters too; by default they are frozen (gradients still
            reach the input image).
        normalize_input: map the input range to [0, 1] and standardise with the ImageNet mean/std
            inside the module; False when inputs are already standardised.
        input_range: (low, high) of input images; (0, 1) by default, (-1, 1) for tanh generators.
        allow_download: fetch missing "imagenet" weights from download.pytorch.org; False never
            touches the network.

    Input (B, 3, H, W) float images; output {name: (B, C, H / 2**k, W / 2**k)} with k the number
    of pools before the layer. `weights_info` = {"arch", "source": "imagenet"|"random"|path, "file"}.
    """

    def __init__(
        self,
        arch: str = "vgg19",
        layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        weights: str | os.PathLike = "imagenet",
        requires_grad: bool = False,
        normalize_input: bool = True,
        input_range: tuple[float, float] = (0.0, 1.0),
        allow_download: bool = True,
    ):
        super().__init__()
        indices = _layer_indices(arch)
        if isinstance(layers, str) or not layers:
            raise ValueError(f"layers must be a non-empty sequence of layer names, got {layers!r}")
        unknown = [name for name in layers if name not in indices]
        if unknown:
            raise ValueError(f"unknown {arch} layer(s) {unknown}; valid names: {', '.join(indices)}")
        low, high = float(input_range[0]), float(input_range[1])
        if not high > low:
            raise ValueError(f"input_range must be (low, high) with high > low, got {input_range!r}")

        self.arch = arch
        self.layers = tuple(layers)
        self.normalize_input = normalize_input
        self.input_range = (low, high)
        self._index_of = {name: indices[name] for name in self.layers}
        depth = max(self._index_of.values()) + 1
        full = make_layers(cfgs[ARCHS[arch][0]], batch_norm=False)
        for module in full:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # conv outputs are returned too; an in-place ReLU would overwrite them
        self.features = nn.Sequential(*list(full)[:depth])
        self.weights_info = self._load_weights(weights, allow_download)
        for parameter in self.features.parameters():
            parameter.requires_grad_(requires_grad)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) images in `input_range` → {layer name: activation}."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"VGGFeatures expects (B, 3, H, W) images, got shape {tuple(images.shape)}")
        x = images
        if self.normalize_input:
            low, high = self.input_range
            x = (x - low) / (high - low)
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        wanted = {index: name for name, index in self._index_of.items()}
        found: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                found[wanted[index]] = x
        return {name: found[name] for name in self.layers}

    def extra_repr(self) -> str:
        return f"arch={self.arch}, layers={self.layers}, weights={self.weights_info['source']}"

    def reload_weights(self, weights: str | os.PathLike, allow_download: bool = True) -> None:
        """Load `weights` ("imagenet", "random" or a state_dict path, as in __init__) into the feature
        stack in place (device and requires_grad kept) and record them in `weights_info`."""
        self.weights_info = self._load_weights(weights, allow_download)

    def _load_weights(self, weights: str | os.PathLike, allow_download: bool) -> dict:
        if isinstance(weights, str) and weights == "random":
            with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left as it was
                torch.manual_seed(RANDOM_WEIGHTS_SEED)
                _init_like_torchvision(self.features)
            logger.info("%s backbone: random weights (explicitly requested)", self.arch)
            return {"arch": self.arch, "source": "random", "file": None}
        if isinstance(weights, str) and weights == "imagenet":
            state, file = _imagenet_state_dict(self.arch, allow_download)
            self._load_features(state, file)
            return {"arch": self.arch, "source": "imagenet", "file": file}
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"backbone weights {str(weights)!r}: no such file; expected 'imagenet', 'random' or the path of "
                f"a {self.arch} state_dict file"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"backbone weights {str(path)!r} are not a readable torch state_dict: {exc}") from exc
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"backbone weights {str(path)!r} hold a {type(state).__name__}, expected a state_dict")
        self._load_features(state, str(path))
        return {"arch": self.arch, "source": str(path), "file": str(path)}

    def _load_features(self, state: dict, origin: str) -> None:
        """Load the `features` part of a VGG state_dict, checking keys and shapes against `arch`."""
        full_keys = {f"{i}.{p}" for i in _conv_module_indices(self.arch) for p in ("weight", "bias")}
        features: dict[str, torch.Tensor] = {}
        unexpected = []
        for key, value in state.items():
            if key.startswith("classifier."):
                continue  # a whole torchvision VGG; only its feature stack is used
            short = key.removeprefix("features.")
            if short in full_keys:
                features[short] = value
            else:
                unexpected.append(key)
        own = self.features.state_dict()
        missing = [f"features.{key}" for key in sorted(set(own) - set(features), key=_key_order)]
        if unexpected or missing:
            raise ValueError(
                f"backbone weights {origin!r} do not match {self.arch}'s feature stack: "
                f"missing keys {missing[:6]}{' …' if len(missing) > 6 else ''}, "
                f"unexpected keys {unexpected[:6]}{' …' if len(unexpected) > 6 else ''} "
                f"(expected a torchvision {self.arch} state_dict, keys like 'features.0.weight')"
            )
        bad = [
            f"{key}: {tuple(features[key].shape)} vs expected {tuple(own[key].shape)}"
            for key in own
            if tuple(features[key].shape) != tuple(own[key].shape)
        ]
        if bad:
            raise ValueError(f"backbone weights {origin!r} have wrong shapes for {self.arch}: {'; '.join(bad[:4])}")
        self.features.load_state_dict({key: features[key] for key in own})


def imagenet_weights_file(arch: str) -> Path:
    """Where torch hub caches `arch`'s ImageNet checkpoint: $TORCH_HOME/hub/checkpoints/<file>."""
    _check_arch(arch)
    url = ARCHS[arch][1].url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _imagenet_state_dict(arch: str, allow_download: bool) -> tuple[dict, str]:
    weights_enum = ARCHS[arch][1]
    url = weights_enum.url
    cached = imagenet_weights_file(arch)
    if not cached.is_file():
        if not allow_download:
            reason = "downloads are disabled (allow_download=False)"
            raise WeightsUnavailable(_missing_message(arch, cached, url, reason))
        reason = _unreachable_reason(urlparse(url).hostname)
        if reason:
            raise WeightsUnavailable(_missing_message(arch, cached, url, reason))
        logger.info("downloading %s ImageNet weights from %s to %s", arch, url, cached)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(READ_TIMEOUT_S)  # torch.hub's urlopen has no timeout of its own; a stalled read would hang
    try:
        state = weights_enum.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:
        if cached.is_file():
            raise WeightsUnavailable(
                f"the cached {arch} ImageNet weights {cached} could not be read ({exc}); delete the file and "
                f"fetch it again: curl -L -o {cached} {url}"
            ) from exc
        raise WeightsUnavailable(_missing_message(arch, cached, url, f"the download failed: {exc}")) from exc
    finally:
        socket.setdefaulttimeout(previous)
    return state, cached.name


def _missing_message(arch: str, cached: Path, url: str, reason: str) -> str:
    return (
        f"ImageNet weights for {arch} are missing: {cached.name} is not in {cached.parent} (the torch hub cache, "
        f"$TORCH_HOME/hub/checkpoints) and {reason}. Get it on a machine with network access with "
        f"`mkdir -p {cached.parent} && curl -L -o {cached} {url}` (or point TORCH_HOME at a cache that has it), "
        f"or pass a local {arch} state_dict with `--weights PATH`; for a deliberately untrained backbone "
        f"pass `--weights random`."
    )


def _unreachable_reason(host: str | None) -> str | None:
    """None if `host`:443 accepts a TCP connection within CONNECT_TIMEOUT_S, else why not.

    Runs in a daemon thread because a DNS lookup on an offline machine ignores socket timeouts.
    """
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=CONNECT_TIMEOUT_S):
                outcome.append(None)
        except Exception as exc:  # noqa: BLE001 — a probe that outlives its caller must never raise
            outcome.append(f"{host} could not be reached ({exc})")

    thread = threading.Thread(target=probe, daemon=True, name="gazelab-weights-probe")
    thread.start()
    thread.join(CONNECT_TIMEOUT_S + 1.0)
    if not outcome:
        return f"{host} did not answer within {CONNECT_TIMEOUT_S:.0f} s (offline?)"
    return outcome[0]


def _init_like_torchvision(features: nn.Sequential) -> None:
    for module in features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(module.bias, 0)


def _layer_indices(arch: str) -> dict[str, int]:
    """{layer name: index in torchvision's `features` Sequential} for `arch`."""
    _check_arch(arch)
    names: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for entry in cfgs[ARCHS[arch][0]]:
        if entry == "M":
            names[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return names


def _conv_module_indices(arch: str) -> list[int]:
    return [index for name, index in _layer_indices(arch).items() if name.startswith("conv")]


def _key_order(key: str) -> tuple[int, str]:
    head, _, tail = key.partition(".")
    return (int(head) if head.isdigit() else -1, tail)


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown VGG arch {arch!r}; expected one of {sorted(ARCHS)}")
