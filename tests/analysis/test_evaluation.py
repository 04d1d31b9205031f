"""`gazelab.evaluation` / `gazelab evaluate` and `analysis.report` / `gazelab report` on a tiny dataset."""
import cv2
import numpy as np
import pandas as pd
import pytest

from analysis import fidelity
from gazelab.evaluation import MethodSpec, evaluate, parse_methods
from analysis.report import build_report

W, H = 40, 32  # the size of the conftest dataset's images

def test_folder_methods_are_scored_per_image_with_gaps_named_and_means_over_the_common_pairs(data, outputs, tmp_path):
    out = tmp_path / "eval"
    methods = parse_methods([f"oracle={outputs['oracle']}", f"dim={outputs['dim']}"])
    record = evaluate(data, methods, out, fid=False, progress=False)
    table = pd.read_csv(out / "per_image.csv", dtype={"pair_id": str})
    assert {"pair_id", "method", "l1_y", "psnr_y", "ssim_y", "l1_x", "mse_x"} <= set(table.columns)
    oracle = table[table["method"] == "oracle"]
    assert sorted(oracle["pair_id"]) == ["p0", "p1", "p2", "p3"]  # the train pair p4 is not in split test
    assert oracle["l1_y"].max() == 0 and oracle["ssim_y"].min() == pytest.approx(1.0)
    reference = table[table["method"] == "input"].set_index("pair_id")
    assert reference["l1_x"].max() == 0
    x0, y0 = (cv2.imread(str(data / f"images/p0_{s}.png"))[..., ::-1] for s in "xy")
    assert reference.loc["p0", "l1_y"] == pytest.approx(fidelity.l1(x0, y0))
    assert reference.loc["p0", "ssim_y"] == pytest.approx(fidelity.ssim(x0, y0))
    # the gaps are named with their reasons, not averaged over
    assert set(record["missing"]["dim"]) == {"p1", "p2"}
    assert "no file p1.png" in record["missing"]["dim"]["p1"] and "16×12" in record["missing"]["dim"]["p2"]
    summary = pd.read_csv(out / "summary.csv")
    row = summary[(summary["method"] == "oracle") & (summary["metric"] == "l1_x")].iloc[0]
    assert row["n"] == 2 and record["common_pairs"] == 2  # p0 and p3, which every method has
    assert row["mean"] == pytest.approx(table[(table["method"] == "oracle") & table["pair_id"].isin(["p0", "p3"])]
                                        ["l1_x"].mean())
    assert "seconds" not in table or table.loc[table["method"] == "dim", "seconds"].isna().all()


def test_a_rerun_resumes_and_refuses_a_changed_source(data, outputs, tmp_path):
    out = tmp_path / "eval"
    evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), out, fid=False, progress=False)
    lines = (out / "metrics/oracle.jsonl").read_text().splitlines()
    (out / "metrics/oracle.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])  # cut short mid-row
    seen = []
    evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), out, fid=False, progress=False, echo=seen.append)
    assert "  oracle: 2 pairs scored before, 2 to go" in seen
    table = pd.read_csv(out / "per_image.csv")
    assert len(table[table["method"] == "oracle"]) == 4
    with pytest.raises(ValueError, match=r"already holds method 'oracle' from .*oracle, not .*dim"):
        evaluate(data, parse_methods([f"oracle={outputs['dim']}"]), out, fid=False, progress=False)
    with pytest.raises(ValueError, match=r"split = 'test', not 'all'"):
        evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), out, split="all", fid=False, progress=False)


def test_predictor_metrics_and_the_predictor_check(data, outputs, centre_bias, tmp_path):
    out = tmp_path / "eval"
    record = evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), out, predictor=centre_bias,
                      fid=False, progress=False)
    table = pd.read_csv(out / "per_image.csv")
    for column in ("sal_increase", "sal_increase_rel", "wfbeta", "cc_mask", "dp_obj", "kld_target", "sagim_c1"):
        assert table[column].notna().all(), column
    # a centre bias predicts the same map for every image: no attention shift, and the check says so
    assert np.allclose(table["sal_increase"], 0, atol=1e-6) and np.allclose(table["dp_obj"], 0, atol=1e-6)
    assert record["predictor_check"]["status"] == "checked"
    assert any("beats neither control" in v or "no image-specific" in v for v in record["predictor_check"]["verdicts"])
    assert (out / "maps/input/p0.npy").is_file() and (out / "predictor_check.csv").is_file()


def test_lpips_columns_through_the_test_only_weights_and_unavailable_without_weights(data, outputs, tmp_path,
                                                                                      monkeypatch):
    pytest.importorskip("lpips")
    out = tmp_path / "eval"
    record = evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), out, fid=False, progress=False,
                      _random_weights_for_tests=True)
    table = pd.read_csv(out / "per_image.csv")
    assert table[["lpips_x", "lpips_x_bg", "lpips_x_fg"]].notna().all().all()
    assert table.loc[table["method"] == "input", "lpips_x"].max() == pytest.approx(0, abs=1e-6)
    assert "random weights" in record["lpips"]["status"]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    record = evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), tmp_path / "eval2", progress=False)
    assert record["lpips"]["status"].startswith("unavailable:")
    assert "lpips_x" not in pd.read_csv(tmp_path / "eval2/per_image.csv").columns
    set_metrics = pd.read_csv(tmp_path / "eval2/set_metrics.csv")
    fid = set_metrics[set_metrics["metric"] == "fid"]
    assert len(fid) == 2 and fid["value"].isna().all() and fid["note"].str.startswith("unavailable:").all()


@pytest.mark.parametrize("call, message", [
    (lambda d, o: evaluate(d, [], o, split="val"), r"no pairs of split 'val' \(it has .*test.*\).*--split all"),
    (lambda d, o: evaluate(d, [MethodSpec("input", "outputs", str(o))], o), r"'input' is reserved"),
    (lambda d, o: parse_methods(["oracle"]), r"expected NAME=CHECKPOINT or NAME=FOLDER"),
    (lambda d, o: parse_methods([f"bad name={d}"]), r"method name 'bad name'"),
    (lambda d, o: parse_methods([f"a={d}/nothing"]), r"neither a checkpoint file nor a folder"),
    (lambda d, o: parse_methods([f"a={d}", f"a={d}"]), r"a given more than once"),
])
def test_bad_input_is_refused_with_a_clear_message(data, tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(data, tmp_path / "eval")


def test_report_refuses_a_study_export_of_other_images(data, outputs, study_export, tmp_path):
    evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), tmp_path / "eval", fid=False, progress=False)
    other = study_export(tmp_path / "other", "elsewhere", ["q7", "q8"])
    with pytest.raises(ValueError, match=r"about pairs \['q7', 'q8'\], none of which the evaluation"):
        build_report(tmp_path / "eval", tmp_path / "report", studies=[other])
    with pytest.raises(ValueError, match=r"is not a finished evaluation: it lacks evaluation.json"):
        build_report(tmp_path / "nothing", tmp_path / "report")


def test_evaluate_and_report_from_the_command_line(run_cli, data, outputs, tmp_path):
    code, stdout, err = run_cli("evaluate", "--data", data, "--methods", f"oracle={outputs['oracle']}", "--methods",
                                f"dim={outputs['dim']}", "--no-fid", "--out", tmp_path / "eval")
    assert code == 0, err
    assert "dim: no output for 2 pair(s)" in stdout and f"{tmp_path / 'eval'}/per_image.csv" in stdout
    code, stdout, err = run_cli("report", "--eval", tmp_path / "eval", "--out", tmp_path / "report")
    assert code == 0, err and f"report: {tmp_path / 'report'}/index.html" in stdout
    code, _, err = run_cli("evaluate", "--data", data, "--methods", "oracle", "--out", tmp_path / "e2")
    assert code == 2 and err.startswith("gazelab: error:") and "NAME=CHECKPOINT" in err and "Traceback" not in err
    code, _, err = run_cli("evaluate", "--data", data, "--out", tmp_path / "e3")
    assert code == 2 and "give at least one method" in err


def _stimuli(folder, rows):
    pd.DataFrame(rows, columns=["stimulus_id", "pair_id", "side", "method", "width", "height", "pixel_sha256",
                                "image"]).to_csv(folder / "stimuli.csv", index=False)


def test_report_refuses_a_study_whose_method_images_differ_from_the_evaluated_ones(data, outputs, study_export,
                                                                                    tmp_path):
    from analysis.eval_pairs import pixel_digest, read_rgb

    evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), tmp_path / "eval", fid=False, progress=False)
    digests = pd.read_csv(tmp_path / "eval/outputs.csv").set_index(["method", "pair_id"])["pixel_sha256"]
    assert digests[("oracle", "p0")] == pixel_digest(read_rgb(outputs["oracle"] / "p0.png"))
    assert digests[("input", "p0")] == pixel_digest(read_rgb(data / "images/p0_x.png"))
    study = study_export(tmp_path / "study", "sgit", ["p0", "p1"])
    same = [[1, "p0", "x", "oracle", W, H, digests[("oracle", "p0")], "a.png"],
            [2, "p0", "x", "original", W, H, digests[("input", "p0")], "b.png"],
            [3, "p0", "x", "dim", W, H, "0" * 64, "c.png"]]
    _stimuli(study, same)
    page = build_report(tmp_path / "eval", tmp_path / "report", studies=[study]).read_text()
    assert "method dim was not evaluated" in page
    _stimuli(study, same + [[4, "p1", "x", "oracle", W, H, digests[("input", "p1")], "d.png"]])  # X shown as oracle
    with pytest.raises(ValueError, match=r"showed other images than the evaluation .* \(oracle: pair\(s\) p1\)"):
        build_report(tmp_path / "eval", tmp_path / "report", studies=[study])
    (study / "stimuli.csv").unlink()
    page = build_report(tmp_path / "eval", tmp_path / "report", studies=[study]).read_text()
    assert "could not be matched to the evaluated ones" in page


def test_the_report_always_shows_the_predictor_check_table(data, outputs, centre_bias, tmp_path):
    import html as html_lib

    evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), tmp_path / "eval", predictor=centre_bias,
             fid=False, progress=False, split="all")
    check = pd.read_csv(tmp_path / "eval/predictor_check.csv", keep_default_na=False)
    shuffle = check[check["model"] == "shuffle"]
    assert all(name.split("/")[0] != partner.split("/")[0] for name, partner in zip(shuffle["name"], shuffle["partner"]))
    page = html_lib.unescape(build_report(tmp_path / "eval", tmp_path / "report").read_text())
    assert "Predictor check" in page and "p vs shuffle (Wilcoxon, one-sided)" in page
    assert "Unit of analysis: the image (10 evaluated X and Y images" in page
    table = pd.read_csv(tmp_path / "report/predictor_check.csv")
    assert list(table["n"]) == [10, 10, 10] and table["Metric"].str.startswith(("cc", "sim", "kld")).all()


def test_region_fidelity_to_x_inside_and_outside_the_edited_objects(data, outputs, tmp_path):
    from skimage.metrics import structural_similarity

    from analysis.eval_pairs import read_pairs

    out = tmp_path / "eval"
    evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), out, fid=False, c2st=False, progress=False)
    table = pd.read_csv(out / "per_image.csv", dtype={"pair_id": str}).set_index(["method", "pair_id"])
    pair = read_pairs(data, "test")[0]
    y = pair.y
    # the oracle is Y, which differs from X in the edited box only: no change outside it
    assert table.loc[("oracle", "p0"), "l1_x_bg"] == 0
    inside = pair.region
    expected_l1 = np.abs(y.astype(float) - pair.x)[inside].mean() / 255
    assert table.loc[("oracle", "p0"), "l1_x_fg"] == pytest.approx(expected_l1, rel=1e-12) and expected_l1 > 0.1
    _, full = structural_similarity(pair.x, y, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    ssim = full.mean(axis=2)
    assert table.loc[("oracle", "p0"), "ssim_x_fg"] == pytest.approx(ssim[inside].mean(), abs=1e-9)
    assert table.loc[("oracle", "p0"), "ssim_x_bg"] == pytest.approx(ssim[~inside].mean(), abs=1e-9)
    assert table.loc[("oracle", "p0"), "ssim_x_fg"] < 0.5 < table.loc[("oracle", "p0"), "ssim_x_bg"] < 1
    reference = table.loc["input"]
    assert (reference[["l1_x_bg", "l1_x_fg"]] == 0).all(axis=None)
    assert np.allclose(reference[["ssim_x_bg", "ssim_x_fg"]], 1, atol=1e-12)


def test_region_fidelity_is_skipped_with_the_region_note_when_there_is_no_region(data):
    from analysis.eval_pairs import pair_metrics, read_pairs

    pair = read_pairs(data, "test")[0]
    pair.region, pair.region_note = None, "no object masks"
    values, skipped = pair_metrics(pair, pair.y)
    assert not {"ssim_x_bg", "ssim_x_fg", "l1_x_bg", "l1_x_fg"} & set(values)
    assert {skipped[k] for k in ("ssim_x_bg", "ssim_x_fg", "l1_x_bg", "l1_x_fg")} == {"no object masks"}
    pair.region = np.ones(pair.x.shape[:2], bool)  # the edited objects cover the whole image: no background
    values, skipped = pair_metrics(pair, pair.y)
    assert "ssim_x_fg" in values and "ssim_x_bg" not in values and "cover the whole image" in skipped["ssim_x_bg"]


def test_realism_c2st_per_method_against_x_with_its_interval_or_why_not(data, outputs, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "eval"
    evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), out, fid=False, progress=False)
    rows = pd.read_csv(out / "set_metrics.csv").set_index(["metric", "method"])
    assert rows.loc[("realism_c2st", "input"), "note"] == "the reference"
    assert np.isnan(rows.loc[("realism_c2st", "input"), "value"])
    oracle = rows.loc[("realism_c2st", "oracle")]
    assert oracle["n_test"] == 4 and oracle["n_images"] == 4  # 4 common pairs, half of them held out, 2 images each
    assert 0 <= oracle["ci_low"] <= oracle["value"] <= oracle["ci_high"] <= 1 and 0 < oracle["p_value"] <= 1
    assert "held-out accuracy" in oracle["note"]
    assert rows.loc[("fid", "oracle"), "note"] == "not computed (--no-fid)"
    # the realism C2ST of identical images is exactly chance: an output that is X itself
    evaluate(data, parse_methods([f"copy={_copy_of_x(data, tmp_path)}"]), tmp_path / "copy", fid=False,
             progress=False)
    copy = pd.read_csv(tmp_path / "copy/set_metrics.csv").set_index(["metric", "method"]).loc[("realism_c2st", "copy")]
    assert copy["value"] == 0.5 and copy["ci_low"] < 0.5 < copy["ci_high"]
    # too few common pairs, or switched off: a note, never a number
    evaluate(data, parse_methods([f"dim={outputs['dim']}"]), tmp_path / "few", fid=False, progress=False)
    few = pd.read_csv(tmp_path / "few/set_metrics.csv").set_index(["metric", "method"]).loc[("realism_c2st", "dim")]
    assert np.isnan(few["value"]) and few["note"] == "needs at least 4 pairs, the methods share 2"
    evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), tmp_path / "off", fid=False, c2st=False,
             progress=False)
    off = pd.read_csv(tmp_path / "off/set_metrics.csv").set_index(["metric", "method"]).loc[("realism_c2st", "oracle")]
    assert np.isnan(off["value"]) and off["note"] == "not computed (--no-c2st)"


def test_the_c2st_switch_on_the_command_line(run_cli, data, outputs, tmp_path):
    code, _, err = run_cli("evaluate", "--data", data, "--methods", f"oracle={outputs['oracle']}", "--no-fid",
                           "--no-c2st", "--out", tmp_path / "eval")
    assert code == 0, err
    rows = pd.read_csv(tmp_path / "eval/set_metrics.csv")
    assert list(rows.loc[rows["metric"] == "realism_c2st", "note"]) == ["the reference", "not computed (--no-c2st)"]


def _copy_of_x(data, tmp_path):
    import shutil

    folder = tmp_path / "copy_of_x"
    folder.mkdir()
    for i in range(4):
        shutil.copyfile(data / f"images/p{i}_x.png", folder / f"p{i}.png")
    return folder


def test_the_report_shows_realism_and_fidelity_per_method(data, outputs, tmp_path):
    import html as html_lib

    pytest.importorskip("torch")
    evaluate(data, parse_methods([f"oracle={outputs['oracle']}", f"copy={_copy_of_x(data, tmp_path)}"]),
             tmp_path / "eval", fid=False, progress=False)
    page = html_lib.unescape(build_report(tmp_path / "eval", tmp_path / "report").read_text())
    assert "Realism and fidelity" in page and "Unit of analysis: for the C2ST the held-out image" in page
    table = pd.read_csv(tmp_path / "report/realism_and_fidelity.csv", keep_default_na=False).set_index("Method")
    assert list(table.index) == ["oracle", "copy"]  # edited methods only: the input is the reference
    assert table.loc["copy", "C2ST accuracy [95% CI]"].startswith("0.50 [") and table.loc["copy", "held-out images"] == 4
    assert table.loc["copy", "SSIM FG"] == "1.000 ± 0.000" and table.loc["copy", "L1 BG ↓"] == "0.0000 ± 0.0000"
    assert table.loc["oracle", "L1 BG ↓"] == "0.0000 ± 0.0000" and table.loc["oracle", "L1 FG"] != "0.0000 ± 0.0000"
    assert "C2ST: held-out accuracy of a small CNN" in page
    evaluate(data, parse_methods([f"dim={outputs['dim']}"]), tmp_path / "few", fid=False, progress=False)
    page = html_lib.unescape(build_report(tmp_path / "few", tmp_path / "report2").read_text())
    assert "C2ST dim: needs at least 4 pairs, the methods share 2" in page
