"""The papers' tables, rebuilt from an evaluation folder (`analysis.evaluation`) and study exports.

Each builder returns a `Table` (a DataFrame in the paper's layout, its caption, and notes: what
is missing and why) or None when its inputs are absent entirely — then `missing_line` says so.
Values are formatted as the papers print them (SalG-GAN: mean ± std; GazeShiftNet: × 100; SaGIM:
percentages); the raw numbers stay in the evaluation's CSVs.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.evaluation import LOCAL_DS_REGIONS, REFERENCE
from analysis.study_attention import (MIN_OBSERVERS, consistency_curve,  # noqa: F401 (human_attention: the report's)
                                      human_attention)
from analysis.table_format import interval as _interval
from analysis.table_format import number as _number
from analysis.table_format import p_value as _p
from analysis.table_format import plus_minus as _pm
from analysis.study_stats import attention_change, has_flattened


@dataclass
class Evaluation:
    """An evaluation folder as read back: evaluation.json and the tables."""

    folder: Path
    record: dict
    per_image: pd.DataFrame
    summary: pd.DataFrame
    set_metrics: pd.DataFrame
    predictor_check: pd.DataFrame | None

    @property
    def methods(self) -> list[str]:
        return list(self.record["methods"])

    @property
    def edited_methods(self) -> list[str]:
        return [m for m in self.methods if m != REFERENCE]

    def mean(self, method: str, metric: str) -> tuple[float, float, int]:
        row = self.summary[(self.summary["method"] == method) & (self.summary["metric"] == metric)]
        if row.empty:
            return math.nan, math.nan, 0
        return float(row["mean"].iloc[0]), float(row["std"].iloc[0]), int(row["n"].iloc[0])

    def has(self, metric: str) -> bool:
        part = self.summary[self.summary["metric"] == metric]
        return bool((part["n"] > 0).any())


@dataclass
class Table:
    title: str
    caption: str
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def load_evaluation(folder) -> Evaluation:
    """An evaluation folder written by `gazelab evaluate`; ValueError naming what is missing."""
    folder = Path(folder)
    needed = ["evaluation.json", "per_image.csv", "summary.csv", "set_metrics.csv"]
    absent = [name for name in needed if not (folder / name).is_file()]
    if absent:
        raise ValueError(f"--eval {folder} is not a finished evaluation: it lacks {', '.join(absent)} "
                         "(run `gazelab evaluate ... --out` there first)")
    record = json.loads((folder / "evaluation.json").read_text())
    check = folder / "predictor_check.csv"
    return Evaluation(folder, record, pd.read_csv(folder / "per_image.csv", dtype={"pair_id": str}),
                      pd.read_csv(folder / "summary.csv"), pd.read_csv(folder / "set_metrics.csv"),
                      pd.read_csv(check, dtype={"name": str}) if check.is_file() else None)


# ---------------------------------------------------------------- computational tables


def salggan_table1(ev: Evaluation) -> Table:
    """SalG-GAN Table 1: FID, local DS and saliency KLD (mean ± std) per method."""
    rows, notes = [], []
    for method in ev.edited_methods:
        fid = ev.set_metrics[(ev.set_metrics["method"] == method) & (ev.set_metrics["metric"] == "fid")]
        fid_value = float(fid["value"].iloc[0]) if len(fid) and pd.notna(fid["value"].iloc[0]) else math.nan
        rows.append({"Method": method, "FID": _number(fid_value, 2),
                     "Local DS": _pm(*ev.mean(method, "lpips_local_diversity")[:2]),
                     "Saliency KLD": _pm(*ev.mean(method, "kld_target")[:2])})
    notes += _set_metric_notes(ev, "fid", "FID")
    if not ev.has("lpips_local_diversity"):
        notes.append("Local DS: " + _why_absent(ev, "lpips_local_diversity",
                                                "needs several samples per input (--samples K) and LPIPS weights"))
    else:
        region = ev.record.get("local_ds_region", "edited-box")  # evaluations before the option used the edited box
        notes.append(f"Local DS: LPIPS between samples inside {LOCAL_DS_REGIONS.get(region, region)}.")
    if not ev.has("kld_target"):
        notes.append("Saliency KLD: " + _why_absent(ev, "kld_target", "needs --predictor and target (Y) maps"))
    return Table("SalG-GAN Table 1", "FID, local DS and saliency KLD (KL(target ‖ achieved), nats), mean ± std.",
                 pd.DataFrame(rows), notes)


def gazeshiftnet_table1(ev: Evaluation) -> Table:
    """GazeShiftNet Table 1a/b and 1c: LPIPS (full, BG, FG), saliency increase (absolute, relative),
    similarity to mask (WFB, CC), all × 100 as in the paper, and the average run time."""
    columns = [("LPIPS Full ↓", "lpips_x"), ("LPIPS BG ↓", "lpips_x_bg"), ("LPIPS FG", "lpips_x_fg"),
               ("Sal. increase Abs ↑", "sal_increase"), ("Sal. increase Rel ↑", "sal_increase_rel"),
               ("WFB ↑", "wfbeta"), ("CC ↑", "cc_mask")]
    rows = []
    for method in ev.methods:
        row = {"Method": method}
        for label, metric in columns:
            mean = ev.mean(method, metric)[0]
            row[label] = _number(mean * 100, 2)
        seconds = ev.mean(method, "seconds")[0]
        row["Avg. run time"] = "not run here" if math.isnan(seconds) else f"{seconds:.3g} s"
        rows.append(row)
    notes = [f"{label}: " + _why_absent(ev, metric, "needs --predictor" if "lpips" not in metric else "needs LPIPS")
             for label, metric in columns if not ev.has(metric)]
    notes.append(ev.record.get("timing", ""))
    return Table("GazeShiftNet Table 1", "Fidelity to the input (LPIPS) and attention shift into the edited objects "
                 "(× 100, as in the paper); run time per image.", pd.DataFrame(rows), notes)


def sagim_table1(ev: Evaluation) -> Table:
    """SaGIM Table 1: guidance consistency C1 and C2 (% of images) with the evaluation's predictor, and MSE."""
    name = (ev.record.get("predictor") or {}).get("name", "predictor")
    rows = []
    for method in ev.methods:
        c1, _, n1 = ev.mean(method, "sagim_c1")
        c2, _, _ = ev.mean(method, "sagim_c2")
        rows.append({"Method": method, f"{name} w/ C1 (%)": _number(c1 * 100, 1),
                     f"{name} w/ C2 (%)": _number(c2 * 100, 1), "MSE": _number(ev.mean(method, "mse_x")[0], 4),
                     "images": n1})
    notes = [] if ev.has("sagim_c1") else ["C1/C2: " + _why_absent(ev, "sagim_c1", "needs --predictor and images "
                                                                   "with at least 2 objects")]
    return Table("SaGIM Table 1", "Guidance consistency: C1 = the least salient object of X became more salient "
                 "than the most salient; C2 = it rose and the most salient fell (% of images); MSE to the input.",
                 pd.DataFrame(rows), notes)


def ablation_tables(ev: Evaluation) -> list[Table]:
    """Variants of one editor (two or more methods from checkpoints of the same registered editor):
    SalG-GAN Table 3's layout for salggan, SaGIM Table 2's for sagim, GazeShiftNet Table 1d's otherwise."""
    by_editor: dict[str, list[str]] = {}
    for method, info in ev.record["methods"].items():
        if info.get("editor"):
            by_editor.setdefault(info["editor"], []).append(method)
    tables = []
    for editor, methods in sorted(by_editor.items()):
        if len(methods) < 2:
            continue
        if editor == "salggan":
            base = salggan_table1(ev)
            frame = base.frame[base.frame["Method"].isin(methods)]
            title, caption = "SalG-GAN Table 3 (ablations)", "Variants of SalG-GAN: FID, local DS, saliency KLD."
        elif editor == "sagim":
            base = sagim_table1(ev)
            frame = base.frame[base.frame["Method"].isin(methods)]
            title, caption = "SaGIM Table 2 (variants)", "Guidance consistency of SaGIM's variants."
        else:
            base = gazeshiftnet_table1(ev)
            frame = base.frame[base.frame["Method"].isin(methods)][["Method", "LPIPS Full ↓", "Sal. increase Abs ↑",
                                                                    "Sal. increase Rel ↑"]]
            title, caption = f"{editor} ablations (GazeShiftNet Table 1d layout)", f"Variants of {editor}."
        notes = [f"{m}: {json.dumps(ev.record['methods'][m].get('options') or {})} from "
                 f"{ev.record['methods'][m].get('path')}" for m in methods]
        tables.append(Table(title, caption, frame.reset_index(drop=True), notes))
    return tables


def gatys_table(ev: Evaluation, human: pd.DataFrame | None = None) -> Table:
    """Gatys et al.'s effect sizes: Δp_obj (absolute, relative) and the fixation-entropy change, mean
    with a 95% bootstrap interval over images per method — from the predictor's maps and, given
    `human` (per-image rows condition, method, pair_id, side, dp_obj, dp_obj_rel,
    entropy_change_bits: `human_attention`), from human maps per (condition, method)."""
    sources = [("predictor", ev.per_image)] + ([("human", human)] if human is not None and len(human) else [])
    rows, notes = [], []
    for source, table in sources:
        by = [c for c in ("condition", "method") if c in table.columns]
        for metric, label in (("dp_obj", "Δp_obj"), ("dp_obj_rel", "Δp_obj relative: mean of per-image ratios (paper)"),
                              ("entropy_change_bits", "Δ entropy (bits)")):
            if metric not in table.columns:
                continue
            keys = [*by, "pair_id"] + (["side"] if "side" in table.columns else [])
            values = table[[*keys, metric]].dropna(subset=[metric]).rename(columns={metric: "value"})
            values = values[values["method"] != REFERENCE]
            if values.empty:
                continue
            for r in attention_change(values, n_resamples=2000, by=by).to_dict("records"):
                rows.append({"Maps": source, "Measure": label, "Condition": r.get("condition", ""),
                             "Method": r["method"], "images": r["n"], "mean": _number(r["mean"], 3),
                             "95% CI": _interval(r["ci_low"], r["ci_high"], 3)})
        rows += _relative_variants(table, by, source)
    if not rows:
        notes.append("no Δp_obj: " + _why_absent(ev, "dp_obj", "needs --predictor and object masks of the edit"))
    if human is None:
        notes.append("human maps: give a CodeCharts or BubbleView study export of the edited images (--study)")
    notes.append("Δp_obj relative: Gatys et al. (§5.3) average the per-image ratios Δp_obj / p_obj(original) "
                 "(their +43% / −22%), which images with a small p_obj(original) can dominate; the median of the "
                 "ratios and the ratio of means (mean Δp_obj / mean p_obj(original)) are given beside it.")
    notes.append("Unit of analysis: the image (one change per image and method: the map of the edited version "
                 "against the map of the original); percentile bootstrap over images, 2000 resamples. Human maps "
                 "are grouped by (condition, method): a design with conditions (Gatys' blocks) names its versions "
                 "in condition.")
    return Table("Gatys et al. effect sizes", "Change in the probability to fixate the edited objects and in "
                 "fixation entropy, with percentile-bootstrap 95% intervals.", pd.DataFrame(rows), notes)


def _relative_variants(table: pd.DataFrame, by: list[str], source: str) -> list[dict]:
    """Rows of the relative Δp_obj's other two readings per group: the median of the per-image
    ratios and the ratio of means, each with a percentile bootstrap interval over images (scipy,
    images resampled with their Δp_obj and p_obj(original) together)."""
    from scipy import stats

    if not {"dp_obj", "dp_obj_rel", "p_obj_x"} <= set(table.columns):
        return []
    values = table[table["method"] != REFERENCE].dropna(subset=["dp_obj", "p_obj_x"])
    rows = []
    for key, group in values.groupby(by, sort=True):
        key = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        ratios = group["dp_obj_rel"].dropna().to_numpy(float)
        change, before = group["dp_obj"].to_numpy(float), group["p_obj_x"].to_numpy(float)
        variants = [("Δp_obj relative: median of per-image ratios", ratios, lambda r, axis=-1: np.median(r, axis=axis),
                     False),
                    ("Δp_obj relative: ratio of means", (change, before),
                     lambda c, b, axis=-1: c.mean(axis=axis) / b.mean(axis=axis), True)]
        for label, data, statistic, paired in variants:
            data = data if paired else (data,)
            n = len(data[0])
            if n == 0 or (paired and before.mean() <= 0):
                continue
            estimate = float(statistic(*data))
            low = high = estimate if n >= 2 else math.nan  # every image alike: so is every resample
            if n >= 2 and np.ptp(np.stack(data)) > 0:
                result = stats.bootstrap(data, statistic, paired=paired, vectorized=True, method="percentile",
                                         confidence_level=0.95, n_resamples=2000, rng=0)
                low, high = result.confidence_interval
            rows.append({"Maps": source, "Measure": label, "Condition": key.get("condition", ""),
                         "Method": key.get("method", ""), "images": n, "mean": _number(estimate, 3),
                         "95% CI": _interval(low, high, 3)})
    return rows


def ground_truth_table(ev: Evaluation) -> Table:
    """Distances to the pair's ground-truth Y: L1, PSNR, SSIM (mean ± std)."""
    rows = [{"Method": m, "L1 ↓": _pm(*ev.mean(m, "l1_y")[:2], 4), "PSNR (dB) ↑": _pm(*ev.mean(m, "psnr_y")[:2], 2),
             "SSIM ↑": _pm(*ev.mean(m, "ssim_y")[:2], 3), "pairs": ev.mean(m, "l1_y")[2]} for m in ev.methods]
    notes = [] if ev.has("l1_y") else ["no pair of the split has a ground-truth Y"]
    return Table("Distance to the ground truth Y", f"'{REFERENCE}' is the unedited X: an editor should come closer "
                 "to Y than it.", pd.DataFrame(rows), notes)


# ---------------------------------------------------------------- studies


def preference_table(shares: pd.DataFrame, method_order=None) -> Table:
    """SalG-GAN Table 2: preference (%) per method (rows, in `method_order` then as shown) and
    (block, question) (columns, every one, in the order they were answered), with cluster-bootstrap
    intervals; below, the trials and the p of the test that names itself in the notes."""
    columns = list(dict.fromkeys(zip(shares["block"], shares["question"])))
    present = list(dict.fromkeys(shares["method"]))
    methods = [m for m in dict.fromkeys(method_order or []) if m in present]
    methods += [m for m in present if m not in methods]
    labels = {key: f"{key[0]} / {key[1]}" if key[0] else str(key[1]) for key in columns}
    if len(set(labels.values())) < len(labels):
        raise ValueError(f"two (block, question) columns print alike: {sorted(labels.values())}")
    cells = {(r["block"], r["question"], r["method"]): r for r in shares.to_dict("records")}
    rows, notes = [], []
    for method in methods:
        row = {"Method": method}
        for key in columns:
            r = cells.get((*key, method))
            row[labels[key]] = "not shown" if r is None else (
                f"{_number(r['share'] * 100, 1)}% {_interval(r['ci_low'] * 100, r['ci_high'] * 100, 1)}")
        rows.append(row)
    trials, tests = {"Method": "trials"}, {"Method": "p (all shown candidates equally likely)"}
    for key in columns:
        first = shares[(shares["block"] == key[0]) & (shares["question"] == key[1])].iloc[0]
        trials[labels[key]] = str(int(first["n_trials"]))
        short = "exact multinomial" if first["test"].startswith("exact") else "MC conditional"
        tests[labels[key]] = f"{_p(first['p'])} ({short})" if not math.isnan(first["p"]) else "–"
        notes.append(f"{labels[key]}: {int(first['n_trials'])} trials by {int(first['n_participants'])} participants"
                     f" on {int(first['n_images'])} images; interval: {first['interval']}; test: {first['test']}.")
    notes.append("Unit of analysis: the trial's pick, with participants and images as clusters: intervals resample "
                 "whole participants and images; the test draws each trial's pick among the candidates that trial "
                 "showed (valid when trials show different subsets; exact only where every trial showed one set).")
    return Table("SalG-GAN Table 2 (user study)", "Preference (%): the share of the trials showing a method in "
                 "which it was picked, with 95% cluster-bootstrap intervals.", pd.DataFrame(rows + [trials, tests]),
                 notes)


def rating_tables(per_method: pd.DataFrame, pairwise: pd.DataFrame, models: pd.DataFrame) -> list[Table]:
    """GazeShiftNet's fidelity / realism ratings (`study_stats.rating_summary`): the ratings per
    method, and every pairwise comparison on per-image means and in the mixed model."""
    summary = pd.DataFrame({"Block": per_method["block"], "Question": per_method["question"],
                            "Method": per_method["method"], "ratings": per_method["n"],
                            "participants": per_method["n_participants"], "images": per_method["n_images"],
                            "mean of per-image means": [_number(v, 3) for v in per_method["image_mean"]],
                            "median [q1, q3] of ratings": [f"{_number(m, 2)} {_interval(a, b, 2)}" for m, a, b in
                                                           zip(per_method["median"], per_method["q1"],
                                                               per_method["q3"])]})
    failed = {(m["block"], m["question"]) for m in models.to_dict("records")
              if not m["converged"] and not math.isnan(m["var_residual"])}
    mark = ["†" if key in failed else "" for key in zip(pairwise["block"], pairwise["question"])]
    compared = pd.DataFrame({
        "Block": pairwise["block"], "Question": pairwise["question"],
        "A vs B": [f"{a} vs {b}" for a, b in zip(pairwise["method_a"], pairwise["method_b"])],
        "images (A / B)": [f"{a} / {b}" for a, b in zip(pairwise["n_images_a"], pairwise["n_images_b"])],
        "per-image test": ["Wilcoxon, paired" if t.startswith("Wilcoxon") else "Mann-Whitney"
                           for t in pairwise["test"]],
        "P(A higher)": [_number(v, 2) for v in pairwise["prob_a_higher"]],
        "p": [_p(v) for v in pairwise["p"]], "p (Holm)": [_p(v) for v in pairwise["p_holm"]],
        "mixed model A − B": [_pm(e, s, 3) + x
                              for e, s, x in zip(pairwise["mixed_estimate"], pairwise["mixed_se"], mark)],
        "p (mixed)": [_p(v) + x for v, x in zip(pairwise["mixed_p"], mark)],
        "p (mixed, Holm)": [_p(v) + x for v, x in zip(pairwise["mixed_p_holm"], mark)]})
    notes = [f"per-image tests: {t}" for t in dict.fromkeys(pairwise["test"])]
    notes += ["† the mixed model did not converge: read its numbers with care (note below)"] if failed else []
    for m in models.to_dict("records"):
        fit = ("no mixed model" if math.isnan(m["var_residual"]) else
               f"mixed model on {m['n_ratings']} ratings: variance participant {_number(m['var_participant'], 3)}, "
               f"image {_number(m['var_image'], 3)}, residual {_number(m['var_residual'], 3)}")
        notes.append(f"{m['block']} / {m['question']}: {m['n_participants']} participants, {m['n_images']} images; "
                     f"{fit}" + (f" — {m['note']}" if m["note"] else ""))
    notes.append("Unit of analysis: the image — each image's ratings of a method are averaged first and methods "
                 "compared across images (Wilcoxon signed-rank paired by image where both methods were rated on the "
                 "same images, else Mann-Whitney U); the mixed model (statsmodels MixedLM, REML) uses every rating "
                 "with random intercepts for participant and image, Wald p of the contrast ± its standard error. "
                 "Holm over the pairs of each block and question.")
    return [Table("Ratings (GazeShiftNet fidelity / realism)", "Ratings per method: per-image means (the papers' "
                  "unit) and the ratings' median and quartiles.", summary, []),
            Table("Rating comparisons", "Every pair of methods per block and question: on per-image means, and in a "
                  "mixed model with participant and image as random effects.", compared, notes)]


def consistency_table(responses: pd.DataFrame, ev: Evaluation, max_images: int = 20, n_splits: int = 10,
                      seed: int = 0) -> Table | None:
    """Inter-observer consistency of a CodeCharts / BubbleView export (`study_attention.
    consistency_curve` on the evaluated dataset's images): split-half CC and NSS by observers per
    half and the CC projected to all observers, averaged over the displayed images with most
    observers. None without clicks on images."""

    curve, observers = consistency_curve(responses, ev.record["data"], max_images, n_splits, seed)
    if observers.empty:
        return None
    if curve.empty:
        return Table("Inter-observer consistency", "", pd.DataFrame(),
                     [f"no image has {MIN_OBSERVERS} or more observers (at most {int(observers.max())}): too few to "
                      "measure consistency"])
    shown = observers[observers >= MIN_OBSERVERS].head(max_images)
    frame = pd.DataFrame({"observers per half": curve["n_per_half"], "images": curve["images"],
                          "split-half CC": [_number(v, 3) for v in curve["cc_mean"]],
                          "split-half NSS": [_number(v, 3) for v in curve["nss_mean"]],
                          "CC projected to all observers": [_number(v, 3) for v in curve["cc_full"]]})
    notes = [has_flattened(curve)[1],
             f"observers per image: {int(shown.min())}–{int(shown.max())}; CC projected with Spearman-Brown, "
             "k r / (1 + (k − 1) r), k = the image's observers / observers per half ('–' where r ≤ 0)",
             "Unit of analysis: the displayed image (pair, side, condition, method), practice, sentinel and catch "
             f"rows left out; maps of the image's size in the evaluated dataset; {n_splits} random splits per size."]
    return Table("Inter-observer consistency", f"Split-half CC and NSS over {int(curve['images'].max())} image(s), "
                 "by observers per half: were enough people asked?", frame, notes)


def missing_line(name: str, needs: str) -> str:
    return f"{name}: not shown — {needs}."


# ---------------------------------------------------------------- helpers


def _set_metric_notes(ev: Evaluation, metric: str, label: str) -> list[str]:
    part = ev.set_metrics[ev.set_metrics["metric"] == metric]
    notes = sorted({str(n) for n in part["note"].dropna() if str(n)})
    return [f"{label}: {n}" for n in notes]


def _why_absent(ev: Evaluation, metric: str, default: str) -> str:
    reasons = {}
    for info in ev.record["methods"].values():
        for reason, count in (info.get("skipped_metrics") or {}).get(metric, {}).items():
            reasons[reason] = reasons.get(reason, 0) + count
    if not reasons:
        return default
    return "; ".join(f"{reason} ({count} images)" for reason, count in sorted(reasons.items()))
