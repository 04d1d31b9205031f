import socket
import time

import pytest

torch = pytest.importorskip("torch")

from models import backbones  # noqa: E402
from models.backbones import VGGFeatures, WeightsUnavailable, imagenet_weights_file, vgg_layer_names  # noqa: E402


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """TORCH_HOME pointed at an empty directory: no cached weights anywhere."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


@pytest.fixture
def offline(monkeypatch):
    """No network: every TCP connection attempt fails at once."""

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_layer_names_per_arch():
    vgg16, vgg19 = vgg_layer_names("vgg16"), vgg_layer_names("vgg19")
    assert len(vgg16) == 13 * 2 + 5 and len(vgg19) == 16 * 2 + 5
    assert vgg16[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert "conv5_3" in vgg16 and "conv5_4" not in vgg16 and "relu3_4" not in vgg16
    assert {"conv3_4", "relu4_4", "conv5_4", "relu5_4"} <= set(vgg19)
    assert vgg16[-1] == vgg19[-1] == "pool5"
    with pytest.raises(ValueError, match="vgg11"):
        vgg_layer_names("vgg11")


@pytest.mark.parametrize(
    "arch, layer, channels, scale",
    [
        ("vgg16", "relu1_1", 64, 1),
        ("vgg16", "pool1", 64, 2),
        ("vgg16", "conv3_3", 256, 4),
        ("vgg16", "relu5_3", 512, 16),
        ("vgg16", "pool5", 512, 32),
        ("vgg19", "relu2_1", 128, 2),
        ("vgg19", "conv4_4", 512, 8),
        ("vgg19", "relu5_4", 512, 16),
    ],
)
def test_output_shapes(arch, layer, channels, scale):
    net = VGGFeatures(arch, layers=(layer,), weights="random")
    out = net(torch.rand(2, 3, 32, 64))
    assert list(out) == [layer]
    assert out[layer].shape == (2, channels, 32 // scale, 64 // scale)


def test_returns_requested_layers_in_order_and_truncates_after_deepest():
    layers = ("relu3_1", "conv1_1", "relu1_1")
    net = VGGFeatures("vgg19", layers=layers, weights="random")
    names = vgg_layer_names("vgg19")
    assert len(net.features) == names.index("relu3_1") + 1
    out = net(torch.rand(1, 3, 32, 32))
    assert list(out) == list(layers)
    # conv outputs survive the ReLU after them (no in-place ReLU), and the ReLU is applied to them
    assert (out["conv1_1"] < 0).any()
    assert torch.equal(out["relu1_1"], out["conv1_1"].clamp(min=0))


def test_fgtransform_layers_side_by_side_are_distinct():
    layers = ("conv5_1", "relu5_1", "relu5_2", "conv5_3", "relu5_4")
    out = VGGFeatures("vgg19", layers=layers, weights="random")(torch.rand(1, 3, 32, 32))
    assert sum(t.shape[1] for t in out.values()) == 2560
    assert (out["conv5_1"] < 0).any() and torch.equal(out["relu5_1"], out["conv5_1"].clamp(min=0))


def test_unknown_layer_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"conv5_4.*valid names: conv1_1"):
        VGGFeatures("vgg16", layers=("conv5_4",), weights="random")
    with pytest.raises(ValueError, match="non-empty"):
        VGGFeatures("vgg16", layers=(), weights="random")


def test_input_normalisation_and_ranges():
    torch.manual_seed(0)
    net01 = VGGFeatures("vgg16", layers=("conv1_1",), weights="random")
    net11 = VGGFeatures("vgg16", layers=("conv1_1",), weights="random", input_range=(-1.0, 1.0))
    net11.load_state_dict(net01.state_dict())
    raw = VGGFeatures("vgg16", layers=("conv1_1",), weights="random", normalize_input=False)
    raw.load_state_dict(net01.state_dict())
    image = torch.rand(1, 3, 16, 16)
    mean = torch.tensor(backbones.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(backbones.IMAGENET_STD).view(1, 3, 1, 1)
    expected = raw((image - mean) / std)["conv1_1"]
    torch.testing.assert_close(net01(image)["conv1_1"], expected)
    torch.testing.assert_close(net11(image * 2 - 1)["conv1_1"], expected)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(1, 1, 16, 16\)"):
        net01(torch.rand(1, 1, 16, 16))


def test_frozen_by_default_but_gradients_reach_the_input():
    net = VGGFeatures("vgg16", layers=("relu2_2",), weights="random")
    assert not any(p.requires_grad for p in net.parameters())
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    net(image)["relu2_2"].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    trainable = VGGFeatures("vgg16", layers=("relu1_1",), weights="random", requires_grad=True)
    assert all(p.requires_grad for p in trainable.parameters())


def test_random_weights_are_recorded():
    net = VGGFeatures("vgg19", layers=("relu1_1",), weights="random")
    assert net.weights_info == {"arch": "vgg19", "source": "random", "file": None}
    assert "weights=random" in repr(net)


def test_imagenet_without_cache_or_network_fails_fast_and_names_the_file(empty_torch_home, offline):
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable) as info:
        VGGFeatures("vgg16", layers=("relu1_1",), weights="imagenet")
    assert time.monotonic() - start < 10
    message = str(info.value)
    expected = empty_torch_home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert imagenet_weights_file("vgg16") == expected
    assert "vgg16-397923af.pth" in message and str(expected.parent) in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert "--weights PATH" in message and "--weights random" in message
    assert isinstance(info.value, RuntimeError)


def test_imagenet_never_touches_network_when_downloads_are_off(empty_torch_home, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    with pytest.raises(WeightsUnavailable, match=r"vgg19-dcbb9e9d\.pth.*allow_download=False"):
        VGGFeatures("vgg19", layers=("relu1_1",), weights="imagenet", allow_download=False)


def test_hanging_dns_does_not_hang(empty_torch_home, monkeypatch):
    """A lookup that never returns (an offline machine's DNS) is abandoned after the probe timeout."""
    monkeypatch.setattr(backbones, "CONNECT_TIMEOUT_S", 0.2)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: time.sleep(30))
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match="did not answer"):
        VGGFeatures("vgg16", layers=("relu1_1",), weights="imagenet")
    assert time.monotonic() - start < 5


def test_imagenet_loads_from_the_torch_hub_cache(empty_torch_home, offline):
    source = VGGFeatures("vgg16", layers=("relu2_1",), weights="random")
    cached = imagenet_weights_file("vgg16")
    cached.parent.mkdir(parents=True)
    torch.save(source.state_dict(), cached)
    net = VGGFeatures("vgg16", layers=("relu2_1",), weights="imagenet")
    assert net.weights_info == {"arch": "vgg16", "source": "imagenet", "file": "vgg16-397923af.pth"}
    image = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(net(image)["relu2_1"], source(image)["relu2_1"], rtol=0, atol=0)


def test_unreadable_cached_file_says_to_delete_it(empty_torch_home, offline):
    cached = imagenet_weights_file("vgg19")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailable, match=r"could not be read.*delete"):
        VGGFeatures("vgg19", layers=("relu1_1",), weights="imagenet")


def test_path_round_trip_from_a_torchvision_vgg(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(1)
    features = make_layers(cfgs["D"])  # torchvision's vgg16 feature stack, its own default init
    state = {f"features.{key}": value for key, value in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 8)  # a whole VGG's file: the classifier is ignored
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    net = VGGFeatures("vgg16", layers=("relu3_3",), weights=path)
    assert net.weights_info == {"arch": "vgg16", "source": str(path), "file": str(path)}
    image = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(backbones.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(backbones.IMAGENET_STD).view(1, 3, 1, 1)
    expected = features[:16]((image - mean) / std)
    torch.testing.assert_close(net(image)["relu3_3"], expected, rtol=0, atol=0)


def test_path_round_trip_from_a_vggfeatures(tmp_path):
    source = VGGFeatures("vgg19", layers=("relu4_4",), weights="random")
    path = tmp_path / "features.pt"
    torch.save(source.state_dict(), path)
    loaded = VGGFeatures("vgg19", layers=("relu1_1", "relu4_4"), weights=str(path))
    image = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded(image)["relu4_4"], source(image)["relu4_4"])


def test_bad_paths_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth.*'imagenet', 'random'"):
        VGGFeatures("vgg16", layers=("relu1_1",), weights=tmp_path / "nowhere.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("hello")
    with pytest.raises(ValueError, match="not a readable torch state_dict"):
        VGGFeatures("vgg16", layers=("relu1_1",), weights=garbage)
    vgg19 = tmp_path / "vgg19.pth"
    torch.save(VGGFeatures("vgg19", layers=("pool5",), weights="random").state_dict(), vgg19)
    with pytest.raises(ValueError, match=r"do not match vgg16.*unexpected keys \['features\.16\.weight'"):
        VGGFeatures("vgg16", layers=("pool5",), weights=vgg19)
    partial = tmp_path / "partial.pth"
    torch.save(VGGFeatures("vgg16", layers=("relu1_1",), weights="random").state_dict(), partial)
    with pytest.raises(ValueError, match=r"missing keys \['features\.2\.bias', 'features\.2\.weight'"):
        VGGFeatures("vgg16", layers=("relu2_1",), weights=partial)
    wrong_shape = VGGFeatures("vgg16", layers=("relu1_1",), weights="random").state_dict()
    wrong_shape["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(wrong_shape, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"wrong shapes.*\(64, 1, 3, 3\) vs expected \(64, 3, 3, 3\)"):
        VGGFeatures("vgg16", layers=("relu1_1",), weights=tmp_path / "shape.pth")


def test_models_package_import_stays_cheap():
    import subprocess
    import sys

    from pathlib import Path

    code = "import sys, models; print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert result.stdout.strip() == "False"
