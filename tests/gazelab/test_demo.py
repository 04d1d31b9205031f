import pandas as pd
import pytest

from datadir import Dataset


@pytest.mark.blender
@pytest.mark.slow
def test_demo_renders_studies_and_exports_maps(run_cli, tmp_path):
    pytest.importorskip("bpy")
    code, out, err = run_cli("demo", "--out", tmp_path / "demo", "--pairs", 3, "--train-steps", 4)
    assert code == 0, err
    assert "[5/8] contact sheet" in out and "complete" in out
    assert "random vgg16 backbone" in out.lower()  # the random VGG weights are said, not hidden
    # pairs 0 and 2 train the models, pair 1 is held out: only it is edited and scored, by both predictors
    assert "evaluating its edits of split test (held out)" in out
    for folder in ("evaluation", "evaluation_salgan"):
        edits = sorted((tmp_path / f"demo/{folder}/outputs/gazeshiftnet").glob("*.png"))
        assert [edit.stem for edit in edits] == ["000001"]
    assert "predictor check (salg_detector): cc:" in out and "gazeshiftnet under salg_detector: 1 images" in out
    assert (tmp_path / "demo/runs/salg_detector/checkpoints/last.pt").is_file()
    parameters = pd.read_csv(tmp_path / "demo/evaluation/parameters/gazeshiftnet.csv", dtype={"pair_id": str})
    assert list(parameters["pair_id"]) == ["000001"] and "fg_exposure" in parameters
    page = (tmp_path / "demo/report/index.html").read_text()
    assert "Edit parameters at their limits" in page and "Realism and fidelity" in page
    report = tmp_path / "demo/report/index.html"
    assert f"the report is {report}" in out and "GazeShiftNet Table 1" in report.read_text()
    assert (tmp_path / "demo/runs/salgan/checkpoints/last.pt").is_file()
    assert (tmp_path / "demo/runs/gazeshiftnet/checkpoints/last.pt").is_file()
    dataset = Dataset.open(tmp_path / "demo/dataset")
    assert dataset.validate() == []
    table = dataset.pairs
    assert (table["x_map"] != "").all() and (table["y_map"] != "").all()
    assert (table["n_observers_x"] >= 7).all() and (table["n_observers_y"] >= 7).all()
    assert (tmp_path / "demo/contact_sheet.png").stat().st_size > 0
    # a second run resumes the render and rebuilds the study
    code, out, _ = run_cli("demo", "--out", tmp_path / "demo", "--pairs", 3, "--train-steps", 2)
    assert code == 0 and "skipped 3" in out
