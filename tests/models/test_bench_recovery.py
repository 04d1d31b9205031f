"""benchmarks/bench_recovery.py: its synthetic data is a valid dataset whose maps follow the known
densities, and a tiny run ends with the headline line in the issue's form."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from analysis.metrics import cc
from datadir import Dataset

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_recovery.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_recovery", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthetic_scenes_make_a_valid_dataset_whose_maps_follow_the_density(bench, tmp_path):
    truth = bench.synthetic_dataset(tmp_path / "d", n_train=6, n_test=3, size=(96, 72), seed=3)
    held_out = bench.simulate_observers(tmp_path / "d", truth, observers=15, seed=3)
    dataset = Dataset.open(tmp_path / "d")
    assert [str(p) for p in dataset.validate()] == []
    assert sorted(dataset.pairs["split"].value_counts().items()) == [("test", 3), ("train", 6)]
    assert (dataset.pairs["n_observers_x"] == 15).all()
    # One X image per held-out pair, its own map close to its density and far from another's.
    assert len(held_out["items"]) == 3
    assert held_out["map_cc"] > 0.6
    first, second = held_out["items"][:2]
    assert cc(first["density"], second["density"]) < held_out["map_cc"]
    # Y recolours exactly one object of X, so the two densities differ only through it.
    pair_id = dataset.pairs["pair_id"].iloc[0]
    scene = truth[(pair_id, "y")][0]
    changed = [a for a, b in zip(truth[(pair_id, "x")][0]["objects"], scene["objects"]) if a != b]
    assert [o["id"] for o in changed] == [scene["edited"]]


def test_a_tiny_run_prints_each_predictor_beside_the_controls_and_the_headline_last(bench, tmp_path, monkeypatch,
                                                                                   capsys):
    monkeypatch.setattr(sys, "argv", ["bench_recovery.py", "--quick", "--pairs", "6", "--test-pairs", "3",
                                      "--steps", "2", "--observers", "4", "--json", str(tmp_path / "r.json")])
    bench.main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"recovery CC=-?\d\.\d\d centre=-?\d\.\d\d shuffle=-?\d\.\d\d", lines[-1]), lines[-1]
    text = "\n".join(lines)
    for name in ("salgan", "salg_detector"):
        assert f"\n{name} (cpu preset, 2 steps" in text
    assert "random VGG16 backbone" in text and "centre bias" in text and "shuffle (other images)" in text


def test_too_few_held_out_pairs_for_the_shuffle_are_refused(bench, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench_recovery.py", "--test-pairs", "1"])
    with pytest.raises(SystemExit, match="--test-pairs 1: the shuffle control needs at least 2"):
        bench.main()
