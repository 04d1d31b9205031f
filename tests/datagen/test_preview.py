import json

import cv2
import numpy as np
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


def test_captions_fit_their_tile(dataset, tmp_path, monkeypatch):
    """Long edits and long pair ids wrap (or end in '...') inside the tile: measured with getTextSize."""
    from datadir import Dataset

    scene_path = dataset.path / "scenes/000001.json"
    scene = json.loads(scene_path.read_text())
    whole = {"size": "large", "color": "purple", "material": "rubber", "shape": "cylinder"}
    scene["edit"] = {"type": "add", "object_ids": [3, 4, 5, 6], "before": [None] * 4, "after": [whole] * 4}
    scene_path.write_text(json.dumps(scene))
    single = Dataset.create(tmp_path / "single", "single", source="single")
    long_id = "holiday_photo_of_the_harbour_at_dusk_taken_from_the_lighthouse_" + "x" * 60
    cv2.imwrite(str(single.path_of(long_id, "image", "x")), np.full((12, 16, 3), 90, np.uint8))
    single.add_pairs([{"pair_id": long_id, "split": "test", "source": "single", "edit_type": "none",
                       "x_image": f"images/{long_id}_x.png"}])
    drawn = []
    real_put_text = cv2.putText

    def recording_put_text(image, text, org, font, scale, colour, thickness=1, *args):
        drawn.append((image.shape[1], image.shape[0], text, org, font, scale, thickness))
        return real_put_text(image, text, org, font, scale, colour, thickness, *args)

    monkeypatch.setattr(cv2, "putText", recording_put_text)
    contact_sheet(dataset.path, tmp_path / "sheet.png", n_pairs=3)
    contact_sheet(single.path, tmp_path / "single.png")
    assert drawn
    for width, height, text, (left, baseline_y), font, scale, thickness in drawn:
        (text_w, _), descent = cv2.getTextSize(text, font, scale, thickness)
        assert left >= 0 and left + text_w <= width, f"{text!r} is {text_w} px from x={left} in a {width} px tile"
        assert baseline_y + descent <= height, f"{text!r} runs below its {height} px caption"
    texts = [text for *_, text, _, _, _, _ in drawn]
    assert sum("cylinder" in text for text in texts) >= 2  # the edit wraps onto more lines, not cut at one
    assert any(text.startswith("holiday_photo") for text in texts)
