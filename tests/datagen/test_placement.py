"""Placement: CLEVR's constraints hold for every sampled scene; impossible configs fail fast."""
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datagen.placement import (
    PlacementConfig,
    PlacementError,
    check_placement,
    feasibility_problems,
    feasible,
    sample_camera_and_lights,
    sample_scene,
)
from datagen.properties import Properties
from datagen.scene import Camera, Scene, SceneObject

PROPS = Properties.clevr()
CONFIG = PlacementConfig()


def _assert_valid(scene: Scene, config: PlacementConfig, props: Properties) -> None:
    assert check_placement(scene, config, props) == []
    n = len(scene.objects)
    assert config.min_objects <= n <= config.max_objects
    assert scene.ids == list(range(1, n + 1))
    assert [o.mask_id for o in scene.objects] == scene.ids
    for obj in scene.objects:
        assert obj.radius == props.sizes[obj.size]
        assert obj.position[2] == props.resting_z(obj.shape, obj.radius)
        assert 0.0 <= obj.rotation < 360.0
        assert obj.rgb == tuple(props.colors[obj.color])
        assert obj.pixel_coords is not None


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**63 - 1))
def test_sampled_scenes_meet_constraints(seed):
    _assert_valid(sample_scene(np.random.default_rng(seed), PROPS, CONFIG), CONFIG, PROPS)


def test_thousands_of_seeds_meet_constraints():
    counts = np.zeros(CONFIG.max_objects + 1, int)
    for seed in range(1500):
        scene = sample_scene(np.random.default_rng([seed, 7]), PROPS, CONFIG)
        _assert_valid(scene, CONFIG, PROPS)
        counts[len(scene.objects)] += 1
    assert counts[: CONFIG.min_objects].sum() == 0
    assert (counts[CONFIG.min_objects :] > 100).all()  # every count 3..10 is drawn


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    xy_range=st.floats(1.0, 4.0),
    min_gap=st.floats(0.0, 0.5),
    margin=st.floats(0.0, 0.6),
    n=st.integers(1, 6),
)
def test_other_configs_are_valid_or_raise(seed, xy_range, min_gap, margin, n):
    config = PlacementConfig(min_objects=n, max_objects=n, xy_range=xy_range, min_gap=min_gap, margin=margin)
    try:
        scene = sample_scene(np.random.default_rng(seed), PROPS, config)
    except PlacementError:
        return
    _assert_valid(scene, config, PROPS)


def test_camera_and_lights_jitter_within_bounds():
    for seed in range(200):
        camera, lights = sample_camera_and_lights(np.random.default_rng(seed), CONFIG)
        assert np.all(np.abs(np.subtract(camera.location, CONFIG.camera_location)) <= CONFIG.camera_jitter)
        assert (camera.lens_mm, camera.sensor_width_mm) == (35.0, 32.0)
        assert [light.name for light in lights] == ["key", "fill", "back"]
        for light, default in zip(lights, CONFIG.lights):
            assert np.all(np.abs(np.subtract(light.location, default.location)) <= CONFIG.light_jitter)
            assert light.location != default.location


def test_image_size_is_passed_through():
    scene = sample_scene(np.random.default_rng(0), PROPS, CONFIG, image_size=(64, 48))
    assert scene.image_size == (64, 48)


def _object(object_id, x, y, size="large", shape="sphere", props=PROPS):
    radius = props.sizes[size]
    z = props.resting_z(shape, radius)
    return SceneObject(object_id, object_id, shape, "red", "rubber", size, radius, (173, 35, 35), (x, y, z), 0.0)


def _scene(*objects):
    return Scene(objects=tuple(objects), camera=Camera(location=CONFIG.camera_location), lights=(), image_size=(320, 240))


def _valid_pair_positions():
    # Two objects well apart along both the camera's right and front directions.
    dirs = Camera(location=CONFIG.camera_location).ground_directions()
    right, front = np.array(dirs["right"]), np.array(dirs["front"])
    return (right + front) * 1.2, -(right + front) * 1.2


def test_check_placement_accepts_a_valid_hand_made_scene():
    a, b = _valid_pair_positions()
    assert check_placement(_scene(_object(1, *a), _object(2, *b)), CONFIG) == []


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        ((_object(1, 0.0, 0.0), _object(2, 1.0, 1.0)), "min_gap"),
        ((_object(1, 3.5, 0.0),), "outside xy_range"),
        ((_object(1, 0.0, 0.0), _object(1, 2.5, -2.5)), "duplicate object ids"),
        ((replace(_object(1, 0.0, 0.0), position=(0.0, 0.0, 1.5)),), "rest on the ground"),
        ((replace(_object(1, 0.0, 0.0), mask_id=256),), "mask ids"),
    ],
)
def test_check_placement_reports_each_rule(objects, expected):
    problems = check_placement(_scene(*objects), CONFIG)
    assert any(expected in p for p in problems), problems


def test_check_placement_reports_directional_margin():
    # Far apart, but level along the camera's right axis within the margin.
    dirs = Camera(location=CONFIG.camera_location).ground_directions()
    right, front = np.array(dirs["right"]), np.array(dirs["front"])
    a = front * 2.0
    b = -front * 2.0 + right * 0.2
    problems = check_placement(_scene(_object(1, *a, size="small"), _object(2, *b, size="small")), CONFIG)
    assert len(problems) == 1 and "directional margin" in problems[0]


def test_full_size_cubes_use_their_corner_radius():
    # 1.7 m apart clears 2·0.7 + 0.25 for spheres and CLEVR cubes (scale 1/√2), not for
    # cubes of half-extent 0.7, whose corners reach 0.99 m.
    props = Properties.extended({"shapes": {"box": {"primitive": "cube", "scale": 1.0}}})
    dirs = Camera(location=CONFIG.camera_location).ground_directions()
    offset = (np.array(dirs["right"]) + np.array(dirs["front"])) / math.sqrt(2) * 0.85
    for shape in ("sphere", "cube"):
        scene = _scene(_object(1, *offset, shape=shape), _object(2, *-offset, shape=shape))
        assert check_placement(scene, CONFIG, props) == []
    boxes = _scene(_object(1, *offset, shape="box", props=props), _object(2, *-offset, shape="box", props=props))
    assert any("min_gap" in p for p in check_placement(boxes, CONFIG, props))


def test_resting_height_follows_the_shape():
    cube = _object(1, 0.0, 0.0, shape="cube")
    assert cube.position[2] == pytest.approx(0.7 / math.sqrt(2))
    floating = replace(cube, position=(0.0, 0.0, 0.7))
    assert any("rest on the ground" in p for p in check_placement(_scene(floating), CONFIG, PROPS))


def test_too_many_objects_is_reported():
    a, b = _valid_pair_positions()
    problems = check_placement(_scene(_object(1, *a), _object(2, *b)), replace(CONFIG, min_objects=1, max_objects=1))
    assert any("max_objects" in p for p in problems)


def test_impossible_config_fails_fast_naming_constraints():
    large_only = Properties.from_dict({**PROPS.to_dict(), "sizes": {"large": 0.7}})
    config = PlacementConfig(min_objects=10, max_objects=10, xy_range=0.5)
    assert not feasible(config, large_only)
    with pytest.raises(PlacementError, match=r"10 objects.*xy_range=0\.5"):
        sample_scene(np.random.default_rng(0), large_only, config)


def test_margin_span_infeasibility():
    config = PlacementConfig(min_objects=10, max_objects=10, xy_range=1.0, margin=0.4, min_gap=0.0)
    tiny = Properties.from_dict({**PROPS.to_dict(), "sizes": {"dot": 0.01}})
    problems = feasibility_problems(config, tiny)
    assert len(problems) == 1 and "margin=0.4" in problems[0]


def test_hard_but_not_obviously_impossible_config_raises_after_bounded_retries():
    config = PlacementConfig(min_objects=10, max_objects=10, xy_range=1.5, max_retries=50, max_scene_retries=3)
    assert feasible(config, PROPS)
    with pytest.raises(PlacementError, match=r"could not place 10 objects in 3 scenes"):
        sample_scene(np.random.default_rng(0), PROPS, config)


def test_default_config_is_feasible():
    assert feasible(CONFIG, PROPS)


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="max_objects"):
        PlacementConfig(min_objects=5, max_objects=4)
    with pytest.raises(ValueError, match="max_objects"):
        PlacementConfig(max_objects=300)
    with pytest.raises(ValueError, match="unknown placement setting 'xy'"):
        PlacementConfig.from_dict({"xy": 1})
    assert PlacementConfig.from_dict(json.loads(json.dumps(CONFIG.to_dict()))) == CONFIG
