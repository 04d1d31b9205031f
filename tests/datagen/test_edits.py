"""Edits: untouched objects stay identical, ids are stable, Y is valid, the intended attribute changes."""
import json
import math
from dataclasses import fields, replace

import numpy as np
import pytest

from datagen.edits import (
    ATTRIBUTE_EDITS,
    DEFAULT_EDIT_MIX,
    EDIT_TYPES,
    EditError,
    EditMix,
    EditRecord,
    apply_edit,
    parse_edit_mix,
)
from datagen.placement import PlacementConfig, check_placement, sample_scene
from datagen.properties import Properties
from datagen.scene import SceneObject

PROPS = Properties.clevr()
CONFIG = PlacementConfig()
SEEDS = range(25)

# Fields of SceneObject each edit may change on an edited object.
ALLOWED_CHANGES = {
    "move": {"position", "pixel_coords"},
    "recolor": {"color", "rgb"},
    "rematerial": {"material"},
    "resize": {"size", "radius", "position", "pixel_coords"},
    "reshape": {"shape", "position", "pixel_coords"},
}
MUST_CHANGE = {
    "move": {"position"},
    "recolor": {"color", "rgb"},
    "rematerial": {"material"},
    "resize": {"size", "radius"},
    "reshape": {"shape"},
}


def _changed(a: SceneObject, b: SceneObject) -> set[str]:
    return {f.name for f in fields(SceneObject) if getattr(a, f.name) != getattr(b, f.name)}


def _edited_pairs(edit_type, n):
    """(X, Y, record) for every seed where the edit applies; at least most seeds must work."""
    results = []
    for seed in SEEDS:
        rng = np.random.default_rng([seed, n])
        n_x = int(rng.integers(3, CONFIG.max_objects - n + 1)) if edit_type == "add" else int(rng.integers(3, 9))
        x = sample_scene(rng, PROPS, CONFIG, n_objects=n_x)
        try:
            y, record = apply_edit(rng, x, edit_type, n, PROPS, CONFIG)
        except EditError:
            continue
        results.append((x, y, record))
    assert len(results) >= 0.8 * len(SEEDS), f"{edit_type}×{n} applied to only {len(results)} scenes"
    return results


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("edit_type", EDIT_TYPES)
def test_edit_invariants(edit_type, n):
    for x, y, record in _edited_pairs(edit_type, n):
        assert check_placement(y, CONFIG, PROPS) == []
        assert (y.camera, y.lights, y.image_size) == (x.camera, x.lights, x.image_size)
        assert record.type == edit_type and len(record.object_ids) == n
        assert len(set(record.object_ids)) == n
        edited = set(record.object_ids)
        for obj in x.objects:
            if obj.id not in edited:
                assert y.object_by_id(obj.id) == obj  # untouched objects identical
        if edit_type == "add":
            assert y.ids[: len(x.ids)] == x.ids
            assert record.object_ids == tuple(range(max(x.ids) + 1, max(x.ids) + 1 + n))
            assert set(y.ids) == set(x.ids) | edited
            for object_id in record.object_ids:
                new = y.object_by_id(object_id)
                assert new.mask_id == new.id and new.position[2] == PROPS.resting_z(new.shape, new.radius)
            assert list(record.after) == [y.object_by_id(i).to_dict() for i in record.object_ids]
        elif edit_type == "remove":
            assert edited <= set(x.ids)
            assert set(y.ids) == set(x.ids) - edited and len(y.objects) >= 1
            assert list(record.before) == [x.object_by_id(i).to_dict() for i in record.object_ids]
        else:
            assert y.ids == x.ids  # ids and order stable
            for object_id in record.object_ids:
                old, new = x.object_by_id(object_id), y.object_by_id(object_id)
                changed = _changed(old, new)
                assert changed <= ALLOWED_CHANGES[edit_type], changed
                assert MUST_CHANGE[edit_type] <= changed, changed
                assert new.position[2] == PROPS.resting_z(new.shape, new.radius)
                if edit_type == "move":
                    moved = math.dist(old.position[:2], new.position[:2])
                    assert moved >= CONFIG.min_move_distance
                else:
                    assert new.position[:2] == old.position[:2]


def test_attribute_records_hold_before_and_after():
    rng = np.random.default_rng(3)
    x = sample_scene(rng, PROPS, CONFIG, n_objects=5)
    y, record = apply_edit(rng, x, "recolor", 2, PROPS, CONFIG)
    for object_id, before, after in zip(record.object_ids, record.before, record.after):
        assert before == {"color": x.object_by_id(object_id).color, "rgb": list(x.object_by_id(object_id).rgb)}
        assert after == {"color": y.object_by_id(object_id).color, "rgb": list(y.object_by_id(object_id).rgb)}
        assert before["color"] != after["color"]


def test_added_ids_continue_after_removed_ones():
    rng = np.random.default_rng(11)
    x = sample_scene(rng, PROPS, CONFIG, n_objects=5)
    top = max(x.ids)
    y = x
    while top in y.ids:  # remove until the largest id is gone
        y, _ = apply_edit(rng, x, "remove", 1, PROPS, CONFIG)
    z, record = apply_edit(rng, y, "add", 1, PROPS, CONFIG)
    assert record.object_ids == (top + 1,)  # the removed id is never reused
    assert z.metadata["max_id_used"] == top + 1


@pytest.mark.parametrize(
    ("edit_type", "n", "n_x", "expected"),
    [("remove", 2, 2, "at least one object"), ("remove", 1, 1, "at least one"), ("move", 2, 1, "cannot move 2")],
)
def test_impossible_edits_raise_edit_error(edit_type, n, n_x, expected):
    config = replace(CONFIG, min_objects=1)
    rng = np.random.default_rng(0)
    x = sample_scene(rng, PROPS, config, n_objects=n_x)
    with pytest.raises(EditError, match=expected):
        apply_edit(rng, x, edit_type, n, PROPS, config)


def test_add_beyond_max_objects_raises():
    rng = np.random.default_rng(0)
    x = sample_scene(rng, PROPS, CONFIG, n_objects=CONFIG.max_objects)
    with pytest.raises(EditError, match="max_objects"):
        apply_edit(rng, x, "add", 1, PROPS, CONFIG)


def test_attribute_edit_without_alternatives_raises():
    one_color = Properties.from_dict({**PROPS.to_dict(), "colors": {"red": [173, 35, 35]}})
    rng = np.random.default_rng(0)
    x = sample_scene(rng, one_color, CONFIG, n_objects=4)
    with pytest.raises(EditError, match="no other value"):
        apply_edit(rng, x, "recolor", 1, one_color, CONFIG)


def test_move_with_nowhere_to_go_raises():
    config = replace(CONFIG, min_move_distance=100.0)
    rng = np.random.default_rng(0)
    x = sample_scene(rng, PROPS, config, n_objects=4)
    with pytest.raises(EditError, match="min_distance=100"):
        apply_edit(rng, x, "move", 1, PROPS, config)


def test_unknown_edit_type_is_a_value_error():
    x = sample_scene(np.random.default_rng(0), PROPS, CONFIG, n_objects=4)
    with pytest.raises(ValueError, match="'paint'"):
        apply_edit(np.random.default_rng(0), x, "paint", 1, PROPS, CONFIG)


def test_edit_record_round_trip():
    rng = np.random.default_rng(5)
    x = sample_scene(rng, PROPS, CONFIG, n_objects=6)
    for edit_type in EDIT_TYPES:
        _, record = apply_edit(rng, x, edit_type, 1, PROPS, CONFIG)
        assert EditRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_parse_edit_mix_splits_attribute_family():
    mix = parse_edit_mix("add=1, remove=1,move=1,attribute=1")
    probabilities = mix.probabilities()
    for name in ("add", "remove", "move"):
        assert probabilities[name] == pytest.approx(0.25)
    for name in ATTRIBUTE_EDITS:
        assert probabilities[name] == pytest.approx(0.0625)
    assert mix == DEFAULT_EDIT_MIX


def test_parse_edit_mix_concrete_names():
    probabilities = parse_edit_mix("recolor=2,move=1,attribute=0").probabilities()
    assert probabilities["recolor"] == pytest.approx(2 / 3) and probabilities["move"] == pytest.approx(1 / 3)
    assert probabilities["add"] == 0.0


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("add=1,paint=2", "paint=2"),
        ("add", "add"),
        ("add=x", "add=x"),
        ("add=-1", "add=-1"),
        ("add=1,add=2", "add=2"),
        ("add=1,,move=1", "''"),
        ("=1", "=1"),
        ("add=0,move=0", "all weights are 0"),
        ("add=nan", "add=nan"),
    ],
)
def test_parse_edit_mix_rejects_bad_tokens(text, token):
    with pytest.raises(ValueError) as info:
        parse_edit_mix(text)
    assert token in str(info.value)


def test_edit_mix_sampling_follows_weights():
    rng = np.random.default_rng(0)
    draws = [DEFAULT_EDIT_MIX.sample(rng) for _ in range(4000)]
    types = [t for t, _ in draws]
    assert abs(types.count("add") / 4000 - 0.25) < 0.03
    assert abs(types.count("recolor") / 4000 - 0.0625) < 0.02
    assert {n for _, n in draws} == {1, 2}
    only_one = EditMix(DEFAULT_EDIT_MIX.weights, n_objects=(1,))
    assert {only_one.sample(rng)[1] for _ in range(50)} == {1}
    assert EditMix.from_dict(json.loads(json.dumps(DEFAULT_EDIT_MIX.to_dict()))) == DEFAULT_EDIT_MIX
