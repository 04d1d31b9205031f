"""models.runs.train: what `gazelab train` reports, on a tiny SalG-GAN detector (CPU, seconds)."""

import csv

import pytest

from datadir import Dataset
from models.runs import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_reports_the_last_validation_and_echoes_loss_lines(tmp_path, write_pair):
    dataset = Dataset.create(tmp_path / "ds", "tiny", seed=3)
    rows = [write_pair(dataset.path, f"{i:06d}", size=(32, 24)) for i in range(4)]
    rows[3]["split"] = "val"
    dataset.add_pairs(rows)
    lines = []
    result = train("predictor", "salg_detector", dataset.path, tmp_path / "run", preset="tiny", steps=4,
                   val_every=2, device="cpu", progress=False, echo=lines.append)
    with open(tmp_path / "run/val.csv", newline="") as handle:
        validations = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in validations] == [2, 4]
    assert result["validation"] == {"step": 4, **{k: float(v) for k, v in validations[-1].items() if k != "step"}}
    assert set(result["validation"]) == {"step", "cc", "kld", "sim"}
    assert [line.split(":")[0] for line in lines if line.startswith("step ")] == ["step 1/4", "step 2/4", "step 3/4",
                                                                                   "step 4/4"]
