"""Questionnaire studies in the database (task "questionnaire", made from a design:
`studyweb.designs`): the stimuli, a participant's trials, what the page gets, and the answers.

Stimuli: per selected pair, its input image (method '') and each method's output
(`<folder>/<pair_id>.png`). Per block, a participant gets `per_participant` units, least
observed first (`assignment.choose_stimuli`, at most one version of a pair per block), topped
up with full ones so that everyone does the same work (`studyweb.workload`): a
choose_best unit is a pair (its input stimulus carries the observer count), a rate /
pick_region / describe unit is one image version. Catch trials (design `catch.every`) are put
between a block's trials where the block's task has one, at least one per such block
(`workload.catch_gaps`): choose_best shows the input among the
candidates and asks which is identical to the original; a fidelity rating rates the input
against itself (expected: the top score). Their trials have no stimulus (they count for
nobody's observers) and their answers are Responses with question 'catch' and `correct`.

Answers (one Response per question): choose_best stores the chosen candidate's method as
`choice` (its label in payload) and the methods in display order as `shown_methods`; rate the
score as `rating`; pick_region the point (x, y, image px of the natural size) and the object's
mask id as `choice`, and the follow-up's answer; describe the text.

pick_region is decided one way: the page is sent the pair's label mask (`mask_png`, served by
`tasks.pick_mask`) and highlights the object under the pointer by looking the point up with the
rule of `mask_cell`; the server looks the answer's point up in the same mask with the same rule,
so what was highlighted is what is stored (the page also sends the id it highlighted, and a
mismatch is refused rather than stored). Overlapping objects need no tie-break: the mask holds
one label per pixel. A pick on a method's output with a follow-up (SaGIM's "a different object
from the original?") shows the original beside it for the follow-up.
"""
from __future__ import annotations

import functools
import logging
import math
import reprlib
import string
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from studyweb.db.schema import Participant, Response, Stimulus, Trial, utcnow

log = logging.getLogger(__name__)
CATCH_TEXT = "Which image is identical to the original?"
_BRIEF = reprlib.Repr()  # a refused value in a message: short, whatever its type or depth
_BRIEF.maxstring = _BRIEF.maxother = 40
_BRIEF.maxlevel = 2


class AnswerError(ValueError):
    """An answer that does not fit its trial (the API answers 422 with the message)."""


def build_trials(participant: Participant, stimuli: list[Stimulus], counts: dict[int, int], settings: dict,
                 rng: np.random.Generator) -> list[Trial]:
    """A participant's trials, block after block (not added to a session): K units per block
    (`workload.per_participant`), least observed in that block first (counts: {(block index,
    stimulus id): observers}, `assignment.observer_counts` by_block), topped up with already
    full units when fewer than K still want observers (the caller refuses a participant none of
    whose units wants one), and the block's catch trials in their gaps (`workload.catch_gaps`)."""
    from studyweb.assignment import choose_stimuli
    from studyweb.workload import catch_gaps, per_participant

    design = settings["design"]
    by_version = {}
    for stimulus in stimuli:
        by_version.setdefault(stimulus.method or "original", []).append(stimulus)
    originals = {s.pair_id: s for s in by_version.get("original", [])}
    catch = design.get("catch")
    trials: list[Trial] = []
    for b, block in enumerate(design["blocks"]):
        units = _units(block, by_version)
        seen_in_block = {sid: n for (index, sid), n in counts.items() if index == b}  # each block its own observers
        chosen = choose_stimuli(units, seen_in_block, k=per_participant(design, len(originals)),
                                m=int(design["observers"]), allow_both_sides=False, rng=rng, top_up=True)
        specs = [_spec(block, b, unit, originals, by_version, design, rng) for unit in chosen]
        if catch and _has_catch(block) and specs:
            for gap in reversed(catch_gaps(len(chosen), catch["every"], rng)):  # from the end: gaps stay put
                source = originals[chosen[min(gap, len(chosen) - 1)].pair_id]
                specs.insert(gap, _catch_spec(block, b, source, by_version, rng))
        for unit_id, spec in specs:
            trials.append(Trial(participant_id=participant.id, stimulus_id=unit_id, position=len(trials) + 1,
                                is_practice=False, task=block["task"], spec=spec))
    return trials


def trial_json(trial: Trial, participant: Participant, stimulus_of, url_for) -> dict:
    """What the page needs for one questionnaire trial (image URLs from `url_for`;
    stimulus_of(id) -> Stimulus)."""
    spec = trial.spec
    image = lambda sid: url_for("tasks.stimulus_image", trial_id=trial.id, stimulus_id=sid,  # noqa: E731
                                t=participant.token)
    out = {"task": trial.task, "block": spec["block"], "questions": spec["questions"],
           "answer_url": url_for("api.answer", trial_id=trial.id)}
    reference = spec.get("reference") or {}
    out["reference"] = {
        "input_url": image(reference["input"]) if reference.get("input") else None,
        "target_map_url": url_for("tasks.target_map", trial_id=trial.id, t=participant.token)
        if reference.get("target_map") else None,
    }
    if trial.task == "choose_best":
        out["candidates"] = [{"label": c["label"], "image_url": image(c["stimulus_id"])} for c in spec["candidates"]]
        return out
    stimulus = stimulus_of(spec["image"])
    out.update(image_url=image(spec["image"]), natural_w=stimulus.width, natural_h=stimulus.height)
    if trial.task == "rate":
        out["scale"] = {"labels": spec["scale"]["labels"], "scores": spec["scale"]["scores"]}
    elif trial.task == "pick_region":
        out["mask_url"] = url_for("tasks.pick_mask", trial_id=trial.id, t=participant.token)
        out["regions"] = [{k: r[k] for k in ("id", "box", "point") if k in r} for r in spec["regions"]]
        out["follow_up"] = spec.get("follow_up")
    elif trial.task == "describe":
        out["max_chars"] = spec["max_chars"]
    return out


def record_answers(session: Session, participant: Participant, trial: Trial, body: dict, key: str) -> None:
    """Check and store the answers of a questionnaire trial (body: {answers, rt_ms,
    shown_order}); the trial ends. AnswerError (nothing stored) when an answer does not fit.
    A failed catch trial that takes the participant past the design's catch.max_failures
    screens them out then and there (`screening.screen_out`)."""
    spec = trial.spec
    items, rt_ms = body.get("answers"), body.get("rt_ms")
    expected = [q["id"] for q in spec["questions"]]
    if spec.get("follow_up"):
        expected.append(spec["follow_up"]["id"])
    if not isinstance(items, list) or not all(isinstance(a, dict) and isinstance(a.get("question"), str)
                                              for a in items):
        raise AnswerError(f"expected a list of answers {{question, ...}} to the questions {expected},"
                          f" got {_brief(items)}")
    answers = {a["question"]: a for a in items}
    if len(answers) != len(items) or set(answers) != set(expected):
        raise AnswerError(f"expected one answer for each of the questions {expected}, got"
                          f" {[_brief(a['question']) for a in items][:10]}")
    if rt_ms is not None and not (_finite_number(rt_ms) and rt_ms >= 0):
        raise AnswerError(f"rt_ms: expected a time in ms, got {_brief(rt_ms)}")
    shown = _shown_methods(spec, body.get("shown_order") or [])
    now = utcnow()
    for question in expected:
        values = _answer_values(trial, spec, question, answers[question])
        correct = None
        if spec.get("catch") and question == spec["catch"]["question"]:
            correct = values.get("choice_label", values.get("rating")) == spec["catch"]["expected"]
        label = values.pop("choice_label", None)
        answer_rt = answers[question].get("rt_ms")  # the answer's own time; a page that sends none: the trial's
        if answer_rt is not None and not (_finite_number(answer_rt) and 0 <= answer_rt <= 3_600_000):
            raise AnswerError(f"{question}: rt_ms: expected a time in ms, got {_brief(answer_rt)}")
        session.add(Response(
            participant_id=participant.id, trial_id=trial.id, task=trial.task, question=question,
            valid=True, correct=correct, rt_ms=rt_ms if answer_rt is None else float(answer_rt), shown_methods=shown,
            idempotency_key=key,
            created_at=now, payload={"label": label, "catch": bool(spec.get("catch"))} if label or spec.get("catch")
            else None, **values))
    trial.status, trial.ended_at = "done", now
    trial.started_at = trial.started_at or now
    trial.duration_ms = body.get("rt_ms")
    if spec.get("catch"):
        _screen_out_past_catch_limit(session, participant)


def _screen_out_past_catch_limit(session: Session, participant: Participant) -> None:
    """Screen the participant out when their failed catch trials (this answer's included) are
    more than the design's catch.max_failures, the number QC would exclude them for."""
    from sqlalchemy import func, select

    from studyweb.designs import CATCH_QUESTION
    from studyweb.screening import screen_out

    allowed = int((participant.experiment.settings["design"].get("catch") or {}).get("max_failures", 0))
    session.flush()
    failures = session.scalar(select(func.count()).select_from(Response).where(
        Response.participant_id == participant.id, Response.question == CATCH_QUESTION, Response.correct.is_(False)))
    if failures > allowed:
        screen_out(session, participant, "catch", f"{failures} catch trial(s) failed > max {allowed}")


def _answer_values(trial: Trial, spec: dict, question: str, answer: dict) -> dict[str, Any]:
    """The Response columns of one answer, checked against the trial."""
    follow = spec.get("follow_up")
    if follow and question == follow["id"]:
        choice = answer.get("choice")
        if not isinstance(choice, str) or choice not in follow["choices"]:
            raise AnswerError(f"{question}: expected one of {follow['choices']}, got {_brief(choice)}")
        return {"choice": choice}
    if trial.task == "choose_best":
        labels = {c["label"]: c["method"] for c in spec["candidates"]}
        choice = answer.get("choice")
        if not isinstance(choice, str) or choice not in labels:
            raise AnswerError(f"{question}: the choice must be one of the candidates {sorted(labels)},"
                              f" got {_brief(choice)}")
        return {"choice": labels[choice], "choice_label": choice}
    if trial.task == "rate":
        rating = answer.get("rating")
        if not _finite_number(rating) or rating not in spec["scale"]["scores"]:
            raise AnswerError(f"{question}: the rating must be one of the scale's scores {spec['scale']['scores']},"
                              f" got {_brief(rating)}")
        return {"rating": float(rating)}
    if trial.task == "pick_region":
        return _pick_values(spec, question, answer)
    text = answer.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > spec["max_chars"]:
        raise AnswerError(f"{question}: expected a text of 1 to {spec['max_chars']} characters")
    return {"text": text.strip()}


def _pick_values(spec: dict, question: str, answer: dict) -> dict[str, Any]:
    """The Response columns of a pick: the point (image px) and the mask id under it (`mask_cell`);
    `choice`, when the page sends it, is the id it highlighted and must be that one."""
    x, y = answer.get("x"), answer.get("y")
    if not (_finite_number(x) and _finite_number(y)):
        raise AnswerError(f"{question}: expected a point x, y in image pixels, got {_brief(x)}, {_brief(y)}")
    width, height = spec["size"]
    if not (0 <= x <= width and 0 <= y <= height):  # compared before any arithmetic: no overflow
        raise AnswerError(f"{question}: ({_brief(x)}, {_brief(y)}) is outside the image (0 to {width} x 0 to"
                          f" {height} px)")
    x, y = float(x), float(y)
    region = _region_at(spec, x, y)
    if region is None:
        raise AnswerError(f"{question}: ({x:.1f}, {y:.1f}) is on no object; click on one of the objects")
    highlighted = answer.get("choice")
    if highlighted is not None and highlighted != str(region):
        raise AnswerError(f"{question}: the page highlighted object {_brief(highlighted)} but ({x:.1f}, {y:.1f})"
                          f" is on object {region}; please pick again")
    return {"x": x, "y": y, "choice": str(region)}


def mask_cell(x: float, y: float, size: tuple[int, int], mask_shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(row, col) of the mask pixel under the point (x, y), image px of the shown image of `size`
    (w, h); None outside [0, w] x [0, h]. The one rule of both sides (questionnaire.js `maskCell`
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


def _shown_methods(spec: dict, shown_order: list) -> list[str] | None:
    """The candidates' methods in the order the page showed them (its `shown_order` labels; the
    server's order when the page sent none)."""
    if "candidates" not in spec:
        return [spec["method"]] if spec.get("method") else None
    labels = {c["label"]: c["method"] for c in spec["candidates"]}
    order = [label for label in shown_order if isinstance(label, str) and label in labels] \
        if isinstance(shown_order, list) else []
    if sorted(order) != sorted(labels):
        order = [c["label"] for c in spec["candidates"]]
    return [labels[label] for label in order]


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


def _finite_number(value: Any) -> bool:
    """A JSON number that is not a bool, NaN or ±inf (an int of any size compares without overflow)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _brief(value: Any) -> str:
    return _BRIEF.repr(value)


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


def _has_catch(block: dict) -> bool:
    from studyweb.workload import has_catch

    return has_catch(block)


def _units(block: dict, by_version: dict) -> list[Stimulus]:
    """The stimuli a block's trials are counted on (see the module doc)."""
    if block["task"] == "choose_best":
        return by_version.get("original", [])
    versions = [v for v in by_version if v != "original"] if block["image"] == "methods" else [block["image"]]
    return [s for v in versions for s in by_version.get(v, [])]


def _spec(block: dict, b: int, unit: Stimulus, originals: dict, by_version: dict, design: dict, rng) -> tuple:
    """(the unit's stimulus id, the trial's spec)."""
    source = originals[unit.pair_id]
    spec: dict[str, Any] = {"block": block["name"], "block_index": b, "questions": block["questions"],
                            "pair_id": unit.pair_id, "catch": None}
    if block["task"] == "choose_best":
        versions = {s.method or "original": s for v in block["candidates"] for s in by_version.get(v, [])
                    if s.pair_id == unit.pair_id}
        order = [block["candidates"][i] for i in rng.permutation(len(block["candidates"]))]
        spec["candidates"] = [{"label": string.ascii_uppercase[i], "method": m, "stimulus_id": versions[m].id}
                              for i, m in enumerate(order)]
        spec["reference"] = {"input": source.id if block["reference"]["input"] else None,
                             "target_map": bool(block["reference"]["target_map"])}
        return unit.id, spec
    spec.update(image=unit.id, method=unit.method or "original", size=[unit.width, unit.height])
    if block["task"] == "rate":
        spec["scale"] = block["scale"]
        spec["reference"] = {"input": source.id if block["reference"]["input"] else None}
    elif block["task"] == "pick_region":
        mask = _mask_path(source)
        spec.update(mask=mask, regions=_regions(mask, unit), follow_up=block["follow_up"])
        # The follow-up asks about the original ("a different object?"): shown beside a method's output.
        spec["reference"] = {"input": source.id if block["follow_up"] and unit.method else None}
    else:
        spec["max_chars"] = block["max_chars"]
    return unit.id, spec


def _catch_spec(block: dict, b: int, source: Stimulus, by_version: dict, rng) -> tuple:
    """(None: a catch trial counts for nobody, its spec) with a known answer."""
    if block["task"] == "choose_best":
        others = [m for m in block["candidates"] if m != "original"][:max(1, len(block["candidates"]) - 1)]
        methods = ["original", *others]
        versions = {s.method or "original": s for m in methods for s in by_version.get(m, [])
                    if s.pair_id == source.pair_id}
        order = [methods[i] for i in rng.permutation(len(methods))]
        candidates = [{"label": string.ascii_uppercase[i], "method": m, "stimulus_id": versions[m].id}
                      for i, m in enumerate(order)]
        expected = next(c["label"] for c in candidates if c["method"] == "original")
        return None, {"block": block["name"], "block_index": b, "pair_id": source.pair_id,
                      "questions": [{"id": "catch", "text": CATCH_TEXT}], "candidates": candidates,
                      "reference": {"input": source.id, "target_map": False},
                      "catch": {"question": "catch", "expected": expected}}
    scale = block["scale"]
    return None, {"block": block["name"], "block_index": b, "pair_id": source.pair_id,
                  "questions": [{"id": "catch", "text": scale["question"]}], "image": source.id, "method": "original",
                  "size": [source.width, source.height], "scale": scale, "reference": {"input": source.id},
                  "catch": {"question": "catch", "expected": max(scale["scores"])}}


def _mask_path(source: Stimulus) -> str:
    """The instance mask of a pair's input image (DESIGN.md §2: masks/PAIRID_side.png); method
    outputs keep the input's camera, so their objects lie where the input's do."""
    from pathlib import Path

    return str(Path(source.experiment.dataset_path) / "masks" / f"{source.pair_id}_{source.side}.png")


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
