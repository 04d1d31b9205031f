"""pick_region: click on the object the question asks for (SaGIM's "the object that stands out
most"), optionally followed by a question about it (SaGIM's "a different object from the
original?", which shows the original beside a method's output). A unit is one image version;
the objects to pick come from the pair's mask. The answer stores the point (x, y, image px of
the natural size) and the object's mask id as `choice`, and the follow-up's answer.

pick_region is decided one way: the page is sent the pair's label mask (`mask_png`, served by
`tasks.pick_mask`) and highlights the object under the pointer by looking the point up with the
rule of `mask_cell`; the server looks the answer's point up in the same mask with the same rule,
so what was highlighted is what is stored (the page also sends the id it highlighted, and a
mismatch is refused rather than stored). Overlapping objects need no tie-break: the mask holds
one label per pixel.

Block keys: image ('original' or a method), follow_up {id, text, choices} (default choices yes,
no); one question (the follow-up asks the second).
"""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np

from datadir import relative_path
from studyweb.db.schema import Stimulus
from studyweb.design_checks import MAX_CHOICES
from studyweb.design_yaml import DesignError
from studyweb.tasks.questions import QuestionTask, brief, finite_number
from studyweb.tasks.registry import AnswerError, register


@register
class PickRegion(QuestionTask):
    name = "pick_region"
    block_keys = frozenset({"name", "task", "questions", "question", "image", "follow_up"})
    words = "click on the object in the image that the question asks for"

    def check_block(self, checker, block: dict, out: dict, path: tuple, methods: dict) -> dict:
        out["questions"] = self.check_questions(checker, block, path, default=lambda: [
            {"id": "most_salient", "text": "Click on the object that stands out most."}])
        if len(out["questions"]) != 1:
            checker.fail(path + ("questions",), "pick_region asks one question (the follow_up asks the second)")
        out["image"] = self.check_image(checker, block, path, methods)
        out["follow_up"] = self.check_follow_up(checker, block.get("follow_up"), path + ("follow_up",))
        return out

    @staticmethod
    def check_follow_up(checker, follow: Any, path: tuple) -> dict | None:
        """{id, text, choices} of the question asked after the pick, or None."""
        if follow is None:
            return None
        if not isinstance(follow, dict):
            checker.fail(path, f"expected {{id, text, choices: [yes, no]}}, got {follow!r}")
        checker.known(follow, {"id", "text", "choices"}, path)
        choices = checker.listed(path + ("choices",), follow.get("choices", ["yes", "no"]), 2, MAX_CHOICES, "choices")
        choices = [checker.label(path + ("choices", k), choice, "choice") for k, choice in enumerate(choices)]
        if len(set(choices)) != len(choices):
            checker.fail(path + ("choices",), f"choices must be distinct, got {choices}")
        return {"id": checker.identifier(path + ("id",), follow.get("id", "follow_up")),
                "text": checker.text(path + ("text",), follow.get("text")), "choices": choices}

    def check_dataset(self, blocks: list[dict], dataset, pair_ids: list[str], side: str, source: str) -> None:
        """Every selected pair's mask of the shown side."""
        missing = [p for p in pair_ids if not dataset.path_of(p, "mask", side).is_file()]
        if missing:
            raise DesignError(f"{source}: pick_region needs each pair's mask; missing for {missing[:5]}")

    def own_spec(self, spec, block, unit, source, by_version, rng) -> dict:
        spec = super().own_spec(spec, block, unit, source, by_version, rng)
        mask = _mask_path(source)
        spec.update(mask=mask, regions=_regions(mask, unit), follow_up=block["follow_up"])
        # The follow-up asks about the original ("a different object?"): shown beside a method's output.
        spec["reference"] = {"input": source.id if block["follow_up"] and unit.method else None}
        return spec

    def own_json(self, out, trial, participant, url_for, stimulus_of) -> dict:
        out = super().own_json(out, trial, participant, url_for, stimulus_of)
        spec = trial.spec
        out["mask_url"] = url_for("tasks.pick_mask", trial_id=trial.id, t=participant.token)
        out["regions"] = [{k: r[k] for k in ("id", "box", "point") if k in r} for r in spec["regions"]]
        out["follow_up"] = spec.get("follow_up")
        return out

    def mask_png(self, spec: dict) -> bytes | None:
        return mask_png(spec)

    def answer_values(self, spec: dict, question: str, answer: dict) -> dict[str, Any]:
        """The point (image px) and the mask id under it (`mask_cell`); `choice`, when the page
        sends it, is the id it highlighted and must be that one."""
        x, y = answer.get("x"), answer.get("y")
        if not (finite_number(x) and finite_number(y)):
            raise AnswerError(f"{question}: expected a point x, y in image pixels, got {brief(x)}, {brief(y)}")
        width, height = spec["size"]
        if not (0 <= x <= width and 0 <= y <= height):  # compared before any arithmetic: no overflow
            raise AnswerError(f"{question}: ({brief(x)}, {brief(y)}) is outside the image (0 to {width} x 0 to"
                              f" {height} px)")
        x, y = float(x), float(y)
        region = _region_at(spec, x, y)
        if region is None:
            raise AnswerError(f"{question}: ({x:.1f}, {y:.1f}) is on no object; click on one of the objects")
        highlighted = answer.get("choice")
        if highlighted is not None and highlighted != str(region):
            raise AnswerError(f"{question}: the page highlighted object {brief(highlighted)} but ({x:.1f}, {y:.1f})"
                              f" is on object {region}; please pick again")
        return {"x": x, "y": y, "choice": str(region)}

    def simulated_answer(self, trial: dict, participant, catch: bool) -> dict[str, Any]:
        """A random object, at its point (a pixel on the object)."""
        x, y = trial["regions"][int(participant.rng.integers(len(trial["regions"])))]["point"]
        return {"x": x, "y": y}


def mask_cell(x: float, y: float, size: tuple[int, int], mask_shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(row, col) of the mask pixel under the point (x, y), image px of the shown image of `size`
    (w, h); None outside [0, w] x [0, h]. The one rule of both sides (label_mask.js `maskCell`
    does the same sums in the same order on the same rounded point): col = floor(x * mask_w / w)
    clamped to [0, mask_w - 1] (x = w is the last column), row = floor(y * mask_h / h) likewise."""
    width, height = size
    if not (0 <= x <= width and 0 <= y <= height):
        return None
    rows, cols = mask_shape[:2]
    return (min(max(math.floor(y * rows / height), 0), rows - 1),
            min(max(math.floor(x * cols / width), 0), cols - 1))


def mask_png(spec: dict) -> bytes | None:
    """A pick_region trial's label mask as the page gets it: an 8-bit grey PNG at the mask's own
    size, 0 background, k = the object with mask id k (the array `_region_at` reads, re-encoded);
    None when the mask cannot be read."""
    return _mask_png(spec["mask"])


def _region_at(spec: dict, x: float, y: float) -> int | None:
    """The mask id of the object under (x, y), image px of the shown image (`mask_cell`), or None
    on the background or outside the image."""
    mask = _read_mask(spec["mask"])
    if mask is None:
        raise AnswerError(f"the objects of this image cannot be read ({spec['mask']}); please tell the researcher")
    cell = mask_cell(x, y, spec["size"], mask.shape)
    if cell is None:
        return None
    return int(mask[cell]) or None


# OpenCV (a quarter of a second to import) is imported when a mask is first read, not by every
# module that looks a task up.
@functools.lru_cache(maxsize=256)
def _read_mask(path: str) -> np.ndarray | None:
    """A pair's label mask (2-D, read once per process: every pick_region answer looks one up), or None."""
    import cv2

    mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if mask is None:
        return None
    mask = mask[..., 0] if mask.ndim == 3 else mask
    mask.setflags(write=False)  # shared between calls
    return mask


@functools.lru_cache(maxsize=64)
def _mask_png(path: str) -> bytes | None:
    import cv2

    mask = _read_mask(path)
    if mask is None:
        return None
    ok, png = cv2.imencode(".png", np.ascontiguousarray(mask))
    return png.tobytes() if ok else None


def _mask_path(source: Stimulus) -> str:
    """The instance mask of a pair's input image (DESIGN.md §2: masks/PAIRID_side.png); method
    outputs keep the input's camera, so their objects lie where the input's do."""
    return str(Path(source.experiment.dataset_path) / relative_path(source.pair_id, "mask", source.side))


def _regions(mask_path: str, stimulus: Stimulus) -> list[dict]:
    """The pickable objects: {id (mask id), box [x0, y0, x1, y1] and point [x, y] in the stimulus'
    image px}; the point is the centre of the object's pixel nearest its centroid, so it lies on
    the object (its box's centre need not: overlaps, concave shapes)."""
    mask = _read_mask(mask_path)
    if mask is None:
        raise ValueError(f"pick_region needs the pair's mask; cannot read {mask_path}")
    sx, sy = stimulus.width / mask.shape[1], stimulus.height / mask.shape[0]
    regions = []
    for label in np.unique(mask):
        if label == 0:
            continue
        rows, cols = np.nonzero(mask == label)
        k = int(np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2))
        regions.append({"id": int(label), "box": [round(float(cols.min()) * sx, 2), round(float(rows.min()) * sy, 2),
                                                   round(float(cols.max() + 1) * sx, 2),
                                                   round(float(rows.max() + 1) * sy, 2)],
                        "point": [round((float(cols[k]) + 0.5) * sx, 2), round((float(rows[k]) + 0.5) * sy, 2)]})
    return regions
