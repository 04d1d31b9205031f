"""Study designs in YAML: one file sets up a study of the papers (`gazelab study create-experiment
--from DESIGN.yaml`, `gazelab study pilot DESIGN.yaml`). Examples: `studyweb/examples/`.

    title: Which edit works best?            # shown to participants (default: the name)
    description: ...                         # shown on the consent page
    methods:                                 # name: folder of its outputs, <pair_id>.png (as
      salggan: runs/salggan/edits            #   `gazelab edit` writes them); relative to the
      hag: runs/hag/edits                    #   design file; --methods NAME=DIR overrides (DIR
                                             #   relative to the current directory)
    stimuli:
      split: test                            # only pairs of this split (default: all)
      pairs: 24                              # at most this many (in pair id order), or a list of ids
      side: x                                # the side that is "the input" (default x)
    per_participant: 10                      # source images per block and participant, the same
                                             #   for everyone (at most the pairs: `studyweb.workload`)
    observers: 20                            # participants wanted per shown image (and block)
    catch: {every: 8, max_failures: 0}       # one catch trial in `every`; failing more than
                                             #   max_failures (default 0) screens out, QC drops
    break_after: 20                          # a break screen every 20 trials (Continue to go on)
    between_blocks: Part done. Next, ...     # a screen between blocks (or conditions' blocks)
    iti_ms: 2000                             # a mid-grey inter-trial screen (Gatys et al.: 2 s)
    pilot: {catch_failure_rate: 0.05}        # simulated failure rates (`studyweb.pilot`)
    completion_code: ABC123                  # or completion_url: https://app.prolific.com/...
    screenout_code: SCR123                   # or screenout_url: the screened-out code or link
    consent: |                               # texts (Markdown or HTML, sanitised: studyweb.texts);
      Your IRB's wording ...                 #   default: the task's, with its counts
    instructions: [page 1 ..., page 2 ...]   # one text or a list of pages
    debrief: ...                             # and screened_out: the screened-out page's message
    comprehension:                           # asked after the instructions; a wrong answer shows
      max_attempts: 3                        #   them again; max_attempts wrong rounds screen out
      questions:
        - {text: What do you type?, choices: [the code I saw last, any code], answer: the code I saw last}
    device: {min_window: [1024, 640], phones: exclude, fullscreen: false}   # checked before consent
                                             #   (studyweb.screening: defaults per task; false: no check)
    exclude_workers_of: [sgit_pilot]         # experiments of the same study: their workers are refused
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
  'original'; its other keys are the task's settings, e.g. codecharts: {image_ms: [2000]}, and
  display_width_px / max_upscale: how large images are shown).
Catch trials have a known answer: choose_best shows the input among the candidates and asks
which one is identical to it; rate (fidelity) rates the original against itself (top score).

Every error names the file, the line and the key, and what was expected (DesignError). YAML
is read safely (`studyweb.design_yaml`): plain values only (a `!!python/...` or any other tag is
an error), at most 1 MiB, 100,000 values once aliases are expanded and 32 levels deep; every number is finite and
within its range (MAX_* below: e.g. observers and per_participant at most 10,000), every text
of bounded length, so nothing a design holds can put NaN or Infinity in the pages' JSON.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datadir import Dataset
from studyweb.db.schema import Experiment, Stimulus
from studyweb.design_checks import (MAX_BLOCKS, MAX_CHARS, MAX_CHOICES, MAX_COUNT, MAX_METHODS, MAX_MS, MAX_PAGES,
                                    MAX_PAIRS, MAX_QUESTIONS, MAX_WINDOW_PX, Checker)
from studyweb.design_yaml import DesignError, read_yaml  # DesignError: this module's error too
from studyweb.experiments import check_name, create_experiment, image_size
from studyweb.screening import PHONES
from studyweb.settings import experiment_names, fill_codes, validate_settings
from studyweb.tasks import attention_tasks, block_tasks, task_named
from studyweb.workload import FAILURE_RATES, check_workload, workload_warnings

log = logging.getLogger(__name__)

TOP_KEYS = {"title", "description", "methods", "stimuli", "per_participant", "observers", "catch", "completion_code",
            "completion_url", "blocks", "conditions", "counterbalance", "screenout_code", "screenout_url",
            "consent", "instructions", "debrief", "screened_out", "comprehension", "device",
            "exclude_workers_of",
            "break_after", "between_blocks", "iti_ms", "pilot"}  # pacing and pilot: `studyweb.workload`, `.pilot`


@dataclass(frozen=True)
class Design:
    """A checked design: `values` (the YAML as plain data, methods' folders resolved) and where
    it came from."""

    values: dict[str, Any]
    source: str

    @property
    def task(self) -> str:
        """The experiment task it makes: 'questionnaire', or the one attention task of a
        single-block design (each block task's `study`)."""
        studies = {task_named(block["task"]).study for block in self.values["blocks"]}
        return studies.pop() if len(studies) == 1 else "questionnaire"


def load_design(source, methods: dict[str, str] | None = None) -> Design:
    """Read and check a design: a path to a YAML file, YAML text, or a dict. `methods`
    ({name: folder}) add to or override the design's methods. DesignError on any problem,
    hostile YAML included (`studyweb.design_yaml`)."""
    if isinstance(source, dict):
        checker, values, base = _Checker("<design>", {}), source, Path.cwd()
    else:
        values, name, base, lines = read_yaml(source)
        checker = _Checker(name, lines)
    return Design(checker.design(values, base, methods or {}), checker.name)


class _Checker(Checker):
    """Checks a design's plain data: its own keys here, each block's by its task
    (`Task.check_block`); `fail(path, message)` raises a DesignError with the line."""

    def design(self, values: Any, base: Path, extra_methods: dict[str, str]) -> dict:
        if not isinstance(values, dict):
            self.fail((), f"expected a mapping of keys ({', '.join(sorted(TOP_KEYS))}), got {type(values).__name__}")
        self.known(values, TOP_KEYS, ())
        out = dict(values)
        for key, kind in (("title", "title"), ("description", "description"), ("completion_code", "id"),
                          ("screenout_code", "id")):
            if values.get(key) is not None:
                self.text((key,), values[key], kind, empty=True)
        for key in ("completion_url", "screenout_url"):
            url = values.get(key)
            if url is not None and self.text((key,), url, "path", empty=True) \
                    and not url.startswith(("https://", "http://")):
                self.fail((key,), f"expected a link starting with https:// or http://, got {url!r}")
        out["methods"] = self.methods(values.get("methods"), base, extra_methods)
        out["stimuli"] = self.stimuli({} if values.get("stimuli") is None else values["stimuli"])
        per_participant = values.get("per_participant")
        if per_participant is not None and per_participant != "all":
            self.integer(("per_participant",), per_participant, 1, MAX_COUNT)
        out["per_participant"] = per_participant
        out["observers"] = self.integer(("observers",), values.get("observers", 10), 1, MAX_COUNT)
        out["catch"] = self.catch(values.get("catch"))
        blocks = self.listed(("blocks",), values.get("blocks"), 1, MAX_BLOCKS, "blocks")
        out["blocks"] = [self.block(block, i, out["methods"]) for i, block in enumerate(blocks)]
        names = [b["name"] for b in out["blocks"]]
        if len(set(names)) != len(names):
            self.fail(("blocks",), f"block names must be distinct, got {names}")
        attention = [b["task"] for b in out["blocks"] if b["task"] in attention_tasks()]
        if attention and len(out["blocks"]) > 1:
            self.fail(("blocks",), f"a {attention[0]} block must be the design's only block (a study of that task);"
                                   " run questionnaires as another experiment")
        out["conditions"] = self.conditions(values, out["methods"], bool(attention))
        out.update(self.pacing(values, out))
        out["pilot"] = self.pilot(values.get("pilot"))
        self.workload(out)
        out["exclude_workers_of"] = self.exclude_workers_of(values.get("exclude_workers_of"))
        out["texts"] = self.texts(values)
        for key in ("consent", "instructions", "debrief", "screened_out"):  # kept once, checked, in out["texts"]
            out.pop(key, None)
        out["comprehension"] = self.comprehension(values.get("comprehension"))
        out["device"] = self.device(values.get("device"), attention[0] if attention else "questionnaire")
        try:  # every value is checked above; this keeps a key added later from sending NaN to the pages
            json.dumps(out, allow_nan=False)
        except (TypeError, ValueError) as exc:
            self.fail((), f"cannot be stored as JSON: {exc}")
        return out

    def methods(self, values: Any, base: Path, extra_methods: dict[str, str]) -> dict:
        if values is not None and not isinstance(values, dict):
            self.fail(("methods",), f"expected a mapping of method name: folder of its outputs, got {values!r}")
        methods = {**(values or {}), **extra_methods}
        if len(methods) > MAX_METHODS:
            self.fail(("methods",), f"expected at most {MAX_METHODS} methods, got {len(methods)}")
        out = {}
        for name, folder in methods.items():
            if not isinstance(name, str) or not name or len(name) > MAX_CHARS["id"] or name == "original" \
                    or not name.replace("_", "").isalnum():
                self.fail(("methods", name), f"method names are letters, digits and _ (not 'original', at most"
                                             f" {MAX_CHARS['id']}); got {name!r}")
            if name not in extra_methods:
                self.text(("methods", name), folder, "path")
            folder_path = Path(str(folder)).expanduser()  # a command line's folder: from the current directory
            folder_path = folder_path if folder_path.is_absolute() else \
                (Path.cwd() if name in extra_methods else base) / folder_path
            if name not in extra_methods and not folder_path.is_dir():
                self.fail(("methods", name), f"folder {folder_path} does not exist")
            if name in extra_methods and not folder_path.is_dir():
                raise DesignError(f"--methods {name}={folder}: folder {folder_path} does not exist")
            out[name] = str(folder_path.resolve())
        return out

    def exclude_workers_of(self, value: Any) -> list[str]:
        """Experiment names (`studyweb.experiments.related_experiments`); [] when not given."""
        try:
            return experiment_names("exclude_workers_of", [] if value is None else value)
        except ValueError as exc:
            self.fail(("exclude_workers_of",), str(exc))

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

    def stimuli(self, values: Any) -> dict:
        if not isinstance(values, dict):
            self.fail(("stimuli",), "expected a mapping with split, pairs, side")
        self.known(values, {"split", "pairs", "side"}, ("stimuli",))
        side = values.get("side", "x")
        if side not in ("x", "y"):
            self.fail(("stimuli", "side"), f"expected x or y, got {side!r}")
        pairs = values.get("pairs")
        if isinstance(pairs, list):
            self.listed(("stimuli", "pairs"), pairs, 1, MAX_PAIRS, "pair ids")
            for k, pair in enumerate(pairs):
                if isinstance(pair, bool) or not isinstance(pair, (str, int)) or len(str(pair)) > MAX_CHARS["id"]:
                    self.fail(("stimuli", "pairs", k), f"expected a pair id (a text or an integer), got {pair!r}")
        elif pairs is not None:
            if isinstance(pairs, bool) or not isinstance(pairs, int):
                self.fail(("stimuli", "pairs"), f"expected a number >= 1 or a list of pair ids, got {pairs!r}")
            self.integer(("stimuli", "pairs"), pairs, 1, MAX_PAIRS)
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
        return {"every": self.integer(("catch", "every"), values.get("every"), 2, MAX_COUNT),
                "max_failures": self.integer(("catch", "max_failures"), values.get("max_failures", 0), 0, MAX_COUNT)}

    def texts(self, values: dict) -> dict | None:
        """The design's own texts (`studyweb.texts`): consent, debrief, screened_out, and
        instructions as a list of pages; None when it gives none (the task's defaults)."""
        out = {}
        for key in ("consent", "debrief", "screened_out"):
            if values.get(key) is not None:
                out[key] = self.text((key,), values[key], "page")
        pages = values.get("instructions")
        if isinstance(pages, list):
            self.listed(("instructions",), pages, 1, MAX_PAGES, "pages (texts)")
            out["instructions"] = [self.text(("instructions", k), page, "page") for k, page in enumerate(pages)]
        elif pages is not None:
            out["instructions"] = [self.text(("instructions",), pages, "page")]
        return out or None

    def comprehension(self, values: Any) -> dict | None:
        """{questions: [{text, choices, answer}], max_attempts} (default 3), or None."""
        if values is None:
            return None
        path = ("comprehension",)
        if not isinstance(values, dict):
            self.fail(path, "expected a mapping {questions: [{text, choices, answer}], max_attempts},"
                            f" got {values!r}")
        self.known(values, {"questions", "max_attempts"}, path)
        questions = self.listed(path + ("questions",), values.get("questions"), 1, MAX_QUESTIONS,
                                "questions {text, choices, answer}")
        out = []
        for k, question in enumerate(questions):
            where = path + ("questions", k)
            if not isinstance(question, dict):
                self.fail(where, f"expected {{text, choices, answer}}, got {question!r}")
            self.known(question, {"text", "choices", "answer"}, where)
            choices = self.listed(where + ("choices",), question.get("choices"), 2, MAX_CHOICES, "choices")
            choices = [self.label(where + ("choices", j), choice, "choice") for j, choice in enumerate(choices)]
            if len(set(choices)) != len(choices):
                self.fail(where + ("choices",), f"choices must be distinct, got {choices}")
            answer = self.label(where + ("answer",), question.get("answer"), "choice")
            if answer not in choices:
                self.fail(where + ("answer",), f"expected one of the choices {choices}, got {answer!r}")
            out.append({"text": self.text(where + ("text",), question.get("text")), "choices": choices,
                        "answer": answer})
        return {"questions": out,
                "max_attempts": self.integer(path + ("max_attempts",), values.get("max_attempts", 3), 1, 100)}

    def device(self, value: Any, task: str) -> dict | None:
        """The device check (`studyweb.screening`): the task's defaults updated with `value`;
        None for `device: false` (no check)."""
        rule, path = task_named(task).default_device(), ("device",)
        if value is False:
            return None
        if value is None:
            return rule
        if not isinstance(value, dict):
            self.fail(path, "expected {min_window: [width, height], phones: exclude | allow, fullscreen: true | false},"
                            f" or false for no check; got {value!r}")
        self.known(value, set(rule), path)
        if "min_window" in value:
            size = self.listed(path + ("min_window",), value["min_window"], 2, 2, "sizes [width, height] in CSS px")
            rule["min_window"] = [self.integer(path + ("min_window", k), v, 1, MAX_WINDOW_PX)
                                  for k, v in enumerate(size)]
        if "phones" in value:
            if value["phones"] not in PHONES:
                self.fail(path + ("phones",), f"expected one of {list(PHONES)}, got {value['phones']!r}")
            rule["phones"] = value["phones"]
        if "fullscreen" in value:
            if not isinstance(value["fullscreen"], bool):
                self.fail(path + ("fullscreen",), f"expected true or false, got {value['fullscreen']!r}")
            rule["fullscreen"] = value["fullscreen"]
        return rule

    def pacing(self, values: dict, out: dict) -> dict:
        """break_after (trials), between_blocks (a text) and iti_ms, None where not given
        (`studyweb.workload.pace_trials`)."""
        pacing = {"break_after": None, "between_blocks": None, "iti_ms": None}
        if values.get("break_after") is not None:
            pacing["break_after"] = self.integer(("break_after",), values["break_after"], 1, MAX_COUNT)
        if values.get("iti_ms") is not None:
            pacing["iti_ms"] = self.integer(("iti_ms",), values["iti_ms"], 0, MAX_MS)
        if values.get("between_blocks") is not None:
            pacing["between_blocks"] = self.text(("between_blocks",), values["between_blocks"]).strip()
            n_blocks = len(out["conditions"]["versions"]) if out["conditions"] else len(out["blocks"])
            if n_blocks < 2:
                self.fail(("between_blocks",), "this design has one block, so nothing is between blocks"
                                               " (add blocks, or conditions to an attention design)")
        return pacing

    def pilot(self, values: Any) -> dict:
        """The simulated participants' failure rates in [0, 1] (`studyweb.workload.FAILURE_RATES`)."""
        if values is None:
            return {}
        if not isinstance(values, dict):
            self.fail(("pilot",), f"expected a mapping of {sorted(FAILURE_RATES)} to rates in [0, 1], got {values!r}")
        self.known(values, set(FAILURE_RATES), ("pilot",))
        return {key: self.number(("pilot", key), value, 0, 1) for key, value in values.items()}

    def workload(self, out: dict) -> None:
        """per_participant against a fixed number of pairs (stimuli.pairs); against the
        dataset's pairs when the experiment is made (`studyweb.workload.check_workload`)."""
        pairs, k = out["stimuli"]["pairs"], out["per_participant"]
        n_pairs = len(pairs) if isinstance(pairs, list) else pairs
        if isinstance(k, int) and n_pairs is not None and k > n_pairs:
            self.fail(("per_participant",), f"{k} images per block and participant, but stimuli.pairs selects at most"
                                            f" {n_pairs} and a participant sees at most one version of a pair per"
                                            f" block; set per_participant to at most {n_pairs}")

    def block(self, block: Any, i: int, methods: dict) -> dict:
        """A block: its task's keys (`Task.block_keys`), its name, then its task's own checks."""
        path = ("blocks", i)
        if not isinstance(block, dict):
            self.fail(path, "expected a mapping with at least name and task")
        tasks = block_tasks()
        task = block.get("task")
        if not isinstance(task, str) or task not in tasks:
            self.fail(path + ("task",), f"expected one of {sorted(tasks)}, got {task!r}")
        self.known(block, tasks[task].block_keys, path)
        out = {k: v for k, v in block.items() if k not in ("questions", "question")}
        out["name"] = self.text(path + ("name",), block.get("name", f"block{i + 1}"), "id")
        return tasks[task].check_block(self, block, out, path, methods)


def create_from_design(session, source, dataset_dir, name: str, methods: dict[str, str] | None = None):
    """The experiment a design describes, on the dataset at `dataset_dir` (flushed, not
    committed). A questionnaire design gets a stimulus per selected pair and version (the input
    and each method's output); a single codecharts or bubbleview block makes a study of that task
    on the selected pairs' input images. DesignError/ValueError for a design that cannot run
    (an unknown key, a missing method output, ...)."""
    design = source if isinstance(source, Design) else load_design(source, methods)
    values = design.values
    dataset = Dataset.open(Path(dataset_dir).expanduser().resolve())
    pair_ids = select_pairs(dataset, values["stimuli"], design.source)
    check_workload(values, len(pair_ids), design.source)  # per_participant never silently reduced
    for warning in workload_warnings(values, len(pair_ids)):
        log.warning("%s: %s", design.source, warning)
    common = {key: values[key] for key in ("observers", "completion_code", "completion_url", "exclude_workers_of",
                                           "screenout_code", "screenout_url", "texts", "comprehension", "device")
              if values.get(key)}
    title, description = values.get("title") or "", values.get("description") or ""
    if design.task in attention_tasks():
        block = values["blocks"][0]
        settings = {k: v for k, v in block.items() if k not in ("name", "task", "image")}
        settings["per_participant"] = len(pair_ids) if values.get("per_participant") in (None, "all") \
            else values["per_participant"]
        if values["conditions"]:
            settings["conditions"] = values["conditions"]
        settings["design"] = values  # its pacing (`workload.pace_trials`) and pilot rates
        experiment = create_experiment(session, dataset.path, name, design.task, title=title, description=description,
                                       sides=[values["stimuli"]["side"]], pair_ids=pair_ids, **common, **settings)
        if values["conditions"]:
            _add_method_stimuli(session, experiment, design, [m for m in values["conditions"]["versions"]
                                                              if m != "original"])
        return experiment

    check_name(session, name)
    side = values["stimuli"]["side"]
    per_participant = values["per_participant"]
    settings = validate_settings({**common, "sides": [side],
                                  "per_participant": len(pair_ids) if per_participant in (None, "all")
                                  else per_participant, "design": values})
    fill_codes(settings)
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
    for task in dict.fromkeys(task_named(block["task"]) for block in values["blocks"]):  # masks, target maps
        task.check_dataset([b for b in values["blocks"] if b["task"] == task.name], dataset, pair_ids, side,
                           design.source)
    session.add_all(stimuli)
    session.flush()
    log.info("questionnaire %s: %d pairs x %d versions from %s", name, len(pair_ids), 1 + len(values["methods"]),
             dataset.path)
    return experiment


def _add_method_stimuli(session, experiment, design: Design, methods: list[str]) -> None:
    """A stimulus for each method's output of each of the experiment's pairs (DesignError when one is missing)."""
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
    task_named(experiment.task).check_stimuli(list(experiment.stimuli), experiment.settings)


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
