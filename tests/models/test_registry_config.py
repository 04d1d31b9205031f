"""Registries and typed config dataclasses: presets, YAML, unknown keys, types."""

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pytest
import yaml

from models.config import config_from_dict, config_to_dict, load_config, save_config
from models.registry import EDITORS, PREDICTORS, Registry


def test_registry_register_get_names():
    reg = Registry("editor")

    @reg.register("b_model")
    class B: ...

    @reg.register("a_model")
    class A: ...

    assert reg.get("a_model") is A and reg.get("b_model") is B
    assert reg.names() == ["a_model", "b_model"]
    assert "a_model" in reg and "c" not in reg


def test_registry_unknown_name_lists_known_ones():
    reg = Registry("predictor")
    reg.register("salgan")(object)
    with pytest.raises(ValueError, match=r"unknown predictor 'salgn'.*salgan"):
        reg.get("salgn")
    with pytest.raises(ValueError, match="none registered"):
        Registry("editor").get("x")


def test_registry_refuses_a_taken_name():
    reg = Registry("editor")
    reg.register("x")(int)
    reg.register("x")(int)  # the same object again (a module re-imported) is fine
    with pytest.raises(ValueError, match="already registered"):
        reg.register("x")(float)


def test_global_registries_have_their_kinds():
    assert PREDICTORS.kind == "predictor" and EDITORS.kind == "editor"


@dataclass
class Inner:
    depth: int = 3


@dataclass
class ToyConfig:
    PRESETS: ClassVar[dict[str, dict]] = {"tiny": {"width": 4, "image_size": [32, 24]}}
    width: int = 64
    lr: float = 1e-5
    image_size: tuple[int, int] = (256, 192)  # (width, height), pixels
    layers: tuple[str, ...] = ("relu1_1", "relu2_1")
    loss: Literal["hinge", "lsgan"] = "hinge"
    pretrained: bool = True
    weights: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_presets():
    assert load_config(ToyConfig) == ToyConfig()
    tiny = load_config(ToyConfig, preset="tiny")
    assert tiny.width == 4 and tiny.image_size == (32, 24) and tiny.lr == 1e-5
    with pytest.raises(ValueError, match=r"unknown preset 'huge'.*paper, tiny"):
        load_config(ToyConfig, preset="huge")


def test_yaml_overrides_on_top_of_preset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\nlayers: [relu5_1]\ninner: {depth: 5}\nweights: null\n")
    cfg = load_config(ToyConfig, path, preset="tiny")
    assert cfg.lr == 1e-3 and isinstance(cfg.lr, float)  # "1e-3" is a string to PyYAML
    assert cfg.layers == ("relu5_1",) and cfg.inner == Inner(5) and cfg.width == 4


def test_unknown_key_names_it_and_the_valid_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("widht: 3\n")
    with pytest.raises(ValueError, match=r"unknown key 'widht' for ToyConfig; valid keys: .*width"):
        load_config(ToyConfig, path)
    with pytest.raises(ValueError, match="unknown key 'nope' for Inner"):
        load_config(ToyConfig, {"inner": {"nope": 1}})


@pytest.mark.parametrize("overrides, message", [
    ({"width": "wide"}, "width = 'wide' must be an int"),
    ({"width": 2.5}, "must be an int"),
    ({"pretrained": 1}, "must be a bool"),
    ({"loss": "bce"}, r"must be one of \['hinge', 'lsgan'\]"),
    ({"image_size": [1, 2, 3]}, "must have 2 items"),
    ({"lr": "fast"}, "must be a number"),
    ({"weights": 3}, "matches none of"),
])
def test_wrong_types_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(ToyConfig, overrides)


def test_int_is_accepted_for_float():
    assert load_config(ToyConfig, {"lr": 1}).lr == 1.0


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(ToyConfig, tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(ToyConfig, tmp_path / "list.yaml")


def test_save_and_round_trip(tmp_path):
    cfg = load_config(ToyConfig, {"weights": "/w/vgg.pth"}, preset="tiny")
    path = save_config(cfg, tmp_path / "sub/config.yaml")
    assert yaml.safe_load(path.read_text())["image_size"] == [32, 24]
    assert load_config(ToyConfig, path) == cfg
    assert config_from_dict(ToyConfig, config_to_dict(cfg)) == cfg


def test_a_checkpoint_from_before_a_config_field_existed_loads_at_that_fields_default():
    from models.base import build_model
    from models.checkpoint import check_compatible
    from models.config import config_to_dict

    model = build_model("predictor", "salg_detector", "tiny")
    saved = config_to_dict(model.config)
    older = {k: v for k, v in saved.items() if k != "aspp_rates"}  # as if aspp_rates came later
    check_compatible({"model_name": "salg_detector", "config": older}, model)
    changed = build_model("predictor", "salg_detector", "tiny", {"aspp_rates": (2, 4, 6)})
    with pytest.raises(ValueError, match=r"aspp_rates: checkpoint .<missing>. vs model \[2, 4, 6\]"):
        check_compatible({"model_name": "salg_detector", "config": older}, changed)
