import json

import cv2
import pytest

from datagen.preview import contact_sheet


def test_contact_sheet_shows_each_pair_with_masks(dataset, tmp_path):
    scene_path = dataset.path / "scenes/000001.json"
    scene = json.loads(scene_path.read_text())
    scene["edit"] = {"type": "recolor", "object_ids": [2], "before": [{"color": "red"}], "after": [{"color": "blue"}]}
    scene_path.write_text(json.dumps(scene))
    out = contact_sheet(dataset.path, tmp_path / "sheet.png", n_pairs=3, columns=2)
    sheet = cv2.imread(str(out))
    # two tiles per row, two rows; each tile is X|Y at 240 px plus a gap
    assert sheet.shape[1] > 2 * 2 * 240 and sheet.shape[0] > 2 * 180
    plain = contact_sheet(dataset.path, tmp_path / "one.png", n_pairs=1)
    assert cv2.imread(str(plain)).shape[1] < sheet.shape[1]


def test_contact_sheet_errors(dataset, tmp_path):
    with pytest.raises(ValueError, match="n_pairs"):
        contact_sheet(dataset.path, tmp_path / "s.png", n_pairs=0)
    with pytest.raises(ValueError, match="nope"):
        contact_sheet(dataset.path, tmp_path / "s.png", pair_ids=["nope"])
