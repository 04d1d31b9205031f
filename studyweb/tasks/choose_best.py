"""choose_best: pick the best of several candidates (methods' outputs of one pair, in random
order per trial, their methods hidden behind labels A, B, ...), optionally beside the input and
the target map (the pair's y_map over the input). A unit is a pair (its input stimulus carries
the observer count); a catch trial shows the input among the candidates and asks which one is
identical to it. The answer stores the chosen candidate's method as `choice` (its label in the
payload), and responses.csv's method is the chosen one.

Block keys: candidates (methods, default every method; 'original' too), reference {input,
target_map} (default both).
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from datadir import Dataset
from studyweb.design_checks import MAX_METHODS
from studyweb.design_yaml import DesignError
from studyweb.tasks.questions import CATCH_TEXT, QuestionTask, brief
from studyweb.tasks.registry import AnswerError, register


@register
class ChooseBest(QuestionTask):
    name = "choose_best"
    block_keys = frozenset({"name", "task", "questions", "question", "candidates", "reference"})
    words = "pick the image that fits the question best, by clicking on it"

    def check_block(self, checker, block: dict, out: dict, path: tuple, methods: dict) -> dict:
        out["questions"] = self.check_questions(checker, block, path)
        versions = ["original", *methods]
        candidates = checker.listed(path + ("candidates",), block.get("candidates", list(methods)), 2,
                                    MAX_METHODS + 1, "methods")
        for k, candidate in enumerate(candidates):
            if not isinstance(candidate, str) or candidate not in versions:
                checker.fail(path + ("candidates", k), f"{candidate!r} is not a method of this design"
                                                       f" ({', '.join(methods) or 'none'}) nor 'original'")
        if len(set(candidates)) != len(candidates):
            checker.fail(path + ("candidates",), f"candidates must be distinct, got {candidates}")
        out["candidates"] = list(candidates)
        out["reference"] = checker.reference(block.get("reference", {"input": True, "target_map": True}), path,
                                             {"input", "target_map"})
        return out

    def check_dataset(self, blocks: list[dict], dataset, pair_ids: list[str], side: str, source: str) -> None:
        """Every pair's y_map, where a block shows the target map."""
        if any(block.get("reference", {}).get("target_map") for block in blocks):
            missing = [p for p in pair_ids if not _target_map_path(dataset, p)]
            if missing:
                raise DesignError(f"{source}: reference.target_map needs each pair's y_map; missing for"
                                  f" {missing[:5]} (set reference: {{target_map: false}} or add the maps)")

    def has_catch(self, block: dict) -> bool:
        return True

    def block_units(self, block: dict, by_version: dict) -> list:
        return by_version.get("original", [])

    def own_spec(self, spec, block, unit, source, by_version, rng) -> dict:
        versions = {s.method or "original": s for v in block["candidates"] for s in by_version.get(v, [])
                    if s.pair_id == unit.pair_id}
        order = [block["candidates"][i] for i in rng.permutation(len(block["candidates"]))]
        spec["candidates"] = [{"label": string.ascii_uppercase[i], "method": m, "stimulus_id": versions[m].id}
                              for i, m in enumerate(order)]
        spec["reference"] = {"input": source.id if block["reference"]["input"] else None,
                             "target_map": bool(block["reference"]["target_map"])}
        return spec

    def catch_spec(self, block, b, source, by_version, rng) -> dict:
        """The input among (up to all but one of) the candidates; expected: its label."""
        others = [m for m in block["candidates"] if m != "original"][:max(1, len(block["candidates"]) - 1)]
        methods = ["original", *others]
        versions = {s.method or "original": s for m in methods for s in by_version.get(m, [])
                    if s.pair_id == source.pair_id}
        order = [methods[i] for i in rng.permutation(len(methods))]
        candidates = [{"label": string.ascii_uppercase[i], "method": m, "stimulus_id": versions[m].id}
                      for i, m in enumerate(order)]
        expected = next(c["label"] for c in candidates if c["method"] == "original")
        return {"block": block["name"], "block_index": b, "pair_id": source.pair_id,
                "questions": [{"id": "catch", "text": CATCH_TEXT}], "candidates": candidates,
                "reference": {"input": source.id, "target_map": False},
                "catch": {"question": "catch", "expected": expected}}

    def own_json(self, out, trial, participant, url_for, stimulus_of) -> dict:
        out["candidates"] = [{"label": c["label"],
                              "image_url": url_for("tasks.stimulus_image", trial_id=trial.id,
                                                   stimulus_id=c["stimulus_id"], t=participant.token)}
                             for c in trial.spec["candidates"]]
        return out

    def answer_values(self, spec: dict, question: str, answer: dict) -> dict[str, Any]:
        labels = {c["label"]: c["method"] for c in spec["candidates"]}
        choice = answer.get("choice")
        if not isinstance(choice, str) or choice not in labels:
            raise AnswerError(f"{question}: the choice must be one of the candidates {sorted(labels)},"
                              f" got {brief(choice)}")
        return {"choice": labels[choice], "choice_label": choice}

    def response_method(self, response, shown_version: str | None) -> str | None:
        return response.choice

    def simulated_answer(self, trial: dict, participant, catch: bool) -> dict[str, Any]:
        """A random candidate; on a catch trial the one whose image bytes equal the original's."""
        labels = [c["label"] for c in trial["candidates"]]
        choice = labels[int(participant.rng.integers(len(labels)))]
        if catch:
            original = participant.get((trial.get("reference") or {}).get("input_url")).content
            right = [c["label"] for c in trial["candidates"] if participant.get(c["image_url"]).content == original]
            wrong = [label for label in labels if label not in right]
            choice = (wrong if "catch" in participant.fail and wrong else right or [choice])[0]
        return {"choice": choice}


def target_map_path(dataset_path, pair_id: str) -> Path | None:
    """The pair's y_map (.npy density) in the dataset, if it has one."""
    return _target_map_path(Dataset.open(Path(dataset_path)), pair_id)


def _target_map_path(dataset, pair_id: str) -> Path | None:
    row = dataset.pairs[dataset.pairs["pair_id"] == pair_id]
    if row.empty:
        return None
    value = row.iloc[0].get("y_map")
    if not isinstance(value, str) or not value:
        return None
    path = dataset.path / value
    return path if path.is_file() else None
