"""The checks of a design's plain data (`studyweb.designs`), shared by the design's own keys and
the tasks' block checks (`studyweb.tasks`, `Task.check_block`): each names the file, the line and
the key, and what was expected (DesignError). Every number is finite and within its range (MAX_*
below), every text of bounded length, so nothing a design holds can put NaN or Infinity in the
pages' JSON.
"""
from __future__ import annotations

from typing import Any

from studyweb.design_yaml import design_error

CATCH_QUESTION = "catch"  # the question id of a catch trial (none of a design's own)
# Ranges of the values; every number must also be finite (no .nan/.inf reaches the JSON pages are sent).
MAX_COUNT = 10_000  # observers, per_participant, catch.every and .max_failures, max_clicks, sentinel_every
MAX_PAIRS = 1_000_000  # stimuli.pairs (a number or a list of ids)
MAX_METHODS, MAX_BLOCKS, MAX_QUESTIONS, MAX_CHOICES = 50, 50, 20, 20
MAX_SCORE = 1e6  # |a rating scale's score|
MAX_MS = 60_000  # a CodeCharts screen
MAX_SECONDS = 3600.0  # a BubbleView trial's time limit
MAX_DISPLAY_PX, MAX_UPSCALE = 4000.0, 10.0  # an attention block's display_width_px and max_upscale
MAX_CHARS = {"id": 64, "choice": 64, "label": 200, "title": 200, "text": 2000, "description": 20_000, "path": 4096,
             "page": 50_000}  # page: a consent form, a page of instructions, a debrief
MAX_PAGES = 20  # of instructions
MAX_WINDOW_PX = 10_000  # device.min_window, CSS px


class Checker:
    """Checks a design's plain data; `fail(path, message)` raises a DesignError with the line."""

    def __init__(self, name: str, lines: dict):
        self.name, self.lines = name, lines

    def fail(self, path: tuple, message: str):
        raise design_error(self.name, self.lines, path, message)

    def integer(self, path: tuple, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(path, f"expected an integer in [{low}, {high}], got {value!r}")
        return value

    def number(self, path: tuple, value: Any, low: float, high: float, *, above: bool = False) -> float:
        """A finite number in [low, high], or (low, high] with `above`; NaN and ±inf fail both."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not (low < value if above else low <= value) or not value <= high:
            self.fail(path, f"expected a finite number in {'(' if above else '['}{low:g}, {high:g}], got {value!r}")
        return value

    def text(self, path: tuple, value: Any, kind: str = "text", *, empty: bool = False) -> str:
        """A text of at most MAX_CHARS[kind] characters (not blank unless `empty`)."""
        limit = MAX_CHARS[kind]
        if not isinstance(value, str) or len(value) > limit or not (empty or value.strip()):
            got = f"{len(value)} characters" if isinstance(value, str) and len(value) > limit else repr(value)
            hint = " (quote it in YAML)" if isinstance(value, (bool, int, float)) else ""
            self.fail(path, f"expected a{'' if empty else ' non-empty'} text of at most {limit} characters,"
                            f" got {got}{hint}")
        return value

    def label(self, path: tuple, value: Any, kind: str = "label") -> str:
        """A label or choice: a text, or a number written as one (1..7 scales); yes/no must be
        quoted. kind "choice": a follow-up's answer, stored as given (responses.choice, 64 chars)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(self.number(path, value, -MAX_SCORE, MAX_SCORE))
        return self.text(path, value, kind)

    def listed(self, path: tuple, value: Any, low: int, high: int, what: str) -> list:
        if not isinstance(value, list) or not low <= len(value) <= high:
            got = f"{len(value)} of them" if isinstance(value, list) else repr(value)
            self.fail(path, f"expected a list of {low} to {high} {what}, got {got}")
        return value

    def known(self, values: dict, allowed: set, path: tuple) -> None:
        for key in values:
            if key not in allowed:
                self.fail(path + (key,), f"unknown key {key!r}; expected one of {sorted(allowed)}")

    def identifier(self, path: tuple, value: Any) -> str:
        """A question id: a text or an integer (written as text)."""
        return self.text(path, str(value) if isinstance(value, int) and not isinstance(value, bool) else value, "id")

    def questions(self, block: dict, path: tuple, task: str, default=None) -> list[dict]:
        """A question block's questions [{id, text}]: its `question` (one text, id the task's name)
        or `questions`; without either, default() when the task has default questions."""
        if "questions" in block and "question" in block:
            self.fail(path, "give either question (one text) or questions (a list), not both")
        if "question" in block:
            raw = [{"id": task, "text": self.text(path + ("question",), block["question"])}]
        elif "questions" in block:
            raw = self.listed(path + ("questions",), block["questions"], 1, MAX_QUESTIONS, "{id, text}")
        elif default is not None:
            raw = default()
        else:
            self.fail(path + ("questions",), "expected the questions to ask: a list of {id, text}")
        out = []
        for k, question in enumerate(raw):
            if not isinstance(question, dict):
                self.fail(path + ("questions", k), f"expected {{id, text}}, got {question!r}")
            self.known(question, {"id", "text"}, path + ("questions", k))
            out.append({"id": self.identifier(path + ("questions", k, "id"), question.get("id")),
                        "text": self.text(path + ("questions", k, "text"), question.get("text"))})
        ids = [q["id"] for q in out]
        if len(set(ids)) != len(ids) or CATCH_QUESTION in ids:
            self.fail(path + ("questions",), f"question ids must be distinct and not {CATCH_QUESTION!r}, got {ids}")
        return out

    def reference(self, reference: Any, path: tuple, allowed: set) -> dict:
        if not isinstance(reference, dict) or not all(isinstance(v, bool) for v in reference.values()):
            self.fail(path + ("reference",), f"expected a mapping of {sorted(allowed)} to true/false")
        self.known(reference, allowed, path + ("reference",))
        return {key: bool(reference.get(key, False)) for key in sorted(allowed)}
