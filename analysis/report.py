"""`gazelab report`: one self-contained HTML page from an evaluation folder and study exports.

    build_report("eval/", "report/", studies=["study_export/"])  ->  report/index.html

The page embeds every figure (PNG data URIs), so it can be mailed or attached as one file:
warnings first (random backbones, a predictor that beats no control, unavailable metrics,
methods missing images), then the papers' tables (`analysis.report_tables`), the figures
(`analysis.report_figures`: a qualitative grid of input, target and outputs with their density maps, box
plots of fidelity and realism, GazeShiftNet Fig. 5's fidelity-vs-attention scatter), each study's
statistics, and the provenance (dataset, checkpoints, predictor, software). The tables' CSVs go beside it.
"""
from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from analysis.evaluation import REFERENCE
from analysis.report_figures import figures_html
from analysis.report_tables import (Evaluation, Table, ablation_tables, consistency_table, gatys_table,
                                    gazeshiftnet_table1, ground_truth_table, human_attention, load_evaluation,
                                    missing_line, preference_table, rating_tables, sagim_table1, salggan_table1)
from analysis.report_checks import parameter_limits_table, predictor_check_table, realism_fidelity_table
from analysis.study_stats import per_image_ratings, preference_shares, qc_summary, rating_summary, read_export

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.4}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em} th,td{border:1px solid #bbb;padding:.25em .6em;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
.caption{color:#555;font-size:.9em} .notes{color:#555;font-size:.85em;margin:.2em 0 1em 1em}
.warning{background:#fff4e0;border-left:4px solid #e69500;padding:.5em 1em;margin:.4em 0}
img{max-width:100%} figure{margin:1em 0} figcaption{color:#555;font-size:.9em;max-width:70em}
code{background:#f4f4f4;padding:0 .2em} dl.prov dt{font-weight:bold;margin-top:.4em}
"""


def build_report(eval_dir, out_dir, studies=()) -> Path:
    """Write `out_dir`/index.html (and the tables as CSV beside it); return the page's path.
    `studies`: study export folders (`gazelab study export ... --csv DIR`); ValueError when one is
    not an export or holds an experiment on other images than the evaluation's."""
    ev = load_evaluation(eval_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exports = [_read_study(folder, ev) for folder in studies]
    unmatched = [line for export in exports for line in _method_identity(export, ev)]  # refuses a mismatch
    human = _human_attention(exports, ev)
    sections = [_header(ev, exports), _warnings(ev, exports, unmatched)]
    check = predictor_check_table(ev)
    tables = [salggan_table1(ev), gazeshiftnet_table1(ev), sagim_table1(ev), *ablation_tables(ev),
              gatys_table(ev, human), ground_truth_table(ev), realism_fidelity_table(ev),
              *[t for t in (parameter_limits_table(ev), check) if t is not None]]
    absent = _absent_tables(tables, exports)
    sections.append("<h2>Tables</h2>" + ("<ul class=notes id=not-shown>" + "".join(f"<li>{_e(line)}</li>" for line in
                                                                                 absent) + "</ul>" if absent else "")
                    + "".join(_table_html(t) for t in tables))
    sections.append(_figures(ev, exports, human))
    for export, name in zip(exports, _study_names(exports)):
        study_tables = _study_tables(export, ev)
        sections.append(f"<h2>Study: {_e(name)}</h2>" + _qc_html(export)
                        + "".join(_table_html(t) for t in study_tables))
        for table in study_tables:  # named per study: two studies' tables never overwrite each other's CSV
            if not table.frame.empty:
                table.frame.to_csv(out / f"study_{_slug(name)}_{_slug(table.title)}.csv", index=False)
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


def _warnings(ev: Evaluation, exports, unmatched: list[str]) -> str:
    """The "Read this first" section; `unmatched`: what `_method_identity` could not check."""
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
    lines += unmatched
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
    return figures_html(ev, _ratings(exports), human)


def _study_tables(export, ev: Evaluation) -> list[Table]:
    responses, tables = export.responses, []
    if (responses["task"] == "choose_best").any():
        tables.append(preference_table(preference_shares(responses, method_order=ev.methods), ev.methods))
    if (responses["task"] == "rate").any():
        tables += rating_tables(*rating_summary(responses, method_order=ev.methods))
    consistency = consistency_table(responses, ev)
    if consistency is not None:
        tables.append(consistency)
    if not tables:
        tables.append(Table("Responses", f"{len(responses)} responses of tasks "
                            f"{sorted(responses['task'].unique())}: no statistic of this report applies.",
                            pd.DataFrame()))
    return tables


def _study_names(exports) -> list[str]:
    """Each study section's name: its experiment and the export's folder, with as many trailing
    folder names as tell the studies apart (every pilot's experiment is called 'pilot')."""
    folders = [export.folder.resolve().parts for export in exports]
    names: list[str] = []
    for depth in range(2, max((len(parts) for parts in folders), default=0) + 2):
        names = [f"{export.experiment or '(no experiment name)'} — {'/'.join(parts[-depth:]).lstrip('/')}"
                 for export, parts in zip(exports, folders)]
        if len(set(names)) == len(names):
            return names
    return names


def _qc_html(export) -> str:
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


# ---------------------------------------------------------------- helpers


def _read_study(folder, ev: Evaluation):
    export = read_export(folder, sources=None)
    ids = set(export.responses["pair_id"].dropna().astype(str)) - {""}
    known = set(ev.per_image["pair_id"].astype(str))
    if ids and not ids & known:
        raise ValueError(f"study export {folder} ({export.experiment}) is about pairs {sorted(ids)[:5]}, none of which "
                         f"the evaluation {ev.folder} scored; is it an export of another experiment?")
    return export


def _method_identity(export, ev: Evaluation) -> list[str]:
    """Check that each method's images in the study (stimuli.csv) are the images the evaluation
    scored under that name (outputs.csv), by pixel digest; 'original' images against the input.
    ValueError naming the method and pairs when they differ; returns warnings for what could not
    be checked (an older export or evaluation, a study method that was not evaluated)."""
    stimuli_file, outputs_file = export.folder / "stimuli.csv", ev.folder / "outputs.csv"
    if not stimuli_file.is_file() or not outputs_file.is_file():
        missing = stimuli_file if not stimuli_file.is_file() else outputs_file
        return [f"Study {export.experiment}: its methods' images could not be matched to the evaluated ones ({missing} "
                "is missing: export or evaluate again with this version)."]
    stimuli = pd.read_csv(stimuli_file, dtype=str, keep_default_na=False)
    stimuli = stimuli.apply(lambda column: column.str.replace(r"^'", "", regex=True))
    outputs = pd.read_csv(outputs_file, dtype=str, keep_default_na=False)
    scored = {(row.method, row.pair_id): row.pixel_sha256 for row in outputs.itertuples()}
    evaluated = set(outputs["method"])
    differ: dict[str, list[str]] = {}
    not_evaluated = set()
    for row in stimuli.itertuples():
        if row.method == "original" and row.side not in ("x", ""):
            continue  # the ground-truth Y is not an evaluated method
        method = REFERENCE if row.method == "original" else row.method
        if method not in evaluated:
            not_evaluated.add(row.method)
            continue
        digest = scored.get((method, row.pair_id))
        if digest is not None and row.pixel_sha256 and row.pixel_sha256 != digest:
            differ.setdefault(row.method, []).append(row.pair_id)
    if differ:
        said = "; ".join(f"{method}: pair(s) {', '.join(sorted(pairs)[:5])}{' …' if len(pairs) > 5 else ''}"
                         for method, pairs in sorted(differ.items()))
        raise ValueError(f"study export {export.folder} ({export.experiment}) showed other images than the evaluation "
                         f"{ev.folder} scored under the same method name ({said}); is a method folder mislabelled? "
                         "Evaluate the images the study showed, or name the methods alike in both")
    return [f"Study {export.experiment}: method {method} was not evaluated, so its study results stand beside no "
            "computational metric." for method in sorted(not_evaluated)]


def _human_attention(exports, ev: Evaluation) -> pd.DataFrame | None:
    frames = [human_attention(export.responses, ev) for export in exports]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def _ratings(exports) -> pd.DataFrame | None:
    """Per-image mean rating per (block, question, method) of the rate tasks (`study_stats.
    per_image_ratings`: no catch, practice or invalid rows): the box plots' distributions."""
    frames = [per_image_ratings(export.responses) for export in exports]
    frames = [frame for frame in frames if len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else None


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
