"""Pair sampling: pair i depends only on (seed, i, attempt); scene files round-trip."""
import json

import numpy as np
import pytest

from datagen.edits import parse_edit_mix
from datagen.placement import PlacementConfig, PlacementError, check_placement
from datagen.properties import Properties
from datagen.sampling import PairSpec, sample_pair
from datagen.scene import Scene

PROPS = Properties.clevr()
CONFIG = PlacementConfig()
MIX = parse_edit_mix("add=1,remove=1,move=1,attribute=1")
RENDER = {"engine": "CYCLES", "samples": 64}


def _dump(spec: PairSpec) -> str:
    return json.dumps(spec.to_json_dict(RENDER), sort_keys=True)


def _pair(index, seed=42, attempt=0):
    return sample_pair(seed, index, PROPS, CONFIG, MIX, (320, 240), attempt=attempt)


def test_same_seed_and_index_give_identical_json():
    assert _dump(_pair(3)) == _dump(_pair(3))


def test_pair_depends_only_on_its_index():
    alone = _dump(_pair(5))
    order = list(range(10))
    np.random.default_rng(0).shuffle(order)
    in_loop = {i: _dump(_pair(i)) for i in order}
    assert in_loop[5] == alone
    assert len(set(in_loop.values())) == 10  # different indices differ


def test_seed_and_attempt_change_the_pair():
    base = _dump(_pair(0))
    assert _dump(_pair(0, seed=43)) != base
    resampled = _pair(0, attempt=1)
    assert resampled.attempt == 1 and _dump(resampled) != base
    assert _dump(_pair(0, attempt=1)) == _dump(resampled)


def test_pairs_share_camera_and_lights_and_are_valid():
    types = set()
    for index in range(60):
        spec = _pair(index)
        types.add(spec.edit.type)
        assert spec.scene_x.camera == spec.scene_y.camera
        assert spec.scene_x.lights == spec.scene_y.lights
        assert check_placement(spec.scene_x, CONFIG, PROPS) == []
        assert check_placement(spec.scene_y, CONFIG, PROPS) == []
        assert spec.scene_x.image_size == spec.scene_y.image_size == (320, 240)
    assert {"add", "remove", "move"} <= types


def test_scene_file_shape():
    data = _pair(1).to_json_dict(RENDER)
    assert set(data) == {"x", "y", "edit", "camera", "lights", "seed", "index", "attempt", "properties", "render"}
    assert (data["seed"], data["index"], data["attempt"], data["render"]) == (42, 1, 0, RENDER)
    assert data["camera"] == data["x"]["camera"] == data["y"]["camera"]
    assert data["lights"] == data["x"]["lights"] == data["y"]["lights"]
    assert set(data["edit"]) == {"type", "object_ids", "before", "after"}
    assert data["properties"] == PROPS.to_dict()
    obj = data["x"]["objects"][0]
    for key in ("shape", "color", "material", "size", "3d_coords", "rotation", "pixel_coords", "id", "mask_id"):
        assert key in obj


def test_pair_spec_json_round_trip():
    for index in range(8):
        spec = _pair(index)
        text = _dump(spec)
        again = PairSpec.from_json_dict(json.loads(text))
        assert again == spec
        assert json.dumps(again.to_json_dict(RENDER), sort_keys=True) == text


def test_scene_json_round_trip():
    scene = _pair(2).scene_y
    again = Scene.from_dict(json.loads(json.dumps(scene.to_dict())))
    assert again == scene and again.metadata == scene.metadata


def test_mismatched_camera_is_rejected():
    data = json.loads(_dump(_pair(0)))
    data["camera"]["location"][0] += 1.0
    with pytest.raises(ValueError, match="camera and lights"):
        PairSpec.from_json_dict(data)


def test_edit_mix_and_object_range_are_respected():
    config = PlacementConfig(min_objects=3, max_objects=4)
    for index in range(20):
        spec = sample_pair(7, index, PROPS, config, parse_edit_mix("add=1"), attempt=0)
        assert spec.edit.type == "add"
        assert 3 <= len(spec.scene_x.objects) and len(spec.scene_y.objects) <= 4
        spec = sample_pair(7, index, PROPS, config, parse_edit_mix("remove=1"))
        assert len(spec.scene_y.objects) == len(spec.scene_x.objects) - len(spec.edit.object_ids) >= 1


def test_impossible_pairs_raise():
    with pytest.raises(PlacementError):
        sample_pair(0, 0, PROPS, PlacementConfig(min_objects=10, max_objects=10, xy_range=0.3), MIX)
    # Every add needs room that max_objects = min_objects never leaves.
    full = PlacementConfig(min_objects=3, max_objects=3)
    with pytest.raises(ValueError, match="add"):
        sample_pair(0, 0, PROPS, full, parse_edit_mix("add=1"))


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_seed_or_index(bad):
    with pytest.raises(ValueError, match="expected an integer"):
        sample_pair(bad, 0, PROPS, CONFIG, MIX)
    with pytest.raises(ValueError, match="expected an integer"):
        sample_pair(0, bad, PROPS, CONFIG, MIX)
