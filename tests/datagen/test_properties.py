"""Properties: CLEVR defaults, user files that extend them, and the errors a bad file gives."""
import json
import math

import pytest

from datagen.properties import PRIMITIVES, Properties, footprint_radius, resting_z


def test_clevr_defaults_match_design():
    props = Properties.clevr()
    assert sorted(props.shapes) == ["cube", "cylinder", "sphere"]
    assert props.sizes == {"large": 0.7, "small": 0.35}
    assert props.colors["gray"] == [87, 87, 87]
    assert props.colors["yellow"] == [255, 238, 51]
    assert len(props.colors) == 8
    assert props.materials["rubber"]["metallic"] == 0.0 and props.materials["rubber"]["roughness"] >= 0.5
    assert props.materials["metal"]["metallic"] == 1.0 and props.materials["metal"]["roughness"] <= 0.3


def test_clevr_geometry_every_shape_fits_its_size_circle():
    props = Properties.clevr()
    for shape in props.shapes:
        assert props.footprint_radius(shape, 0.7) == pytest.approx(0.7)
    assert props.resting_z("cube", 0.7) == pytest.approx(0.7 / math.sqrt(2))  # CLEVR's r /= sqrt(2)
    assert props.resting_z("sphere", 0.7) == pytest.approx(0.7)
    box = Properties.extended({"shapes": {"box": {"primitive": "cube", "scale": 1.0}}})
    assert box.footprint_radius("box", 0.7) == pytest.approx(0.7 * math.sqrt(2))  # corners
    assert footprint_radius("torus", 1.0) == 1.0 and resting_z("torus", 1.0) == pytest.approx(0.3)
    assert footprint_radius("not-a-primitive", 1.0) == pytest.approx(math.sqrt(2))


def test_geometry_agrees_with_the_renderer_catalog():
    from datagen.blender import catalog  # bpy-free

    shapes = {p: {"primitive": p} for p in PRIMITIVES} | {"box": {"primitive": "cube", "scale": 1.3}}
    props = Properties.extended({"shapes": shapes})
    table = props.to_dict()["shapes"]
    assert set(catalog.PRIMITIVES) == set(PRIMITIVES)
    for shape in props.shapes:
        assert props.resting_z(shape, 0.35) == pytest.approx(catalog.resting_z(shape, 0.35, table))
        assert props.scale(shape) * 0.35 == pytest.approx(catalog.half_extent(shape, 0.35, table))
    for material in props.materials:
        assert catalog.material_spec(material, props.to_dict()["materials"])  # kinds it knows


EXTENSION = {
    "colors": {"teal": [0, 128, 128]},
    "shapes": {"cone": {"primitive": "cone"}, "box": {"primitive": "cube", "scale": 1.0}},
    "sizes": {"medium": 0.5},
    "materials": {"satin": {"kind": "rubber", "roughness": 0.4, "metallic": 0.0, "clearcoat": 0.5}},
}


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_file_extends_defaults(tmp_path, suffix):
    import yaml

    path = tmp_path / f"props{suffix}"
    path.write_text(json.dumps(EXTENSION) if suffix == ".json" else yaml.safe_dump(EXTENSION))
    props = Properties.load(path)
    assert props.colors["teal"] == [0, 128, 128]
    assert props.colors["red"] == [173, 35, 35]  # defaults kept
    assert props.shapes["cone"] == {"primitive": "cone"}
    assert props.scale("box") == 1.0 and props.scale("cube") == pytest.approx(1 / math.sqrt(2))
    assert set(props.shapes) == {"cube", "sphere", "cylinder", "cone", "box"}
    assert props.sizes["medium"] == 0.5 and props.sizes["large"] == 0.7
    assert props.materials["satin"]["clearcoat"] == 0.5


def test_replace_starts_from_nothing(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "replace: true\nshapes: {ball: {primitive: icosphere}}\ncolors: {white: [255, 255, 255]}\n"
        "materials: {matte: {kind: rubber, roughness: 0.9, metallic: 0}}\nsizes: {one: 0.5}\n"
    )
    props = Properties.load(path)
    assert list(props.colors) == ["white"] and list(props.shapes) == ["ball"]
    assert props.primitive("ball") == "icosphere"


def test_same_name_overrides_default(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"colors": {"red": [255, 0, 0]}}))
    assert Properties.load(path).colors["red"] == [255, 0, 0]


def test_empty_file_is_the_defaults(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("")
    assert Properties.load(path) == Properties.clevr()


def test_dict_round_trip_through_json():
    props = Properties.extended(EXTENSION)
    assert Properties.from_dict(json.loads(json.dumps(props.to_dict(), sort_keys=True))) == props


BAD_CASES = [
    ({"colours": {"teal": [0, 1, 2]}}, "colours"),
    ({"shapes": {"pyramid": {"primitive": "pyramid"}}}, "shapes.pyramid.primitive"),
    ({"shapes": {"pyramid": "cone"}}, "shapes.pyramid"),
    ({"shapes": {"cone": {"primitive": "cone", "segments": 8}}}, "shapes.cone.segments"),
    ({"shapes": {"cone": {"primitive": "cone", "scale": 0}}}, "shapes.cone.scale"),
    ({"shapes": {"cone": {"primitive": "cone", "scale": "big"}}}, "shapes.cone.scale"),
    ({"colors": {"teal": [300, 0, 0]}}, "colors.teal"),
    ({"colors": {"teal": [-1, 0, 0]}}, "colors.teal"),
    ({"colors": {"teal": [1, 2]}}, "colors.teal"),
    ({"colors": {"teal": [1.5, 2, 3]}}, "colors.teal"),
    ({"colors": {"teal": "#008080"}}, "colors.teal"),
    ({"sizes": {"tiny": 0}}, "sizes.tiny"),
    ({"sizes": {"tiny": -0.2}}, "sizes.tiny"),
    ({"sizes": {"tiny": "big"}}, "sizes.tiny"),
    ({"materials": {"glass": {"kind": "glass", "roughness": 0.0}}}, "materials.glass"),
    ({"materials": {"wood": {"kind": "wood", "roughness": 0.5, "metallic": 0}}}, "materials.wood.kind"),
    ({"materials": {"glass": {"kind": "glass", "roughness": 0.0, "metallic": 0}}}, "materials.glass.kind"),
    ({"materials": {"foil": {"kind": "metal", "roughness": 2, "metallic": 1}}}, "materials.foil.roughness"),
    ({"materials": {"foil": {"kind": "metal", "roughness": 0.1, "metallic": 1, "shine": 1}}}, "shine"),
    ({"replace": "yes"}, "replace"),
    ({"replace": True, "colors": {"white": [255, 255, 255]}}, "shapes"),
    ({"colors": ["red"]}, "colors"),
]


@pytest.mark.parametrize(("content", "key"), BAD_CASES)
def test_bad_file_names_file_and_key(tmp_path, content, key):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError) as info:
        Properties.load(path)
    message = str(info.value)
    assert "bad.json" in message
    assert key in message


def test_bad_value_is_named():
    with pytest.raises(ValueError, match=r"300.*0–255"):
        Properties.extended({"colors": {"teal": [300, 0, 0]}})
    with pytest.raises(ValueError, match=r"'pyramid'.*cube"):
        Properties.extended({"shapes": {"p": {"primitive": "pyramid"}}})


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("broken.yaml", "colors: {teal: [0, 1", "not valid YAML"),
        ("broken.json", "{\"colors\": ", "not valid JSON"),
        ("list.yaml", "- 1\n- 2\n", "top level"),
        ("props.txt", "colors: {}", "unknown properties file type"),
    ],
)
def test_unreadable_or_invalid_file(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=expected) as info:
        Properties.load(path)
    assert name in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read") as info:
        Properties.load(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)
