"""`gazelab train sweep` / models.sweep: several runs from one YAML file, resumable."""
import pytest

pytest.importorskip("torch")

from models.sweep import load_sweep  # noqa: E402


def _write(path, text):
    path.write_text(text)
    return path


def test_a_sweep_trains_each_run_into_its_folder_and_a_rerun_skips_finished_runs(run_cli, scene_dataset, tmp_path,
                                                                                  one_thread):
    sweep = _write(tmp_path / "sweep.yaml", "kind: predictor\nname: salgan\npreset: tiny\nsteps: 2\nruns:\n"
                   "  - {name: base}\n  - {name: slow, overrides: {lr: 1.0e-5}}\n")
    args = ["train", "sweep", sweep, "--data", scene_dataset.path, "--out", tmp_path / "runs", "--random-backbone",
            "--device", "cpu", "--no-progress"]
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert "base: trained, step 2" in out and "slow: trained, step 2" in out
    assert "lr: 1.0e-05" in (tmp_path / "runs/slow/checkpoints/config.yaml").read_text()
    code, out, err = run_cli(*args)
    assert code == 0 and "run base: done (step 2), skipped" in out and "slow: done" in out
    code, out, err = run_cli(*args, "--steps", 3)
    assert code == 0, err
    assert "base: resumed, step 3" in out


@pytest.mark.parametrize("text, message", [
    ("kind: model\nname: salgan\nruns: [{name: a}]\n", r"kind must be 'editor' or 'predictor'"),
    ("kind: predictor\nname: nope\nruns: [{name: a}]\n", r"unknown predictor 'nope'"),
    ("kind: predictor\nname: salgan\nruns: []\n", r"runs must be a non-empty list"),
    ("kind: predictor\nname: salgan\nruns: [{name: a}, {name: a}]\n", r"run name 'a' appears twice"),
    ("kind: predictor\nname: salgan\nruns: [{name: a, lr: 1}]\n", r"run 'a' has unknown key\(s\) \['lr'\]"),
    ("kind: predictor\nname: salgan\nruns: [{name: a, ablation: no_dl}]\n", r"salgan has no ablation 'no_dl'"),
    ("kind: editor\nname: salggan\nruns: [{name: a, ablation: no_such}]\n", r"ablations: d_no_sal, e_no_sal"),
    ("kind: predictor\nname: salgan\nsteps: 2\nrun: []\n", r"unknown key\(s\) \['run'\]"),
])
def test_bad_sweep_files_are_refused_before_anything_trains(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_sweep(_write(tmp_path / "sweep.yaml", text))


def test_the_shipped_table3_sweep_names_every_ablation_of_salggan():
    from pathlib import Path

    from models.editors.salggan import ABLATIONS

    spec = load_sweep(Path(__file__).parents[2] / "models/examples/salggan_table3.yaml")
    assert sorted(r["ablation"] for r in spec["runs"] if r.get("ablation")) == sorted(ABLATIONS)
    assert [r["name"] for r in spec["runs"]][0] == "full"
