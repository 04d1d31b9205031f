"""SalG-GAN and its baselines from the command line: trained (HAG: run), evaluated together by
`gazelab evaluate --runs`, and SalG-GAN's Table 3 sweep end to end in its tiny preset."""
import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")

TABLE3 = Path(__file__).parents[2] / "models/examples/salggan_table3.yaml"


@pytest.fixture(scope="module")
def detector(tmp_path_factory, scene_dataset):
    """A tiny salg_detector (SalG-GAN's SalD) trained for a few steps through the CLI."""
    from gazelab.cli import cli

    out = tmp_path_factory.mktemp("det") / "det"
    cli.main(args=[str(a) for a in ("train", "predictor", "salg_detector", "--data", scene_dataset.path, "--preset",
                                    "tiny", "--steps", 2, "--out", out, "--device", "cpu", "--no-progress")],
             standalone_mode=False)
    return out / "checkpoints/last.pt"


@pytest.mark.slow
def test_every_new_editor_trains_from_the_cli_and_one_command_evaluates_them_all(run_cli, scene_dataset, detector,
                                                                                 tmp_path):
    runs = tmp_path / "runs"
    for name in ("salggan", "cyclegan_sal", "bicyclegan_sal", "hag"):
        code, out, err = run_cli("train", "editor", name, "--data", scene_dataset.path, "--preset", "tiny",
                                 "--random-backbone", "--predictor", detector, "--steps", 2, "--batch-size", 2,
                                 "--out", runs / name, "--device", "cpu", "--no-progress")
        assert code == 0, (name, err)
        assert f"trained {name} to step" in out
    code, out, err = run_cli("evaluate", "--data", scene_dataset.path, "--runs", runs, "--predictor", detector,
                             "--split", "all", "--samples", 2, "--no-fid", "--device", "cpu", "--out", tmp_path / "eval")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "eval/per_image.csv", dtype={"pair_id": str})
    assert sorted(table["method"].unique()) == ["bicyclegan_sal", "cyclegan_sal", "hag", "input", "salggan"]
    assert (table.groupby("method").size() == 6).all()  # every pair, every method
    edited = table[table["method"] != "input"]
    assert edited[["l1_y", "kld_target", "seconds"]].notna().all().all()
    record = json.loads((tmp_path / "eval/evaluation.json").read_text())
    assert record["methods"]["salggan"]["editor"] == "salggan" and record["methods"]["hag"]["guidance"] == "target_map"
    assert "samples" in record["methods"]["bicyclegan_sal"]["options"]
    assert "samples_note" in record["methods"]["cyclegan_sal"]  # gives one output per input, and says so
    assert (tmp_path / "eval/outputs/salggan/samples/000000_2.png").is_file()


@pytest.mark.slow
def test_the_table3_sweep_runs_end_to_end_and_the_report_shows_its_ablation_table(run_cli, scene_dataset, detector,
                                                                                  tmp_path):
    sweep = tmp_path / "table3"
    code, out, err = run_cli("train", "sweep", TABLE3, "--data", scene_dataset.path, "--predictor", detector,
                             "--preset", "tiny", "--steps", 1, "--random-backbone", "--device", "cpu",
                             "--out", sweep, "--no-progress")
    assert code == 0, err
    assert out.count(": trained, step 1") == 8 and f"--runs {sweep}" in out
    code, out, err = run_cli("evaluate", "--data", scene_dataset.path, "--runs", sweep, "--predictor", detector,
                             "--split", "all", "--no-fid", "--device", "cpu", "--out", sweep / "evaluation")
    assert code == 0, err
    code, out, err = run_cli("report", "--eval", sweep / "evaluation", "--out", sweep / "report")
    assert code == 0, err
    page = (sweep / "report/index.html").read_text()
    assert "SalG-GAN Table 3 (ablations)" in page
    ablations = pd.read_csv(sweep / "report/salg_gan_table_3__ablations.csv")
    assert sorted(ablations["Method"]) == sorted(["full", "no_spath", "no_upath", "no_dl", "no_sald", "e_no_sal",
                                                  "d_no_sal", "g_no_sal"])
