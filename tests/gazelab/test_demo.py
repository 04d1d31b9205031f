import pytest

from datagen.dataset import Dataset


@pytest.mark.blender
@pytest.mark.slow
def test_demo_renders_studies_and_exports_maps(run_cli, tmp_path):
    pytest.importorskip("bpy")
    code, out, err = run_cli("demo", "--out", tmp_path / "demo", "--pairs", 2, "--train-steps", 4)
    assert code == 0, err
    assert "[5/8] contact sheet" in out and "complete" in out
    assert "random backbone" in out.lower()  # the random VGG weights are said, not hidden
    edits = sorted((tmp_path / "demo/evaluation/outputs/gazeshiftnet").glob("*.png"))
    assert len(edits) == 2 and "predictor check: cc:" in out
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
    code, out, _ = run_cli("demo", "--out", tmp_path / "demo", "--pairs", 2, "--train-steps", 2)
    assert code == 0 and "skipped 2" in out
