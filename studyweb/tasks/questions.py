"""Question tasks, the blocks of a questionnaire study (task "questionnaire", made from a design:
`studyweb.designs`): what choose_best, rate, pick_region and describe share (`QuestionTask`),
and the answers of their trials (`record_answers`).

Stimuli: per selected pair, its input image (method '') and each method's output
(`<folder>/<pair_id>.png`). Per block, a participant gets `per_participant` units, least
observed first (`studyweb.assignment`, at most one version of a pair per block), topped up with
full ones so that everyone does the same work (`studyweb.workload`): a choose_best unit is a
pair (its input stimulus carries the observer count), a rate / pick_region / describe unit is
one image version (`QuestionTask.block_units`). Catch trials (design `catch.every`) are put
between a block's trials where the block's task has one (`Task.has_catch`), at least one per
such block (`workload.catch_gaps`): choose_best shows the input among the candidates and asks
which is identical to the original; a fidelity rating rates the input against itself
(expected: the top score). Their trials have no stimulus (they count for nobody's observers)
and their answers are Responses with question 'catch' and `correct`.

Answers (one Response per question): choose_best stores the chosen candidate's method as
`choice` (its label in payload) and the methods in display order as `shown_methods`; rate the
score as `rating`; pick_region the point (x, y, image px of the natural size) and the object's
mask id as `choice`, and the follow-up's answer; describe the text. Each task checks its own
answers (`QuestionTask.answer_values`); the page is static/questionnaire.js, a builder per task.
"""
from __future__ import annotations

import math
import reprlib
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from studyweb.db.schema import Participant, Response, Stimulus, Trial, utcnow
from studyweb.design_checks import CATCH_QUESTION
from studyweb.screening import screen_out
from studyweb.tasks.registry import AnswerError, Task, task_named

CATCH_TEXT = "Which image is identical to the original?"
_BRIEF = reprlib.Repr()  # a refused value in a message: short, whatever its type or depth
_BRIEF.maxstring = _BRIEF.maxother = 40
_BRIEF.maxlevel = 2


class QuestionTask(Task):
    """A question block's task: the Task protocol's hooks for a questionnaire's trials, and the
    ones the questionnaire's assignment asks of each block (`block_units`, `trial_spec`,
    `catch_spec`). A subclass checks its block (`check_block`, with `check_questions` and
    `check_image`), fills its spec and page JSON (`own_spec`, `own_json`), checks an answer
    (`answer_values`) and answers as a simulated participant (`simulated_answer`)."""

    study = "questionnaire"
    answer_shape = "answers"
    scripts = ("questionnaire.js",)  # its builder there (BUILDERS), run by the questionnaire's page

    # --- designs ---

    def check_questions(self, checker, block: dict, path: tuple, default=None) -> list[dict]:
        """The block's questions (`Checker.questions`); default() without any: this task's own."""
        return checker.questions(block, path, self.name, default)

    def check_image(self, checker, block: dict, path: tuple, methods: dict, default: str = "original") -> str:
        """The version the block shows: 'original', a method, or 'methods' (every method's)."""
        image = block.get("image", default)
        if not isinstance(image, str) or image != "methods" and image not in ["original", *methods]:
            checker.fail(path + ("image",), f"expected 'original', 'methods' or one of the methods"
                                            f" ({', '.join(methods) or 'none'}), got {image!r}")
        if image == "methods" and not methods:
            checker.fail(path + ("image",), "'methods' needs methods in the design (methods: name: folder)")
        return image

    # --- trials (`studyweb.assignment`) ---

    def block_units(self, block: dict, by_version: dict) -> list[Stimulus]:
        """The stimuli a block's trials are counted on: one per shown version of each pair
        (by_version: {version: stimuli}, 'original' for the inputs)."""
        versions = [v for v in by_version if v != "original"] if block["image"] == "methods" else [block["image"]]
        return [s for v in versions for s in by_version.get(v, [])]

    def trial_spec(self, block: dict, b: int, unit: Stimulus, source: Stimulus, by_version: dict, rng) -> dict:
        """The spec of a trial of block number `b` on `unit` (its pair's input is `source`)."""
        spec: dict[str, Any] = {"block": block["name"], "block_index": b, "questions": block["questions"],
                                "pair_id": unit.pair_id, "catch": None}
        return self.own_spec(spec, block, unit, source, by_version, rng)

    def own_spec(self, spec: dict, block: dict, unit: Stimulus, source: Stimulus, by_version: dict, rng) -> dict:
        """`spec` with this task's part: the image shown (its stimulus id, version and size) and
        what a subclass adds."""
        spec.update(image=unit.id, method=unit.method or "original", size=[unit.width, unit.height])
        return spec

    def catch_spec(self, block: dict, b: int, source: Stimulus, by_version: dict, rng) -> dict:
        """The spec of a catch trial (a known answer) on the pair whose input is `source`."""
        raise NotImplementedError(f"task {self.name!r} has no catch trials")

    # --- the page (`studyweb.api`, `studyweb.tasks.pages`) ---

    def trial_json(self, trial, participant, settings, url_for, stimulus_of) -> dict:
        """What the page needs for one trial (image URLs from `url_for`)."""
        spec = trial.spec
        out = {"task": trial.task, "block": spec["block"], "questions": spec["questions"],
               "answer_url": url_for("api.answer", trial_id=trial.id)}
        reference = spec.get("reference") or {}
        out["reference"] = {
            "input_url": _image_url(url_for, trial, participant, reference["input"]) if reference.get("input")
            else None,
            "target_map_url": url_for("tasks.target_map", trial_id=trial.id, t=participant.token)
            if reference.get("target_map") else None,
        }
        return self.own_json(out, trial, participant, url_for, stimulus_of)

    def own_json(self, out: dict, trial, participant, url_for, stimulus_of) -> dict:
        """`out` with this task's part: the image shown, at its natural size, and what a
        subclass adds."""
        spec = trial.spec
        stimulus = stimulus_of(spec["image"])
        out.update(image_url=_image_url(url_for, trial, participant, spec["image"]), natural_w=stimulus.width,
                   natural_h=stimulus.height)
        return out

    def shown_stimuli(self, spec: dict) -> set[int]:
        ids = {c["stimulus_id"] for c in spec.get("candidates", [])}
        ids.add(spec.get("image"))
        ids.add((spec.get("reference") or {}).get("input"))
        return {i for i in ids if i is not None}

    def block_name(self, spec: dict) -> str | None:
        return spec.get("block")

    def block_index(self, spec: dict) -> int | None:
        return spec.get("block_index")

    # --- answers ---

    def record_answer(self, session, participant, trial, body: dict, key: str) -> dict:
        record_answers(session, participant, trial, body, key)
        return {}

    def answer_values(self, spec: dict, question: str, answer: dict) -> dict[str, Any]:
        """The Response columns of one answer to one of the trial's own questions, checked
        against the trial (AnswerError); 'choice_label' for a catch trial's comparison."""
        raise NotImplementedError

    # --- simulated participants ---

    def simulate_trial(self, trial: dict, participant) -> tuple[str, dict, int]:
        """The answers of an attentive participant without taste: each question's by
        `simulated_answer`, a random follow-up choice; no gaze points."""
        answers = []
        for question in trial["questions"]:
            answers.append({"question": question["id"],
                            **self.simulated_answer(trial, participant, catch=question["id"] == CATCH_QUESTION)})
        if trial.get("follow_up"):
            choices = trial["follow_up"]["choices"]
            answers.append({"question": trial["follow_up"]["id"],
                            "choice": choices[int(participant.rng.integers(len(choices)))]})
        order = [c["label"] for c in trial.get("candidates", [])]
        body = {"idempotency_key": participant.key(), "answers": answers,
                "rt_ms": float(participant.rng.uniform(1500, 6000)), "shown_order": order}
        return trial["answer_url"], body, 0

    def simulated_answer(self, trial: dict, participant, catch: bool) -> dict[str, Any]:
        """One question's answer fields: at random, or on a catch trial the right one found by
        looking (the wrong one when the participant fails catch trials on purpose)."""
        raise NotImplementedError

    def seconds_per_trial(self, settings: dict) -> float:
        raise NotImplementedError("a questionnaire's trials are timed by its blocks (`Questionnaire`)")


def record_answers(session: Session, participant: Participant, trial: Trial, body: dict, key: str) -> None:
    """Check and store the answers of a question trial (body: {answers, rt_ms, shown_order});
    the trial ends. AnswerError (nothing stored) when an answer does not fit. A failed catch
    trial that takes the participant past the design's catch.max_failures screens them out then
    and there (`screening.screen_out`)."""
    spec = trial.spec
    task = task_named(trial.task)
    items, rt_ms = body.get("answers"), body.get("rt_ms")
    expected = [q["id"] for q in spec["questions"]]
    if spec.get("follow_up"):
        expected.append(spec["follow_up"]["id"])
    if not isinstance(items, list) or not all(isinstance(a, dict) and isinstance(a.get("question"), str)
                                              for a in items):
        raise AnswerError(f"expected a list of answers {{question, ...}} to the questions {expected},"
                          f" got {brief(items)}")
    answers = {a["question"]: a for a in items}
    if len(answers) != len(items) or set(answers) != set(expected):
        raise AnswerError(f"expected one answer for each of the questions {expected}, got"
                          f" {[brief(a['question']) for a in items][:10]}")
    if rt_ms is not None and not (finite_number(rt_ms) and rt_ms >= 0):
        raise AnswerError(f"rt_ms: expected a time in ms, got {brief(rt_ms)}")
    shown = _shown_methods(spec, body.get("shown_order") or [])
    now = utcnow()
    for question in expected:
        values = _answer_values(task, spec, question, answers[question])
        correct = None
        if spec.get("catch") and question == spec["catch"]["question"]:
            correct = values.get("choice_label", values.get("rating")) == spec["catch"]["expected"]
        label = values.pop("choice_label", None)
        answer_rt = answers[question].get("rt_ms")  # the answer's own time; a page that sends none: the trial's
        if answer_rt is not None and not (finite_number(answer_rt) and 0 <= answer_rt <= 3_600_000):
            raise AnswerError(f"{question}: rt_ms: expected a time in ms, got {brief(answer_rt)}")
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


def finite_number(value: Any) -> bool:
    """A JSON number that is not a bool, NaN or ±inf (an int of any size compares without overflow)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def brief(value: Any) -> str:
    """A refused value as a message shows it: short, whatever its type or depth."""
    return _BRIEF.repr(value)


def _answer_values(task: QuestionTask, spec: dict, question: str, answer: dict) -> dict[str, Any]:
    """The Response columns of one answer, checked against the trial: the follow-up's choice, or
    the task's own answer (`QuestionTask.answer_values`)."""
    follow = spec.get("follow_up")
    if follow and question == follow["id"]:
        choice = answer.get("choice")
        if not isinstance(choice, str) or choice not in follow["choices"]:
            raise AnswerError(f"{question}: expected one of {follow['choices']}, got {brief(choice)}")
        return {"choice": choice}
    return task.answer_values(spec, question, answer)


def _screen_out_past_catch_limit(session: Session, participant: Participant) -> None:
    """Screen the participant out when their failed catch trials (this answer's included) are
    more than the design's catch.max_failures, the number QC would exclude them for."""
    allowed = int((participant.experiment.settings["design"].get("catch") or {}).get("max_failures", 0))
    session.flush()
    failures = session.scalar(select(func.count()).select_from(Response).where(
        Response.participant_id == participant.id, Response.question == CATCH_QUESTION, Response.correct.is_(False)))
    if failures > allowed:
        screen_out(session, participant, "catch", f"{failures} catch trial(s) failed > max {allowed}")


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


def _image_url(url_for, trial, participant, stimulus_id: int) -> str:
    """The URL of an image a trial shows (`tasks.stimulus_image`)."""
    return url_for("tasks.stimulus_image", trial_id=trial.id, stimulus_id=stimulus_id, t=participant.token)
