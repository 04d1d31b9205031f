"""`gazelab study pilot`: every shipped example design pilots to completion with simulated
participants, on a small dataset and stand-in method outputs; simulated participants fail catch
trials at the rate asked and the summary reports what the server then decided; the default
pilot reaches the observers target with the same work for everyone; --methods folders are
relative to the current directory (the README's command)."""
from __future__ import annotations

import csv
import math

import pytest
import yaml

from datadir import Dataset
from studyweb.pilot import run_pilot
from support.study_data import EXAMPLES, example_dataset, method_outputs

NO_FAILURES = {"catch_failure_rate": 0, "sentinel_failure_rate": 0, "tutorial_failure_rate": 0}


@pytest.fixture
def pilot_dataset(tmp_path):
    """4 test-split pairs of 480x360 images with masks, maps and scenes."""
    return example_dataset(tmp_path, 4)


def _small(example, folder, **changes):
    """A copy of the example in `folder` with per_participant at most 4 (the 4 pairs hold no
    more: a larger one is an error; test_workload.py assigns the shipped examples in full) and
    `changes`."""
    values = yaml.safe_load(example.read_text())
    values["per_participant"] = min(values["per_participant"], 4)
    path = folder / example.name
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({**values, **changes}))
    return path


def test_the_examples_are_the_papers_studies():
    assert {e.stem for e in EXAMPLES} >= {"sgit_preference", "gazeshiftnet_ratings", "codecharts_attention",
                                          "sagim_salient_object"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.stem)
def test_every_example_pilots_to_completion(example, pilot_dataset, tmp_path):
    methods = method_outputs(example, tmp_path / "edits", pilot_dataset)
    summary = run_pilot(_small(example, tmp_path / "designs"), pilot_dataset.path, tmp_path / "out", methods,
                        participants=3, failure_rates=NO_FAILURES)
    assert summary["complete"] == summary["kept"] == 3 and not summary["failures"] and not summary["excluded"]
    assert summary["minutes_per_participant"] > 0 and summary["trials_per_participant"] >= 1
    low, high = summary["trials_range"]
    assert high - low <= 1  # the same work for everyone
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


def test_a_pilot_with_a_20_percent_catch_failure_rate_reports_about_20_percent_exclusions(pilot_dataset, tmp_path):
    """Two catch trials per participant and none may fail: the 2 of 10 who answer them wrongly
    (through the answer route) are screened out or excluded, as the server decides."""
    example = next(e for e in EXAMPLES if e.stem == "sgit_preference")
    design = _small(example, tmp_path / "designs", per_participant=2, observers=50,
                    catch={"every": 2, "max_failures": 0})
    summary = run_pilot(design, pilot_dataset.path, tmp_path / "out", method_outputs(example, tmp_path / "e",
                                                                                     pilot_dataset),
                        participants=10, seed=4, failure_rates={**NO_FAILURES, "catch_failure_rate": 0.2})
    assert summary["simulated_failures"] == {"catch": 2}
    assert summary["took_part"] == 10 and not summary["failures"]
    assert summary["lost"] / summary["took_part"] == pytest.approx(0.2, abs=0.1)
    with open(summary["csv"]["participants"], encoding="utf-8", newline="") as handle:
        people = list(csv.DictReader(handle))
    lost = [p for p in people if p["status"] == "screened_out" or p["qc_status"] != "kept"]
    assert len(lost) == summary["lost"] and all("catch" in p["qc_reason"] for p in lost)  # the server's reason
    assert summary["kept"] == 10 - summary["lost"]
    assert summary["recruit"] == math.ceil(summary["needed"] / (summary["kept"] / 10))


def test_the_default_pilot_reaches_the_observers_target_with_the_same_work_for_everyone(pilot_dataset, tmp_path):
    example = next(e for e in EXAMPLES if e.stem == "gazeshiftnet_ratings")
    design = _small(example, tmp_path / "designs", per_participant=3, observers=3)
    summary = run_pilot(design, pilot_dataset.path, tmp_path / "out", method_outputs(example, tmp_path / "e",
                                                                                     pilot_dataset),
                        failure_rates=NO_FAILURES)
    assert summary["needed"] == 8  # 4 pairs x 2 methods x 3 observers / 3 a block
    assert summary["complete"] == summary["kept"] >= 8 and not summary["failures"]
    assert summary["observers"]["min"] >= 3 and summary["observers"]["max"] <= 4
    assert summary["trials_range"][0] == summary["trials_range"][1]  # every finished participant: the same trials
    assert summary["recruit"] == 8 and not summary["capped"]


def test_pilot_command_prints_the_summary(run_cli, pilot_dataset, tmp_path):
    example = _small(next(e for e in EXAMPLES if e.stem == "gazeshiftnet_ratings"), tmp_path / "designs")
    methods = method_outputs(example, tmp_path / "edits", pilot_dataset)
    args = [a for name, folder in methods.items() for a in ("--methods", f"{name}={folder}")]
    code, out, err = run_cli("study", "pilot", example, "--dataset", pilot_dataset.path, *args,
                             "--participants", 2, "--catch-failure-rate", 0, "--out", tmp_path / "out")
    assert code == 0, err
    assert "2 simulated participants took part, 2 finished, 0 screened out, 0 excluded by QC, 2 kept" in out
    assert "answered wrongly on purpose: catch 0 (0% rate)" in out
    assert "minutes" in out and "responses.csv" in out and "each finished participant: 9 trials" in out
    assert "to reach 25 observers per image: 50 participants who finish and are kept; recruit about 50" in out
    assert "warning: block 'realism' (rate, realism scale) has no catch trials" in out
    code, _, err = run_cli("study", "pilot", example, "--dataset", pilot_dataset.path, "--out", tmp_path / "o2")
    assert code == 2 and "methods.gazeshiftnet" in err and len(err.strip().splitlines()) == 1


def test_relative_methods_resolve_against_the_current_directory(run_cli, tmp_path, monkeypatch):
    """The README's command: the shipped SGIT design, --methods NAME=edits/NAME from where it runs."""
    example = next(e for e in EXAMPLES if e.stem == "sgit_preference")
    dataset = example_dataset(tmp_path / "data", 10)  # the design's per_participant
    method_outputs(example, tmp_path / "edits", dataset)
    monkeypatch.chdir(tmp_path)
    args = [a for name in ("salggan", "hag", "cyclegan", "bicyclegan") for a in ("--methods", f"{name}=edits/{name}")]
    code, out, err = run_cli("study", "pilot", example, "--dataset", "data/ds", *args, "--participants", 2,
                             "--out", "pilot/")
    assert code == 0, err
    assert "2 simulated participants took part, 2 finished" in out
    code, _, err = run_cli("study", "pilot", example, "--dataset", "data/ds", "--methods", "hag=nowhere/hag",
                           *args[:2], "--participants", 1, "--out", "pilot/")
    assert code == 2 and f"--methods hag=nowhere/hag: folder {tmp_path / 'nowhere' / 'hag'} does not exist" in err
