"""The report's study tables (analysis.report_tables, analysis.study_attention): every block kept,
the paper's order, Gatys' conditions, consistency on the image's size, and numbers printed as
the papers print them (∞, no negative zero)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from analysis import attention_shift as shift
from analysis.eval_pairs import read_pairs
from analysis.fixations import fixation_map
from analysis.report import _study_names
from analysis.report_tables import (Evaluation, consistency_table, gatys_table, ground_truth_table, human_attention,
                                    preference_table, rating_tables)
from analysis.study_attention import HUMAN_SIGMA_PX_AT_640, consistency_curve
from analysis.study_stats import (image_clicks, preference_shares, rating_summary, read_export,
                                  split_half_consistency, spearman_brown)
from analysis.table_format import interval, number, plus_minus
from datadir import Dataset

ROOT = Path(__file__).resolve().parents[2]


def _evaluation(folder, data, methods, per_image=None, summary=None) -> Evaluation:
    record = {"data": str(data), "split": "test", "methods": {m: {"kind": "outputs"} for m in methods}}
    return Evaluation(Path(folder), record,
                      per_image if per_image is not None else pd.DataFrame(columns=["method", "pair_id"]),
                      summary if summary is not None else
                      pd.DataFrame(columns=["method", "metric", "mean", "std", "n"]),
                      pd.DataFrame(columns=["method", "metric", "value", "note"]), None)


# ---------------------------------------------------------------- Gatys' design, exported by studyweb

W, H = 320, 240
CLICKS = {"original": (240.0, 170.0), "increase": (60.0, 70.0), "decrease": (10.0, 220.0)}  # object 1 at x 30-90


def _gatys_export(root: Path) -> tuple[Path, Path]:
    """studyweb/examples/gatys_latin_square.yaml on three 320x240 pairs, four participants
    answering every trial through the database (tutorial answers inside the edited object,
    sentinels in display pixels), QC decided by build_maps, exported with studyweb.export.export_csv:
    (dataset, export)."""
    from studyweb.assignment import assign
    from studyweb.db import Participant, Response, Stimulus, open_session
    from studyweb.designs import create_from_design
    from studyweb.export import export_csv
    from studyweb.maps import build_maps

    dataset = Dataset.create(root / "ds", "gatys-tiny", seed=1)
    mask = np.zeros((H, W), np.uint8)
    mask[40:100, 30:90], mask[140:200, 200:280] = 1, 2
    objects = [{"id": 1, "mask_id": 1}, {"id": 2, "mask_id": 2}]
    rows = []
    for pair_id in ("g0", "g1", "g2"):
        for side in "xy":
            cv2.imwrite(str(dataset.path / f"images/{pair_id}_{side}.png"), np.full((H, W, 3), 120, np.uint8))
            cv2.imwrite(str(dataset.path / f"masks/{pair_id}_{side}.png"), mask)
        scene = {"x": {"objects": objects}, "y": {"objects": objects}, "edit": {"type": "recolor", "object_ids": [1]}}
        (dataset.path / f"scenes/{pair_id}.json").write_text(json.dumps(scene))
        rows.append({"pair_id": pair_id, "split": "test", "source": "clevr", "edit_type": "recolor", "n_edited": 1,
                     "x_image": f"images/{pair_id}_x.png", "y_image": f"images/{pair_id}_y.png",
                     "x_mask": f"masks/{pair_id}_x.png", "y_mask": f"masks/{pair_id}_y.png",
                     "scene": f"scenes/{pair_id}.json"})
    dataset.add_pairs(rows)
    design = yaml.safe_load((ROOT / "studyweb/examples/gatys_latin_square.yaml").read_text())
    for method in design["methods"]:
        (root / method).mkdir()
        for pair_id in ("g0", "g1", "g2"):
            shutil.copyfile(dataset.path / f"images/{pair_id}_x.png", root / method / f"{pair_id}.png")
    design.update(methods={m: str(root / m) for m in design["methods"]}, per_participant="all")
    design["blocks"][0]["max_upscale"] = 3  # 320x240 images shown large enough for 10-px codes
    with open_session(f"sqlite:///{root / 'study.db'}") as db:
        experiment = create_from_design(db, design, dataset.path, "gatys")
        db.commit()
        for p in range(4):
            participant = Participant(experiment_id=experiment.id, status="trials")
            db.add(participant)
            db.flush()
            for trial in assign(db, experiment, participant):
                stimulus = db.get(Stimulus, trial.stimulus_id) if trial.stimulus_id else None
                x, y = ((100.0, 80.0) if stimulus is None else CLICKS["increase"] if trial.is_practice
                        else CLICKS[trial.spec["condition"]])
                db.add(Response(participant_id=participant.id, trial_id=trial.id, task="codecharts", question="code",
                                choice="A1", x=x + p, y=y, valid=True, correct=True if stimulus is None else None,
                                rt_ms=900.0, idempotency_key=f"k{trial.id}"))
                trial.status = "done"
            participant.status = "complete"
            db.commit()
        build_maps(db, experiment)
        db.commit()
        export_csv(db, experiment, root / "export")
    return dataset.path, root / "export"


def test_the_gatys_designs_export_gives_effect_sizes_per_condition(tmp_path):
    data, folder = _gatys_export(tmp_path)
    export = read_export(folder)
    raw = export.responses
    assert set(raw["condition"]) == {"", "original", "increase", "decrease"}
    main = raw[raw["condition"] != ""]
    assert main["method"].eq(main["condition"]).all()  # the version shown, named as the condition
    assert raw["is_practice"].eq(raw["condition"].eq("")).all()  # the tutorial's rows carry no condition
    ev = _evaluation(tmp_path, data, ["input", "increase", "decrease"],
                     per_image=pd.DataFrame({"method": ["increase"] * 3 + ["decrease"] * 3,
                                             "pair_id": ["g0", "g1", "g2"] * 2,
                                             "dp_obj": [0.2, 0.3, 0.25, -0.1, -0.12, -0.08]}))
    human = human_attention(raw, ev)
    table = gatys_table(ev, human)
    rows = table.frame[table.frame["Maps"] == "human"]
    assert sorted(set(rows["Condition"])) == ["decrease", "increase"] and (rows["images"] == 3).all()
    assert set(table.frame.loc[table.frame["Maps"] == "predictor", "Method"]) == {"increase", "decrease"}
    # Each per-image change from the main trials alone: tutorial answers (inside the object) and
    # sentinels never enter the original's map, which has the image's size.
    pair = {p.pair_id: p for p in read_pairs(data, "test")}["g1"]
    main = raw[raw["pair_id"].eq("g1") & raw["condition"].ne("")]
    sigma = HUMAN_SIGMA_PX_AT_640 * W / 640
    maps = {c: fixation_map(g[["x", "y"]].to_numpy(float), (H, W), sigma) for c, g in main.groupby("condition")}
    for condition in ("increase", "decrease"):
        expected = shift.delta_p_object(maps["original"], maps[condition], pair.region)[0]
        got = human.set_index(["condition", "pair_id"]).loc[(condition, "g1"), "dp_obj"]
        assert got == pytest.approx(expected)
    increase = rows[(rows["Condition"] == "increase") & (rows["Measure"] == "Δp_obj")]["mean"].iloc[0]
    assert float(increase) > 0.3
    assert not table.frame.astype(str).apply(lambda c: c.str.contains("-0.000")).any().any()
    assert any(note.startswith("Unit of analysis: the image") for note in table.notes)
    # A design whose conditions are not the evaluated methods cannot be compared: refused, named.
    other = _evaluation(tmp_path, data, ["input", "fgtransform_increase", "fgtransform_decrease"])
    with pytest.raises(ValueError, match=r"version '(increase|decrease)' \(column method, condition '\1'\)"):
        human_attention(raw, other)


# ---------------------------------------------------------------- consistency


def _clicks(participant: int, points, **values) -> list[dict]:
    base = {"experiment": "cc", "participant_id": participant, "task": "codecharts", "question": "code",
            "block": "", "pair_id": "p0", "side": "x", "condition": "", "method": "", "valid": True,
            "is_practice": False, "is_catch": False}
    return [{**base, "trial_id": 100 * participant + k, "x": x, "y": y, **values} for k, (x, y) in enumerate(points)]


def test_consistency_leaves_out_practice_sentinel_and_catch_rows_and_uses_the_image_size(data, tmp_path):
    rng = np.random.default_rng(0)
    main = {p: np.column_stack([rng.normal(10, 2, 3), rng.normal(9, 2, 3)]).clip(0, 20) for p in range(6)}
    rows = [r for p, points in main.items() for r in _clicks(p, points)]
    rows += _clicks(0, [(35.0, 28.0)] * 3, is_practice=True) + _clicks(7, [(36.0, 29.0)] * 3, is_practice=True)
    rows += _clicks(1, [(34.0, 27.0)], is_catch=True, question="catch")
    rows += _clicks(2, [(300.0, 200.0)], pair_id=None, side=None)  # a sentinel: display px, no image
    responses = pd.DataFrame(rows)
    assert len(image_clicks(responses)) == 18
    curve, observers = consistency_curve(responses, data, n_splits=10, seed=0)
    assert observers.to_dict() == {("p0", "x", "", ""): 6}
    # The data fixture's images are 40 x 32: the maps have that size, not the clicks' extent.
    direct = split_half_consistency(main, (32, 40), max(HUMAN_SIGMA_PX_AT_640 * 40 / 640, 1.0), n_splits=10, seed=0)
    assert curve["cc_mean"].to_numpy() == pytest.approx(direct["cc_mean"].to_numpy())
    assert curve["nss_mean"].to_numpy() == pytest.approx(direct["nss_mean"].to_numpy())
    assert curve["cc_full"].iloc[-1] == pytest.approx(spearman_brown(direct["cc_mean"].iloc[-1], 2))
    table = consistency_table(responses, _evaluation(tmp_path, data, ["input"]))
    assert list(table.frame.columns) == ["observers per half", "images", "split-half CC", "split-half NSS",
                                         "CC projected to all observers"]
    assert table.frame["CC projected to all observers"].iloc[-1] == number(curve["cc_full"].iloc[-1], 3)
    assert any(note.startswith("Unit of analysis: the displayed image") for note in table.notes)


# ---------------------------------------------------------------- preferences and ratings


def _picks(block: str, picks: list[str]) -> list[dict]:
    return [{"experiment": "sgit", "participant_id": i % 4, "trial_id": hash((block, i)) % 10**6, "task": "choose_best",
             "block": block, "question": "realism", "pair_id": f"p{i}", "side": "x",
             "shown_methods": "salggan|hag|cyclegan", "choice": choice, "valid": True}
            for i, choice in enumerate(picks)]


def test_two_blocks_asking_the_same_question_both_appear_in_the_papers_method_order():
    rows = _picks("sgit_s", ["salggan"] * 6 + ["hag"] * 3 + ["cyclegan"])
    rows += _picks("sgit_r", ["hag"] * 5 + ["salggan"] * 5)
    order = ["input", "hag", "cyclegan", "salggan"]  # the evaluation's order: baselines first, as in Table 2
    table = preference_table(preference_shares(pd.DataFrame(rows), n_draws=2000, n_resamples=200, method_order=order),
                             order)
    assert list(table.frame.columns) == ["Method", "sgit_s / realism", "sgit_r / realism"]
    assert table.frame["Method"].tolist() == ["hag", "cyclegan", "salggan", "trials",
                                              "p (all shown candidates equally likely)"]
    cells = table.frame.set_index("Method")
    assert cells.loc["salggan", "sgit_s / realism"].startswith("60.0% [")
    assert cells.loc["cyclegan", "sgit_r / realism"].startswith("0.0% [")
    assert cells.loc["trials"].tolist() == ["10", "10"]
    assert cells.loc["p (all shown candidates equally likely)"].str.endswith("(exact multinomial)").all()
    assert any("sgit_r / realism: 10 trials by 4 participants on 10 images" in n for n in table.notes)
    assert any(n.startswith("Unit of analysis: the trial's pick") for n in table.notes)


def test_rating_tables_show_per_image_means_and_both_comparisons():
    rows = [{"participant_id": p, "trial_id": 10 * p + i, "task": "rate", "block": block, "question": "score",
             "pair_id": f"p{i}", "side": "x", "method": m, "rating": float((p + i + (m == "ours") * 2) % 4)}
            for block in ("fidelity", "realism") for p in range(4) for i in range(3) for m in ("ours", "hag")]
    summary, compared = rating_tables(*rating_summary(pd.DataFrame(rows), method_order=["hag", "ours"]))
    assert summary.frame["Block"].tolist() == ["fidelity", "fidelity", "realism", "realism"]
    assert summary.frame["Method"].tolist() == ["hag", "ours"] * 2
    assert compared.frame["A vs B"].tolist() == ["hag vs ours"] * 2
    assert compared.frame["per-image test"].tolist() == ["Wilcoxon, paired"] * 2
    assert any(n.startswith("Unit of analysis: the image") for n in compared.notes)


# ---------------------------------------------------------------- numbers and names


def test_the_psnr_of_a_perfect_output_prints_as_infinity(tmp_path):
    summary = pd.DataFrame({"method": ["oracle"] * 3, "metric": ["l1_y", "psnr_y", "ssim_y"],
                            "mean": [0.0, np.inf, 1.0], "std": [0.0, np.nan, 0.0], "n": [4, 4, 4]})
    table = ground_truth_table(_evaluation(tmp_path, tmp_path, ["oracle"], summary=summary))
    assert table.frame["PSNR (dB) ↑"].tolist() == ["∞"]
    assert table.frame["L1 ↓"].tolist() == ["0.0000 ± 0.0000"]
    assert (number(np.inf, 2), number(-np.inf, 2), number(np.nan, 2)) == ("∞", "-∞", "–")
    assert plus_minus(np.inf, np.inf) == "∞"


def test_no_negative_zero_is_printed(tmp_path):
    assert (number(-0.0004, 3), number(-0.0, 1), number(np.float32(-1e-7), 2)) == ("0.000", "0.0", "0.00")
    assert number(-0.0006, 3) == "-0.001"  # a real negative keeps its sign
    assert (plus_minus(-1e-5, 1e-6, 3), interval(-1e-5, 2e-5, 3)) == ("0.000 ± 0.000", "[0.000, 0.000]")
    per_image = pd.DataFrame({"method": ["dim"] * 3, "pair_id": ["p0", "p1", "p2"], "dp_obj": [-1e-5, 1e-5, -2e-5]})
    frame = gatys_table(_evaluation(tmp_path, tmp_path, ["input", "dim"], per_image=per_image)).frame
    assert frame[["mean", "95% CI"]].iloc[0].tolist() == ["0.000", "[0.000, 0.000]"]


def test_each_study_section_is_named_after_its_experiment_and_folder(tmp_path):
    exports = [SimpleNamespace(experiment="pilot", folder=tmp_path / name / "csv") for name in ("sgit", "gatys")]
    assert _study_names(exports) == ["pilot — sgit/csv", "pilot — gatys/csv"]
    same = [SimpleNamespace(experiment="pilot", folder=tmp_path / a / "x" / "csv") for a in ("one", "two")]
    assert _study_names(same) == ["pilot — one/x/csv", "pilot — two/x/csv"]


def test_gatys_relative_change_is_the_papers_mean_of_ratios_with_the_other_readings_named(tmp_path):
    from scipy import stats

    before = np.array([0.02, 0.10, 0.20, 0.40])
    change = np.array([0.04, 0.02, 0.05, 0.04])  # the image with a small p_obj dominates the mean of ratios
    per_image = pd.DataFrame({"method": "increase", "pair_id": [f"p{i}" for i in range(4)], "dp_obj": change,
                              "dp_obj_rel": change / before, "p_obj_x": before, "entropy_change_bits": 0.1})
    table = gatys_table(_evaluation(tmp_path, tmp_path, ["input", "increase"], per_image=per_image)).frame
    rows = table.set_index("Measure")
    assert rows.loc["Δp_obj relative: mean of per-image ratios (paper)", "mean"] == f"{np.mean(change / before):.3f}"
    assert rows.loc["Δp_obj relative: median of per-image ratios", "mean"] == f"{np.median(change / before):.3f}"
    assert rows.loc["Δp_obj relative: ratio of means", "mean"] == f"{change.mean() / before.mean():.3f}"
    expected = stats.bootstrap((change, before), lambda c, b, axis=-1: c.mean(axis=axis) / b.mean(axis=axis),
                               paired=True, vectorized=True, method="percentile", n_resamples=2000, rng=0)
    low, high = expected.confidence_interval
    assert rows.loc["Δp_obj relative: ratio of means", "95% CI"] == f"[{low:.3f}, {high:.3f}]"
