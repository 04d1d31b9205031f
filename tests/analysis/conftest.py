"""Fixtures of the evaluation and report tests: a tiny dataset with an edited object per pair,
folders of method outputs, a fitted centre bias as predictor, and study exports."""
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest

from analysis.study_stats import PARTICIPANT_COLUMNS, RESPONSE_COLUMNS
from datadir import Dataset, PairWriter, relative_path

W, H = 40, 32


def _write_pair(root, pair_id: str, rng, split="test"):
    """X: two boxes on grey; Y: box 1 recoloured (the edited object); maps peak on box 1 in Y."""
    image = np.full((H, W, 3), 120, np.uint8) + rng.integers(0, 10, (H, W, 3), np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[4:12, 3:11], mask[12:20, 18:28] = 1, 2
    image[mask == 1], image[mask == 2] = (200, 40, 40), (40, 40, 200)
    y = image.copy()
    y[mask == 1] = (40, 200, 40)
    writer = PairWriter(root)
    ys, xs = np.mgrid[0:H, 0:W]
    maps = {}
    for side, (cx, cy) in (("x", (23, 16)), ("y", (7, 8))):
        density = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 18.0) + 1e-3
        maps[f"{side}_map"] = writer.map(pair_id, side, density, png=False)
    objects = [{"id": 1, "mask_id": 1}, {"id": 2, "mask_id": 2}]
    scene = {"x": {"objects": objects}, "y": {"objects": objects}, "edit": {"type": "recolor", "object_ids": [1]}}
    return writer.write(pair_id, split=split, source="clevr", edit_type="recolor", n_edited=1,
                        images={"x": image[..., ::-1], "y": y[..., ::-1]},  # drawn in OpenCV's BGR order
                        masks={"x": mask, "y": mask}, scene=scene, **maps, n_observers_x=7, n_observers_y=7)


@pytest.fixture
def data(tmp_path):
    ds = Dataset.create(tmp_path / "ds", "eval-tiny", seed=1)
    rng = np.random.default_rng(1)
    ds.add_pairs([_write_pair(ds.path, f"p{i}", rng, split="test" if i < 4 else "train") for i in range(5)])
    return ds.path


@pytest.fixture
def outputs(tmp_path, data):
    """Folders of outputs: `oracle` (the ground-truth Y), `dim` (X darkened, one pair missing, one wrong size)."""
    oracle, dim = tmp_path / "oracle", tmp_path / "dim"
    oracle.mkdir(), dim.mkdir()
    for i in range(4):
        shutil.copyfile(data / relative_path(f"p{i}", "image", "y"), oracle / f"p{i}.png")
        x = cv2.imread(str(data / relative_path(f"p{i}", "image", "x")))
        if i == 1:
            continue
        cv2.imwrite(str(dim / f"p{i}.png"), cv2.resize(x, (16, 12)) if i == 2 else (x * 0.5).astype(np.uint8))
    return {"oracle": oracle, "dim": dim}


@pytest.fixture
def centre_bias(tmp_path):
    """A centre-bias predictor (.json fit): the same map for every image."""
    from models.saliency.center_bias import CenterBias

    rng = np.random.default_rng(0)
    maps = [rng.random((H, W)) + 0.1 for _ in range(3)]
    return CenterBias.fit([m / m.sum() for m in maps]).save(tmp_path / "centre.json")


@pytest.fixture
def study_export():
    """study_export(folder, experiment, pair_ids) -> a choose_best export folder."""
    return _export


def _export(folder, experiment: str, pair_ids):
    """A choose_best study export: three participants pick among oracle and dim."""
    folder.mkdir()
    rows, trial = [], 0
    for participant in (1, 2, 3):
        for pair_id in pair_ids:
            trial += 1
            rows.append({"experiment": experiment, "participant_id": participant, "source": "human",
                         "block": "preference", "trial_id": trial, "task": "choose_best", "question": "realism",
                         "pair_id": pair_id, "side": "x", "shown_methods": "oracle|dim",
                         "choice": "oracle" if participant < 3 else "dim", "valid": True})
    pd.DataFrame(rows).reindex(columns=RESPONSE_COLUMNS).to_csv(folder / "responses.csv", index=False)
    people = [{"participant_id": p, "source": "human", "status": "complete", "qc_status": "kept", "qc_reason": ""} for p in (1, 2, 3)]
    pd.DataFrame(people).reindex(columns=PARTICIPANT_COLUMNS).to_csv(folder / "participants.csv", index=False)
    return folder
