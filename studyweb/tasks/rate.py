"""rate: rate an image on a labelled scale (GazeShiftNet's fidelity and realism scales, or the
design's own), optionally beside the original (the fidelity study). A unit is one image version;
on the fidelity scale a catch trial rates the original against itself (expected: the top
score). The answer stores the score as `rating`.

Block keys: image (a method, 'original', or 'methods': every method's, one trial each; the
default), scale ('fidelity' | 'realism' | {labels, scores, question}), reference {input}
(default: on the fidelity scale).
"""
from __future__ import annotations

from typing import Any

from studyweb.design_checks import MAX_CHOICES, MAX_SCORE
from studyweb.tasks.questions import QuestionTask, brief, finite_number
from studyweb.tasks.registry import AnswerError, register

SCALES = {
    # GazeShiftNet (papers/004…, §4.3): fidelity against the original, realism alone; scores as assigned there.
    "fidelity": {"question": "Compared with the original, how much was this image edited?",
                 "labels": ["not edited", "slightly edited", "moderately edited", "definitely edited"],
                 "scores": [3, 2, 1, 0]},
    "realism": {"question": "Was this image edited?",
                "labels": ["definitely not edited", "probably not edited", "probably edited", "definitely edited"],
                "scores": [3, 2, 1, 0]},
}


@register
class Rate(QuestionTask):
    name = "rate"
    block_keys = frozenset({"name", "task", "questions", "question", "image", "scale", "reference"})
    words = "rate how edited an image looks, on the scale shown under it"

    def check_block(self, checker, block: dict, out: dict, path: tuple, methods: dict) -> dict:
        out["questions"] = self.check_questions(checker, block, path, default=lambda: [
            {"id": "score", "text": self.check_scale(checker, block.get("scale", "fidelity"), path)["question"]}])
        out["image"] = self.check_image(checker, block, path, methods, default="methods")
        out["scale"] = self.check_scale(checker, block.get("scale", "fidelity"), path)
        default_reference = {"input": block.get("scale", "fidelity") == "fidelity"}
        out["reference"] = checker.reference(block.get("reference", default_reference), path, {"input"})
        return out

    @staticmethod
    def check_scale(checker, scale: Any, path: tuple) -> dict:
        """{name, question, labels, scores}: a named scale (SCALES) or the design's own."""
        expected = f"expected one of {sorted(SCALES)} or {{labels, scores}}, got {scale!r}"
        if isinstance(scale, str):
            if scale not in SCALES:
                checker.fail(path + ("scale",), expected)
            return {"name": scale, **SCALES[scale]}
        if not isinstance(scale, dict):
            checker.fail(path + ("scale",), expected)
        path = path + ("scale",)
        checker.known(scale, {"labels", "scores", "question"}, path)
        labels = checker.listed(path + ("labels",), scale.get("labels"), 2, MAX_CHOICES, "labels")
        scores = checker.listed(path + ("scores",), scale.get("scores"), 2, MAX_CHOICES, "scores (a number per label)")
        if len(labels) != len(scores):
            checker.fail(path, f"expected a score per label, got {len(labels)} labels and {len(scores)} scores")
        question = checker.text(path + ("question",), scale.get("question", "How would you rate this image?"))
        return {"name": "custom", "question": question,
                "labels": [checker.label(path + ("labels", k), label) for k, label in enumerate(labels)],
                "scores": [checker.number(path + ("scores", k), score, -MAX_SCORE, MAX_SCORE)
                           for k, score in enumerate(scores)]}

    def has_catch(self, block: dict) -> bool:
        """On the fidelity scale only: the original rated against itself has a known score."""
        return block["scale"].get("name") == "fidelity"

    def block_label(self, block: dict) -> str:
        return f"rate, {block['scale']['name']} scale"

    def own_spec(self, spec, block, unit, source, by_version, rng) -> dict:
        spec = super().own_spec(spec, block, unit, source, by_version, rng)
        spec["scale"] = block["scale"]
        spec["reference"] = {"input": source.id if block["reference"]["input"] else None}
        return spec

    def catch_spec(self, block, b, source, by_version, rng) -> dict:
        """The original rated beside itself; expected: the scale's top score."""
        scale = block["scale"]
        return {"block": block["name"], "block_index": b, "pair_id": source.pair_id,
                "questions": [{"id": "catch", "text": scale["question"]}], "image": source.id, "method": "original",
                "size": [source.width, source.height], "scale": scale, "reference": {"input": source.id},
                "catch": {"question": "catch", "expected": max(scale["scores"])}}

    def own_json(self, out, trial, participant, url_for, stimulus_of) -> dict:
        out = super().own_json(out, trial, participant, url_for, stimulus_of)
        out["scale"] = {"labels": trial.spec["scale"]["labels"], "scores": trial.spec["scale"]["scores"]}
        return out

    def answer_values(self, spec: dict, question: str, answer: dict) -> dict[str, Any]:
        rating = answer.get("rating")
        if not finite_number(rating) or rating not in spec["scale"]["scores"]:
            raise AnswerError(f"{question}: the rating must be one of the scale's scores {spec['scale']['scores']},"
                              f" got {brief(rating)}")
        return {"rating": float(rating)}

    def simulated_answer(self, trial: dict, participant, catch: bool) -> dict[str, Any]:
        """A random score; the top one for an image identical to its reference (a catch trial)."""
        scores = trial["scale"]["scores"]
        rating = scores[int(participant.rng.integers(len(scores)))]
        reference = (trial.get("reference") or {}).get("input_url")
        if catch and reference and participant.get(reference).content == participant.get(trial["image_url"]).content:
            rating = min(scores) if "catch" in participant.fail else max(scores)
        return {"rating": rating}
