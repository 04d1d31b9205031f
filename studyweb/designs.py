"""Study designs in YAML: one file sets up a study of the papers (`gazelab study create-experiment
--from DESIGN.yaml`, `gazelab study pilot DESIGN.yaml`). Examples: `studyweb/examples/`.

    title: Which edit works best?            # shown to participants (default: the name)
    description: ...                         # shown on the consent page
    methods:                                 # name: folder of its outputs, <pair_id>.png (as
      salggan: runs/salggan/edits            #   `gazelab edit` writes them); relative to the
      hag: runs/hag/edits                    #   design file; --methods NAME=DIR overrides
    stimuli:
      split: test                            # only pairs of this split (default: all)
      pairs: 24                              # at most this many (in pair id order), or a list of ids
      side: x                                # the side that is "the input" (default x)
    per_participant: 10                      # source images per block and participant
    observers: 20                            # participants wanted per shown image
    catch: {every: 8, max_failures: 0}       # one catch trial in `every`, QC drops participants
                                             #   failing more than max_failures (default: none)
    completion_code: ABC123                  # or completion_url: https://app.prolific.com/...
    conditions: [original, increase]         # attention designs: one block per condition, each
    counterbalance: blocked                  #   image once per block; block order by a Williams
    blocks:                                  #   Latin square (blocked | mixed: studyweb.counterbalance)
      - name: preference
        task: choose_best                    # choose_best | rate | pick_region | describe
        questions:                           #   | codecharts | bubbleview
          - {id: realism, text: Which generated image is most realistic?}
        candidates: [salggan, hag]           # default: every method
        reference: {input: true, target_map: true}

Block keys by task (every block: name, task, questions or question):
- choose_best: candidates (methods, in random order per trial, methods hidden), reference
  {input, target_map} (the input image; the target map, the pair's y_map, over it);
- rate: image (a method, or 'original'; default every method, one trial each), scale
  ('fidelity' | 'realism' | {labels, scores}; GazeShiftNet's scales, scores 3..0 as the paper
  assigns them), reference {input} (show the original beside: the fidelity study);
- pick_region: image ('original' or a method), follow_up {id, text, choices} (SaGIM's yes/no);
  the objects to pick come from the pair's mask;
- describe: image, max_chars;
- codecharts / bubbleview: a design of that one block makes a study of that task (image:
  'original'; its other keys are the task's settings, e.g. codecharts: {image_ms: [2000]}).
Catch trials have a known answer: choose_best shows the input among the candidates and asks
which one is identical to it; rate (fidelity) rates the original against itself (top score).

Every error names the file, the line and the key, and what was expected (DesignError).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

QUESTIONNAIRE_TASKS = ("choose_best", "rate", "pick_region", "describe")
ATTENTION_TASKS = ("codecharts", "bubbleview")
SCALES = {
    # GazeShiftNet (papers/004…, §4.3): fidelity against the original, realism alone; scores as assigned there.
    "fidelity": {"question": "Compared with the original, how much was this image edited?",
                 "labels": ["not edited", "slightly edited", "moderately edited", "definitely edited"],
                 "scores": [3, 2, 1, 0]},
    "realism": {"question": "Was this image edited?",
                "labels": ["definitely not edited", "probably not edited", "probably edited", "definitely edited"],
                "scores": [3, 2, 1, 0]},
}
TOP_KEYS = {"title", "description", "methods", "stimuli", "per_participant", "observers", "catch", "completion_code",
            "completion_url", "blocks", "conditions", "counterbalance"}
BLOCK_KEYS = {
    "choose_best": {"name", "task", "questions", "question", "candidates", "reference"},
    "rate": {"name", "task", "questions", "question", "image", "scale", "reference"},
    "pick_region": {"name", "task", "questions", "question", "image", "follow_up"},
    "describe": {"name", "task", "questions", "question", "image", "max_chars"},
    "codecharts": {"name", "task", "image", "codecharts"},
    "bubbleview": {"name", "task", "image", "mode", "time_limit_s", "max_clicks", "blur_sigma_frac",
                   "bubble_radius_frac"},
}
CATCH_QUESTION = "catch"


class DesignError(ValueError):
    """A design that cannot be run; the message names the file, line and key."""


@dataclass(frozen=True)
class Design:
    """A checked design: `values` (the YAML as plain data, methods' folders resolved) and where
    it came from."""

    values: dict[str, Any]
    source: str

    @property
    def task(self) -> str:
        """'questionnaire', or the one attention task of a single-block design."""
        tasks = {block["task"] for block in self.values["blocks"]}
        return tasks.pop() if tasks <= set(ATTENTION_TASKS) else "questionnaire"


def load_design(source, methods: dict[str, str] | None = None) -> Design:
    """Read and check a design: a path to a YAML file, YAML text, or a dict. `methods`
    ({name: folder}) add to or override the design's methods. DesignError on any problem."""
    import yaml

    if isinstance(source, dict):
        values, lines, name, base = source, {}, "<design>", Path.cwd()
    else:
        path = Path(source)
        if "\n" not in str(source) and path.suffix in (".yaml", ".yml"):
            if not path.is_file():
                raise DesignError(f"design file {path} does not exist")
            text, name, base = path.read_text(encoding="utf-8"), str(path), path.resolve().parent
        else:
            text, name, base = str(source), "<design>", Path.cwd()
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise DesignError(f"{name}: not valid YAML: {exc}") from None
        if node is None:
            raise DesignError(f"{name}: the design is empty")
        lines = {}
        values = _plain(node, (), lines, yaml.SafeLoader(""))
    checker = _Checker(name, lines)
    checked = checker.design(values, base, methods or {})
    return Design(checked, name)


def _plain(node, path: tuple, lines: dict, loader) -> Any:
    """A composed YAML node as plain data, recording the line (1-based) of every key path;
    `loader` (a SafeLoader) turns the scalars into ints, floats, bools, nulls and text."""
    import yaml

    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, path + (key,), lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, path + (i,), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node)


class _Checker:
    """Checks a design's plain data; `fail(path, message)` raises a DesignError with the line."""

    def __init__(self, name: str, lines: dict):
        self.name, self.lines = name, lines

    def fail(self, path: tuple, message: str):
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")
        line = next((self.lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in self.lines), None)
        raise DesignError(f"{self.name}{f' line {line}' if line else ''}: {where or 'the design'}: {message}")

    def design(self, values: Any, base: Path, extra_methods: dict[str, str]) -> dict:
        if not isinstance(values, dict):
            self.fail((), f"expected a mapping of keys ({', '.join(sorted(TOP_KEYS))}), got {type(values).__name__}")
        self.known(values, TOP_KEYS, ())
        out = dict(values)
        methods = dict(values.get("methods") or {})
        if not isinstance(methods, dict):
            self.fail(("methods",), "expected a mapping of method name: folder of its outputs")
        methods.update(extra_methods)
        out["methods"] = {}
        for name, folder in methods.items():
            if not isinstance(name, str) or not name or name == "original" or not name.replace("_", "").isalnum():
                self.fail(("methods", name), f"method names are letters, digits and _ (not 'original'); got {name!r}")
            folder_path = Path(str(folder)).expanduser()
            folder_path = folder_path if folder_path.is_absolute() else base / folder_path
            if name not in extra_methods and not folder_path.is_dir():
                self.fail(("methods", name), f"folder {folder_path} does not exist")
            if name in extra_methods and not folder_path.is_dir():
                raise DesignError(f"--methods {name}={folder}: folder {folder_path} does not exist")
            out["methods"][name] = str(folder_path.resolve())
        out["stimuli"] = self.stimuli(values.get("stimuli") or {})
        for key, default in (("per_participant", None), ("observers", 10)):
            value = values.get(key, default)
            if value is not None and value != "all" and (not isinstance(value, int) or isinstance(value, bool)
                                                         or value < 1):
                self.fail((key,), f"expected an integer >= 1{' or all' if key == 'per_participant' else ''},"
                                  f" got {value!r}")
            out[key] = value
        out["catch"] = self.catch(values.get("catch"))
        blocks = values.get("blocks")
        if not isinstance(blocks, list) or not blocks:
            self.fail(("blocks",), "expected a list of one or more blocks")
        out["blocks"] = [self.block(block, i, out["methods"]) for i, block in enumerate(blocks)]
        names = [b["name"] for b in out["blocks"]]
        if len(set(names)) != len(names):
            self.fail(("blocks",), f"block names must be distinct, got {names}")
        attention = [b["task"] for b in out["blocks"] if b["task"] in ATTENTION_TASKS]
        if attention and len(out["blocks"]) > 1:
            self.fail(("blocks",), f"a {attention[0]} block must be the design's only block (a study of that task);"
                                   " run questionnaires as another experiment")
        out["conditions"] = self.conditions(values, out["methods"], bool(attention))
        return out

    def conditions(self, values: dict, methods: dict, attention: bool) -> dict | None:
        conditions, layout = values.get("conditions"), values.get("counterbalance", "blocked")
        if conditions is None:
            if "counterbalance" in values:
                self.fail(("counterbalance",), "counterbalancing needs conditions: [original, a method, ...]")
            return None
        if not attention:
            self.fail(("conditions",), "conditions are for codecharts and bubbleview designs (blocks of one"
                                       " version each); questionnaires compare methods within their blocks")
        versions = ["original", *methods]
        if not isinstance(conditions, list) or len(conditions) < 2 or len(set(map(str, conditions))) != len(conditions):
            self.fail(("conditions",), f"expected 2 or more distinct versions ({', '.join(versions)}), got {conditions!r}")
        for k, condition in enumerate(conditions):
            if condition not in versions:
                self.fail(("conditions", k), f"{condition!r} is not 'original' nor a method of this design")
        if layout not in ("blocked", "mixed"):
            self.fail(("counterbalance",), f"expected blocked or mixed, got {layout!r}")
        return {"versions": list(conditions), "layout": layout}

    def known(self, values: dict, allowed: set, path: tuple) -> None:
        for key in values:
            if key not in allowed:
                self.fail(path + (key,), f"unknown key {key!r}; expected one of {sorted(allowed)}")

    def stimuli(self, values: Any) -> dict:
        if not isinstance(values, dict):
            self.fail(("stimuli",), "expected a mapping with split, pairs, side")
        self.known(values, {"split", "pairs", "side"}, ("stimuli",))
        side = values.get("side", "x")
        if side not in ("x", "y"):
            self.fail(("stimuli", "side"), f"expected x or y, got {side!r}")
        pairs = values.get("pairs")
        if pairs is not None and not (isinstance(pairs, list) and all(isinstance(p, (str, int)) for p in pairs)) \
                and not (isinstance(pairs, int) and not isinstance(pairs, bool) and pairs >= 1):
            self.fail(("stimuli", "pairs"), f"expected a number >= 1 or a list of pair ids, got {pairs!r}")
        split = values.get("split")
        if split is not None and split not in ("train", "val", "test"):
            self.fail(("stimuli", "split"), f"expected train, val or test, got {split!r}")
        return {"split": split, "pairs": [str(p) for p in pairs] if isinstance(pairs, list) else pairs, "side": side}

    def catch(self, values: Any) -> dict | None:
        if values is None:
            return None
        if not isinstance(values, dict):
            self.fail(("catch",), "expected a mapping {every, max_failures}")
        self.known(values, {"every", "max_failures"}, ("catch",))
        every, failures = values.get("every"), values.get("max_failures", 0)
        if not isinstance(every, int) or isinstance(every, bool) or every < 2:
            self.fail(("catch", "every"), f"expected an integer >= 2 (one catch trial in this many), got {every!r}")
        if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
            self.fail(("catch", "max_failures"), f"expected an integer >= 0, got {failures!r}")
        return {"every": every, "max_failures": failures}

    def block(self, block: Any, i: int, methods: dict) -> dict:
        path = ("blocks", i)
        if not isinstance(block, dict):
            self.fail(path, "expected a mapping with at least name and task")
        task = block.get("task")
        if task not in BLOCK_KEYS:
            self.fail(path + ("task",), f"expected one of {sorted(BLOCK_KEYS)}, got {task!r}")
        self.known(block, BLOCK_KEYS[task], path)
        name = block.get("name", f"block{i + 1}")
        if not isinstance(name, str) or not name.strip():
            self.fail(path + ("name",), f"expected a non-empty text, got {name!r}")
        out = {k: v for k, v in block.items() if k not in ("questions", "question")}
        out["name"] = name
        if task in ATTENTION_TASKS:
            if block.get("image", "original") != "original":
                self.fail(path + ("image",), "attention studies run on the dataset's own images ('original')")
            return out
        out["questions"] = self.questions(block, path, task)
        versions = ["original", *methods]
        if task == "choose_best":
            candidates = block.get("candidates", list(methods))
            if not isinstance(candidates, list) or len(candidates) < 2:
                self.fail(path + ("candidates",), f"expected a list of 2 or more methods, got {candidates!r}")
            for k, candidate in enumerate(candidates):
                if candidate not in versions:
                    self.fail(path + ("candidates", k), f"{candidate!r} is not a method of this design"
                                                        f" ({', '.join(methods) or 'none'}) nor 'original'")
            out["candidates"] = list(candidates)
            out["reference"] = self.reference(block.get("reference", {"input": True, "target_map": True}), path,
                                              {"input", "target_map"})
        else:
            image = block.get("image", "methods" if task == "rate" else "original")
            if image != "methods" and image not in versions:
                self.fail(path + ("image",), f"expected 'original', 'methods' or one of the methods"
                                             f" ({', '.join(methods) or 'none'}), got {image!r}")
            if image == "methods" and not methods:
                self.fail(path + ("image",), "'methods' needs methods in the design (methods: name: folder)")
            out["image"] = image
        if task == "rate":
            out["scale"] = self.scale(block.get("scale", "fidelity"), path)
            default_reference = {"input": block.get("scale", "fidelity") == "fidelity"}
            out["reference"] = self.reference(block.get("reference", default_reference), path, {"input"})
        if task == "pick_region":
            follow = block.get("follow_up")
            if follow is not None:
                if not isinstance(follow, dict) or not isinstance(follow.get("text"), str) \
                        or not isinstance(follow.get("choices", ["yes", "no"]), list):
                    self.fail(path + ("follow_up",), "expected {id, text, choices: [yes, no]}")
                self.known(follow, {"id", "text", "choices"}, path + ("follow_up",))
                follow = {"id": str(follow.get("id", "follow_up")), "text": follow["text"],
                          "choices": [str(c) for c in follow.get("choices", ["yes", "no"])]}
            out["follow_up"] = follow
        if task == "describe":
            max_chars = block.get("max_chars", 1000)
            if not isinstance(max_chars, int) or isinstance(max_chars, bool) or not 1 <= max_chars <= 5000:
                self.fail(path + ("max_chars",), f"expected an integer in [1, 5000], got {max_chars!r}")
            out["max_chars"] = max_chars
        return out

    def questions(self, block: dict, path: tuple, task: str) -> list[dict]:
        if "questions" in block and "question" in block:
            self.fail(path, "give either question (one text) or questions (a list), not both")
        if "question" in block:
            raw = [{"id": task, "text": block["question"]}]
        elif "questions" in block:
            raw = block["questions"]
        elif task == "rate":
            raw = [{"id": "score", "text": self.scale(block.get("scale", "fidelity"), path)["question"]}]
        elif task == "pick_region":
            raw = [{"id": "most_salient", "text": "Click on the object that stands out most."}]
        else:
            self.fail(path + ("questions",), "expected the questions to ask: a list of {id, text}")
        if not isinstance(raw, list) or not raw:
            self.fail(path + ("questions",), "expected a list of one or more {id, text}")
        out = []
        for k, question in enumerate(raw):
            if not isinstance(question, dict) or not isinstance(question.get("text"), str) \
                    or not str(question.get("id", "")).strip():
                self.fail(path + ("questions", k), f"expected {{id, text}}, got {question!r}")
            self.known(question, {"id", "text"}, path + ("questions", k))
            out.append({"id": str(question["id"])[:64], "text": question["text"]})
        ids = [q["id"] for q in out]
        if len(set(ids)) != len(ids) or CATCH_QUESTION in ids:
            self.fail(path + ("questions",), f"question ids must be distinct and not {CATCH_QUESTION!r}, got {ids}")
        if task in ("pick_region",) and len(out) != 1:
            self.fail(path + ("questions",), "pick_region asks one question (the follow_up asks the second)")
        return out

    def scale(self, scale: Any, path: tuple) -> dict:
        if isinstance(scale, str):
            if scale not in SCALES:
                self.fail(path + ("scale",), f"expected one of {sorted(SCALES)} or {{labels, scores}}, got {scale!r}")
            return {"name": scale, **SCALES[scale]}
        if not isinstance(scale, dict) or not isinstance(scale.get("labels"), list) \
                or not isinstance(scale.get("scores"), list) or len(scale["labels"]) != len(scale["scores"]) \
                or len(scale["labels"]) < 2 or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                                                       for s in scale["scores"]):
            self.fail(path + ("scale",), "expected {labels: [2 or more], scores: [a number per label]}")
        self.known(scale, {"labels", "scores", "question"}, path + ("scale",))
        return {"name": "custom", "question": scale.get("question", "How would you rate this image?"),
                "labels": [str(label) for label in scale["labels"]], "scores": list(scale["scores"])}

    def reference(self, reference: Any, path: tuple, allowed: set) -> dict:
        if not isinstance(reference, dict) or not all(isinstance(v, bool) for v in reference.values()):
            self.fail(path + ("reference",), f"expected a mapping of {sorted(allowed)} to true/false")
        self.known(reference, allowed, path + ("reference",))
        return {key: bool(reference.get(key, False)) for key in sorted(allowed)}


def create_from_design(session, source, dataset_dir, name: str, methods: dict[str, str] | None = None):
    """The experiment a design describes, on the dataset at `dataset_dir` (flushed, not
    committed). A questionnaire design gets a stimulus per selected pair and version (the input
    and each method's output); a single codecharts or bubbleview block makes a study of that task
    on the selected pairs' input images. DesignError/ValueError for a design that cannot run
    (an unknown key, a missing method output, ...)."""
    from datagen.dataset import Dataset
    from studyweb.experiments import create_experiment, image_size, validate_settings

    design = source if isinstance(source, Design) else load_design(source, methods)
    values = design.values
    dataset = Dataset.open(Path(dataset_dir).expanduser().resolve())
    pair_ids = select_pairs(dataset, values["stimuli"], design.source)
    common = {key: values[key] for key in ("observers", "completion_code", "completion_url") if values.get(key)}
    title, description = values.get("title") or "", values.get("description") or ""
    if design.task != "questionnaire":
        block = values["blocks"][0]
        settings = {k: v for k, v in block.items() if k not in ("name", "task", "image")}
        settings["per_participant"] = len(pair_ids) if values.get("per_participant") in (None, "all") \
            else values["per_participant"]
        if values["conditions"]:
            settings["conditions"] = values["conditions"]
        experiment = create_experiment(session, dataset.path, name, design.task, title=title, description=description,
                                       sides=[values["stimuli"]["side"]], pair_ids=pair_ids, **common, **settings)
        if values["conditions"]:
            _add_method_stimuli(session, experiment, design, [m for m in values["conditions"]["versions"]
                                                              if m != "original"])
        return experiment

    from studyweb.db import Experiment, Stimulus
    from studyweb.experiments import check_name

    check_name(session, name)
    side = values["stimuli"]["side"]
    per_participant = values["per_participant"]
    settings = validate_settings({**common, "sides": [side],
                                  "per_participant": len(pair_ids) if per_participant in (None, "all")
                                  else per_participant, "design": values})
    if settings["completion_code"] is None and not settings["completion_url"]:
        import secrets

        settings["completion_code"] = secrets.token_hex(4).upper()
    experiment = Experiment(name=name, title=title or name, description=description, task="questionnaire",
                            dataset_path=str(dataset.path), settings=settings, status="open")
    session.add(experiment)
    session.flush()
    rows = dataset.pairs.set_index("pair_id")
    stimuli = []
    for pair_id in pair_ids:
        relative = rows.at[pair_id, f"{side}_image"]
        versions = [("", dataset.path / relative)] + [
            (method, Path(folder) / f"{pair_id}.png") for method, folder in values["methods"].items()]
        for method, path in versions:
            if not path.is_file():
                raise DesignError(f"{design.source}: method {method!r} has no output for pair {pair_id}:"
                                  f" expected {path}")
            width, height = image_size(path)
            stimuli.append(Stimulus(experiment_id=experiment.id, image_path=str(relative if not method else path),
                                    pair_id=pair_id, side=side, method=method, width=width, height=height))
    if any(block["task"] == "pick_region" for block in values["blocks"]):
        missing = [p for p in pair_ids if not (dataset.path / "masks" / f"{p}_{side}.png").is_file()]
        if missing:
            raise DesignError(f"{design.source}: pick_region needs each pair's mask; missing for {missing[:5]}")
    if any(block.get("reference", {}).get("target_map") for block in values["blocks"]):
        missing = [p for p in pair_ids if not _target_map_path(dataset, p)]
        if missing:
            raise DesignError(f"{design.source}: reference.target_map needs each pair's y_map; missing for"
                              f" {missing[:5]} (set reference: {{target_map: false}} or add the maps)")
    session.add_all(stimuli)
    session.flush()
    log.info("questionnaire %s: %d pairs x %d versions from %s", name, len(pair_ids), 1 + len(values["methods"]),
             dataset.path)
    return experiment


def _add_method_stimuli(session, experiment, design: Design, methods: list[str]) -> None:
    """A stimulus for each method's output of each of the experiment's pairs (DesignError when one is missing)."""
    from studyweb.db import Stimulus
    from studyweb.experiments import image_size

    originals = [s for s in experiment.stimuli if not s.method]
    for method in methods:
        folder = Path(design.values["methods"][method])
        for source in originals:
            path = folder / f"{source.pair_id}.png"
            if not path.is_file():
                raise DesignError(f"{design.source}: method {method!r} has no output for pair {source.pair_id}:"
                                  f" expected {path}")
            width, height = image_size(path)
            session.add(Stimulus(experiment_id=experiment.id, image_path=str(path), pair_id=source.pair_id,
                                 side=source.side, method=method, width=width, height=height))
    session.flush()
    if experiment.task == "codecharts":
        from studyweb.codecharts_study import check_stimuli

        check_stimuli(list(experiment.stimuli), experiment.settings)


def select_pairs(dataset, stimuli: dict, source: str = "<design>") -> list[str]:
    """The pair ids a design's `stimuli` selects (split, then the listed ids or the first N), in
    pair id order; DesignError when none (or a listed id is unknown)."""
    pairs = dataset.pairs
    side = stimuli["side"]
    pairs = pairs[pairs[f"{side}_image"].fillna("").astype(str) != ""]
    if stimuli["split"]:
        pairs = pairs[pairs["split"] == stimuli["split"]]
    ids = sorted(str(p) for p in pairs["pair_id"])
    wanted = stimuli["pairs"]
    if isinstance(wanted, list):
        unknown = sorted(set(wanted) - set(ids))
        if unknown:
            raise DesignError(f"{source}: stimuli.pairs: {unknown[:5]} are not pairs of {dataset.path}"
                              f"{' in split ' + stimuli['split'] if stimuli['split'] else ''} with a {side} image")
        ids = [p for p in ids if p in set(wanted)]
    elif isinstance(wanted, int):
        ids = ids[:wanted]
    if not ids:
        raise DesignError(f"{source}: stimuli selects no pair of {dataset.path} (split {stimuli['split']!r},"
                          f" side {side})")
    return ids


def target_map_path(dataset_path, pair_id: str) -> Path | None:
    """The pair's y_map (.npy density) in the dataset, if it has one."""
    from datagen.dataset import Dataset

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
