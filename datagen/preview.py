"""A contact sheet of a dataset's pairs: X and Y with their masks overlaid, the edit written under."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from datadir import Dataset
from datadir.maps import load_map

TILE_WIDTH = 240
GAP = 6
FONT, FONT_SCALE, FONT_THICKNESS = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1
LINE_HEIGHT = 15  # pixels from one caption baseline to the next
MARGIN = 4  # pixels of white left and right of the caption text
MAX_ID_LINES, MAX_EDIT_LINES = 2, 4  # longer captions end in "..."
ELLIPSIS = "..."


def contact_sheet(dataset_dir, out, n_pairs: int = 12, columns: int = 2, pair_ids=None) -> Path:
    """Write a PNG with up to `n_pairs` pairs, `columns` pairs per row; returns its path.

    Each pair is shown as X | Y, each image with its instance masks outlined (a colour per
    mask id; edited objects in thick white), then the X and Y fixation maps as heat maps once
    a study has filled them, the pair id and edit under it.
    """
    if n_pairs < 1 or columns < 1:
        raise ValueError(f"n_pairs and columns must be >= 1, got {n_pairs} and {columns}")
    dataset = Dataset.open(dataset_dir)
    table = dataset.pairs
    if pair_ids:
        unknown = sorted(set(pair_ids) - set(table["pair_id"]))
        if unknown:
            raise ValueError(f"pair ids {unknown[:5]} are not in {dataset.path}")
        table = table[table["pair_id"].isin(pair_ids)]
    table = table.head(n_pairs)
    if table.empty:
        raise ValueError(f"{dataset.path} has no pairs to preview")
    tiles = [_pair_tile(dataset, row) for row in table.to_dict("records")]
    tile_h = max(t.shape[0] for t in tiles)
    tile_w = max(t.shape[1] for t in tiles)
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.full((rows * (tile_h + GAP) + GAP, min(columns, len(tiles)) * (tile_w + GAP) + GAP, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        top = GAP + (k // columns) * (tile_h + GAP)
        left = GAP + (k % columns) * (tile_w + GAP)
        sheet[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet):
        raise ValueError(f"could not write contact sheet {out}; expected a .png or .jpg path")
    return out


def _pair_tile(dataset: Dataset, row: dict) -> np.ndarray:
    edit, edited_ids = _edit_of(dataset, row)
    panels = []
    for side in ("x", "y"):
        if not row[f"{side}_image"]:
            continue
        image = cv2.imread(str(dataset.path / row[f"{side}_image"]), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"pair {row['pair_id']}: {row[f'{side}_image']} is not a readable image")
        mask = None
        if row[f"{side}_mask"]:
            mask = cv2.imread(str(dataset.path / row[f"{side}_mask"]), cv2.IMREAD_UNCHANGED)
        panels.append(_overlay(image, mask, edited_ids.get(side, set())))
    for side in ("x", "y"):  # attention maps, once a study has filled them
        if row[f"{side}_map"] and row[f"{side}_image"]:
            panels.append(_heatmap(dataset.path / row[f"{side}_image"], dataset.path / row[f"{side}_map"]))
    scale = TILE_WIDTH / panels[0].shape[1]
    panels = [cv2.resize(p, (TILE_WIDTH, round(p.shape[0] * scale)), interpolation=cv2.INTER_AREA) for p in panels]
    body = np.concatenate([panels[0]] + [np.hstack([np.full((p.shape[0], 2, 3), 255, np.uint8), p]) for p in panels[1:]], axis=1)
    return np.vstack([body, _caption(f"{row['pair_id']} [{row['split']}]", edit, body.shape[1])])


def _caption(title: str, edit: str, width: int) -> np.ndarray:
    """A white strip `width` pixels wide: the title in black, the edit in red under it, each
    wrapped to the width (and cut with '...' beyond its line limit)."""
    text_width = width - 2 * MARGIN
    lines = [(line, (0, 0, 0)) for line in caption_lines(title, text_width, MAX_ID_LINES)]
    lines += [(line, (40, 40, 160)) for line in caption_lines(edit, text_width, MAX_EDIT_LINES)]
    caption = np.full((len(lines) * LINE_HEIGHT + MARGIN, width, 3), 255, np.uint8)
    for k, (line, colour) in enumerate(lines):
        baseline = (k + 1) * LINE_HEIGHT - 2
        cv2.putText(caption, line, (MARGIN, baseline), FONT, FONT_SCALE, colour, FONT_THICKNESS, cv2.LINE_AA)
    return caption


def caption_lines(text: str, width: int, max_lines: int) -> list[str]:
    """`text` as lines at most `width` pixels wide in the caption font: wrapped at spaces, a word
    wider than a line broken inside it, and the last of `max_lines` lines ending in '...' when
    more text did not fit."""
    lines: list[str] = []
    for word in text.split():
        joined = f"{lines[-1]} {word}" if lines else word
        if lines and _text_width(joined) <= width:
            lines[-1] = joined
            continue
        while _text_width(word) > width:  # a word wider than a line: break it where it fills one
            cut = max(1, _prefix_that_fits(word, width))
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1]
    return lines[: max_lines - 1] + [last[: _prefix_that_fits(last, width - _text_width(ELLIPSIS))] + ELLIPSIS]


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, FONT, FONT_SCALE, FONT_THICKNESS)[0][0]


def _prefix_that_fits(text: str, width: int) -> int:
    """The length of the longest prefix of `text` at most `width` pixels wide."""
    low, high = 0, len(text)
    while low < high:  # text widths grow with the prefix, so bisect
        middle = (low + high + 1) // 2
        if _text_width(text[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def _edit_of(dataset: Dataset, row: dict) -> tuple[str, dict[str, set[int]]]:
    """A one-line description of the pair's edit, and the mask ids of edited objects per side."""
    if not row["scene"]:
        return f"{row['source']}: {row['edit_type']}", {}
    scene = json.loads((dataset.path / row["scene"]).read_text(encoding="utf-8"))
    edit = scene.get("edit", {})
    ids = [int(i) for i in edit.get("object_ids", [])]
    mask_ids = {}
    for side in ("x", "y"):
        by_id = {o["id"]: o for o in scene.get(side, {}).get("objects", [])}
        mask_ids[side] = {by_id[i]["mask_id"] for i in ids if i in by_id}
    befores = edit.get("before") or [None] * len(ids)
    afters = edit.get("after") or [None] * len(ids)
    parts = [f"#{i} {_short(b)} -> {_short(a)}" for i, b, a in zip(ids, befores, afters)]
    return f"{edit.get('type', row['edit_type'])}: " + "; ".join(parts), mask_ids


def _short(value) -> str:
    """'small red metal sphere' for a whole object, 'red' for a changed attribute, '(x,y)' for a position."""
    if not value:
        return "-"
    keys = [k for k in ("size", "color", "material", "shape") if k in value]
    if keys:
        return " ".join(str(value[k]) for k in keys)
    xy = value.get("3d_coords")
    return f"({xy[0]:.1f},{xy[1]:.1f})" if xy else "?"


def _overlay(image: np.ndarray, mask: np.ndarray | None, edited: set[int]) -> np.ndarray:
    """Outlines of every mask id in its palette colour; edited objects in thick white."""
    if mask is None or mask.shape != image.shape[:2]:
        return image
    palette = _palette()
    out = image.copy()
    for mask_id in np.unique(mask):
        if mask_id == 0:
            continue
        contours, _ = cv2.findContours((mask == mask_id).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if mask_id in edited:
            cv2.drawContours(out, contours, -1, (255, 255, 255), 2)
        else:
            cv2.drawContours(out, contours, -1, tuple(int(c) for c in palette[mask_id]), 1)
    return out


def _heatmap(image_path: Path, map_path: Path) -> np.ndarray:
    """The image darkened under a JET heat map of its fixation density."""
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    density = load_map(map_path)
    scaled = np.round(density / max(float(density.max()), 1e-30) * 255).astype(np.uint8)
    heat = cv2.applyColorMap(cv2.resize(scaled, (image.shape[1], image.shape[0])), cv2.COLORMAP_JET)
    return cv2.addWeighted(image, 0.5, heat, 0.5, 0)


def _palette() -> np.ndarray:
    rng = np.random.default_rng(7)
    palette = rng.integers(40, 256, (256, 3)).astype(np.uint8)
    palette[0] = 0
    return palette
