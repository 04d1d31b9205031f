"""The report's tables on whether to trust the numbers: realism and fidelity measured offline, the
editors' parameters at their limits, and the measuring predictor against its controls."""
from __future__ import annotations

import math

import pandas as pd

from analysis.controls import ALPHA, MIN_MARGIN, control_tests
from analysis.report_tables import Evaluation, Table, _interval, _number, _p, _pm, _why_absent


def realism_fidelity_table(ev: Evaluation) -> Table:
    """Realism and fidelity measured offline, per edited method: the C2ST accuracy against the
    unedited X with its 95% interval, held-out images and p, and SSIM, L1 (and LPIPS where its
    weights exist) to X outside (BG) and inside (FG) the edited objects, mean ± std over images."""
    part = ev.set_metrics[ev.set_metrics["metric"] == "realism_c2st"]
    c2st = {r["method"]: r for r in part.to_dict("records")}
    columns = [("SSIM BG ↑", "ssim_x_bg", 3), ("SSIM FG", "ssim_x_fg", 3), ("L1 BG ↓", "l1_x_bg", 4),
               ("L1 FG", "l1_x_fg", 4), ("LPIPS BG ↓", "lpips_x_bg", 3), ("LPIPS FG", "lpips_x_fg", 3)]
    rows, notes, setup = [], [], []
    for method in ev.edited_methods:
        test = c2st.get(method, {})
        accuracy = float(test.get("value", math.nan))
        scored = not math.isnan(accuracy)
        row = {"Method": method,
               "C2ST accuracy [95% CI]": f"{_number(accuracy, 2)} {_interval(test['ci_low'], test['ci_high'], 2)}"
               if scored else "–",
               "held-out images": int(test["n_test"]) if scored else "–",
               "p (> 0.5)": _p(test["p_value"]) if scored else "–"}
        row.update({label: _pm(*ev.mean(method, metric)[:2], digits) for label, metric, digits in columns})
        row["images"] = ev.mean(method, "ssim_x_bg")[2]
        rows.append(row)
        if method in c2st:  # why there is no value, or how it was measured (the same for every method)
            (setup if scored else notes).append(f"C2ST: {test['note']}" if scored else f"C2ST {method}: {test['note']}")
    notes = setup[:1] + notes
    if not c2st:
        notes.append("C2ST: not in this evaluation (evaluated before it existed: run gazelab evaluate again)")
    notes += [f"{label}: " + _why_absent(ev, metric, "needs LPIPS weights" if "lpips" in metric else
                                         "needs object masks and the scene's edited objects")
              for label, metric, _ in columns if not ev.has(metric)]
    notes.append("Unit of analysis: for the C2ST the held-out image (the output and the input of each held-out pair, "
                 "the two of a pair kept on one side of the split); Clopper-Pearson 95% interval and one-sided "
                 "binomial p against 0.5, which treat the images as independent trials. For SSIM, L1 and LPIPS the "
                 "image: mean ± std over the pairs every method has. BG / FG: outside / inside the edited objects "
                 "(their pixels in X and Y); SSIM is its per-pixel map averaged over the side's pixels, so pixels "
                 "within 5 px of the outline see across it.")
    return Table("Realism and fidelity", "Realism: can a classifier tell the outputs from the unedited inputs "
                 "(C2ST accuracy, 0.5 = indistinguishable)? Fidelity: SSIM, L1 and LPIPS to the input outside "
                 "(BG) and inside (FG) the edited objects.", pd.DataFrame(rows), notes)


def predictor_check_table(ev: Evaluation) -> Table | None:
    """The measuring predictor against its controls, per metric: mean of the predictor, the centre
    bias and the shuffle on the evaluated X and Y images with human maps, n, the one-sided Wilcoxon
    p of each comparison and the verdict (None when the evaluation had no predictor)."""
    check = ev.record.get("predictor_check") or {}
    if not ev.record.get("predictor"):
        return None
    name = ev.record["predictor"].get("name", "predictor")
    if ev.predictor_check is None or check.get("status") != "checked":
        return Table("Predictor check", f"{name} against the centre bias and the shuffle.", pd.DataFrame(),
                     [check.get("status", "not checked")])
    tests = control_tests(ev.predictor_check)
    verdicts = dict(zip(tests["metric"], check.get("verdicts", [])))
    rows = [{"Metric": f"{r['metric']} ({'↓' if r['better'] == 'lower' else '↑'})", "n": r["n"],
             name: _number(r["predictor"], 3), "centre bias": _number(r["centre_bias"], 3),
             "shuffle": _number(r["shuffle"], 3), "p vs centre (Wilcoxon, one-sided)": _p(r["p_centre_bias"]),
             "p vs shuffle (Wilcoxon, one-sided)": _p(r["p_shuffle"]),
             "beats": _beats(r["beats_centre_bias"], r["beats_shuffle"])} for r in tests.to_dict("records")]
    notes = [verdicts[m] for m in tests["metric"] if m in verdicts]
    notes.append(f"Unit of analysis: the image ({len(ev.predictor_check['name'].unique())} evaluated X and Y images "
                 "with a human map). Shuffle: each image's prediction against the human map of an image of another "
                 f"pair (a seeded derangement). Beaten: mean better by more than {MIN_MARGIN} and p < {ALPHA}.")
    return Table("Predictor check", f"{name}, which measures every attention metric above, against a centre bias "
                 "and against other scenes' maps (the shuffle): scores on the evaluated images' human maps.",
                 pd.DataFrame(rows), notes)


def _beats(centre, shuffle) -> str:
    said = {True: "yes", False: "no", None: "not scored"}
    return f"centre: {said[centre]}, shuffle: {said[shuffle]}"


def parameter_limits_table(ev: Evaluation) -> Table | None:
    """Per editor with scalar edit parameters (GazeShiftNet), per parameter: the share of evaluated
    images at its low and at its high limit (`analysis.edit_parameters`), never averaged; None when
    no evaluated editor records parameters."""
    rows = []
    for method, info in ev.record["methods"].items():
        found = info.get("parameter_limits")
        if not found:
            continue
        for share in found["shares"]:
            low, high = found["limits"][share["parameter"]]
            rows.append({"Method": method, "Parameter": share["parameter"], "range": f"[{low:g}, {high:g}]",
                         "images": share["n"], "at low (%)": _number(100 * share["share_at_low"], 1),
                         "at high (%)": _number(100 * share["share_at_high"], 1),
                         "at a limit (%)": _number(100 * share["share_at_limit"], 1)})
    if not rows:
        return None
    return Table("Edit parameters at their limits", "Share of the evaluated images on which each predicted edit "
                 "parameter sits at a limit of its range (a sign that attention overwhelms realism); per parameter, "
                 "never averaged.", pd.DataFrame(rows),
                 ["Unit of analysis: the image; a value within 2% of the range from a bound counts as at it. "
                  "Values per pair: parameters/METHOD.csv in the evaluation."])
