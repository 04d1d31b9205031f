"""describe: describe the image in words (a text box of at most max_chars characters). A unit
is one image version; the answer stores the text (trimmed). BubbleView's 'describe' mode is
another thing: a description typed after the bubbles, kept on the trial (`studyweb.export`).

Block keys: image ('original' or a method), max_chars (default 1000, at most 5000).
"""
from __future__ import annotations

from typing import Any

from studyweb.tasks.questions import QuestionTask
from studyweb.tasks.registry import AnswerError, register

SIMULATED_TEXT = "a simulated description of the image"


@register
class Describe(QuestionTask):
    name = "describe"
    block_keys = frozenset({"name", "task", "questions", "question", "image", "max_chars"})
    words = "describe the image in your own words"

    def check_block(self, checker, block: dict, out: dict, path: tuple, methods: dict) -> dict:
        out["questions"] = self.check_questions(checker, block, path)
        out["image"] = self.check_image(checker, block, path, methods)
        out["max_chars"] = checker.integer(path + ("max_chars",), block.get("max_chars", 1000), 1, 5000)
        return out

    def own_spec(self, spec, block, unit, source, by_version, rng) -> dict:
        spec = super().own_spec(spec, block, unit, source, by_version, rng)
        spec["max_chars"] = block["max_chars"]
        return spec

    def own_json(self, out, trial, participant, url_for, stimulus_of) -> dict:
        out = super().own_json(out, trial, participant, url_for, stimulus_of)
        out["max_chars"] = trial.spec["max_chars"]
        return out

    def answer_values(self, spec: dict, question: str, answer: dict) -> dict[str, Any]:
        text = answer.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > spec["max_chars"]:
            raise AnswerError(f"{question}: expected a text of 1 to {spec['max_chars']} characters")
        return {"text": text.strip()}

    def simulated_answer(self, trial: dict, participant, catch: bool) -> dict[str, Any]:
        return {"text": SIMULATED_TEXT}
