import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from datadir import Dataset
from gazelab import __version__


def test_version_and_help(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and __version__ in out
    code, out, _ = run_cli("--help")
    assert code == 0
    for command in ("datagen", "study", "train", "edit", "dataset", "score", "evaluate", "report"):
        assert f"\n  {command} " in out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["bogus"], "No such command 'bogus'"),
        (["dataset", "info"], "Missing argument 'DIRECTORY'"),
        (["dataset", "validate", "/no/such/dir"], "dataset.json is missing"),
        (["score", "--pred", "/no/such/dir", "--gt", ".", "--out", "x.csv"], "does not exist"),
        (["dataset", "info", ".", "--colour"], "No such option '--colour'"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(run_cli, args, fragment):
    code, out, err = run_cli(*args)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and fragment in err and "Traceback" not in err


def test_console_script_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "from gazelab.cli import main; main()", "dataset", "info", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("gazelab: error:") and "Traceback" not in result.stderr


def test_dataset_info_and_validate_on_a_real_folder(run_cli, dataset):
    code, out, _ = run_cli("dataset", "info", dataset.path)
    assert code == 0
    assert "pairs: 3" in out and "train 3" in out and "recolor 3" in out and "mean 7.5" in out
    code, out, _ = run_cli("dataset", "info", dataset.path, "--json")
    assert json.loads(out)["splits"] == {"train": 3}
    code, out, _ = run_cli("dataset", "validate", dataset.path)
    assert code == 0 and out.startswith("ok: 3 pairs")


def test_dataset_validate_reports_each_problem_and_exits_1(run_cli, dataset):
    (dataset.path / "images/000001_x.png").unlink()
    cv2.imwrite(str(dataset.path / "masks/000002_y.png"), np.full((12, 16), 40, np.uint8))
    code, out, err = run_cli("dataset", "validate", dataset.path)
    assert code == 1
    lines = out.strip().splitlines()
    assert lines == [
        "pair 000001: missing: x_image images/000001_x.png does not exist",
        "pair 000002: mask_ids: y_mask holds ids [40] that no object in scene y has (ids [1, 2])",
    ]
    assert "2 problem(s)" in err
    assert len(Dataset.open(dataset.path).pairs) == 3  # validation changes nothing


def test_datagen_import_and_preview_commands(run_cli, tmp_path):
    for side, value in (("x", 20), ("y", 220)):
        (tmp_path / side).mkdir()
        for stem in ("a", "b"):
            cv2.imwrite(str(tmp_path / side / f"{stem}.png"), np.full((12, 16, 3), value, np.uint8))
    code, out, _ = run_cli("datagen", "import-pairs", "--x-dir", tmp_path / "x", "--y-dir", tmp_path / "y",
                           "--out", tmp_path / "ds")
    assert code == 0 and "imported 2 pairs" in out
    code, out, _ = run_cli("dataset", "validate", tmp_path / "ds")
    assert code == 0
    code, out, _ = run_cli("datagen", "preview", tmp_path / "ds", "--out", tmp_path / "sheet.png")
    assert code == 0 and (tmp_path / "sheet.png").stat().st_size > 0
    cv2.imwrite(str(tmp_path / "y" / "c.png"), np.zeros((12, 16, 3), np.uint8))
    code, _, err = run_cli("datagen", "import-pairs", "--x-dir", tmp_path / "x", "--y-dir", tmp_path / "y",
                           "--out", tmp_path / "ds")
    assert code == 2 and "without a counterpart" in err and len(err.splitlines()) == 1


def _score_folders(tmp_path):
    from analysis.fixations import fixation_map
    from datadir.maps import save_map

    rng = np.random.default_rng(0)
    (tmp_path / "pred").mkdir(), (tmp_path / "gt").mkdir()
    rows = ["image,x,y,participant"]
    for k in range(3):
        points = rng.uniform(0, [32, 24], size=(12, 2))
        save_map(tmp_path / f"gt/im{k}.npy", fixation_map(points, (24, 32), 2))
        save_map(tmp_path / f"pred/im{k}.png", fixation_map(points, (24, 32), 3))
        rows += [f"im{k}.jpg,{x},{y},p1" for x, y in points]
    (tmp_path / "fix.csv").write_text("\n".join(rows) + "\n")


def test_score_command_writes_one_row_per_image(run_cli, tmp_path):
    import pandas as pd

    _score_folders(tmp_path)
    code, out, _ = run_cli("score", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt",
                           "--fixations", tmp_path / "fix.csv", "--out", tmp_path / "scores.csv")
    assert code == 0 and "scored 3 images" in out
    table = pd.read_csv(tmp_path / "scores.csv")
    assert list(table["name"]) == ["im0", "im1", "im2"]
    assert {"nss", "cc", "sim", "kld", "auc_judd", "auc_borji", "sauc"} <= set(table.columns)
    assert (table["cc"] > 0.5).all() and (table["auc_judd"] > 0.7).all()
    code, out, _ = run_cli("score", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt",
                           "--metrics", "cc,kld", "--out", tmp_path / "maps_only.csv")
    assert code == 0
    assert code == 0 and list(pd.read_csv(tmp_path / "maps_only.csv").columns) == ["name", "cc", "kld"]
    controls = pd.read_csv(tmp_path / "maps_only.controls.csv")  # the honest checks, scored alongside
    assert sorted(set(controls["model"])) == ["centre_bias", "predictor", "shuffle"] and len(controls) == 9
    assert "controls (centre bias, other scenes' maps)" in out and out.count("  cc: predictor") == 1


def test_score_command_reads_the_exact_density_where_a_stem_has_npy_and_png(run_cli, tmp_path):
    """`gazelab predict` and a dataset's maps/ write both a .npy density and an 8-bit .png per stem."""
    import pandas as pd

    from datadir.maps import load_map, save_map

    _score_folders(tmp_path)
    for k in range(3):
        save_map(tmp_path / f"pred/im{k}.npy", load_map(tmp_path / f"pred/im{k}.png") + 1.0)  # differs from the PNG
        save_map(tmp_path / f"gt/im{k}.png", load_map(tmp_path / f"gt/im{k}.npy"))
    code, _, err = run_cli("score", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--metrics", "cc",
                           "--no-controls", "--out", tmp_path / "s.csv")
    assert code == 0, err
    from analysis.metrics import cc
    expected = [cc(load_map(tmp_path / f"pred/im{k}.npy"), load_map(tmp_path / f"gt/im{k}.npy")) for k in range(3)]
    assert pd.read_csv(tmp_path / "s.csv")["cc"].tolist() == pytest.approx(expected)


def test_score_command_reports_missing_counterparts_by_name(run_cli, tmp_path):
    _score_folders(tmp_path)
    (tmp_path / "gt/im1.npy").unlink()
    args = ["score", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", tmp_path / "s.csv"]
    code, _, err = run_cli(*args)
    assert code == 2 and "im1" in err and len(err.splitlines()) == 1
    code, out, err = run_cli(*args, "--skip-missing")
    assert code == 0 and "scored 2 images" in out and "skipping im1" in err
    code, _, err = run_cli(*args, "--skip-missing", "--metrics", "nss")
    assert code == 2 and "need --fixations" in err


def test_import_pairs_again_after_new_photos_and_an_aborted_import(run_cli, tmp_path):
    """The issue's sequence: 'a_b' imported; 'a b' added and imported; then an import that stops on a
    pair of two sizes leaves no image behind; `dataset validate` names any file no row lists."""
    def photos(stem, value, y_size=(16, 12)):
        cv2.imwrite(str(tmp_path / "x" / f"{stem}.jpg"), np.full((12, 16, 3), value, np.uint8))
        cv2.imwrite(str(tmp_path / "y" / f"{stem}.jpg"), np.full((y_size[1], y_size[0], 3), value, np.uint8))

    (tmp_path / "x").mkdir(), (tmp_path / "y").mkdir()
    args = ["datagen", "import-pairs", "--x-dir", tmp_path / "x", "--y-dir", tmp_path / "y", "--out", tmp_path / "ds"]
    photos("a_b", 40)
    assert run_cli(*args)[:2] == (0, f"imported 1 pairs (0 already there) into {tmp_path / 'ds'}\n")
    photos("a b", 160)
    assert run_cli(*args)[:2] == (0, f"imported 1 pairs (1 already there) into {tmp_path / 'ds'}\n")
    table = Dataset.open(tmp_path / "ds").pairs
    assert sorted(cv2.imread(str(tmp_path / "ds" / p))[0, 0, 0] for p in table["x_image"]) == [40, 160]
    photos("m", 90), photos("zz", 90, y_size=(20, 12))
    code, _, err = run_cli(*args)
    assert code == 2 and "20x12" in err and len(err.splitlines()) == 1
    images = sorted(p.name for p in (tmp_path / "ds/images").iterdir())
    assert images == sorted(f"{pid}_{side}.png" for pid in table["pair_id"] for side in "xy")
    code, out, _ = run_cli("dataset", "validate", tmp_path / "ds")
    assert (code, out) == (0, f"ok: 2 pairs in {tmp_path / 'ds'} follow the dataset contract\n")
    cv2.imwrite(str(tmp_path / "ds/images/m_x.png"), np.zeros((12, 16, 3), np.uint8))  # as an old import left it
    code, out, err = run_cli("dataset", "validate", tmp_path / "ds")
    assert code == 1 and out == "dataset: unlisted: images/m_x.png is a file that no pairs.csv row lists\n"
