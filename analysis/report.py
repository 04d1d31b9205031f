"""`gazelab report`: one self-contained HTML page from an evaluation folder and study exports.

    build_report("eval/", "report/", studies=["study_export/"])  ->  report/index.html

The page embeds every figure (PNG data URIs), so it can be mailed or attached as one file:
warnings first (random backbones, a predictor that beats no control, unavailable metrics,
methods missing images), then the papers' tables (`analysis.report_tables`), a qualitative grid
(input, its map, the target, each method's output and its map), box plots of fidelity and
realism, GazeShiftNet Fig. 5's fidelity-vs-attention scatter, each study's statistics, and the
provenance (dataset, checkpoints, predictor, software). The tables' CSVs go beside it.
"""
from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.evaluation import REFERENCE
from analysis.report_tables import (Evaluation, Table, ablation_tables, consistency_table, gatys_table,
                                    gazeshiftnet_table1, ground_truth_table, human_attention, load_evaluation,
                                    missing_line, preference_table, rating_tables, sagim_table1, salggan_table1)

GRID_PAIRS = 4

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.4}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em} th,td{border:1px solid #bbb;padding:.25em .6em;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
.caption{color:#555;font-size:.9em} .notes{color:#555;font-size:.85em;margin:.2em 0 1em 1em}
.warning{background:#fff4e0;border-left:4px solid #e69500;padding:.5em 1em;margin:.4em 0}
img{max-width:100%} code{background:#f4f4f4;padding:0 .2em} dl.prov dt{font-weight:bold;margin-top:.4em}
"""


def build_report(eval_dir, out_dir, studies=()) -> Path:
    """Write `out_dir`/index.html (and the tables as CSV beside it); return the page's path.
    `studies`: study export folders (`gazelab study export ... --csv DIR`); ValueError when one is
    not an export or holds an experiment on other images than the evaluation's."""
    ev = load_evaluation(eval_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exports = [_read_study(folder, ev) for folder in studies]
    human = _human_attention(exports, ev)
    sections = [_header(ev, exports), _warnings(ev, exports)]
    tables = [salggan_table1(ev), gazeshiftnet_table1(ev), sagim_table1(ev), *ablation_tables(ev),
              gatys_table(ev, human), ground_truth_table(ev)]
    absent = _absent_tables(tables, exports)
    sections.append("<h2>Tables</h2>" + ("<ul class=notes id=not-shown>" + "".join(f"<li>{_e(line)}</li>" for line in
                                                                                 absent) + "</ul>" if absent else "")
                    + "".join(_table_html(t) for t in tables))
    sections.append(_figures(ev, exports, human))
    for export in exports:
        study_tables = _study_tables(export, ev)
        tables += study_tables
        sections.append(f"<h2>Study: {_e(export.experiment or export.folder.name)}</h2>" + _qc_html(export)
                        + "".join(_table_html(t) for t in study_tables))
    sections.append(_provenance(ev, exports))
    for table in tables:
        if not table.frame.empty:
            table.frame.to_csv(out / f"{_slug(table.title)}.csv", index=False)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>gazelab report: {_e(_dataset_name(ev))}"
            f"</title><style>{_STYLE}</style></head><body>" + "".join(sections) + "</body></html>")
    path = out / "index.html"
    tmp = path.with_name(".index.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------- sections


def _header(ev: Evaluation, exports) -> str:
    record = ev.record
    methods = ", ".join(_e(m) for m in ev.edited_methods) or "none"
    studies = f"; {len(exports)} study export(s)" if exports else ""
    return (f"<h1>gazelab report: {_e(_dataset_name(ev))}</h1><p>Split <b>{_e(record['split'])}</b>, "
            f"{record.get('n_pairs')} pairs ({record.get('common_pairs')} scored for every method); methods: "
            f"{methods}; <code>{REFERENCE}</code> is the unedited input{studies}.</p>")


def _warnings(ev: Evaluation, exports) -> str:
    lines = []
    for method, info in ev.record["methods"].items():
        weights = info.get("weights_info") if isinstance(info.get("weights_info"), dict) else {}
        if weights.get("random_backbone"):
            lines.append(f"{method} was trained with a random backbone (asked for explicitly): its numbers are not "
                         "comparable with pretrained runs.")
        elif _random(weights):
            lines.append(f"{method} was trained against a saliency predictor with a random backbone: its numbers "
                         "are not comparable with pretrained runs.")
    predictor = ev.record.get("predictor") or {}
    if _random(predictor.get("weights_info")):
        lines.append("The measuring predictor has a random backbone: attention metrics are not comparable with "
                     "pretrained runs.")
    check = ev.record.get("predictor_check") or {}
    for verdict in check.get("verdicts", []):
        if "beats both" not in verdict:
            lines.append(f"Predictor check — {verdict} Treat its attention-shift numbers with caution.")
    if predictor and check.get("status", "").startswith("not checked"):
        lines.append(f"Predictor check: {check['status']}.")
    lpips = ev.record.get("lpips") or {}
    if str(lpips.get("status", "")).startswith("unavailable") or "random" in str(lpips.get("status", "")):
        lines.append(f"LPIPS ({lpips.get('net')}): {lpips['status']}")
    for method, gone in (ev.record.get("missing") or {}).items():
        reasons = sorted(set(gone.values()))
        lines.append(f"{method} has no output for {len(gone)} pair(s) ({', '.join(list(gone)[:5])}"
                     f"{' …' if len(gone) > 5 else ''}): {'; '.join(reasons[:3])}. Means are over the "
                     f"{ev.record.get('common_pairs')} pairs every method has.")
    for export in exports:
        if export.dropped_summary != "no responses dropped":
            lines.append(f"Study {export.experiment}: {export.dropped_summary}.")
    if not lines:
        return ""
    return "<h2>Read this first</h2>" + "".join(f"<div class=warning>{_e(line)}</div>" for line in lines)


def _absent_tables(tables: list[Table], exports) -> list[str]:
    """A line for each of the papers' tables this report cannot show, saying what it needs."""
    tasks = {task for export in exports for task in export.responses["task"].unique()}
    lines = []
    if not any("ablations" in t.title or "variants" in t.title for t in tables):
        lines.append(missing_line("SalG-GAN Table 3, SaGIM Table 2 (ablations, variants)", "two or more runs of one "
                                  "editor in the evaluation (gazelab train sweep models/examples/salggan_table3.yaml, "
                                  "then gazelab evaluate --runs)"))
    if "choose_best" not in tasks:
        lines.append(missing_line("SalG-GAN Table 2 (preferences)", "a choose_best study export (--study), e.g. "
                                  "studyweb/examples/sgit_preference.yaml"))
    if "rate" not in tasks:
        lines.append(missing_line("GazeShiftNet Fig. 5 fidelity and realism ratings", "a rate study export "
                                  "(studyweb/examples/gazeshiftnet_ratings.yaml); the figures use LPIPS or L1 to "
                                  "the input instead"))
    if not tasks & {"codecharts", "bubbleview"}:
        lines.append(missing_line("Human attention change (Gatys et al., GazeShiftNet Fig. 5 x-axis)", "a CodeCharts or "
                                  "BubbleView study export of the edited images (studyweb/examples/"
                                  "gatys_latin_square.yaml); the predictor's maps stand in"))
    return lines


def _table_html(table: Table) -> str:
    body = ("<p class=notes>no rows</p>" if table.frame.empty else
            table.frame.to_html(index=False, escape=True, na_rep="–", border=0))
    notes = "".join(f"<li>{_e(n)}</li>" for n in table.notes if n)
    return (f"<h3 id='{_slug(table.title)}'>{_e(table.title)}</h3><p class=caption>{_e(table.caption)}</p>{body}"
            + (f"<ul class=notes>{notes}</ul>" if notes else ""))


def _figures(ev: Evaluation, exports, human: pd.DataFrame | None) -> str:
    parts = ["<h2>Figures</h2>", "<h3>Qualitative results</h3>", _img(_grid(ev), "qualitative grid")]
    ratings = _ratings(exports)
    parts += ["<h3>Fidelity and realism</h3>", _img(_box_plots(ev, ratings), "box plots")]
    parts += ["<h3>Fidelity against attention shift (GazeShiftNet Fig. 5, left)</h3>",
              _img(_scatter(ev, ratings, human), "fidelity vs attention")]
    return "".join(parts)


def _study_tables(export, ev: Evaluation) -> list[Table]:
    from analysis.study_stats import preference_shares, rating_summary

    responses, tables = export.responses, []
    if (responses["task"] == "choose_best").any():
        tables.append(preference_table(preference_shares(responses)))
    if (responses["task"] == "rate").any():
        tables.append(rating_tables(*rating_summary(responses)))
    consistency = consistency_table(responses)
    if consistency is not None:
        tables.append(consistency)
    if not tables:
        tables.append(Table("Responses", f"{len(responses)} responses of tasks "
                            f"{sorted(responses['task'].unique())}: no statistic of this report applies.",
                            pd.DataFrame()))
    return tables


def _qc_html(export) -> str:
    from analysis.study_stats import qc_summary

    qc = qc_summary(export)
    people = "; ".join(f"{source}: " + ", ".join(f"{n} {status}" for status, n in counts.items())
                       for source, counts in qc["participants"].items())
    catch = qc["catch"]
    rate = "no catch trials" if catch["pass_rate"] is None else f"catch trials passed {catch['passed']}/{catch['trials']}"
    reasons = ", ".join(f"{r} ({n})" for r, n in qc["exclusion_reasons"].items()) or "none"
    return (f"<p>Participants — {_e(people)}; {rate}; exclusions: {_e(reasons)}; "
            f"{qc['dropped_responses']} responses left out.</p>")


def _provenance(ev: Evaluation, exports) -> str:
    record = ev.record
    items = [("Dataset", f"{record['dataset'].get('name')} at {record['data']} (created "
                         f"{record['dataset'].get('created')}), split {record['split']}, {record.get('n_pairs')} pairs")]
    for method, info in record["methods"].items():
        if info["kind"] == "checkpoint":
            text = (f"editor {info.get('editor')} from {info['path']} (step {info.get('step')}), options "
                    f"{info.get('options')}; backbone: {_backbone(info.get('weights_info'))}")
        elif info["kind"] == "outputs":
            text = f"outputs read from {info['path']} (not run here: no run time)"
        else:
            text = "the unedited input X (reference)"
        items.append((f"Method {method}", text))
    predictor = record.get("predictor")
    items.append(("Measuring predictor", "none (image metrics only)" if not predictor else
                  f"{predictor['name']} from {predictor['checkpoint']}; backbone: "
                  f"{_backbone(predictor.get('weights_info'))}"))
    items.append(("LPIPS", f"{(record.get('lpips') or {}).get('net')}: {(record.get('lpips') or {}).get('status')}"))
    items.append(("FID", "pytorch-fid Inception (pool3, 2048-d), images resized bilinearly to 299×299; "
                         "reference: the ground-truth Y images of the scored pairs (X where a pair has none)"))
    items.append(("Run time", record.get("timing", "")))
    for export in exports:
        items.append((f"Study {export.experiment}", f"export {export.folder}"))
    items.append(("Software", ", ".join(f"{k} {v}" for k, v in (record.get("software") or {}).items() if v)))
    items.append(("Evaluated", f"{record.get('started')} – {record.get('finished')}; report written "
                               f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}"))
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(str(v))}</dd>" for k, v in items)
    return f"<h2 id=provenance>Provenance</h2><dl class=prov>{body}</dl>"


# ---------------------------------------------------------------- figures


def _grid(ev: Evaluation) -> bytes:
    """Rows: up to GRID_PAIRS pairs; columns: input, its map, target map, each method's output (and map)."""
    plt = _pyplot()

    from analysis.eval_pairs import read_rgb

    methods = ev.edited_methods
    common = sorted(set.intersection(*[set(ev.per_image.loc[ev.per_image["method"] == m, "pair_id"])
                                       for m in ev.methods]))[:GRID_PAIRS]
    maps = ev.folder / "maps"
    with_maps = maps.is_dir()
    columns = ["input"] + (["input map", "target (Y map)"] if with_maps else [])
    for method in methods:
        columns += [method] + ([f"{method} map"] if with_maps else [])
    fig, axes = plt.subplots(max(len(common), 1), len(columns), figsize=(1.9 * len(columns), 1.6 * max(len(common), 1)),
                             squeeze=False)
    data = Path(ev.record["data"])
    for row, pair_id in enumerate(common):
        cells = [read_rgb(ev.folder / "outputs" / REFERENCE / f"{pair_id}.png")]
        if with_maps:
            cells += [_map_or_none(maps / REFERENCE / f"{pair_id}.npy"), _map_or_none(data / "maps" / f"{pair_id}_y.npy")]
        for method in methods:
            cells.append(read_rgb(ev.folder / "outputs" / method / f"{pair_id}.png"))
            if with_maps:
                cells.append(_map_or_none(maps / method / f"{pair_id}.npy"))
        for col, cell in enumerate(cells):
            ax = axes[row][col]
            ax.set_xticks([]), ax.set_yticks([])
            if cell is None:
                ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
            else:
                ax.imshow(cell, cmap="magma" if cell.ndim == 2 else None)
            if row == 0:
                ax.set_title(columns[col], fontsize=7)
        axes[row][0].set_ylabel(pair_id, fontsize=7)
    return _png(fig)


def _box_plots(ev: Evaluation, ratings: pd.DataFrame | None) -> bytes:
    plt = _pyplot()

    metric = "lpips_x" if ev.has("lpips_x") else "l1_x"
    panels = [(f"fidelity: {metric} to the input (lower = closer)",
               {m: ev.per_image.loc[ev.per_image["method"] == m, metric].dropna() for m in ev.edited_methods})]
    for block in ("fidelity", "realism"):
        if ratings is not None and (ratings["block"] == block).any():
            part = ratings[ratings["block"] == block]
            panels.append((f"{block} rating per image (human, higher = better)",
                           {m: g["rating"] for m, g in part.groupby("method")}))
    if len(panels) == 1:
        panels.append(("realism: needs a rating study (studyweb/examples/gazeshiftnet_ratings.yaml)", {}))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.2), squeeze=False)
    for ax, (title, groups) in zip(axes[0], panels):
        groups = {m: v for m, v in groups.items() if len(v)}
        if groups:
            ax.boxplot(list(groups.values()), tick_labels=list(groups), showmeans=True)
            ax.tick_params(axis="x", labelsize=7, rotation=20)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=8)
    return _png(fig)


def _scatter(ev: Evaluation, ratings: pd.DataFrame | None, human: pd.DataFrame | None) -> bytes:
    plt = _pyplot()

    if human is not None and len(human):
        x_label, xs = "relative attention increase (human maps)", human.groupby("method")["dp_obj_rel"].mean()
    else:
        x_label, xs = "relative saliency increase (predictor)", pd.Series(
            {m: ev.mean(m, "sal_increase_rel")[0] for m in ev.edited_methods})
    if ratings is not None and (ratings["block"] == "fidelity").any():
        y_label, ys = "fidelity rating (human)", ratings[ratings["block"] == "fidelity"].groupby("method")["rating"].mean()
    else:
        metric = "lpips_x" if ev.has("lpips_x") else "l1_x"
        y_label, ys = f"fidelity: 1 - {metric} to the input", pd.Series(
            {m: 1 - ev.mean(m, metric)[0] for m in ev.edited_methods})
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    shown = 0
    for method in ev.edited_methods:
        x, y = xs.get(method, math.nan), ys.get(method, math.nan)
        if np.isfinite(x) and np.isfinite(y):
            ax.scatter([x], [y])
            ax.annotate(method, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
            shown += 1
    if not shown:
        ax.text(0.5, 0.5, "no method has both measures", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(x_label, fontsize=8), ax.set_ylabel(y_label, fontsize=8)
    return _png(fig)


# ---------------------------------------------------------------- helpers


def _read_study(folder, ev: Evaluation):
    from analysis.study_stats import read_export

    export = read_export(folder, sources=None)
    ids = set(export.responses["pair_id"].dropna().astype(str)) - {""}
    known = set(ev.per_image["pair_id"].astype(str))
    if ids and not ids & known:
        raise ValueError(f"study export {folder} ({export.experiment}) is about pairs {sorted(ids)[:5]}, none of which "
                         f"the evaluation {ev.folder} scored; is it an export of another experiment?")
    return export


def _human_attention(exports, ev: Evaluation) -> pd.DataFrame | None:
    frames = [human_attention(export.responses, ev) for export in exports]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def _ratings(exports) -> pd.DataFrame | None:
    """Per-image mean rating per (block, method) of the rate tasks: the box plots' distributions."""
    frames = []
    for export in exports:
        rows = export.responses[export.responses["task"] == "rate"]
        if len(rows):
            frames.append(rows.groupby(["block", "method", "pair_id"], as_index=False)["rating"].mean())
    return pd.concat(frames, ignore_index=True) if frames else None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _map_or_none(path: Path):
    return np.load(path) if path.is_file() else None


def _png(fig) -> bytes:
    plt = _pyplot()

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _img(data: bytes, alt: str) -> str:
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"


def _random(info) -> bool:
    if not isinstance(info, dict):
        return False
    return bool(info.get("random_backbone")) or _random(info.get("predictor", {}).get("weights_info")
                                                         if isinstance(info.get("predictor"), dict) else None)


def _backbone(info) -> str:
    if not isinstance(info, dict):
        return "none recorded"
    if info.get("random_backbone"):
        return "RANDOM (asked for explicitly; not comparable with pretrained runs)"
    backbone = info.get("backbone")
    return f"{backbone.get('arch', '')} {backbone.get('source', '')}".strip() if isinstance(backbone, dict) else "none"


def _dataset_name(ev: Evaluation) -> str:
    return str(ev.record.get("dataset", {}).get("name") or Path(ev.record["data"]).name)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def _e(text) -> str:
    return html.escape(str(text), quote=True)
