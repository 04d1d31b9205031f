"""`gazelab study pilot`: every shipped example design pilots to completion with simulated
participants, on a small dataset and stand-in method outputs."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from datagen.dataset import Dataset
from studyweb.pilot import run_pilot

EXAMPLES = sorted((Path(__file__).parents[2] / "studyweb" / "examples").glob("*.yaml"))
SIZE = (320, 240)  # CodeCharts needs room for a legible chart


@pytest.fixture
def pilot_dataset(tmp_path, write_pair):
    """4 test-split pairs of 320x240 images with masks, maps and scenes."""
    ds = Dataset.create(tmp_path / "ds", "pilot", seed=2)
    rows = []
    for i in range(4):
        row = write_pair(ds.path, f"p{i}", size=SIZE)
        row["split"] = "test"
        rows.append(row)
    ds.add_pairs(rows)
    return ds


def _methods(example: Path, root: Path, dataset) -> dict[str, str]:
    """Stand-in outputs for every method the example names: a tinted copy of each input."""
    names = list(_raw(example).get("methods") or {})
    out = {}
    for k, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for pair_id in dataset.pairs["pair_id"]:
            image = cv2.imread(str(dataset.path / f"images/{pair_id}_x.png"))
            cv2.imwrite(str(folder / f"{pair_id}.png"), np.clip(image.astype(int) + 20 * (k + 1), 0, 255).astype(np.uint8))
        out[name] = str(folder)
    return out


def _raw(example: Path) -> dict:
    import yaml

    return yaml.safe_load(example.read_text())


def test_the_examples_are_the_papers_studies():
    assert {e.stem for e in EXAMPLES} >= {"sgit_preference", "gazeshiftnet_ratings", "codecharts_attention",
                                          "sagim_salient_object"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.stem)
def test_every_example_pilots_to_completion(example, pilot_dataset, tmp_path):
    methods = _methods(example, tmp_path / "edits", pilot_dataset)
    summary = run_pilot(example, pilot_dataset.path, tmp_path / "out", methods, participants=3)
    assert summary["complete"] == 3 and not summary["failures"] and not summary["excluded"]
    assert summary["minutes_per_participant"] > 0 and summary["trials_per_participant"] >= 1
    with open(summary["csv"]["participants"], encoding="utf-8", newline="") as handle:
        people = list(csv.DictReader(handle))
    assert [(r["source"], r["qc_status"]) for r in people] == [("simulated", "kept")] * 3  # QC's stored decision
    with open(summary["csv"]["responses"], encoding="utf-8", newline="") as handle:
        responses = list(csv.DictReader(handle))
    if summary["task"] == "questionnaire":
        assert responses and {r["source"] for r in responses} == {"simulated"}
    elif summary["task"] == "codecharts":
        assert responses and summary["maps"]["built"] > 0
        assert list((tmp_path / "out" / "maps").glob("*.npy"))
    else:
        assert summary["maps"]["built"] > 0
    assert Dataset.open(pilot_dataset.path).validate() == []  # the pilot never writes into the dataset


def test_pilot_command_prints_the_summary(run_cli, pilot_dataset, tmp_path):
    example = next(e for e in EXAMPLES if e.stem == "gazeshiftnet_ratings")
    methods = _methods(example, tmp_path / "edits", pilot_dataset)
    args = [a for name, folder in methods.items() for a in ("--methods", f"{name}={folder}")]
    code, out, err = run_cli("study", "pilot", example, "--dataset", pilot_dataset.path, *args,
                             "--participants", 2, "--out", tmp_path / "out")
    assert code == 0, err
    assert "2 of 2 simulated participants finished, 0 excluded" in out and "minutes" in out
    assert "responses.csv" in out
    code, _, err = run_cli("study", "pilot", example, "--dataset", pilot_dataset.path, "--out", tmp_path / "o2")
    assert code == 2 and "methods.gazeshiftnet" in err and len(err.strip().splitlines()) == 1
