"""The figures of `gazelab report`, each a PNG with a caption that names its data.

    figures_html(ev, ratings, human)  ->  "<h2>Figures</h2><figure><img ...><figcaption>...</figure>..."

Readable on the page as drawn: a figure is at most PAGE_WIDTH_PX wide at its natural size, so the
browser never scales it down, and every label is at least FONT_PT at DPI (13.9 CSS px). The
qualitative grid shows at most GRID_METHODS methods per figure (more go into further figures),
two rows per pair (images, then density maps) and one colour scale with a colour bar per map row.
"""
from __future__ import annotations

import base64
import html
import io
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.eval_pairs import METRIC_INFO, read_rgb, resize_density
from analysis.evaluation import REFERENCE
from analysis.report_tables import Evaluation
from datadir import relative_path

PAGE_WIDTH_PX = 1100  # the report's body max-width (report._STYLE): wider images would be scaled down
DPI = 100
FONT_PT = 10  # every label, tick and title: 10 pt at 100 dpi = 13.9 px at the natural size
GRID_PAIRS = 4
GRID_METHODS = 4  # methods per grid figure: 2 + 4 image columns and a colour bar fit in PAGE_WIDTH_PX
_MAX_WIDTH_IN = PAGE_WIDTH_PX / DPI
_CMAP = "magma"


@dataclass
class ReportFigure:
    """One rendered figure: PNG bytes at DPI, alt text, caption, and the colour bars and smallest font drawn."""

    png: bytes
    alt: str
    caption: str
    colour_bars: int = 0
    smallest_font_pt: float = math.inf  # of every visible text drawn


def figures_html(ev: Evaluation, ratings: pd.DataFrame | None, human: pd.DataFrame | None) -> str:
    """The report's "Figures" section. `ratings`: per-image mean rating per (block, method, pair_id)
    of rate studies; `human`: per (method, pair_id) Δp_obj of human attention maps; None when absent."""
    parts = ["<h2>Figures</h2>", "<h3>Qualitative results</h3>", *map(figure_html, grid_figures(ev)),
             "<h3>Fidelity and realism</h3>", figure_html(box_plots(ev, ratings)),
             "<h3>Fidelity against attention shift (GazeShiftNet Fig. 5, left)</h3>",
             figure_html(scatter(ev, ratings, human))]
    return "".join(parts)


def figure_html(figure: ReportFigure) -> str:
    data = base64.b64encode(figure.png).decode()
    return (f"<figure data-colour-bars={figure.colour_bars}><img alt='{_e(figure.alt)}' "
            f"src='data:image/png;base64,{data}'><figcaption>{_e(figure.caption)}</figcaption></figure>")


def map_scale(maps) -> tuple[float, float]:
    """(vmin, vmax) shared by the density maps of one grid row: 0 to the largest value of any map
    (None entries skipped); (0, 1) when no map has a positive value."""
    peaks = [float(np.nanmax(m)) for m in maps if m is not None and m.size]
    vmax = max([p for p in peaks if np.isfinite(p)], default=0.0)
    return 0.0, vmax if vmax > 0 else 1.0


def grid_figures(ev: Evaluation) -> list[ReportFigure]:
    """The qualitative grid over the first GRID_PAIRS pairs every method has, GRID_METHODS methods per figure."""
    scored = [set(ev.per_image.loc[ev.per_image["method"] == m, "pair_id"].astype(str)) for m in ev.methods]
    common = sorted(set.intersection(*scored)) if scored else []
    shown = common[:GRID_PAIRS]
    methods = ev.edited_methods
    chunks = [methods[i:i + GRID_METHODS] for i in range(0, len(methods), GRID_METHODS)] or [[]]
    figures = []
    for number, chunk in enumerate(chunks, 1):
        fig, colour_bars = grid_plot(ev, shown, chunk)
        part = f" (part {number} of {len(chunks)})" if len(chunks) > 1 else ""
        figures.append(_render(fig, f"qualitative grid{part}: {', '.join(chunk) or 'no methods'}",
                               _grid_caption(ev, shown, len(common), chunk) + part, colour_bars))
    return figures


def box_plots(ev: Evaluation, ratings: pd.DataFrame | None) -> ReportFigure:
    """Per-image fidelity to the input (LPIPS, else L1) and the rate studies' ratings, one panel each."""
    metric = _fidelity_metric(ev)
    panels = [(f"{metric} to the input X (lower = closer)",
               {m: ev.per_image.loc[ev.per_image["method"] == m, metric].dropna() for m in ev.edited_methods})]
    for block in ("fidelity", "realism"):
        if ratings is not None and (ratings["block"] == block).any():
            part = ratings[ratings["block"] == block]
            panels.append((f"{block} rating (human, higher = better)",
                           {m: g["rating"] for m, g in part.groupby("method")}))
    if len(panels) == 1:
        panels.append(("realism: needs a rate study", {}))
    fig = _figure(min(_MAX_WIDTH_IN, 0.6 + 3.6 * len(panels)), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, groups) in zip(axes, panels):
        groups = {m: v for m, v in groups.items() if len(v)}
        if groups:
            ax.boxplot(list(groups.values()), tick_labels=[_wrap(m) for m in groups], showmeans=True)
            _ticks(ax, numeric_x=False, rotate_x=len(groups) > 3)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, fontsize=FONT_PT)
            ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(_wrap(title, 40), fontsize=FONT_PT)
    return _render(fig, "box plots of fidelity and realism", _box_caption(ev, metric, panels))


def scatter(ev: Evaluation, ratings: pd.DataFrame | None, human: pd.DataFrame | None) -> ReportFigure:
    """Each method's mean fidelity (y) against its mean attention shift (x): human maps where a
    CodeCharts / BubbleView export gives them, else the measuring predictor's."""
    split, predictor = ev.record["split"], (ev.record.get("predictor") or {}).get("name", "the predictor")
    if human is not None and len(human):
        counts = human.dropna(subset=["dp_obj_rel"]).groupby("method").size()
        x_label, xs = "relative attention increase (human maps)", human.groupby("method")["dp_obj_rel"].mean()
        x_text = ("x: the relative change in the probability to fixate the edited objects (Δp_obj, relative) in "
                  "human attention maps of the CodeCharts / BubbleView study, output against input")
    else:
        counts = pd.Series({m: ev.mean(m, "sal_increase_rel")[2] for m in ev.edited_methods})
        x_label, xs = "relative saliency increase (predictor)", pd.Series(
            {m: ev.mean(m, "sal_increase_rel")[0] for m in ev.edited_methods})
        x_text = (f"x: the relative saliency increase of the edited objects' region (sal_increase_rel) in the "
                  f"measuring predictor's ({predictor}) maps of output and input; no human attention study")
    if ratings is not None and (ratings["block"] == "fidelity").any():
        fidelity = ratings[ratings["block"] == "fidelity"]
        y_label, ys = "fidelity rating (human)", fidelity.groupby("method")["rating"].mean()
        y_text = "y: the mean fidelity rating of the rate study (human, higher = more faithful)"
    else:
        metric = _fidelity_metric(ev)
        y_label, ys = f"fidelity: 1 − {metric} to X", pd.Series(
            {m: 1 - ev.mean(m, metric)[0] for m in ev.edited_methods})
        y_text = f"y: 1 − the mean {metric} of the output to the input X (no rating study)"
    fig = _figure(7.0, 4.8)
    ax = fig.subplots()
    points = {m: (xs.get(m, math.nan), ys.get(m, math.nan)) for m in ev.edited_methods}
    points = {m: p for m, p in points.items() if np.isfinite(p).all()}
    shown = [f"{m} (n = {int(counts.get(m, 0))})" for m in points]
    for names, (x, y) in _coincident(points):
        ax.scatter([x], [y])
        ax.annotate(_wrap(", ".join(names), 30), (x, y), fontsize=FONT_PT, xytext=(4, 4), textcoords="offset points")
    if not shown:
        ax.text(0.5, 0.5, "no method has both measures", ha="center", va="center", transform=ax.transAxes,
                fontsize=FONT_PT)
    ax.margins(0.2)
    ax.set_xlabel(x_label, fontsize=FONT_PT), ax.set_ylabel(y_label, fontsize=FONT_PT)
    _ticks(ax, numeric_x=True, rotate_x=True)
    caption = (f"Fidelity against attention shift, one point per method: its mean over the scored {split}-split "
               f"pairs. {x_text}; {y_text}. Methods and pairs: {', '.join(shown) or 'none with both measures'}.")
    return _render(fig, "fidelity vs attention", caption)


def grid_plot(ev: Evaluation, pair_ids: list[str], methods: list[str]):
    """A matplotlib figure: per pair a row of images (X, Y, outputs) and, when the evaluation has
    maps, a row of densities on one colour scale with its colour bar. Returns (figure, colour bars)."""
    maps, data = ev.folder / "maps", Path(ev.record["data"])
    with_maps = maps.is_dir()
    titles = ["input X", "target Y", *methods]
    rows_per_pair = 2 if with_maps else 1
    cell = min(1.8, (_MAX_WIDTH_IN - 1.7) / len(titles))
    aspect = 0.8
    if pair_ids:
        first = read_rgb(ev.folder / "outputs" / REFERENCE / f"{pair_ids[0]}.png")
        aspect = first.shape[0] / first.shape[1]
    n_rows = max(len(pair_ids), 1) * rows_per_pair
    fig = _figure(min(_MAX_WIDTH_IN, cell * len(titles) + 1.7), 0.6 + n_rows * (cell * aspect + 0.12))
    ratios = [1] * len(titles) + ([0.07] if with_maps else [])
    grid = fig.add_gridspec(n_rows, len(ratios), width_ratios=ratios)
    colour_bars = 0
    for index, pair_id in enumerate(pair_ids):
        x = read_rgb(ev.folder / "outputs" / REFERENCE / f"{pair_id}.png")
        images = [x, _rgb_or_none(data / relative_path(pair_id, "image", "y"))]
        images += [_rgb_or_none(ev.folder / "outputs" / m / f"{pair_id}.png") for m in methods]
        row = index * rows_per_pair
        for col, image in enumerate(images):
            ax = fig.add_subplot(grid[row, col])
            _cell(ax, image)
            if index == 0:
                ax.set_title(_wrap(titles[col]), fontsize=FONT_PT)
            if col == 0:
                ax.set_ylabel(pair_id, fontsize=FONT_PT)
        if not with_maps:
            continue
        densities = [_density_or_none(maps / REFERENCE / f"{pair_id}.npy", x.shape[:2]),
                     _density_or_none(data / relative_path(pair_id, "map_npy", "y"), x.shape[:2])]
        densities += [_density_or_none(maps / m / f"{pair_id}.npy", x.shape[:2]) for m in methods]
        vmin, vmax = map_scale(densities)
        exponent = math.floor(math.log10(vmax))
        shown = None
        for col, density in enumerate(densities):
            ax = fig.add_subplot(grid[row + 1, col])
            ax.set_label(f"{pair_id} map {col}")
            picture = _cell(ax, None if density is None else density / 10.0 ** exponent,
                            vmin=vmin / 10.0 ** exponent, vmax=vmax / 10.0 ** exponent)
            shown = picture if shown is None else shown
            if col == 0:
                ax.set_ylabel(f"{pair_id} maps", fontsize=FONT_PT)
        if shown is not None:
            bar = fig.colorbar(shown, cax=fig.add_subplot(grid[row + 1, -1]))
            bar.ax.tick_params(labelsize=FONT_PT)
            bar.locator = _locator(3)
            bar.update_ticks()
            bar.set_label(f"×10$^{{{exponent}}}$/px", fontsize=FONT_PT)
            colour_bars += 1
    if not pair_ids:
        ax = fig.add_subplot(grid[0, 0])
        _cell(ax, None, text="no pair every method has")
    return fig, colour_bars


# ---------------------------------------------------------------- helpers


def _coincident(points: dict[str, tuple[float, float]]) -> list[tuple[list[str], tuple[float, float]]]:
    """Methods whose points lie within 1 % of the plotted range of each other, one label per group
    (labels of the same place would be drawn over one another)."""
    if not points:
        return []
    values = np.array(list(points.values()), float)
    span = np.ptp(values, axis=0)
    tolerance = 0.01 * np.where(span > 0, span, np.maximum(np.abs(values).max(axis=0), 1e-300))
    groups: list[tuple[list[str], tuple[float, float]]] = []
    for method, point in points.items():
        for names, place in groups:
            if (np.abs(np.subtract(point, place)) <= tolerance).all():
                names.append(method)
                break
        else:
            groups.append(([method], point))
    return groups


def _grid_caption(ev: Evaluation, shown: list[str], n_common: int, methods: list[str]) -> str:
    split, predictor = ev.record["split"], (ev.record.get("predictor") or {}).get("name")
    text = (f"Qualitative results on the {split} split: the first {len(shown)} of the {n_common} pairs every method "
            f"has an output for ({', '.join(shown) or 'none'}); methods {', '.join(methods) or 'none'}. Per pair, the "
            f"first row shows the input X, the ground-truth edit Y and each method's output")
    if not (ev.folder / "maps").is_dir():
        return text + "; no density maps: the evaluation ran without a predictor."
    return text + (f"; the row below, their density maps: of X and of each output by the measuring predictor "
                   f"({predictor}), of Y the human fixation map of the dataset. Each map is a density summing to 1 "
                   f"over X's pixel grid; the maps of one pair share one colour scale, from 0 to the largest value "
                   f"among them, shown by the colour bar at the row's right (its label gives the unit: ×10^k per "
                   f"pixel).")


def _box_caption(ev: Evaluation, metric: str, panels) -> str:
    parts = []
    for title, groups in panels:
        counts = ", ".join(f"{m} {len(v)}" for m, v in groups.items() if len(v)) or "no data"
        if title.startswith(metric):
            what = (f"per-image {metric} ({METRIC_INFO[metric][0]}) of each method's outputs to the input X "
                    f"on the {ev.record['split']} split")
        elif "needs a rate study" in title:
            parts.append("Realism: no rate study in this report (studyweb/examples/gazeshiftnet_ratings.yaml).")
            continue
        else:
            what = f"{title.split(' ')[0]} ratings of the rate study, each image's mean over its raters"
        parts.append(f"{what}; images per method: {counts}.")
    return ("Box: quartiles and median; whiskers: 1.5 × IQR; triangle: mean. Panels, left to right: "
            + " ".join(parts))


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    # A Figure without pyplot renders with Agg and keeps no global state (no window, no leak).
    return Figure(figsize=(min(width_in, _MAX_WIDTH_IN), height_in), dpi=DPI, layout="constrained")


def _cell(ax, picture, vmin=None, vmax=None, text="none"):
    ax.set_xticks([]), ax.set_yticks([])
    if picture is None:
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=FONT_PT)
        return None
    if picture.ndim == 2:
        return ax.imshow(picture, cmap=_CMAP, vmin=vmin, vmax=vmax)
    return ax.imshow(picture)


def _ticks(ax, numeric_x: bool, rotate_x: bool):
    """At most 5 numeric ticks per axis (no overlapping labels), at FONT_PT; x labels slanted if asked."""
    ax.yaxis.set_major_locator(_locator(5))
    if numeric_x:
        ax.xaxis.set_major_locator(_locator(5))
    ax.tick_params(labelsize=FONT_PT)
    if rotate_x:
        ax.tick_params(axis="x", labelrotation=30)
        for label in ax.get_xticklabels():  # ticks made later copy the first tick's alignment
            label.set_horizontalalignment("right")


def _locator(bins: int):
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=bins)


def _render(fig, alt: str, caption: str, colour_bars: int = 0) -> ReportFigure:
    from matplotlib.text import Text

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return ReportFigure(buffer.getvalue(), alt, caption, colour_bars, min(sizes, default=math.inf))


def _rgb_or_none(path: Path):
    return read_rgb(path) if path.is_file() else None


def _density_or_none(path: Path, shape: tuple[int, int]):
    """A saved density map resampled to `shape` (H, W), summing to 1; None when there is none."""
    return resize_density(np.load(path), shape) if path.is_file() else None


def _fidelity_metric(ev: Evaluation) -> str:
    return "lpips_x" if ev.has("lpips_x") else "l1_x"


def _wrap(text: str, width: int = 16) -> str:
    return textwrap.fill(str(text), width)


def _e(text) -> str:
    return html.escape(str(text), quote=True)
