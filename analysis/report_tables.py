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

from analysis.evaluation import REFERENCE

# A study's fixation maps: BubbleView's 25 px at 640 px wide, scaled by the image width (the
# default of studyweb.maps when a study sets neither sigma_px nor px_per_degree).
HUMAN_SIGMA_PX_AT_640 = 25.0


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
    with a 95% bootstrap interval per method — from the predictor's maps and, given `human`
    (per-image rows method, pair_id, dp_obj, dp_obj_rel, entropy_change_bits), from human maps."""
    from analysis.study_stats import attention_change

    sources = [("predictor", ev.per_image)] + ([("human", human)] if human is not None and len(human) else [])
    rows, notes = [], []
    for source, table in sources:
        for metric, label in (("dp_obj", "Δp_obj"), ("dp_obj_rel", "Δp_obj relative"),
                              ("entropy_change_bits", "Δ entropy (bits)")):
            if metric not in table.columns:
                continue
            values = table[["method", "pair_id", metric]].dropna().rename(columns={metric: "value"})
            values = values[values["method"] != REFERENCE]
            if values.empty:
                continue
            for r in attention_change(values, n_resamples=2000).itertuples():
                rows.append({"Maps": source, "Measure": label, "Method": r.method, "n": r.n, "mean": _number(r.mean, 3),
                             "95% CI": "–" if math.isnan(r.ci_low) else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"})
    if not rows:
        notes.append("no Δp_obj: " + _why_absent(ev, "dp_obj", "needs --predictor and object masks of the edit"))
    if human is None:
        notes.append("human maps: give a CodeCharts or BubbleView study export of the edited images (--study)")
    return Table("Gatys et al. effect sizes", "Change in the probability to fixate the edited objects and in "
                 "fixation entropy, with percentile-bootstrap 95% intervals.", pd.DataFrame(rows), notes)


def ground_truth_table(ev: Evaluation) -> Table:
    """Distances to the pair's ground-truth Y: L1, PSNR, SSIM (mean ± std)."""
    rows = [{"Method": m, "L1 ↓": _pm(*ev.mean(m, "l1_y")[:2], 4), "PSNR (dB) ↑": _pm(*ev.mean(m, "psnr_y")[:2], 2),
             "SSIM ↑": _pm(*ev.mean(m, "ssim_y")[:2], 3), "pairs": ev.mean(m, "l1_y")[2]} for m in ev.methods]
    notes = [] if ev.has("l1_y") else ["no pair of the split has a ground-truth Y"]
    return Table("Distance to the ground truth Y", f"'{REFERENCE}' is the unedited X: an editor should come closer "
                 "to Y than it.", pd.DataFrame(rows), notes)


# ---------------------------------------------------------------- studies


def preference_table(shares: pd.DataFrame) -> Table:
    """SalG-GAN Table 2: preference (%) per method and question, with Wilson intervals and the test."""
    frame = shares.assign(cell=[f"{s * 100:.1f}% [{lo * 100:.0f}, {hi * 100:.0f}]"
                                for s, lo, hi in zip(shares["share"], shares["ci_low"], shares["ci_high"])])
    wide = frame.pivot_table(index="method", columns="question", values="cell", aggfunc="first").reset_index()
    notes = []
    for (block, question), group in shares.groupby(["block", "question"]):
        r = group.iloc[0]
        notes.append(f"{block}/{question}: {int(r['n_trials'])} trials; all methods equally preferred? "
                     f"chi-square p = {r['chi2_p']:.3g}, exact p = {r['exact_p']:.3g} ({r['exact_method']})"
                     + (" — small expected counts: read the exact p" if r["small_counts"] else ""))
    return Table("SalG-GAN Table 2 (user study)", "Preference (%) with Wilson 95% intervals: the share of trials "
                 "showing a method in which it was picked.", wide.rename(columns={"method": "Method"}), notes)


def rating_tables(per_method: pd.DataFrame, pairwise: pd.DataFrame) -> Table:
    frame = per_method.assign(**{"median [q1, q3]": [f"{m:g} [{a:g}, {b:g}]" for m, a, b in
                                                     zip(per_method["median"], per_method["q1"], per_method["q3"])]})
    frame = frame[["block", "question", "method", "n", "mean", "median [q1, q3]"]].round({"mean": 3})
    notes = [f"{r.block}: {r.method_a} vs {r.method_b}: P({r.method_a} rated higher) = {r.prob_a_higher:.2f}, "
             f"Mann-Whitney p = {r.p:.3g}, Holm-adjusted {r.p_holm:.3g}" for r in pairwise.itertuples()]
    return Table("Ratings (GazeShiftNet fidelity / realism)", "Rating per method; pairwise two-sided Mann-Whitney "
                 "tests with Holm correction per block.", frame, notes)


def human_attention(responses: pd.DataFrame, ev: Evaluation) -> pd.DataFrame:
    """Per (method, pair_id) of a CodeCharts / BubbleView export of edited images: Δp_obj (absolute,
    relative) and the entropy change of the human map of the method's output against the human map
    of the original, in the edited objects' region of the evaluated dataset."""
    from analysis import attention_shift as shift
    from analysis.eval_pairs import read_pairs
    from analysis.fixations import fixation_map

    clicks = responses[responses["task"].isin(["codecharts", "bubbleview"]) & responses[["x", "y"]].notna().all(axis=1)
                       & ~responses["valid"].isin([False])]
    if clicks.empty:
        return pd.DataFrame(columns=["method", "pair_id", "dp_obj", "dp_obj_rel", "entropy_change_bits"])
    split = ev.record["split"]
    pairs = {p.pair_id: p for p in read_pairs(ev.record["data"], None if split == "all" else split)}
    original = clicks["method"].isna() | clicks["method"].isin(["", "original"])
    rows = []
    for pair_id, group in clicks[clicks["pair_id"].isin(list(pairs))].groupby("pair_id"):
        pair = pairs[pair_id]
        if pair.region is None:
            continue
        shape = pair.x.shape[:2]
        sigma = HUMAN_SIGMA_PX_AT_640 * shape[1] / 640
        before_points = group[original.loc[group.index]][["x", "y"]].to_numpy(float)
        if len(before_points) == 0:
            continue
        before = fixation_map(before_points, shape, sigma)
        for method, part in group[~original.loc[group.index]].groupby("method"):
            after = fixation_map(part[["x", "y"]].to_numpy(float), shape, sigma)
            change, relative = shift.delta_p_object(before, after, pair.region)
            rows.append({"method": method, "pair_id": pair_id, "dp_obj": change, "dp_obj_rel": relative,
                         "entropy_change_bits": shift.entropy_change(before, after)})
    return pd.DataFrame(rows, columns=["method", "pair_id", "dp_obj", "dp_obj_rel", "entropy_change_bits"])


def consistency_table(responses: pd.DataFrame, max_images: int = 20) -> Table | None:
    """Inter-observer consistency: split-half CC and NSS against observers per half, averaged over
    the images (up to `max_images`, those with most observers) of a CodeCharts / BubbleView export."""
    from analysis.study_stats import fixations_by_participant, has_flattened, split_half_consistency

    clicks = responses[responses["task"].isin(["codecharts", "bubbleview"]) & responses[["x", "y"]].notna().all(axis=1)]
    if clicks.empty:
        return None
    keys = clicks.assign(method=clicks["method"].fillna("")).groupby(["pair_id", "side", "method"])["participant_id"]
    chosen = keys.nunique().sort_values(ascending=False)
    chosen = chosen[chosen >= 4].head(max_images)
    if chosen.empty:
        return Table("Inter-observer consistency", "", pd.DataFrame(),
                     ["no image has 4 or more observers: too few to measure consistency"])
    curves = []
    for (pair_id, side, method), _ in chosen.items():
        points = fixations_by_participant(clicks, pair_id, side, method or None)
        extent = np.concatenate(list(points.values()))
        shape = (int(extent[:, 1].max()) + 1, int(extent[:, 0].max()) + 1)  # at least the clicked area
        sigma = HUMAN_SIGMA_PX_AT_640 * shape[1] / 640
        curves.append(split_half_consistency(points, shape, max(sigma, 1.0), n_splits=10))
    curve = pd.concat(curves).groupby("n_per_half", as_index=False)[["cc_mean", "nss_mean"]].mean()
    flattened, why = has_flattened(curve)
    return Table("Inter-observer consistency", f"Split-half CC and NSS over {len(curves)} image(s), by observers per "
                 "half: were enough people asked?", curve.round(3), [why])


def missing_line(name: str, needs: str) -> str:
    return f"{name}: not shown — {needs}."


# ---------------------------------------------------------------- helpers


def _number(value: float, digits: int) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _pm(mean: float, std: float, digits: int = 2) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")


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
